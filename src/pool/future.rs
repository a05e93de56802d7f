//! [`Future`] types.

use super::{acquire::Acquire, adaptive::Outcome, body::PoolBody, permit::Permit};
use crate::{
    classify::{Failure, Stage},
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
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// Response future of [`PoolLimit`](super::PoolLimit).
    ///
    /// It holds the call's permit until the response head arrives, then hands it to the
    /// response's [`PoolBody`] (or gives it back, with `release_on_body_end(false)`).
    ///
    /// In per-host `block` mode, the host is only known once the request is seen, so a call
    /// whose host pool is full waits *here*, up to `pool_timeout`, before it calls the
    /// inner service (a ready clone of it, moved in by `call`).
    ///
    /// # Cancel safety
    ///
    /// Dropping it gives back its permit, or leaves the host's queue (a permit handed to it
    /// meanwhile goes to the next waiter); the request is then never sent.
    ///
    /// ```
    /// use tower::{Service, ServiceExt};
    /// use tower_fortify::pool::{future::ResponseFuture, PoolLimit};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let inner = tower::service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
    /// });
    /// let mut svc = PoolLimit::new(inner, 1)?;
    /// let future: ResponseFuture<_, ()> = svc.ready().await?.call(http::Request::new(()));
    /// drop(future); // gives its permit back
    /// assert_eq!(svc.handle().snapshot().total.in_use, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, S::Future>,
        release_on_body_end: bool,
    }
}

pin_project! {
    /// A per-host call through its pool: [`ResponseFuture`]'s, and the preset gate's (which
    /// records the breaker's part of the result itself).
    #[project = StateProj]
    pub(crate) enum State<S, B, F> {
        Called {
            #[pin]
            future: F,
            permit: Permit,
        },
        // Boxed: a request and a timer are large, and every call's future would carry their
        // room (and move it) for the rare per-host call that waits, which allocates its
        // place in the queue anyway.
        Waiting {
            waiting: Pin<Box<Waiting<S, B>>>,
        },
        Failed {
            error: Option<BoxError>,
        },
    }
}

impl<S, B, F> State<S, B, F> {
    /// The state's name, for `Debug`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            State::Called { .. } => "called",
            State::Waiting { .. } => "waiting",
            State::Failed { .. } => "failed",
        }
    }
}

pin_project! {
    /// A per-host call waiting for its host's permit, with what it calls once it has it.
    #[project = WaitingProj]
    pub(crate) struct Waiting<S, B> {
        acquire: Acquire,
        #[pin]
        timer: Option<Sleep>,
        service: Option<S>,
        request: Option<Request<B>>,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn called(future: S::Future, permit: Permit, release_on_body_end: bool) -> Self {
        ResponseFuture {
            state: State::Called { future, permit },
            release_on_body_end,
        }
    }

    pub(crate) fn waiting(
        acquire: Acquire,
        timer: Option<Sleep>,
        service: S,
        request: Request<B>,
        release_on_body_end: bool,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                waiting: Box::pin(Waiting {
                    acquire,
                    timer,
                    service: Some(service),
                    request: Some(request),
                }),
            },
            release_on_body_end,
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
            release_on_body_end: false,
        }
    }

    /// The call's state, for a future that drives it itself (the preset's gate).
    #[cfg(feature = "stack")]
    pub(crate) fn into_state(self) -> State<S, B, S::Future> {
        self.state
    }
}

/// The pool's part of a call's response: records its status, and gives the permit the
/// response's body is to hold (none if it was given back now: `release_on_body_end(false)`,
/// or a body that is empty already).
#[cfg(feature = "stack")]
#[inline(always)]
pub(crate) fn body_permit<ResB: Body>(
    permit: &mut Permit,
    response: &Response<ResB>,
    release_on_body_end: bool,
) -> Permit {
    permit.record(|| Outcome::of_status(response.status()));
    if release_on_body_end && !response.body().is_end_stream() {
        permit.take()
    } else {
        permit.give_back();
        Permit::NONE
    }
}

/// The pool's part of a call's error: classified, recorded, and the permit given back.
#[inline(always)]
pub(crate) fn call_failed(permit: &mut Permit, err: BoxError) -> BoxError {
    let err = Failure::boxed_at(err, Stage::Request);
    permit.record(|| Outcome::of_error(&*err));
    permit.give_back();
    err
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("state", &self.state.name())
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
                        Err(err) => return Poll::Ready(Err(call_failed(permit, err.into()))),
                    };
                    // The response moves once more here, into its new type (`Response::map`),
                    // which tower's `ConcurrencyLimit` does not do and tower's `MapResponse`
                    // pays alike. Shapes that compiled to more copies (callgrind, inlined
                    // into a caller's `.await`): the end-of-stream test after the move or
                    // out of line, the wrapping out of line, `Poll::map`, `poll` not inlined,
                    // the finished state set here. Without the test, or without the permit
                    // in the body, the count is this one's: the cost is the move itself.
                    permit.record(|| Outcome::of_status(response.status()));
                    let permit = if *this.release_on_body_end {
                        permit.take()
                    } else {
                        permit.give_back();
                        Permit::NONE
                    };
                    return Poll::Ready(Ok(
                        response.map(|body| PoolBody::with_permit(body, permit))
                    ));
                }
                StateProj::Waiting { waiting } => ready!(poll_waiting(waiting.as_mut(), cx)),
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            };
            this.state.set(next);
        }
    }
}

/// A per-host call waiting for its host's permit: the state that comes next, once the
/// permit came (the inner service called) or the timeout passed.
#[cold]
pub(crate) fn poll_waiting<S, B>(
    waiting: Pin<&mut Waiting<S, B>>,
    cx: &mut Context<'_>,
) -> Poll<State<S, B, S::Future>>
where
    S: Service<Request<B>>,
{
    let WaitingProj {
        acquire,
        timer,
        service,
        request,
    } = waiting.project();
    if let Poll::Ready(permit) = acquire.poll(cx) {
        let mut service = service.take().expect("polled after completion");
        let request = request.take().expect("polled after completion");
        return Poll::Ready(State::Called {
            future: service.call(request),
            permit,
        });
    }
    let Some(timer) = timer.as_pin_mut() else {
        return Poll::Pending;
    };
    ready!(timer.poll(cx));
    let error = acquire.pool().timed_out(acquire.since().elapsed());
    Poll::Ready(State::Failed { error: Some(error) })
}

pin_project! {
    /// Response future of [`GenericPoolLimit`](super::GenericPoolLimit): it gives its permit
    /// back when the inner future completes.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner future and gives back its permit.
    ///
    /// ```
    /// use tower::{Service, ServiceExt};
    /// use tower_fortify::pool::{future::GenericResponseFuture, GenericPoolLimit};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let mut svc = GenericPoolLimit::new(tower::service_fn(|x: u8| async move { Ok::<_, std::io::Error>(x) }), 1)?;
    /// let future: GenericResponseFuture<_> = svc.ready().await?.call(7);
    /// assert_eq!(svc.handle().snapshot().total.in_use, 1);
    /// assert_eq!(future.await?, 7);
    /// assert_eq!(svc.handle().snapshot().total.in_use, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub struct GenericResponseFuture<F> {
        #[pin]
        state: GenericState<F>,
    }
}

pin_project! {
    #[project = GenericStateProj]
    enum GenericState<F> {
        Called {
            #[pin]
            future: F,
            permit: Permit,
        },
        Failed {
            error: Option<BoxError>,
        },
    }
}

impl<F> GenericResponseFuture<F> {
    pub(crate) fn called(future: F, permit: Permit) -> Self {
        GenericResponseFuture {
            state: GenericState::Called { future, permit },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        GenericResponseFuture {
            state: GenericState::Failed { error: Some(error) },
        }
    }
}

impl<F> fmt::Debug for GenericResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("GenericResponseFuture");
        match &self.state {
            GenericState::Called { permit, .. } => d.field("permit", permit),
            GenericState::Failed { .. } => d.field("failed", &true),
        };
        d.finish_non_exhaustive()
    }
}

impl<F, T, E> Future for GenericResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GenericStateProj::Called { future, permit } => match ready!(future.poll(cx)) {
                Ok(response) => {
                    permit.record(|| Outcome::Success);
                    *permit = Permit::NONE;
                    Poll::Ready(Ok(response))
                }
                Err(err) => {
                    let err = Failure::boxed_at(err.into(), Stage::Request);
                    permit.record(|| Outcome::of_error(&*err));
                    *permit = Permit::NONE;
                    Poll::Ready(Err(err))
                }
            },
            GenericStateProj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}
