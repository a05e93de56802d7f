//! The adaptive limit of a pool (documented on [`AdaptiveLimit`]): the settings here, the
//! estimator in `gradient`, the per-pool state and its atomics in `limiter`.

mod gradient;
mod limiter;
#[cfg(all(test, fortify_loom))]
mod loom_tests;
mod sampling;

pub(crate) use limiter::{Limiter, Outcome, Shared, Stamp};

use crate::InvalidConfig;
use std::time::Duration;

/// The metric name of the limits' gauge.
#[cfg(feature = "metrics")]
pub(crate) const LIMIT: &str = "fortify_pool_limit";

/// An adaptive limit for each pool of a [`PoolLimitLayer`](super::PoolLimitLayer), set with
/// [`PoolLimitBuilder::adaptive`](super::PoolLimitBuilder::adaptive).
///
/// A fixed `maxsize` is a guess: too small and callers queue while the backend idles, too
/// large and a slowing backend gets more load exactly when it can take less. In adaptive
/// mode each pool (each host) measures its calls and moves its limit between a floor
/// ([`min_limit`](Self::min_limit)) and `maxsize`, once per sample window:
///
/// - **latency**: the window's mean latency (of successful calls, from permit to response
///   head; of a busy pool, one call in up to 64 is timed, drawn at random on each thread,
///   see [Cost](#cost)) against a baseline,
///   the *no-load latency*: a long-window exponential average of the windows' latencies.
///   While the latency stays within `tolerance` times the baseline, the limit grows by one
///   per window (additive increase), if the callers use at least half of it. When it
///   rises beyond, a queue is building at the backend: the limit shrinks in proportion, by
///   `smoothing * (1 - gradient)` with `gradient = tolerance * baseline / latency`, at
///   most halved (`[0.5, 1]`);
/// - **failures**: when at least `failure_rate_threshold` of a window's calls timed out,
///   found the connection refused or dropped, waited `pool_timeout` in vain, or were
///   answered 5xx or 429, the limit is multiplied by `backoff_ratio` (multiplicative
///   decrease).
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
///
/// // At most 50 calls in flight per host; fewer when a host slows down, never under 4.
/// let layer = PoolLimitLayer::builder(50)
///     .block(true)
///     .pool_timeout(Some(Duration::from_secs(2)))
///     .adaptive(AdaptiveLimit::gradient().min_limit(4))
///     .build()?;
/// let handle = layer.handle();
/// assert_eq!(handle.snapshot().total.limit, 0); // per host: no host seen yet
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
///
/// # The estimator, and why this one
///
/// It is Netflix concurrency-limits' *Gradient2* estimator (an average over a long window
/// as the no-load latency, the window's average as the current one, their ratio clamped to
/// `[0.5, 1]`, a baseline that decays by a tenth per window when it is more than twice the
/// current latency, so that the limit recovers after a long overload, and no growth while
/// the callers do not use half the limit), driven as AIMD: one permit more per healthy
/// window, and a multiplicative cut on failures, which Gradient2 ignores.
///
/// - *Vegas* (Netflix's `VegasLimit`, after TCP Vegas) takes the minimum latency ever seen
///   as the no-load latency. A minimum is biased low by any unusually fast answer (a cached
///   or empty response), then sheds load the backend could take, and it must be reset by
///   probing; an average is not fooled by one fast call.
/// - *Envoy's adaptive concurrency filter* measures the minimum latency by periodically
///   pinning the concurrency to a small value for a while: exact, but every pool would
///   throttle its host on a schedule. The average needs no such phase.
/// - Gradient2's own increase is `smoothing * queue_size` (4) per window; a pool's limit is
///   often below 20 (Netflix's default floor), where a fixed queue of 4 can keep the
///   limit from falling at all. Here the increase is one permit and the decrease a
///   fraction, so the same rules hold for a limit of 5 or 500.
///
/// Limits of the method: the baseline is learned, so a pool that starts on a backend
/// already overloaded takes its latency as normal (start below `maxsize` with
/// [`initial_limit`](Self::initial_limit) if that matters), and a latency that
/// stays high for many windows slowly becomes the new normal (`long_window`). An evicted
/// per-host pool forgets what it learned.
///
/// # How the limit holds
///
/// Each pool's semaphore keeps `maxsize` permits; the limiter holds back (parks)
/// `maxsize - limit` of them. Lowering the limit parks free permits at once, and keeps
/// permits given back until enough are parked (calls in flight are never cut short);
/// raising it gives parked permits back, to the first waiter. The limit needs a mode that
/// holds it: `block(true)` (callers over it wait) or `fail_fast()` (they fail at once);
/// with overflow (`block=False`), callers over the limit would go through anyway, so
/// `build` rejects it.
///
/// # Cost
///
/// One call in `every` of an adaptive pool, on average, is timed: it reads the clock when
/// it takes its permit and when its response (or error) arrives (two clock reads cost
/// about as much as a fixed pool's whole call). `every` follows the pool's call rate, so
/// that the estimator gets about 32 timed successes per window and no more: each window's
/// close sets the next one's from the timed successes it counted, per `window` of time
/// (left alone between 16 and 64, else the calls per window over 32), between 4 (a quiet
/// pool, and a new pool's first window: the share the estimator was tuned with; timing
/// every call left less margin in the demo's overload) and 64 (a pool of more than
/// about 20,000 calls a second with the default window). Each thread draws which of its
/// calls are timed (a cheap pseudo-random sequence of its own, not every n-th call, so
/// that a thread calling several hosts in turn times each of them alike): one relaxed
/// load of `every` per call. A timed success adds itself to the window with one
/// `fetch_add` (count and latency sum share a word), stands for `every` successes in the
/// window's count, and checks whether the window is due; an untimed success touches
/// nothing shared. Every failure is counted (one `fetch_add`, one clock read). A window
/// that has lasted `window` closes at its next timed success or failure once it counts at
/// least 8 calls, so when a busy pool's calls thin out, its window lasts until a timed
/// call comes (about `every` calls) and the next one times more. A permit's return loads
/// two atomics (the limit and the parked count). No lock and no allocation; once per
/// window, one call claims the window with a compare-and-swap and computes the next limit
/// and `every`. A latency counts at most 16.7 s. A fixed pool pays nothing of this: its
/// permits are marked at the pool's creation as needing only the semaphore.
///
/// # Metrics
///
/// With the `metrics` feature, besides the pool's metrics:
///
/// | metric | type | meaning |
/// |---|---|---|
/// | `fortify_pool_limit` | gauge | the current limits, summed over the layer's pools (its only label is `name`, never the host); compare with `fortify_pool_max` |
///
/// Each pool's own limit is in the [snapshot](super::PoolStats::limit). With the `tracing`
/// feature, a `DEBUG` event per change of a limit (target `tower_fortify::pool`, fields
/// `name`, `limit`, `before`, `baseline_ms`, `latency_ms`, `failures`).
///
/// # Settings
///
/// Start from [`gradient`](Self::gradient) and change what you need; every value is
/// checked by [`PoolLimitBuilder::build`](super::PoolLimitBuilder::build), which names the
/// setter of a bad one.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
///
/// let adaptive = AdaptiveLimit::gradient()
///     .min_limit(2)
///     .initial_limit(10)
///     .window(Duration::from_millis(250));
/// let layer = PoolLimitLayer::builder(100).fail_fast().adaptive(adaptive).build()?;
/// # let _ = layer;
/// let err = PoolLimitLayer::builder(100)
///     .fail_fast()
///     .adaptive(AdaptiveLimit::gradient().min_limit(200))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "min_limit");
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveLimit {
    pub(crate) min_limit: usize,
    pub(crate) initial_limit: Option<usize>,
    pub(crate) window: Duration,
    pub(crate) long_window: u32,
    pub(crate) tolerance: f64,
    pub(crate) smoothing: f64,
    pub(crate) backoff_ratio: f64,
    pub(crate) failure_rate_threshold: f64,
}

impl Default for AdaptiveLimit {
    /// [`AdaptiveLimit::gradient`].
    fn default() -> Self {
        Self::gradient()
    }
}

impl AdaptiveLimit {
    /// The gradient estimator with its defaults: `min_limit` 1, `initial_limit` `maxsize`,
    /// `window` 100 ms, `long_window` 600 windows, `tolerance` 1.5, `smoothing` 0.2,
    /// `backoff_ratio` 0.9, `failure_rate_threshold` 0.1.
    ///
    /// The defaults are Gradient2's, but for the window (Netflix: 1 s, here 100 ms, so
    /// that a limit falls from 50 to 10 within about two seconds) and the floor (Netflix:
    /// 20, here 1: a pool is often smaller).
    ///
    /// ```
    /// use tower_fortify::pool::AdaptiveLimit;
    ///
    /// assert_eq!(AdaptiveLimit::gradient(), AdaptiveLimit::default());
    /// ```
    pub const fn gradient() -> Self {
        AdaptiveLimit {
            min_limit: 1,
            initial_limit: None,
            window: Duration::from_millis(100),
            long_window: 600,
            tolerance: 1.5,
            smoothing: 0.2,
            backoff_ratio: 0.9,
            failure_rate_threshold: 0.1,
        }
    }

    /// The floor: the limit never falls under it (default 1). At most `maxsize`.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = PoolLimitLayer::builder(10).fail_fast().adaptive(AdaptiveLimit::gradient().min_limit(4)).build_generic()?;
    /// let refused = layer.layer(tower::service_fn(|_: ()| async {
    ///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// // A refused connection every 13 ms: each window (100 ms, 8 calls) cuts the limit by a tenth.
    /// for _ in 0..200 {
    ///     tokio::time::advance(std::time::Duration::from_millis(13)).await;
    ///     let _ = refused.clone().oneshot(()).await;
    /// }
    /// assert_eq!(layer.handle().snapshot().total.limit, 4); // 10, 9, 8.1, ... never under 4
    /// # Ok(())
    /// # }
    /// ```
    pub const fn min_limit(mut self, min_limit: usize) -> Self {
        self.min_limit = min_limit;
        self
    }

    /// The limit of a new pool (default `maxsize`: the adaptive pool starts as the fixed
    /// one would). Between `min_limit` and `maxsize`.
    ///
    /// ```
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// let adaptive = AdaptiveLimit::gradient().initial_limit(8);
    /// let layer = PoolLimitLayer::builder(50).fail_fast().adaptive(adaptive).build_generic()?;
    /// assert_eq!(layer.handle().snapshot().total.limit, 8); // of 50 permits
    /// // Above maxsize (or under min_limit): rejected.
    /// let err = PoolLimitLayer::builder(4).fail_fast().adaptive(adaptive).build().unwrap_err();
    /// assert_eq!(err.field(), "initial_limit");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn initial_limit(mut self, initial_limit: usize) -> Self {
        self.initial_limit = Some(initial_limit);
        self
    }

    /// How often the limit moves (default 100 ms): a window closes when it has lasted this
    /// long and seen at least 8 calls (or half a million timed ones, however short),
    /// checked at every failure and every timed success (see [Cost](AdaptiveLimit#cost)).
    /// Shorter windows react faster and measure noisier means; the share of calls timed
    /// aims at the same number per window, so a shorter window times a larger share.
    ///
    /// Rejected when zero; a longer window than the clock can count saturates (the
    /// window then closes by its count only).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// let build = |adaptive| PoolLimitLayer::builder(10).fail_fast().adaptive(adaptive).build();
    /// assert!(build(AdaptiveLimit::gradient().window(Duration::from_millis(50))).is_ok());
    /// let err = build(AdaptiveLimit::gradient().window(Duration::ZERO)).unwrap_err();
    /// assert_eq!(err.field(), "window");
    /// ```
    pub const fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many windows the baseline (the no-load latency) averages over (default 600):
    /// how long a rise in latency takes to become the new normal. At least 1.
    ///
    /// ```
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// let build = |adaptive| PoolLimitLayer::builder(10).fail_fast().adaptive(adaptive).build();
    /// assert!(build(AdaptiveLimit::gradient().long_window(1200)).is_ok());
    /// let err = build(AdaptiveLimit::gradient().long_window(0)).unwrap_err();
    /// assert_eq!(err.field(), "long_window");
    /// ```
    pub const fn long_window(mut self, long_window: u32) -> Self {
        self.long_window = long_window;
        self
    }

    /// How far the latency may rise over the baseline before the limit falls (default 1.5:
    /// 50% slower). At least 1.
    ///
    /// ```
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// let build = |adaptive| PoolLimitLayer::builder(10).fail_fast().adaptive(adaptive).build();
    /// assert!(build(AdaptiveLimit::gradient().tolerance(2.0)).is_ok());
    /// // Under 1, the baseline itself would count as too slow.
    /// let err = build(AdaptiveLimit::gradient().tolerance(0.9)).unwrap_err();
    /// assert_eq!(err.field(), "tolerance");
    /// ```
    pub const fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// How much of a latency-driven decrease applies per window, in `(0, 1]` (default
    /// 0.2): with the gradient at its lowest (0.5), the limit falls by a tenth per window.
    ///
    /// ```
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// let build = |adaptive| PoolLimitLayer::builder(10).fail_fast().adaptive(adaptive).build();
    /// assert!(build(AdaptiveLimit::gradient().smoothing(0.5)).is_ok());
    /// for smoothing in [0.0, 1.5] {
    ///     let err = build(AdaptiveLimit::gradient().smoothing(smoothing)).unwrap_err();
    ///     assert_eq!(err.field(), "smoothing");
    /// }
    /// ```
    pub const fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// The multiplicative decrease of a window with failures, in `(0, 1)` (default 0.9,
    /// Netflix's AIMD): `limit * backoff_ratio`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = PoolLimitLayer::builder(10).fail_fast().adaptive(AdaptiveLimit::gradient().backoff_ratio(0.5)).build_generic()?;
    /// let refused = layer.layer(tower::service_fn(|_: ()| async {
    ///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// // One window (100 ms, at least 8 calls) of refused connections halves the limit.
    /// tokio::time::advance(Duration::from_millis(100)).await;
    /// for _ in 0..8 {
    ///     let _ = refused.clone().oneshot(()).await;
    /// }
    /// assert_eq!(layer.handle().snapshot().total.limit, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn backoff_ratio(mut self, backoff_ratio: f64) -> Self {
        self.backoff_ratio = backoff_ratio;
        self
    }

    /// The share of a window's calls that must fail (timeout, refused or dropped
    /// connection, pool timeout, 5xx, 429) for the limit to be cut, in `(0, 1]` (default
    /// 0.1). A rare failure is not overload: at the default, one in ten calls.
    ///
    /// ```
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// let build = |adaptive| PoolLimitLayer::builder(10).fail_fast().adaptive(adaptive).build();
    /// assert!(build(AdaptiveLimit::gradient().failure_rate_threshold(0.25)).is_ok());
    /// // Zero: any one failure in a window would cut the limit.
    /// let err = build(AdaptiveLimit::gradient().failure_rate_threshold(0.0)).unwrap_err();
    /// assert_eq!(err.field(), "failure_rate_threshold");
    /// ```
    pub const fn failure_rate_threshold(mut self, threshold: f64) -> Self {
        self.failure_rate_threshold = threshold;
        self
    }

    /// Checks the settings against the pool's `maxsize`.
    pub(crate) fn validate(&self, maxsize: usize) -> Result<(), InvalidConfig> {
        if self.min_limit == 0 || self.min_limit > maxsize {
            return Err(InvalidConfig::new(
                "min_limit",
                "must be between 1 and maxsize",
            ));
        }
        if let Some(initial) = self.initial_limit {
            if initial < self.min_limit || initial > maxsize {
                return Err(InvalidConfig::new(
                    "initial_limit",
                    "must be between min_limit and maxsize",
                ));
            }
        }
        if self.window.is_zero() {
            return Err(InvalidConfig::new("window", "must be greater than zero"));
        }
        if self.long_window == 0 {
            return Err(InvalidConfig::new(
                "long_window",
                "must be at least one window",
            ));
        }
        if !(self.tolerance >= 1.0 && self.tolerance.is_finite()) {
            return Err(InvalidConfig::new(
                "tolerance",
                "must be a finite number of at least 1",
            ));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(InvalidConfig::new(
                "smoothing",
                "must be greater than 0 and at most 1",
            ));
        }
        if !(self.backoff_ratio > 0.0 && self.backoff_ratio < 1.0) {
            return Err(InvalidConfig::new(
                "backoff_ratio",
                "must be greater than 0 and less than 1",
            ));
        }
        if !(self.failure_rate_threshold > 0.0 && self.failure_rate_threshold <= 1.0) {
            return Err(InvalidConfig::new(
                "failure_rate_threshold",
                "must be greater than 0 and at most 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_bad_setting_is_named() {
        let bad = [
            (AdaptiveLimit::gradient().min_limit(0), "min_limit"),
            (AdaptiveLimit::gradient().min_limit(11), "min_limit"),
            (
                AdaptiveLimit::gradient().min_limit(4).initial_limit(3),
                "initial_limit",
            ),
            (AdaptiveLimit::gradient().initial_limit(11), "initial_limit"),
            (AdaptiveLimit::gradient().window(Duration::ZERO), "window"),
            (AdaptiveLimit::gradient().long_window(0), "long_window"),
            (AdaptiveLimit::gradient().tolerance(0.9), "tolerance"),
            (
                AdaptiveLimit::gradient().tolerance(f64::INFINITY),
                "tolerance",
            ),
            (AdaptiveLimit::gradient().tolerance(f64::NAN), "tolerance"),
            (AdaptiveLimit::gradient().smoothing(0.0), "smoothing"),
            (AdaptiveLimit::gradient().smoothing(1.5), "smoothing"),
            (
                AdaptiveLimit::gradient().backoff_ratio(1.0),
                "backoff_ratio",
            ),
            (
                AdaptiveLimit::gradient().backoff_ratio(0.0),
                "backoff_ratio",
            ),
            (
                AdaptiveLimit::gradient().backoff_ratio(f64::NAN),
                "backoff_ratio",
            ),
            (
                AdaptiveLimit::gradient().failure_rate_threshold(0.0),
                "failure_rate_threshold",
            ),
        ];
        for (config, field) in bad {
            assert_eq!(
                config.validate(10).unwrap_err().field(),
                field,
                "{config:?}"
            );
        }
        assert!(AdaptiveLimit::gradient().min_limit(10).validate(10).is_ok());
        // The bounds themselves are valid: an initial limit at the floor or at maxsize, a
        // tolerance of 1, a smoothing and a failure rate threshold of 1.
        let gradient = AdaptiveLimit::gradient;
        for config in [
            gradient().min_limit(4).initial_limit(4),
            gradient().min_limit(4).initial_limit(10),
            gradient().tolerance(1.0),
            gradient().smoothing(1.0),
            gradient().failure_rate_threshold(1.0),
        ] {
            assert!(config.validate(10).is_ok(), "{config:?}");
        }
    }

    proptest! {
        /// Any non-zero window is valid and none overflows the clock: the largest saturates.
        #[test]
        fn any_window_is_valid_and_saturates(nanos in 1u64.., secs in 0u64..) {
            let window = Duration::new(secs, 0).saturating_add(Duration::from_nanos(nanos));
            let config = AdaptiveLimit::gradient().window(window);
            prop_assert!(config.validate(4).is_ok());
            let shared = Shared::new(config, 4, "proptest");
            drop(Limiter::new(&shared));
        }
    }
}
