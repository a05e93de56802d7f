use super::{
    admission::Shared, keyed::Breakers, settings::Settings, BreakerHandle, CircuitBreaker,
    CircuitBreakerHandle, GenericCircuitBreaker, HttpStatus, Window,
};
use crate::key::ByAuthority;
use std::{sync::Arc, time::Duration};
use tower_layer::Layer;

/// Applies a [`CircuitBreaker`] to HTTP services: one breaker per host by default, so that
/// one failing host does not open the circuit for the others.
///
/// Build it with [`builder`](Self::builder) (`...build()`): one breaker per request URI
/// authority ([`ByAuthority`]), per key of your own
/// ([`key_fn`](super::CircuitBreakerBuilder::key_fn),
/// [`key`](super::CircuitBreakerBuilder::key)), or with
/// [`per_host(false)`](super::CircuitBreakerBuilder::per_host) one for every request. Every
/// key's breaker has the builder's settings; at most
/// [`max_keys`](super::CircuitBreakerBuilder::max_keys) keys are tracked. For a request type
/// other than `http::Request`, use a [`GenericCircuitBreakerLayer`].
///
/// # Clone
///
/// The layer holds the breakers: every service it builds, and every clone, shares them.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
///
/// let layer = CircuitBreakerLayer::builder().max_keys(512).build()?;
/// let handle = layer.handle();
/// let client = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::io::Error>(http::Response::new(String::new()))
///     });
/// assert!(handle.is_empty());
/// # let _ = client;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<K = ByAuthority, C = HttpStatus> {
    breakers: Breakers,
    key: K,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer with the default settings (see the [module docs](super#defaults)), one
    /// breaker per host: the last 100 calls, tripping at 50% failures once 10 calls are in
    /// the window, open for 5 s growing to 2 min, one probe at a time and two successful
    /// probes to close. 5xx responses and connect, read and other failures count as
    /// failures.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::new();
    /// assert_eq!(layer.window(), Window::Count(100));
    /// assert!(layer.per_host());
    /// ```
    pub fn new() -> Self {
        let breakers = Breakers::new(Arc::new(Settings::default_for(true)), true);
        CircuitBreakerLayer::from_parts(breakers, ByAuthority, HttpStatus::new())
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, C> CircuitBreakerLayer<K, C> {
    pub(crate) fn from_parts(breakers: Breakers, key: K, classifier: C) -> Self {
        CircuitBreakerLayer {
            breakers,
            key,
            classifier,
        }
    }

    /// A handle on the breakers, to read their states and figures and to steer one.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::new();
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// assert_eq!(layer.handle().len(), svc.handle().len());
    /// ```
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breakers.clone())
    }

    /// Whether the layer keeps one breaker per key (the default), or one for every request.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().per_host(false).build()?;
    /// assert!(!layer.per_host());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn per_host(&self) -> bool {
        matches!(self.breakers, Breakers::Keyed(_))
    }

    /// The window each breaker measures.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder()
    ///     .window(Window::Time(Duration::from_secs(60)))
    ///     .build()?;
    /// assert_eq!(layer.window(), Window::Time(Duration::from_secs(60)));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn window(&self) -> Window {
        self.breakers.settings().config.window
    }

    /// The `name` label of the breakers' metrics and tracing events.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert_eq!(CircuitBreakerLayer::new().name(), "circuit_breaker");
    /// ```
    pub fn name(&self) -> &'static str {
        self.breakers.settings().name
    }

    /// The nominal open duration after `failed_probes` consecutive failed probes, before
    /// jitter: `open_duration * open_duration_multiplier ^ failed_probes`, at most
    /// `open_duration_max`. The first trip waits `open_duration`; each failed probe grows the
    /// wait by one step, each `recovery_period` spent closed undoes one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder()
    ///     .open_duration(Duration::from_secs(5))
    ///     .open_duration_multiplier(2.0)
    ///     .open_duration_max(Duration::from_secs(60))
    ///     .build()?;
    /// let waits: Vec<u64> = (0..6).map(|n| layer.open_duration(n).as_secs()).collect();
    /// assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn open_duration(&self, failed_probes: u32) -> Duration {
        self.breakers
            .settings()
            .config
            .nominal_open_duration(failed_probes)
    }
}

impl<S, K: Clone, C: Clone> Layer<S> for CircuitBreakerLayer<K, C> {
    type Service = CircuitBreaker<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_parts(
            inner,
            self.breakers.clone(),
            self.key.clone(),
            self.classifier.clone(),
        )
    }
}

/// Applies a [`GenericCircuitBreaker`] to services of any request type: one breaker, shared
/// by all of them.
///
/// Build it with [`GenericCircuitBreakerLayer::new`] or
/// [`CircuitBreakerLayer::builder`]`()...`[`build_generic()`](super::CircuitBreakerBuilder::build_generic).
///
/// # Clone
///
/// The layer holds one breaker: every service it builds, every clone of those services and
/// every clone of the layer share it, with its state and window. Build one layer per
/// backend (or use a [`CircuitBreakerLayer`], one breaker per host).
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
///
/// let layer = GenericCircuitBreakerLayer::new();
/// let handle = layer.handle();
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::io::Error>(http::Response::new(String::new()))
///     });
/// assert_eq!(handle.state(), State::Closed);
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
pub struct GenericCircuitBreakerLayer<C = HttpStatus> {
    shared: Arc<Shared>,
    classifier: C,
}

impl GenericCircuitBreakerLayer {
    /// A layer with the default settings (see the [module docs](super#defaults)), as
    /// [`CircuitBreakerLayer::new`]'s but one breaker.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, Window};
    ///
    /// let layer = GenericCircuitBreakerLayer::new();
    /// assert_eq!(layer.window(), Window::Count(100));
    /// ```
    pub fn new() -> Self {
        Self::from_settings(Arc::new(Settings::default_for(false)), HttpStatus::new())
    }
}

impl Default for GenericCircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> GenericCircuitBreakerLayer<C> {
    pub(crate) fn from_settings(settings: Arc<Settings>, classifier: C) -> Self {
        GenericCircuitBreakerLayer {
            shared: Arc::new(Shared::new(settings, None)),
            classifier,
        }
    }

    /// A handle on the breaker, to read its state and figures and to force it open, disable
    /// it or reset it.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::{GenericCircuitBreakerLayer, State};
    ///
    /// let layer = GenericCircuitBreakerLayer::new();
    /// let svc = layer.layer(tower::service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    /// // The layer's handle and the service's are for the same breaker.
    /// layer.handle().force_open();
    /// assert_eq!(svc.handle().state(), State::ForcedOpen);
    /// ```
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle::new(Arc::clone(&self.shared.breaker))
    }

    /// The window the breaker measures.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder()
    ///     .window(Window::Time(Duration::from_secs(60)))
    ///     .build_generic()?;
    /// assert_eq!(layer.window(), Window::Time(Duration::from_secs(60)));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn window(&self) -> Window {
        self.shared.breaker.settings.config.window
    }

    /// The `name` label of the breaker's metrics and tracing events.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().name("inventory").build_generic()?;
    /// assert_eq!(layer.name(), "inventory");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.breaker.settings.name
    }

    /// The nominal open duration after `failed_probes` consecutive failed probes, as
    /// [`CircuitBreakerLayer::open_duration`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
    ///
    /// let layer = GenericCircuitBreakerLayer::new();
    /// assert_eq!(layer.open_duration(1), Duration::from_secs(10));
    /// ```
    pub fn open_duration(&self, failed_probes: u32) -> Duration {
        self.shared
            .breaker
            .settings
            .config
            .nominal_open_duration(failed_probes)
    }
}

impl<S, C: Clone> Layer<S> for GenericCircuitBreakerLayer<C> {
    type Service = GenericCircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        GenericCircuitBreaker::from_shared(inner, Arc::clone(&self.shared), self.classifier.clone())
    }
}
