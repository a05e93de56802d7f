//! Settings of a breaker, validated together by [`CircuitBreakerBuilder::build`].

use super::{
    config::{Config, Window, DEFAULT_NAME},
    keyed::Breakers,
    settings::Settings,
    CircuitBreakerLayer, GenericCircuitBreakerLayer, HttpStatus,
};
use crate::{
    key::{ByAuthority, KeyBy},
    InvalidConfig,
};
use std::{fmt, hash::Hash, sync::Arc, time::Duration};

/// Builds a [`CircuitBreakerLayer`] (or a [`GenericCircuitBreakerLayer`]), validating its
/// settings together.
///
/// Every setter returns the builder; [`build`](Self::build) checks the settings and names the
/// first invalid one. The defaults are those of [`CircuitBreakerLayer::new`] (see the
/// [module docs](super#defaults)).
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
///
/// let layer = CircuitBreakerLayer::builder()
///     .name("payments")
///     .window(Window::Count(50))
///     .minimum_calls(5)
///     .failure_rate_threshold(0.4)
///     .slow_call_duration(Duration::from_secs(2))
///     .open_duration(Duration::from_secs(10))
///     .build()?;
/// # let _ = layer;
///
/// let err = CircuitBreakerLayer::builder().failure_rate_threshold(1.5).build().unwrap_err();
/// assert_eq!(err.field(), "failure_rate_threshold");
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerBuilder<K = ByAuthority, C = HttpStatus> {
    config: Config,
    name: &'static str,
    classifier: C,
    key: K,
    /// `None`: per host, unless `build_generic`.
    per_host: Option<bool>,
    /// The setter that replaced the key, if one did.
    key_setter: Option<&'static str>,
    max_keys_set: bool,
}

impl CircuitBreakerBuilder {
    pub(crate) const fn new() -> Self {
        CircuitBreakerBuilder {
            config: Config::DEFAULT,
            name: DEFAULT_NAME,
            classifier: HttpStatus::new(),
            key: ByAuthority,
            per_host: None,
            key_setter: None,
            max_keys_set: false,
        }
    }
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, C> CircuitBreakerBuilder<K, C> {
    /// The `name` label of the metrics and tracing events (default `"circuit_breaker"`). It
    /// must be a static string, so that labels stay bounded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder().name("payments").build()?;
    /// assert_eq!(layer.name(), "payments");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The sliding window (default: the last 100 calls).
    ///
    /// # Errors
    ///
    /// At [`build`](Self::build): `window` when a count window is empty or over a million
    /// calls, or a time window is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder().window(Window::Count(500)).build()?;
    /// assert_eq!(layer.window(), Window::Count(500));
    ///
    /// let err = CircuitBreakerLayer::builder().window(Window::Count(0)).build().unwrap_err();
    /// assert_eq!(err.field(), "window");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn window(mut self, window: Window) -> Self {
        self.config.window = window;
        self
    }

    /// The calls the window must hold before the breaker may trip (default 10).
    ///
    /// # Errors
    ///
    /// At [`build`](Self::build): `minimum_calls` when 0, or larger than a count window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder().minimum_calls(20).build()?;
    /// # let _ = layer;
    /// let err = CircuitBreakerLayer::builder()
    ///     .window(Window::Count(10))
    ///     .minimum_calls(20)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "minimum_calls");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn minimum_calls(mut self, minimum_calls: u32) -> Self {
        self.config.minimum_calls = minimum_calls;
        self
    }

    /// The failure rate at which the breaker trips, in `(0, 1]` (default 0.5).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// // Trip at 25% failures.
    /// let layer = CircuitBreakerLayer::builder().failure_rate_threshold(0.25).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn failure_rate_threshold(mut self, threshold: f64) -> Self {
        self.config.failure_rate_threshold = threshold;
        self
    }

    /// Turns slow-call detection on: a call that takes `duration` or longer (from `call` to
    /// its result) is slow, failed or not (default: off).
    ///
    /// It costs two clock reads per call, so it is off unless set.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// // A call that takes 2 s or more is slow.
    /// let layer = CircuitBreakerLayer::builder()
    ///     .slow_call_duration(Duration::from_secs(2))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.config.slow_call_duration = Some(duration);
        self
    }

    /// The slow-call rate at which the breaker trips, in `(0, 1]` (default 0.5). Used only
    /// with [`slow_call_duration`](Self::slow_call_duration).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// // Trip when 80% of the calls take 2 s or more.
    /// let layer = CircuitBreakerLayer::builder()
    ///     .slow_call_duration(Duration::from_secs(2))
    ///     .slow_call_rate_threshold(0.8)
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn slow_call_rate_threshold(mut self, threshold: f64) -> Self {
        self.config.slow_call_rate_threshold = threshold;
        self
    }

    /// How long the breaker stays open after it trips, before the first probe (default 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder().open_duration(Duration::from_secs(30)).build()?;
    /// assert_eq!(layer.open_duration(0), Duration::from_secs(30));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn open_duration(mut self, duration: Duration) -> Self {
        self.config.open_duration = duration;
        self
    }

    /// The factor the open duration grows by each time a probe fails (default 2.0, at least
    /// 1.0).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder().open_duration_multiplier(1.5).build()?;
    /// // The default 5 s base, after two failed probes.
    /// assert_eq!(layer.open_duration(2), Duration::from_secs_f64(5.0 * 1.5 * 1.5));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn open_duration_multiplier(mut self, multiplier: f64) -> Self {
        self.config.open_duration_multiplier = multiplier;
        self
    }

    /// The longest open duration (default 120 s, at least `open_duration`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder()
    ///     .open_duration_max(Duration::from_secs(600))
    ///     .build()?;
    /// assert_eq!(layer.open_duration(100), Duration::from_secs(600));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn open_duration_max(mut self, max: Duration) -> Self {
        self.config.open_duration_max = max;
        self
    }

    /// The share of the open duration that is random, in `[0, 1]` (default 0.2): the wait is
    /// drawn uniformly from `[d * (1 - jitter), d]`, so that a fleet of clients tripped by
    /// the same outage does not probe in lock-step.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// // Waits of exactly the open duration (for tests, or a single client).
    /// let layer = CircuitBreakerLayer::builder().open_duration_jitter(0.0).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn open_duration_jitter(mut self, jitter: f64) -> Self {
        self.config.open_duration_jitter = jitter;
        self
    }

    /// How long the breaker must stay closed to undo one growth step of the open duration
    /// (default 60 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder()
    ///     .recovery_period(Duration::from_secs(300))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn recovery_period(mut self, period: Duration) -> Self {
        self.config.recovery_period = period;
        self
    }

    /// The most probes in flight at once while half-open (default 1, at most 4095).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder().half_open_max_probes(3).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn half_open_max_probes(mut self, probes: u32) -> Self {
        self.config.half_open_max_probes = probes;
        self
    }

    /// The successful probes that close the breaker (default 2, at most 4095).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// // Five successful probes in a row close the breaker.
    /// let layer = CircuitBreakerLayer::builder().half_open_successes(5).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn half_open_successes(mut self, successes: u32) -> Self {
        self.config.half_open_successes = successes;
        self
    }

    /// How long probes that never answer may hold all probe slots (default 30 s): after
    /// that, the next call counts them as failed and the breaker opens again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// let layer = CircuitBreakerLayer::builder().probe_timeout(Duration::from_secs(10)).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.config.probe_timeout = timeout;
        self
    }

    /// Opens the breaker when a response asks the client to stay away (a 503 or 429 with a
    /// valid `Retry-After`, as [`Classify::retry_after`](super::Classify::retry_after) reads
    /// it), for that long but at most `max` (default: off).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
    ///
    /// // A 503 with `Retry-After: 30` opens the breaker for 30 s; with 3600, for 120 s.
    /// let layer = CircuitBreakerLayer::builder()
    ///     .retry_after_open(Duration::from_secs(120))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn retry_after_open(mut self, max: Duration) -> Self {
        self.config.retry_after_max = Some(max);
        self
    }

    /// The most keys a per-host layer tracks (default 1024); least recently used closed
    /// breakers are evicted first.
    ///
    /// # Errors
    ///
    /// At [`build`](Self::build): `max_keys` when 0, or with `per_host(false)`; at
    /// [`build_generic`](Self::build_generic), always.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().max_keys(100).build()?;
    /// assert_eq!(layer.handle().max_keys(), 100);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn max_keys(mut self, max_keys: usize) -> Self {
        self.config.max_keys = max_keys;
        self.max_keys_set = true;
        self
    }

    /// One breaker per host (`true`, the default) or one for every request (`false`: no key
    /// is computed, no map searched), for the HTTP layer [`build`](Self::build) gives.
    ///
    /// # Errors
    ///
    /// At [`build_generic`](Self::build_generic): `per_host(true)` (a generic layer has one
    /// breaker).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().per_host(false).build()?;
    /// assert!(!layer.handle().per_host());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn per_host(mut self, per_host: bool) -> Self {
        self.per_host = Some(per_host);
        self
    }

    /// Keeps one breaker per key that a closure computes from each request (a [`KeyBy`]),
    /// instead of per host. The closure's request type must be written out. A key function
    /// may read headers; the default key never does: on a server, a key from a header a
    /// remote client controls lets that client create a breaker per value (up to
    /// `max_keys`, evicting the others).
    ///
    /// # Errors
    ///
    /// At [`build`](Self::build) with `per_host(false)`, and at
    /// [`build_generic`](Self::build_generic): `key_fn`.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// // One breaker per tenant, from a header.
    /// let layer = CircuitBreakerLayer::builder()
    ///     .key_fn(|req: &http::Request<()>| req.headers().get("x-tenant").cloned())
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn key_fn<F, B, Key>(self, f: F) -> CircuitBreakerBuilder<KeyBy<F>, C>
    where
        F: Fn(&http::Request<B>) -> Key,
        Key: Hash + Eq + fmt::Debug + Send + Sync + 'static,
    {
        self.with_key(KeyBy::new(f), "key_fn")
    }

    /// Keeps one breaker per key of a [`RequestKey`](crate::key::RequestKey), instead of per
    /// host ([`ByAuthority`], the default). The per-host pools take the same keys (the pool
    /// builder's `key`), so a request maps to the same key in both.
    ///
    /// # Errors
    ///
    /// As [`key_fn`](Self::key_fn), naming `key`.
    ///
    /// ```
    /// use tower_fortify::{circuit_breaker::CircuitBreakerLayer, key::ByAuthority};
    ///
    /// let layer = CircuitBreakerLayer::builder().key(ByAuthority).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn key<K2>(self, key: K2) -> CircuitBreakerBuilder<K2, C> {
        self.with_key(key, "key")
    }

    fn with_key<K2>(self, key: K2, setter: &'static str) -> CircuitBreakerBuilder<K2, C> {
        CircuitBreakerBuilder {
            config: self.config,
            name: self.name,
            classifier: self.classifier,
            key,
            per_host: self.per_host,
            key_setter: Some(setter),
            max_keys_set: self.max_keys_set,
        }
    }

    /// Replaces the classifier that decides what counts as a failure (default
    /// [`HttpStatus`]).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, ErrorsOnly};
    ///
    /// let layer = CircuitBreakerLayer::builder().classifier(ErrorsOnly).build_generic()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerBuilder<K, C2> {
        CircuitBreakerBuilder {
            config: self.config,
            name: self.name,
            classifier,
            key: self.key,
            per_host: self.per_host,
            key_setter: self.key_setter,
            max_keys_set: self.max_keys_set,
        }
    }

    /// Builds the HTTP layer: one breaker per host (by [`ByAuthority`], or by the key
    /// set with [`key_fn`](Self::key_fn) / [`key`](Self::key)), at most
    /// [`max_keys`](Self::max_keys) of them; with [`per_host(false)`](Self::per_host), one
    /// breaker for every request.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming the first setting that is out of range (see each setter),
    /// or `max_keys`, `key_fn` or `key` with `per_host(false)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().max_keys(10_000).build()?;
    /// assert_eq!(layer.handle().max_keys(), 10_000);
    ///
    /// let err = CircuitBreakerLayer::builder()
    ///     .open_duration(Duration::from_secs(60))
    ///     .open_duration_max(Duration::from_secs(30))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "invalid open_duration_max: must be at least open_duration");
    ///
    /// let err = CircuitBreakerLayer::builder().per_host(false).max_keys(8).build().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid max_keys: only applies with per_host(true)");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn build(self) -> Result<CircuitBreakerLayer<K, C>, InvalidConfig> {
        let per_host = self.per_host.unwrap_or(true);
        if !per_host {
            if self.max_keys_set {
                return Err(InvalidConfig::new(
                    "max_keys",
                    "only applies with per_host(true)",
                ));
            }
            if let Some(setter) = self.key_setter {
                return Err(InvalidConfig::new(
                    setter,
                    "chooses among breakers: it needs per_host(true)",
                ));
            }
        }
        self.config.validate()?;
        let settings = Settings::new(self.config, self.name, per_host);
        let breakers = Breakers::new(Arc::new(settings), per_host);
        Ok(CircuitBreakerLayer::from_parts(
            breakers,
            self.key,
            self.classifier,
        ))
    }

    /// Builds the generic layer: one breaker, shared by every service it builds, for any
    /// request type.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and [`InvalidConfig`] naming a setting that only applies
    /// per host: `per_host(true)`, `max_keys`, `key_fn`, `key`.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, ErrorsOnly};
    ///
    /// let layer = CircuitBreakerLayer::builder().classifier(ErrorsOnly).build_generic()?;
    /// # let _ = layer;
    /// let err = CircuitBreakerLayer::builder().max_keys(4).build_generic().unwrap_err();
    /// assert_eq!(err.field(), "max_keys");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn build_generic(self) -> Result<GenericCircuitBreakerLayer<C>, InvalidConfig> {
        const ONE_BREAKER: &str = "a generic layer has one breaker";
        if self.per_host == Some(true) {
            return Err(InvalidConfig::new("per_host", ONE_BREAKER));
        }
        if let Some(setter) = self.key_setter {
            return Err(InvalidConfig::new(setter, ONE_BREAKER));
        }
        if self.max_keys_set {
            return Err(InvalidConfig::new("max_keys", ONE_BREAKER));
        }
        self.config.validate()?;
        let settings = Settings::new(self.config, self.name, false);
        Ok(GenericCircuitBreakerLayer::from_settings(
            Arc::new(settings),
            self.classifier,
        ))
    }
}

impl CircuitBreakerLayer {
    /// A builder, to change the settings; [`build`](CircuitBreakerBuilder::build) gives the
    /// HTTP layer (per host by default),
    /// [`build_generic`](CircuitBreakerBuilder::build_generic) the one-breaker layer for any
    /// request type.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().name("inventory").minimum_calls(20).build()?;
    /// assert_eq!(layer.name(), "inventory");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::config::{MAX_COUNT_WINDOW, MAX_PROBES};

    fn field(builder: CircuitBreakerBuilder) -> &'static str {
        builder.build().map(|_| "").unwrap_or_else(|e| e.field())
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let b = CircuitBreakerBuilder::new;
        let rows: Vec<(CircuitBreakerBuilder, &str)> = vec![
            (b().window(Window::Count(0)), "window"),
            (b().window(Window::Count(MAX_COUNT_WINDOW + 1)), "window"),
            (b().window(Window::Time(Duration::ZERO)), "window"),
            (b().window(Window::Time(Duration::MAX)), "window"),
            (b().minimum_calls(0), "minimum_calls"),
            (b().window(Window::Count(5)), "minimum_calls"),
            (b().failure_rate_threshold(0.0), "failure_rate_threshold"),
            (
                b().failure_rate_threshold(f64::NAN),
                "failure_rate_threshold",
            ),
            (b().failure_rate_threshold(1.01), "failure_rate_threshold"),
            (b().slow_call_duration(Duration::ZERO), "slow_call_duration"),
            (
                b().slow_call_rate_threshold(-0.1),
                "slow_call_rate_threshold",
            ),
            (b().open_duration(Duration::ZERO), "open_duration"),
            (
                b().open_duration_multiplier(0.5),
                "open_duration_multiplier",
            ),
            (
                b().open_duration_multiplier(f64::INFINITY),
                "open_duration_multiplier",
            ),
            (
                b().open_duration_max(Duration::from_secs(1)),
                "open_duration_max",
            ),
            (b().open_duration_max(Duration::MAX), "open_duration_max"),
            (b().open_duration_jitter(1.5), "open_duration_jitter"),
            (b().open_duration_jitter(f64::NAN), "open_duration_jitter"),
            (b().recovery_period(Duration::ZERO), "recovery_period"),
            (b().half_open_max_probes(0), "half_open_max_probes"),
            (b().half_open_max_probes(4096), "half_open_max_probes"),
            (b().half_open_successes(0), "half_open_successes"),
            (b().probe_timeout(Duration::ZERO), "probe_timeout"),
            (b().retry_after_open(Duration::ZERO), "retry_after_open"),
            (b().max_keys(0), "max_keys"),
        ];
        for (builder, expected) in rows {
            assert_eq!(field(builder.clone()), expected, "{builder:?}");
        }
        // The bounds themselves are valid.
        let ok = b()
            .window(Window::Count(1))
            .minimum_calls(1)
            .failure_rate_threshold(1.0)
            .slow_call_rate_threshold(1.0)
            .open_duration_multiplier(1.0)
            .open_duration_jitter(0.0)
            .half_open_max_probes(MAX_PROBES)
            .half_open_successes(MAX_PROBES);
        assert_eq!(field(ok), "");
        assert_eq!(field(b().open_duration_jitter(1.0)), "");
        assert_eq!(field(b().window(Window::Count(MAX_COUNT_WINDOW))), "");
        let longest = Window::Time(Duration::from_nanos(u64::MAX));
        assert_eq!(field(b().window(longest)), "");
        // Waits of up to 100 years, and an open duration that does not grow.
        let century = Duration::from_secs(100 * 365 * 24 * 3600);
        let second = Duration::from_secs(1);
        assert_eq!(field(b().open_duration_max(century)), "");
        assert_eq!(
            field(b().open_duration_max(century + second)),
            "open_duration_max"
        );
        assert_eq!(field(b().retry_after_open(century)), "");
        assert_eq!(
            field(b().retry_after_open(century + second)),
            "retry_after_open"
        );
        assert_eq!(
            field(b().open_duration(second).open_duration_max(second)),
            ""
        );
    }
}
