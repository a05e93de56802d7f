use super::{
    shared::{Shared, LAYERS},
    tracker::{DelayRule, Tracker, WINDOW},
    Hedge,
};
use crate::{
    internal::ticker::Ticker,
    retry::{AllowedMethods, RetryBudget},
    InvalidConfig,
};
use http::{Method, Uri};
use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};
use tower_layer::Layer;

/// Applies [`Hedge`] to a service: built by [`HedgeLayer::builder`].
///
/// # Clone
///
/// Every service the layer builds, and every clone of them, shares the latency tracker,
/// the hedges in flight per host, the budget and the breaker handle.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_fortify::hedge::HedgeLayer;
/// use tower_fortify::retry::RetryBudget;
///
/// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
/// let layer = HedgeLayer::builder()
///     .percentile(95.0)
///     .budget(budget)
///     .name("search")
///     .build()?;
/// assert_eq!(layer.name(), "search");
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|req: http::Request<String>| async move {
///         Ok::<_, std::io::Error>(http::Response::new(req.into_body()))
///     });
/// # let _ = svc;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct HedgeLayer {
    shared: Arc<Shared>,
}

/// Builds a [`HedgeLayer`]: [`HedgeLayer::builder`].
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::hedge::HedgeLayer;
///
/// let layer = HedgeLayer::builder()
///     .percentile(99.0)
///     .min_delay(Duration::from_millis(20))
///     .min_samples(200)
///     .max_in_flight(2)
///     .build()?;
/// assert_eq!(layer.name(), "hedge");
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct HedgeBuilder {
    name: &'static str,
    percentile: f64,
    min_delay: Duration,
    min_samples: u32,
    max_in_flight: u32,
    max_keys: usize,
    per_host: bool,
    allowed_methods: AllowedMethods,
    budget: Option<RetryBudget>,
    #[cfg(feature = "circuit-breaker")]
    breaker: Option<crate::circuit_breaker::CircuitBreakerHandle>,
}

impl<S> Hedge<S> {
    /// Wraps `inner` with the default settings ([`HedgeLayer::builder`]).
    ///
    /// # Errors
    ///
    /// None with the defaults; the `Result` is the builder's.
    ///
    /// ```
    /// use tower_fortify::hedge::Hedge;
    ///
    /// let svc = Hedge::new(tower::service_fn(|_req: http::Request<String>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(String::from("ok")))
    /// }))?;
    /// assert_eq!(svc.name(), "hedge");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn new(inner: S) -> Result<Self, InvalidConfig> {
        let layer = HedgeLayer::builder().build()?;
        Ok(tower_layer::Layer::layer(&layer, inner))
    }
}

impl HedgeLayer {
    /// A builder with the defaults: p95, a 10 ms floor, 50 samples before the first
    /// hedge, 4 hedges in flight per host, 64 hosts, urllib3's idempotent methods, no
    /// budget and no breaker. Give it the retry layer's budget
    /// ([`budget`](HedgeBuilder::budget)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::{hedge::HedgeLayer, retry::RetryBudget};
    ///
    /// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
    /// let layer = HedgeLayer::builder().name("search").budget(budget).build()?;
    /// assert_eq!(layer.name(), "search");
    /// // A percentile is from 1 up to (not including) 100: the error names the field.
    /// let err = HedgeLayer::builder().percentile(100.5).build().unwrap_err();
    /// assert_eq!(err.field(), "percentile");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder {
            name: "hedge",
            percentile: 95.0,
            min_delay: Duration::from_millis(10),
            min_samples: 50,
            max_in_flight: 4,
            max_keys: 64,
            per_host: true,
            allowed_methods: AllowedMethods::idempotent(),
            budget: None,
            #[cfg(feature = "circuit-breaker")]
            breaker: None,
        }
    }

    /// The `name` label of the metrics and tracing events.
    ///
    /// ```
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// assert_eq!(HedgeLayer::builder().name("api").build()?.name(), "api");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// What every service of the layer shares (for the crate's tests).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The delay after which a request to `uri`'s host is hedged now: the latency
    /// percentile of its tracked attempts, at least `min_delay`; `None` while the host has
    /// fewer than `min_samples` samples, or is not tracked. With `per_host(false)`, the one
    /// delay of every request, whatever `uri`.
    ///
    /// ```
    /// use http::Uri;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let layer = HedgeLayer::builder().build()?;
    /// assert_eq!(layer.hedge_delay(&Uri::from_static("http://api.test/")), None);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn hedge_delay(&self, uri: &Uri) -> Option<Duration> {
        let shared = &self.shared;
        let slot = if shared.per_host {
            shared
                .tracker
                .find(shared.hash(&crate::key::HostKey::from_uri(uri)))?
        } else {
            0
        };
        shared.tracker.delay(slot)
    }
}

impl HedgeBuilder {
    /// The `name` label of the metrics and tracing events (default `"hedge"`). It must be a
    /// static string, so that labels stay bounded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let layer = HedgeLayer::builder().name("search").build()?;
    /// assert_eq!(layer.name(), "search");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The latency percentile after which a request is hedged, from 1 up to (not
    /// including) 100: `95.0` is p95 (the default), which sends a hedge for about one
    /// request in twenty while latencies hold. Not a quantile: `0.95` is rejected.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// // p99: fewer hedges, for the slowest answers only.
    /// let layer = HedgeLayer::builder().percentile(99.0).build()?;
    /// # let _ = (layer, Duration::ZERO);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.percentile = percentile;
        self
    }

    /// The shortest hedge delay, whatever the percentile (default 10 ms): a backend that
    /// answers in a millisecond is not sent a second request after two. A delay too long
    /// to represent as an instant is a hedge never sent.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let layer = HedgeLayer::builder().min_delay(Duration::from_millis(50)).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn min_delay(mut self, min_delay: Duration) -> Self {
        self.min_delay = min_delay;
        self
    }

    /// Latencies a host must have answered with before its first hedge, from 1 to 1024
    /// (default 50).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let layer = HedgeLayer::builder().min_samples(200).build()?;
    /// # let _ = (layer, Duration::ZERO);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn min_samples(mut self, min_samples: u32) -> Self {
        self.min_samples = min_samples;
        self
    }

    /// The most hedges in flight per host at once (default 4, at least 1): past it, a
    /// request waits for its first attempt alone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let layer = HedgeLayer::builder().max_in_flight(1).build()?;
    /// # let _ = (layer, Duration::ZERO);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn max_in_flight(mut self, max_in_flight: u32) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// The most hosts tracked at once, from 1 to 4096 (default 64; rounded up to a power of
    /// two). A new host takes the place of one of the least recently active.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let layer = HedgeLayer::builder().max_keys(8).build()?;
    /// # let _ = (layer, Duration::ZERO);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// One latency tracker per host (`true`, the default: per scheme, host and port of the
    /// request URI's authority, never the `Host` header), or one for every request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// // One backend behind one address: one delay.
    /// let layer = HedgeLayer::builder().per_host(false).build()?;
    /// # let _ = (layer, Duration::ZERO);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn per_host(mut self, per_host: bool) -> Self {
        self.per_host = per_host;
        self
    }

    /// The methods that may be hedged; empty means every method. Default: HEAD, GET, PUT,
    /// DELETE, OPTIONS, TRACE, as [`RetryPolicy::allowed_methods`](crate::retry::RetryPolicy::allowed_methods).
    /// A request with the [`Idempotent`](crate::retry::Idempotent) marker is hedged
    /// whatever its method; one with [`NoRetry`](crate::retry::NoRetry) never is.
    ///
    /// ```
    /// use http::Method;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let only_get = HedgeLayer::builder().allowed_methods([Method::GET]).build()?;
    /// # let _ = only_get;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn allowed_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.allowed_methods = AllowedMethods::new(methods);
        self
    }

    /// The retry budget hedges are paid from: give it the budget of the retry layer's
    /// policy, so that retries and hedges together stay within it. Each hedge
    /// [withdraws](RetryBudget::withdraw) one retry, and is not sent when the budget
    /// refuses; the hedge layer deposits nothing (the retry layer deposits for every
    /// request). Default: none, and hedges are bounded by `max_in_flight` alone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    /// use tower_fortify::retry::{RetryBudget, RetryLayer, RetryPolicy};
    ///
    /// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
    /// let retry = RetryLayer::builder()
    ///     .policy(RetryPolicy::default().budget(budget.clone()))
    ///     .build()?;
    /// let hedge = HedgeLayer::builder().budget(budget).build()?;
    /// # let _ = (retry, hedge);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The circuit breakers of the hosts: no hedge goes to a host whose breaker is open,
    /// half-open or forced open (a disabled breaker lets calls through, and hedges). The
    /// breaker is found by the request's [`HostKey`](crate::key::HostKey), the breaker
    /// layer's default key (or is the one breaker of a layer built with
    /// `per_host(false)`); a host it does not track has a closed breaker.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let breaker = CircuitBreakerLayer::builder().build()?;
    /// let hedge = HedgeLayer::builder().breaker(breaker.handle()).build()?;
    /// # let _ = hedge;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "circuit-breaker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
    pub fn breaker(mut self, breaker: crate::circuit_breaker::CircuitBreakerHandle) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Builds the layer, registering its metric handles (with the `metrics` feature).
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming the field: `percentile` outside 1 to 100 (100 excluded, NaN
    /// included), `min_samples` outside 1 to 1024, `max_in_flight` of 0, `max_keys`
    /// outside 1 to 4096. `min_delay` is not bounded: one too long to represent as an
    /// instant means no hedge is ever sent.
    ///
    /// ```
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let err = HedgeLayer::builder().percentile(0.95).build().unwrap_err();
    /// assert_eq!(err.field(), "percentile");
    /// ```
    pub fn build(self) -> Result<HedgeLayer, InvalidConfig> {
        if !(1.0..100.0).contains(&self.percentile) {
            return Err(InvalidConfig::new(
                "percentile",
                "must be from 1 up to 100, 100 excluded (95.0 is p95)",
            ));
        }
        if !(1..=2 * WINDOW).contains(&u64::from(self.min_samples)) {
            return Err(InvalidConfig::new(
                "min_samples",
                "must be from 1 to 1024 (the latencies kept per host)",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(InvalidConfig::new("max_in_flight", "must be at least 1"));
        }
        if !(1..=4096).contains(&self.max_keys) {
            return Err(InvalidConfig::new("max_keys", "must be from 1 to 4096"));
        }
        let rule = DelayRule {
            percentile: self.percentile,
            min_delay: self.min_delay,
            min_samples: self.min_samples,
        };
        let slots = if self.per_host { self.max_keys } else { 1 };
        Ok(HedgeLayer {
            shared: Arc::new(Shared {
                name: self.name,
                id: LAYERS.fetch_add(1, Ordering::Relaxed),
                tracker: Arc::new(Tracker::new(slots, rule)),
                ticker: Arc::new(Ticker::new()),
                per_host: self.per_host,
                hasher: crate::internal::lru::MapHasher::default(),
                allowed_methods: self.allowed_methods,
                max_in_flight: self.max_in_flight,
                budget: self.budget,
                #[cfg(feature = "circuit-breaker")]
                breaker: self.breaker,
                #[cfg(feature = "metrics")]
                instruments: super::metrics::Instruments::register(self.name),
            }),
        })
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_shared(inner, Arc::clone(&self.shared))
    }
}
