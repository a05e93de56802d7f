use super::{
    admission::{Admission, ProbeCall, Shared},
    future::ResponseFuture,
    CircuitBreakerHandle, CircuitBreakerLayer, Classify, HttpStatus,
};
use crate::{
    classify::{Failure, Stage},
    BoxError,
};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_layer::Layer;
use tower_service::Service;

/// Rejects calls while its backend is failing, and probes carefully until it recovers.
///
/// See the [module docs](super) for the states, windows and defaults. Errors are returned as
/// [`BoxError`]: a classified [`Failure`] of the inner service's error, or a `Failure` of
/// kind [`CircuitOpen`](crate::classify::FailureKind::CircuitOpen) (with an
/// [`Open`](super::error::Open) source) when the breaker rejects the call.
///
/// # Readiness
///
/// `poll_ready` is the inner service's, whatever the breaker's state: a rejection happens in
/// `call`, which then resolves at once without calling the inner service. A breaker that
/// made `poll_ready` wait while open would park `tower::buffer::Buffer`'s worker (and every
/// caller queued behind it) for the whole open duration instead of failing them fast, and
/// an error from `poll_ready` tells `Buffer` and the load balancers of `tower::balance` that
/// the service is gone for good: `Buffer` fails every later call, a balancer drops the
/// endpoint. Rejecting in `call` keeps both working, and keeps the decision per request.
///
/// # Clone
///
/// Clones share the breaker (and its window and state) with each other and with every
/// service built by the same layer.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::circuit_breaker::{CircuitBreaker, State};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let inner = tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new("ok"))
/// });
/// let mut svc = CircuitBreaker::new(inner);
/// let response = svc.ready().await?.call(http::Request::new(())).await?;
/// assert_eq!(*response.body(), "ok");
/// assert_eq!(svc.handle().state(), State::Closed);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, C = HttpStatus> {
    inner: S,
    shared: Arc<Shared>,
    classifier: C,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` with a breaker of its own, with the default settings
    /// ([`CircuitBreakerLayer::new`]).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let inner = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    /// let svc = CircuitBreaker::new(inner);
    /// # let _ = svc;
    /// ```
    pub fn new(inner: S) -> Self {
        CircuitBreakerLayer::new().layer(inner)
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>, classifier: C) -> Self {
        CircuitBreaker {
            inner,
            shared,
            classifier,
        }
    }

    /// A handle on the breaker.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{CircuitBreaker, State};
    ///
    /// let svc = CircuitBreaker::new(tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    /// assert_eq!(svc.clone().handle().state(), State::Closed);
    /// ```
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(Arc::clone(&self.shared.breaker))
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let inner = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    /// let mut svc = CircuitBreaker::new(inner);
    /// let _inner: &_ = svc.get_ref();
    /// let _inner: &mut _ = svc.get_mut();
    /// let _inner = svc.into_inner();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let inner = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    /// let mut svc = CircuitBreaker::new(inner);
    /// let _inner = svc.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let inner = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    /// let _inner = CircuitBreaker::new(inner).into_inner();
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Request> Service<Request> for CircuitBreaker<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|err| Failure::boxed_at(err.into(), Stage::Request))
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let shared = &*self.shared;
        if let Some(gen) = shared.closed_gen() {
            // Closed: the ticket is taken after the call, so that it is built in place in
            // the future rather than kept across the call and copied.
            let start = shared.started();
            let future = self.inner.call(request);
            let ticket = shared.closed_ticket(gen, start);
            return ResponseFuture::called(future, ticket, self.classifier.clone());
        }
        respond(
            shared.admit_slow(),
            &mut self.inner,
            request,
            &self.classifier,
        )
    }
}

/// Calls `inner` if the call was admitted; otherwise resolves at once without calling it.
#[inline(always)]
pub(crate) fn respond<S, C, Request>(
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
