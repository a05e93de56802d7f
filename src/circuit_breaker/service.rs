use super::{
    admission::Shared,
    future::{self, ResponseFuture},
    keyed::Breakers,
    settings::Settings,
    BreakerHandle, CircuitBreakerHandle, Classify, HttpStatus,
};
use crate::key::HostRef;
use crate::{
    classify::{Failure, Stage},
    key::{ByAuthority, RequestKey, RequestLookup},
    BoxError,
};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Rejects HTTP calls while their host is failing, and probes carefully until it recovers:
/// one breaker per host by default, or one for every request.
///
/// Each request goes through the breaker of its key (its URI's authority, with
/// [`ByAuthority`]), created on first use; with
/// [`per_host(false)`](super::CircuitBreakerBuilder::per_host), through the one breaker, with
/// no key computed. See the [module docs](super) for the states, windows and defaults.
/// Errors are returned as [`BoxError`]: a classified [`Failure`] of the inner service's error,
/// or a `Failure` of kind [`CircuitOpen`](crate::classify::FailureKind::CircuitOpen) (with an
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
/// # Memory
///
/// At most [`max_keys`](super::CircuitBreakerBuilder::max_keys) breakers are kept, in up to
/// 16 shards of the map, each with its share of the bound. A new key in a full shard evicts
/// up to an eighth of it, least recently used first: closed breakers fill that batch; open
/// or half-open ones go only as far as room is still needed; a breaker an operator forced
/// open or disabled is never evicted (then the map may hold more, by as many). An evicted
/// key starts again with a fresh, closed breaker. So a scan of a million hosts holds at most
/// `max_keys` breakers (a few KiB each) at any time.
///
/// # Clone
///
/// Clones share the breakers with each other and with every service built by the same layer.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::circuit_breaker::{CircuitBreaker, State};
/// use tower_fortify::key::HostKey;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let inner = tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new("ok"))
/// });
/// let mut svc = CircuitBreaker::new(inner);
/// let request = http::Request::get("http://a.example/").body(())?;
/// let response = svc.ready().await?.call(request).await?;
/// assert_eq!(*response.body(), "ok");
/// let key = |uri| HostKey::from_uri(&http::Uri::from_static(uri));
/// assert_eq!(svc.handle().get(&key("http://a.example")).unwrap().state(), State::Closed);
/// assert!(svc.handle().get(&key("http://b.example")).is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, K = ByAuthority, C = HttpStatus> {
    inner: S,
    breakers: Breakers,
    key: K,
    classifier: C,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` with breakers of its own, one per host, with the default settings
    /// ([`CircuitBreakerLayer::new`](super::CircuitBreakerLayer::new)).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let inner = tower::service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// });
    /// let svc = CircuitBreaker::new(inner);
    /// assert!(svc.handle().per_host());
    /// ```
    pub fn new(inner: S) -> Self {
        let breakers = Breakers::new(Arc::new(Settings::default_for(true)), true);
        CircuitBreaker::from_parts(inner, breakers, ByAuthority, HttpStatus::new())
    }
}

impl<S, K, C> CircuitBreaker<S, K, C> {
    pub(crate) fn from_parts(inner: S, breakers: Breakers, key: K, classifier: C) -> Self {
        CircuitBreaker {
            inner,
            breakers,
            key,
            classifier,
        }
    }

    /// A handle on the breakers.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let svc = CircuitBreaker::new(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// assert!(svc.handle().is_empty());
    /// ```
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breakers.clone())
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let svc = CircuitBreaker::new("inner");
    /// assert_eq!(*svc.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// let mut svc = CircuitBreaker::new("inner");
    /// *svc.get_mut() = "replaced";
    /// assert_eq!(*svc.get_ref(), "replaced");
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreaker;
    ///
    /// assert_eq!(CircuitBreaker::new("inner").into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, K, C, B> Service<http::Request<B>> for CircuitBreaker<S, K, C>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    K: RequestKey<B>,
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
    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match &self.breakers {
            Breakers::Single(shared) => {
                future::call(shared, &mut self.inner, request, &self.classifier)
            }
            Breakers::Keyed(map) => {
                // The key is looked up borrowed: a known key allocates nothing.
                let admission = if self.key.by_authority() {
                    let uri = request.uri();
                    map.admit_recent(uri, || HostRef::of(uri))
                } else {
                    map.admit(RequestLookup::of(&self.key, &request))
                };
                future::admitted(admission, &mut self.inner, request, &self.classifier)
            }
        }
    }
}

/// The preset's call through a per-host breaker and pool, with one lookup of the request
/// hashed for both maps ([`stack`](crate::stack)): the gate holds the breakers and calls
/// through them itself.
#[cfg(feature = "stack")]
impl<S, C> CircuitBreaker<S, ByAuthority, C> {
    /// The inner service, the breakers and the classifier.
    pub(crate) fn into_parts(self) -> (S, Breakers, C) {
        (self.inner, self.breakers, self.classifier)
    }
}

/// Rejects calls while its backend is failing, and probes carefully until it recovers: one
/// breaker for every call, for any request type.
///
/// It behaves as each breaker of a [`CircuitBreaker`] (see the [module docs](super) and
/// [`CircuitBreaker`]'s readiness), with one breaker and no key.
///
/// # Clone
///
/// Clones share the breaker (and its window and state) with each other and with every
/// service built by the same layer.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::circuit_breaker::{GenericCircuitBreaker, State};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let inner = tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new("ok"))
/// });
/// let mut svc = GenericCircuitBreaker::new(inner);
/// let response = svc.ready().await?.call(http::Request::new(())).await?;
/// assert_eq!(*response.body(), "ok");
/// assert_eq!(svc.handle().state(), State::Closed);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GenericCircuitBreaker<S, C = HttpStatus> {
    inner: S,
    shared: Arc<Shared>,
    classifier: C,
}

impl<S> GenericCircuitBreaker<S> {
    /// Wraps `inner` with a breaker of its own, with the default settings
    /// ([`GenericCircuitBreakerLayer::new`](super::GenericCircuitBreakerLayer::new)).
    ///
    /// ```
    /// use tower::ServiceExt;
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreaker, State};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Any request type; the default classifier reads the `http::Response`'s status.
    /// let svc = GenericCircuitBreaker::new(tower::service_fn(|status: u16| async move {
    ///     Ok::<_, std::io::Error>(http::Response::builder().status(status).body(()).unwrap())
    /// }));
    /// for status in [200, 503] {
    ///     let _ = svc.clone().oneshot(status).await;
    /// }
    /// let figures = svc.handle().figures();
    /// assert_eq!((figures.calls(), figures.failures()), (2, 1));
    /// assert_eq!(svc.handle().state(), State::Closed); // under the default 10 calls
    /// # }
    /// ```
    pub fn new(inner: S) -> Self {
        let settings = Arc::new(Settings::default_for(false));
        let shared = Arc::new(Shared::new(settings, None));
        GenericCircuitBreaker::from_shared(inner, shared, HttpStatus::new())
    }
}

impl<S, C> GenericCircuitBreaker<S, C> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>, classifier: C) -> Self {
        GenericCircuitBreaker {
            inner,
            shared,
            classifier,
        }
    }

    /// A handle on the breaker.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreaker, State};
    ///
    /// let svc = GenericCircuitBreaker::new(tower::service_fn(|n: u32| async move {
    ///     Ok::<_, std::io::Error>(n)
    /// }));
    /// assert_eq!(svc.clone().handle().state(), State::Closed);
    /// ```
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle::new(Arc::clone(&self.shared.breaker))
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::GenericCircuitBreaker;
    ///
    /// let svc = GenericCircuitBreaker::new("inner");
    /// assert_eq!(*svc.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::GenericCircuitBreaker;
    ///
    /// let mut svc = GenericCircuitBreaker::new("inner");
    /// *svc.get_mut() = "replaced";
    /// assert_eq!(*svc.get_ref(), "replaced");
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::GenericCircuitBreaker;
    ///
    /// assert_eq!(GenericCircuitBreaker::new("inner").into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Request> Service<Request> for GenericCircuitBreaker<S, C>
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
        future::call(&self.shared, &mut self.inner, request, &self.classifier)
    }
}
