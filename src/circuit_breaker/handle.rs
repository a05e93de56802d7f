use super::{breaker::Breaker, keyed::Breakers, local::current_lane, State, WindowFigures};
use crate::key::ByRef;
use std::{fmt, hash::Hash, sync::Arc, time::Duration};

/// Reads and steers one breaker from outside the service: its state, its window, and the
/// operator states.
///
/// Get it from a generic layer
/// ([`GenericCircuitBreakerLayer::handle`](super::GenericCircuitBreakerLayer::handle)), from
/// its services, or for one key of an HTTP layer
/// ([`CircuitBreakerHandle::get`](super::CircuitBreakerHandle::get)).
///
/// # Clone
///
/// Clones refer to the same breaker, which all the services of the layer share.
///
/// ```
/// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
///
/// let layer = GenericCircuitBreakerLayer::new();
/// let handle = layer.handle();
///
/// // During a deployment of the backend: fail fast without calling it.
/// handle.force_open();
/// assert_eq!(handle.state(), State::ForcedOpen);
///
/// // Calls go through and are measured, the breaker never trips.
/// handle.disable();
/// assert_eq!(handle.state(), State::Disabled);
///
/// // Back to normal: closed, with an empty window.
/// handle.reset();
/// assert_eq!(handle.state(), State::Closed);
/// assert_eq!(handle.figures().calls(), 0);
/// ```
#[derive(Clone)]
pub struct BreakerHandle {
    breaker: Arc<Breaker>,
}

impl BreakerHandle {
    pub(crate) fn new(breaker: Arc<Breaker>) -> Self {
        BreakerHandle { breaker }
    }

    /// The state.
    ///
    /// An open breaker stays [`Open`](State::Open) until a call arrives after its open
    /// duration: that call moves it to [`HalfOpen`](State::HalfOpen) and is the first probe.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
    ///
    /// assert_eq!(GenericCircuitBreakerLayer::new().handle().state(), State::Closed);
    /// ```
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// The window's figures: calls, failures and slow calls.
    ///
    /// Each thread buffers a few successes before they enter a count window (see the
    /// [module docs](super#cost)); reading the figures pushes in those of the calling
    /// thread first, so a single thread reads exact figures.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = GenericCircuitBreakerLayer::new();
    /// let svc = layer.layer(tower::service_fn(|req: http::Request<u16>| async move {
    ///     let status = *req.body();
    ///     Ok::<_, std::io::Error>(http::Response::builder().status(status).body(()).unwrap())
    /// }));
    /// for status in [200, 404, 500, 503] {
    ///     let _ = svc.clone().oneshot(http::Request::new(status)).await;
    /// }
    /// let figures = layer.handle().figures();
    /// assert_eq!((figures.calls(), figures.failures()), (4, 2));
    /// assert_eq!(figures.failure_rate(), 0.5);
    /// # }
    /// ```
    pub fn figures(&self) -> WindowFigures {
        self.breaker.figures(Some(current_lane()))
    }

    /// How long until the next probe, while [`Open`](State::Open).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, ErrorsOnly};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let layer = CircuitBreakerLayer::builder()
    ///     .classifier(ErrorsOnly)
    ///     .minimum_calls(1)
    ///     .open_duration_jitter(0.0)
    ///     .build_generic()
    ///     .unwrap();
    /// let handle = layer.handle();
    /// assert_eq!(handle.retry_in(), None, "closed");
    /// let svc = layer.layer(tower::service_fn(|_: ()| async {
    ///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let _ = svc.oneshot(()).await;
    /// assert_eq!(handle.retry_in(), Some(Duration::from_secs(5)));
    /// tokio::time::advance(Duration::from_secs(2)).await;
    /// assert_eq!(handle.retry_in(), Some(Duration::from_secs(3)));
    /// # }
    /// ```
    pub fn retry_in(&self) -> Option<Duration> {
        self.breaker.retry_in()
    }

    /// Probes in flight: calls let through as half-open probes that have not answered nor
    /// been dropped yet. A probe keeps its slot until then, even when another probe's result
    /// has moved the breaker on, so that the backend never sees more than
    /// `half_open_max_probes` of them at once; only probes reclaimed after `probe_timeout`
    /// stop counting while still running.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
    ///
    /// assert_eq!(GenericCircuitBreakerLayer::new().handle().probes_in_flight(), 0);
    /// ```
    pub fn probes_in_flight(&self) -> u32 {
        self.breaker.probes_in_flight()
    }

    /// The open duration the next trip would start with, before jitter: the base duration
    /// times the growth from failed probes, less the steps undone by recovery.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
    ///
    /// let layer = GenericCircuitBreakerLayer::new();
    /// assert_eq!(layer.handle().next_open_duration(), Duration::from_secs(5));
    /// ```
    pub fn next_open_duration(&self) -> Duration {
        self.breaker.next_open_duration()
    }

    /// The key of this breaker, when it is one of a per-host layer's, as its `Debug` form
    /// prints it (`scheme://host:port` for the default per-host key): the text of
    /// [`Open::key`](super::error::Open::key) and of the tracing events' `key` field.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
    ///
    /// assert_eq!(GenericCircuitBreakerLayer::new().handle().key(), None);
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.breaker.key()
    }

    /// Opens the breaker until [`reset`](Self::reset): every call is rejected.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
    ///
    /// let handle = GenericCircuitBreakerLayer::new().handle();
    /// handle.force_open();
    /// assert_eq!(handle.state(), State::ForcedOpen);
    /// assert_eq!(handle.retry_in(), None);
    /// ```
    pub fn force_open(&self) {
        self.breaker.force_open();
    }

    /// Turns the breaker off until [`reset`](Self::reset): every call goes through and is
    /// measured in a fresh window, and the breaker never trips.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
    ///
    /// let handle = GenericCircuitBreakerLayer::new().handle();
    /// handle.disable();
    /// assert_eq!(handle.state(), State::Disabled);
    /// ```
    pub fn disable(&self) {
        self.breaker.disable();
    }

    /// Closes the breaker with an empty window and the base open duration, whatever its
    /// state. Calls in flight from before are not recorded.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
    ///
    /// let handle = GenericCircuitBreakerLayer::new().handle();
    /// handle.force_open();
    /// handle.reset();
    /// assert_eq!(handle.state(), State::Closed);
    /// ```
    pub fn reset(&self) {
        self.breaker.reset();
    }
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BreakerHandle").field(&self.breaker).finish()
    }
}

/// Reads and steers the breakers of a [`CircuitBreakerLayer`](super::CircuitBreakerLayer):
/// one per key (per host by default), or the one breaker of a layer built with
/// [`per_host(false)`](super::CircuitBreakerBuilder::per_host).
///
/// # Clone
///
/// Clones refer to the same breakers.
///
/// ```
/// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
///
/// let handle = CircuitBreakerLayer::builder().max_keys(100).build()?.handle();
/// assert_eq!(handle.len(), 0);
/// assert_eq!(handle.max_keys(), 100);
/// assert!(handle.breakers().is_empty());
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    breakers: Breakers,
}

impl CircuitBreakerHandle {
    pub(crate) fn new(breakers: Breakers) -> Self {
        CircuitBreakerHandle { breakers }
    }

    /// Whether the layer keeps one breaker per key (the default), or one for every request.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert!(CircuitBreakerLayer::new().handle().per_host());
    /// ```
    pub fn per_host(&self) -> bool {
        matches!(self.breakers, Breakers::Keyed(_))
    }

    /// A handle on the breaker of `key`, if it is tracked. With `per_host(false)`, the one
    /// breaker, whatever the key.
    ///
    /// `key` is a key as the layer's [`RequestKey`](crate::key::RequestKey) computes it: a
    /// [`HostKey`](crate::key::HostKey) for the default per-host key
    /// ([`HostKey::from_uri`](crate::key::HostKey::from_uri) makes one from an address, and
    /// `ByAuthority.key(&request)` from a request), your own key type for a
    /// [`key_fn`](super::CircuitBreakerBuilder::key_fn). Keys compare as their type does
    /// (a host's case does not matter); a key of another type finds nothing, and so does
    /// the text a key prints (a `String` is a key of another type): to go through every
    /// breaker by its printed key, use [`breakers`](Self::breakers).
    ///
    /// ```
    /// use http::Uri;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    /// use tower_fortify::key::HostKey;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().max_keys(2).build()?;
    /// let handle = layer.handle();
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// for host in ["a.test", "b.test", "c.test"] {
    ///     let request = http::Request::get(format!("http://{host}/")).body(())?;
    ///     svc.clone().oneshot(request).await?;
    /// }
    /// let key = |uri: &'static str| HostKey::from_uri(&Uri::from_static(uri));
    /// // "a.test" was the least recently used when "c.test" came.
    /// assert!(handle.get(&key("http://a.test")).is_none());
    /// let c = handle.get(&key("http://C.test:80")).unwrap();
    /// assert_eq!(c.state(), State::Closed);
    /// assert_eq!(c.key(), Some("http://c.test:80"));
    /// // Another scheme is another key (as it is another pool).
    /// assert!(handle.get(&key("https://c.test")).is_none());
    ///
    /// let one = CircuitBreakerLayer::builder().per_host(false).build()?.handle();
    /// assert_eq!(one.get(&key("http://any.test")).unwrap().state(), State::Closed);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<BreakerHandle>
    where
        Q: Hash + Eq + fmt::Debug + Send + Sync + 'static,
    {
        match &self.breakers {
            Breakers::Single(shared) => Some(BreakerHandle::new(Arc::clone(&shared.breaker))),
            Breakers::Keyed(map) => map.get(&ByRef(key)).map(BreakerHandle::new),
        }
    }

    /// The keys tracked (1 with `per_host(false)`).
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().max_keys(2).build()?;
    /// let handle = layer.handle();
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// for host in ["a.test", "b.test", "c.test"] {
    ///     let request = http::Request::get(format!("http://{host}/")).body(())?;
    ///     svc.clone().oneshot(request).await?;
    /// }
    /// assert_eq!(handle.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        match &self.breakers {
            Breakers::Single(_) => 1,
            Breakers::Keyed(map) => map.len(),
        }
    }

    /// Whether no key is tracked.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert!(CircuitBreakerLayer::new().handle().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys tracked at once (1 with `per_host(false)`).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert_eq!(CircuitBreakerLayer::new().handle().max_keys(), 1024);
    /// ```
    pub fn max_keys(&self) -> usize {
        match &self.breakers {
            Breakers::Single(_) => 1,
            Breakers::Keyed(map) => map.settings.config.max_keys,
        }
    }

    /// A handle on every tracked breaker (the one breaker with `per_host(false)`), sorted by
    /// [`key`](BreakerHandle::key): each reads its key as printed, its state and figures, and
    /// steers its breaker.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().max_keys(2).build()?;
    /// let handle = layer.handle();
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// for uri in ["http://a.test/", "http://b.test/", "https://b.test/"] {
    ///     svc.clone().oneshot(http::Request::get(uri).body(())?).await?;
    /// }
    /// let breakers = handle.breakers();
    /// let keys: Vec<_> = breakers.iter().map(|b| b.key().unwrap()).collect();
    /// assert_eq!(keys, ["http://b.test:80", "https://b.test:443"]);
    /// assert!(breakers.iter().all(|b| b.state() == State::Closed));
    ///
    /// let one = CircuitBreakerLayer::builder().per_host(false).build()?.handle();
    /// assert_eq!(one.breakers()[0].key(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn breakers(&self) -> Vec<BreakerHandle> {
        match &self.breakers {
            Breakers::Single(shared) => vec![BreakerHandle::new(Arc::clone(&shared.breaker))],
            Breakers::Keyed(map) => map.breakers().into_iter().map(BreakerHandle::new).collect(),
        }
    }
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CircuitBreakerHandle")
            .field(&self.breakers)
            .finish()
    }
}
