//! [`Future`] types.

use super::{
    admission::{Admission, ProbeCall, Shared},
    ticket::Ticket,
    Classify,
};
use crate::{
    classify::{Failure, Stage},
    BoxError,
};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};
use tower_service::Service;

pin_project! {
    /// Response future of [`CircuitBreaker`](super::CircuitBreaker) and
    /// [`GenericCircuitBreaker`](super::GenericCircuitBreaker).
    ///
    /// When the breaker rejected the call, it resolves at its first poll with the
    /// [`CircuitOpen`](crate::classify::FailureKind::CircuitOpen) failure; otherwise it drives
    /// the inner future and records its result.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner future and records nothing: a cancelled call is neither a
    /// success nor a failure. A probe's slot is given back, so the next call can probe.
    ///
    /// ```
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_fortify::circuit_breaker::{
    ///     future::ResponseFuture, CircuitBreakerLayer, ErrorsOnly,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().classifier(ErrorsOnly).build_generic()?;
    /// let handle = layer.handle();
    /// let mut svc = layer.layer(tower::service_fn(|n: u32| async move {
    ///     Ok::<_, std::io::Error>(n * 2)
    /// }));
    /// let future: ResponseFuture<_, ErrorsOnly> = svc.ready().await?.call(21);
    /// drop(future); // cancelled: records nothing
    /// assert_eq!(handle.figures().calls(), 0);
    /// assert_eq!(svc.ready().await?.call(21).await?, 42);
    /// assert_eq!(handle.figures().calls(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        ticket: Ticket,
        classifier: C,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called {
            #[pin]
            future: F,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

// ===== the one call path of every breaker =====

/// Calls `inner` through one breaker: the closed path, then [`admitted`] past it.
#[inline(always)]
pub(crate) fn call<S, C, Request>(
    shared: &Shared,
    inner: &mut S,
    request: Request,
    classifier: &C,
) -> ResponseFuture<S::Future, C>
where
    S: Service<Request>,
    C: Clone,
{
    if let Some(gen) = shared.closed_gen() {
        // Closed: the ticket is taken after the call, so that it is built in place in the
        // future rather than kept across the call and copied.
        let start = shared.started();
        let future = inner.call(request);
        let ticket = shared.closed_ticket(gen, start);
        return ResponseFuture::called(future, ticket, classifier.clone());
    }
    admitted(shared.admit_slow(), inner, request, classifier)
}

/// Calls `inner` if the call was admitted (as a probe, if it is one); otherwise resolves at
/// once without calling it. The request goes straight into the inner call: through a
/// closure, it would be copied once more.
#[inline(always)]
pub(crate) fn admitted<S, C, Request>(
    admission: Admission,
    inner: &mut S,
    request: Request,
    classifier: &C,
) -> ResponseFuture<S::Future, C>
where
    S: Service<Request>,
    C: Clone,
{
    match admission {
        Admission::Call(ticket) => {
            let probe = ticket.is_probe().then(ProbeCall::enter);
            let future = inner.call(request);
            drop(probe);
            ResponseFuture::called(future, ticket, classifier.clone())
        }
        Admission::Reject(error) => ResponseFuture::rejected(error, classifier.clone()),
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline(always)]
    pub(crate) fn called(future: F, ticket: Ticket, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Called { future },
            ticket,
            classifier,
        }
    }

    pub(crate) fn rejected(error: BoxError, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
            ticket: Ticket::none(),
            classifier,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Called { future } => {
                // The result is looked at in place and handed on whole: bound and rebuilt,
                // the response would be copied once more. The error is converted first (for
                // an inner error that is a `BoxError` already, that moves nothing), and
                // replaced in place by its failure.
                let mut poll = future.poll(cx).map_err(Into::<BoxError>::into);
                let ticket = this.ticket;
                match &mut poll {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(response)) => record_response(ticket, this.classifier, response),
                    Poll::Ready(Err(err)) => {
                        // A zero-sized placeholder while the error is taken (never seen): a
                        // box of it allocates nothing.
                        let taken = std::mem::replace(err, Box::new(fmt::Error));
                        *err = record_failure::<T, C>(ticket, this.classifier, taken);
                    }
                }
                poll
            }
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = matches!(self.kind, Kind::Rejected { .. });
        f.debug_struct("ResponseFuture")
            .field("rejected", &rejected)
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

/// The breaker's part of a call's response: classified and recorded on its ticket (if the
/// ticket still counts), with the response's `Retry-After` where the ticket wants it. The
/// one place a response is recorded, for the breaker's future and the preset's gate.
#[inline]
pub(crate) fn record_response<T, C: Classify<T>>(
    ticket: &mut Ticket,
    classifier: &C,
    response: &T,
) {
    if ticket.is_pending() {
        let outcome = classifier.classify_response(response);
        let retry_after = if ticket.wants_retry_after() {
            classifier.retry_after(response)
        } else {
            None
        };
        ticket.finish(outcome, retry_after);
    }
}

/// The breaker's part of a call's error: made a [`Failure`] (once), classified and recorded
/// on its ticket (if the ticket still counts); the failure is the call's error.
pub(crate) fn record_failure<T, C: Classify<T>>(
    ticket: &mut Ticket,
    classifier: &C,
    err: BoxError,
) -> BoxError {
    let failure = Failure::boxed_failure_at(err, Stage::Request);
    if ticket.is_pending() {
        ticket.finish(classifier.classify_failure(&failure), None);
    }
    failure
}
