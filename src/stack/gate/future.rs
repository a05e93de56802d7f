//! The gate's future: the breaker's and the pool's parts of a call in one state machine.

use crate::{
    circuit_breaker::{
        future::{record_failure, record_response},
        HttpStatus, Ticket,
    },
    pool::{
        future::{body_permit, call_failed, poll_waiting, State, StateProj},
        Permit, PoolBody,
    },
    BoxError,
};
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};
use tower_service::Service;

pin_project! {
    /// The response future of [`HostGate`](super::HostGate): a per-host breaker's future
    /// around a per-host pool's, as one. It records, releases and fails as the two do
    /// nested: the pool's part of a result first (its permit recorded, given back or handed
    /// to the body), then the breaker's (the call's ticket); a call the breaker rejected
    /// resolves with its rejection, unclassified again.
    ///
    /// One state for both: the breaker's future around the pool's held the response across
    /// the breaker's recording and copied it once more as it handed it on; here the
    /// response is recorded as it comes and moved once, into its body's new type.
    ///
    /// # Cancel safety
    ///
    /// Dropped, it drops the inner future (or leaves the host's queue), gives its permit
    /// back, then drops its ticket (a probe's slot is given back), and records nothing.
    #[allow(unreachable_pub)]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, S::Future>,
        // After the state: dropped last, as the breaker's future dropped the pool's first.
        ticket: Ticket,
        classifier: HttpStatus,
        release_on_body_end: bool,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A call with its permit, made.
    #[inline(always)]
    pub(super) fn called(
        future: S::Future,
        permit: Permit,
        ticket: Ticket,
        classifier: HttpStatus,
        release_on_body_end: bool,
    ) -> Self {
        ResponseFuture {
            state: State::Called { future, permit },
            ticket,
            classifier,
            release_on_body_end,
        }
    }

    /// A call its pool, full, handled as its mode says (see
    /// [`call_full`](crate::pool::PoolShared::call_full)).
    pub(super) fn full(
        pool: crate::pool::future::ResponseFuture<S, B>,
        ticket: Ticket,
        classifier: HttpStatus,
        release_on_body_end: bool,
    ) -> Self {
        ResponseFuture {
            state: pool.into_state(),
            ticket,
            classifier,
            release_on_body_end,
        }
    }

    /// A call the breaker rejected: it resolves with `error` at its first poll.
    pub(super) fn rejected(error: BoxError, classifier: HttpStatus) -> Self {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
            ticket: Ticket::none(),
            classifier,
            release_on_body_end: false,
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("state", &self.state.name())
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body,
{
    type Output = Result<Response<PoolBody<ResB>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Called { future, permit } => {
                    let response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(err) => {
                            let err = call_failed(permit, err.into());
                            return Poll::Ready(Err(failed::<ResB>(
                                this.ticket,
                                this.classifier,
                                err,
                            )));
                        }
                    };
                    let permit = body_permit(permit, &response, *this.release_on_body_end);
                    record_response(this.ticket, this.classifier, &response);
                    return Poll::Ready(Ok(response.map(|body| PoolBody::held(body, permit))));
                }
                StateProj::Waiting { waiting } => ready!(poll_waiting(waiting.as_mut(), cx)),
                StateProj::Failed { error } => {
                    let error = error.take().expect("polled after completion");
                    // A rejected call has no ticket, and its error is the breaker's own.
                    if !this.ticket.is_pending() {
                        return Poll::Ready(Err(error));
                    }
                    return Poll::Ready(Err(failed::<ResB>(this.ticket, this.classifier, error)));
                }
            };
            this.state.set(next);
        }
    }
}

/// The breaker's part of an admitted call's error (see [`record_failure`]), out of line.
#[cold]
fn failed<ResB>(ticket: &mut Ticket, classifier: &HttpStatus, err: BoxError) -> BoxError {
    record_failure::<Response<PoolBody<ResB>>, _>(ticket, classifier, err)
}
