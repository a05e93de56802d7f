use super::{breaker::Breaker, State, WindowFigures};
use std::{fmt, sync::Arc, time::Duration};

/// Reads and steers one breaker from outside the service: its state, its window, and the
/// operator states.
///
/// Get it from the layer ([`CircuitBreakerLayer::handle`](super::CircuitBreakerLayer::handle)),
/// from a service, or for one key of a keyed breaker
/// ([`KeyedCircuitBreakerHandle::get`](super::KeyedCircuitBreakerHandle::get)).
///
/// # Clone
///
/// Clones refer to the same breaker, which all the services of the layer share.
///
/// ```
/// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
///
/// let layer = CircuitBreakerLayer::new();
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
pub struct CircuitBreakerHandle {
    breaker: Arc<Breaker>,
}

impl CircuitBreakerHandle {
    pub(crate) fn new(breaker: Arc<Breaker>) -> Self {
        CircuitBreakerHandle { breaker }
    }

    /// The state.
    ///
    /// An open breaker stays [`Open`](State::Open) until a call arrives after its open
    /// duration: that call moves it to [`HalfOpen`](State::HalfOpen) and is the first probe.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// assert_eq!(CircuitBreakerLayer::new().handle().state(), State::Closed);
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
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = CircuitBreakerLayer::new();
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
        self.breaker.figures(true)
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
    ///     .build()
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
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert_eq!(CircuitBreakerLayer::new().handle().probes_in_flight(), 0);
    /// ```
    pub fn probes_in_flight(&self) -> u32 {
        self.breaker.probes_in_flight()
    }

    /// The open duration the next trip would start with, before jitter: the base duration
    /// times the growth from failed probes, less the steps undone by recovery.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::new();
    /// assert_eq!(layer.handle().next_open_duration(), Duration::from_secs(5));
    /// ```
    pub fn next_open_duration(&self) -> Duration {
        self.breaker.next_open_duration()
    }

    /// The key of this breaker, when it is one of a keyed layer's.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert_eq!(CircuitBreakerLayer::new().handle().key(), None);
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.breaker.key()
    }

    /// Opens the breaker until [`reset`](Self::reset): every call is rejected.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// let handle = CircuitBreakerLayer::new().handle();
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
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// let handle = CircuitBreakerLayer::new().handle();
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
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// let handle = CircuitBreakerLayer::new().handle();
    /// handle.force_open();
    /// handle.reset();
    /// assert_eq!(handle.state(), State::Closed);
    /// ```
    pub fn reset(&self) {
        self.breaker.reset();
    }
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CircuitBreakerHandle")
            .field(&self.breaker)
            .finish()
    }
}
