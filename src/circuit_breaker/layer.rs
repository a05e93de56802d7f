use super::{
    admission::Shared, config::Config, settings::Settings, CircuitBreaker, CircuitBreakerBuilder,
    CircuitBreakerHandle, HttpStatus, Window,
};
use std::{sync::Arc, time::Duration};
use tower_layer::Layer;

/// Applies a [`CircuitBreaker`] to services: one breaker, shared by all of them.
///
/// # Clone
///
/// The layer holds one breaker: every service it builds, every clone of those services and
/// every clone of the layer share it, with its state and window. Build one layer per
/// backend (or use a [keyed](super::KeyedCircuitBreakerLayer) layer, one breaker per host).
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
///
/// let layer = CircuitBreakerLayer::new();
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
pub struct CircuitBreakerLayer<C = HttpStatus> {
    shared: Arc<Shared>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer with the default settings (see the [module docs](super#defaults)): the last
    /// 100 calls, tripping at 50% failures once 10 calls are in the window, open for 5 s
    /// growing to 2 min, one probe at a time and two successful probes to close. 5xx
    /// responses and connect, read and other failures count as failures.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::new();
    /// assert_eq!(layer.window(), Window::Count(100));
    /// ```
    pub fn new() -> Self {
        Self::from_settings(
            Arc::new(Settings::new(
                Config::DEFAULT,
                super::config::DEFAULT_NAME,
                false,
            )),
            HttpStatus::new(),
        )
    }

    /// A builder, to change the settings.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().name("inventory").minimum_calls(20).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> CircuitBreakerLayer<C> {
    pub(crate) fn from_settings(settings: Arc<Settings>, classifier: C) -> Self {
        CircuitBreakerLayer {
            shared: Arc::new(Shared::new(settings, None)),
            classifier,
        }
    }

    /// A handle on the breaker, to read its state and figures and to force it open, disable
    /// it or reset it.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// let layer = CircuitBreakerLayer::new();
    /// let svc = layer.layer(tower::service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    /// // The layer's handle and the service's are for the same breaker.
    /// layer.handle().force_open();
    /// assert_eq!(svc.handle().state(), State::ForcedOpen);
    /// ```
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(Arc::clone(&self.shared.breaker))
    }

    /// The window the breaker measures.
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
        self.shared.breaker.settings.config.window
    }

    /// The `name` label of the breaker's metrics and tracing events.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert_eq!(CircuitBreakerLayer::new().name(), "circuit_breaker");
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.breaker.settings.name
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
        self.shared
            .breaker
            .settings
            .config
            .nominal_open_duration(failed_probes)
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_shared(inner, Arc::clone(&self.shared), self.classifier.clone())
    }
}
