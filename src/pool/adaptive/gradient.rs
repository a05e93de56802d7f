//! The estimator: one step per sample window, a pure function of the window's figures and
//! the state the previous step left (unit-tested here without a pool or a clock).

use super::AdaptiveLimit;

/// The first windows' latencies are averaged plainly before the baseline becomes an
/// exponential average, as Netflix's `ExpAvgMeasurement` warms up.
pub(super) const WARMUP: u32 = 10;

/// When the baseline is this many times the window's latency, it was learned under a load
/// that has passed: it is cut by [`BASELINE_DECAY`] per window instead of waiting for the
/// average to forget it (Gradient2's rule).
const STALE_BASELINE: f64 = 2.0;
const BASELINE_DECAY: f64 = 0.9;

/// What a window saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Window {
    /// Calls that succeeded (counted from the timed ones, each standing for the window's
    /// `every`),
    /// and their mean latency (of the timed ones; microseconds, meaningless when none).
    pub(super) successes: u64,
    pub(super) mean_latency: f64,
    /// Calls that failed in a way that says the backend is overloaded.
    pub(super) failures: u64,
    /// Calls holding a permit or waiting for one when the window closed.
    pub(super) busy: usize,
}

/// The estimator's state between windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct State {
    /// The limit, fractional: small steps add up.
    pub(super) limit: f64,
    /// The no-load latency: a long-window average of the windows' latencies (microseconds).
    pub(super) baseline: f64,
    /// Windows averaged into the baseline, up to [`WARMUP`].
    pub(super) warmup: u32,
}

/// The next state after `window`, for a limit between `config.min_limit` and `maxsize`.
///
/// - Failures at or above `failure_rate_threshold` of the window's calls: multiplicative
///   decrease, `limit * backoff_ratio`.
/// - Otherwise, with successes: the baseline takes the window's mean latency (a plain mean
///   over the first windows, then an exponential average over `long_window` windows). If
///   fewer calls were busy than half the limit, the caller does not use the limit: it is
///   left alone (nothing measured says whether more would be fine). Else
///   `gradient = clamp(tolerance * baseline / latency, 0.5, 1)`: at 1 (latency within
///   tolerance of the baseline) additive increase, `limit + 1`; below 1 (a queue builds at
///   the backend) a decrease in proportion, `limit * (1 - smoothing * (1 - gradient))`.
pub(super) fn next(config: &AdaptiveLimit, maxsize: usize, state: State, window: Window) -> State {
    let floor = config.min_limit as f64;
    let ceiling = maxsize as f64;
    let mut next = state;
    let calls = window.successes + window.failures;
    if window.failures > 0 && window.failures as f64 >= config.failure_rate_threshold * calls as f64
    {
        next.limit = (state.limit * config.backoff_ratio).clamp(floor, ceiling);
        return next;
    }
    if window.successes == 0 || window.mean_latency.is_nan() || window.mean_latency <= 0.0 {
        return next;
    }
    let latency = window.mean_latency;
    if next.warmup < WARMUP {
        next.warmup += 1;
        next.baseline += (latency - next.baseline) / f64::from(next.warmup);
    } else {
        let factor = 2.0 / (f64::from(config.long_window) + 1.0);
        next.baseline += (latency - next.baseline) * factor;
    }
    if next.baseline / latency > STALE_BASELINE {
        next.baseline *= BASELINE_DECAY;
    }
    if (window.busy as f64) < state.limit / 2.0 {
        return next;
    }
    let gradient = (config.tolerance * next.baseline / latency).clamp(0.5, 1.0);
    let limit = if gradient >= 1.0 {
        state.limit + 1.0
    } else {
        state.limit * (1.0 - config.smoothing * (1.0 - gradient))
    };
    next.limit = limit.clamp(floor, ceiling);
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn start(limit: f64) -> State {
        State {
            limit,
            baseline: 0.0,
            warmup: 0,
        }
    }

    fn window(mean_latency: f64, busy: usize) -> Window {
        Window {
            successes: 10,
            mean_latency,
            failures: 0,
            busy,
        }
    }

    /// Runs `windows` windows of `latency` with every permit busy.
    fn run(config: &AdaptiveLimit, mut state: State, latency: f64, windows: usize) -> State {
        for _ in 0..windows {
            let busy = state.limit as usize;
            state = next(config, 100, state, window(latency, busy));
        }
        state
    }

    #[test]
    fn steady_latency_grows_the_limit_by_one_per_window() {
        let config = AdaptiveLimit::gradient();
        let state = run(&config, start(10.0), 1_000.0, 5);
        assert_eq!(state.limit, 15.0);
        assert_eq!(state.baseline, 1_000.0);
        assert_eq!(state.warmup, 5);
    }

    #[test]
    fn latency_over_tolerance_decreases_in_proportion_to_the_gradient() {
        let config = AdaptiveLimit::gradient();
        let warm = run(&config, start(50.0), 1_000.0, 20);
        assert_eq!(warm.limit, 70.0);
        // Four times the baseline: a gradient under 0.5 counts as 0.5, the largest step
        // down, limit * (1 - 0.2 * 0.5).
        let after = next(&config, 100, warm, window(4_000.0, 70));
        let gradient = 1.5 * after.baseline / 4_000.0;
        assert!(gradient < 0.5);
        assert!((after.limit - 70.0 * 0.9).abs() < 1e-9, "{after:?}");
        // Within tolerance (1.4 times the baseline): still an increase.
        let within = next(&config, 100, warm, window(1_400.0, 70));
        assert_eq!(within.limit, 71.0);
    }

    #[test]
    fn an_app_limited_caller_leaves_the_limit_alone() {
        let config = AdaptiveLimit::gradient();
        let warm = run(&config, start(40.0), 1_000.0, 10);
        for latency in [1_000.0, 10_000.0] {
            let after = next(&config, 100, warm, window(latency, 19));
            assert_eq!(after.limit, warm.limit);
        }
    }

    #[test]
    fn failures_cut_the_limit_by_the_backoff_ratio_busy_or_not() {
        let config = AdaptiveLimit::gradient();
        let failing = Window {
            successes: 9,
            mean_latency: 1_000.0,
            failures: 1,
            busy: 0,
        };
        let after = next(&config, 100, start(40.0), failing);
        assert_eq!(after.limit, 36.0);
        assert_eq!(after.baseline, 0.0, "a failing window teaches no latency");
        // Just under the threshold (1 failure in 11 calls < 10%): an ordinary window.
        let rare = Window {
            successes: 10,
            ..failing
        };
        assert_eq!(next(&config, 100, start(40.0), rare).limit, 40.0);
    }

    #[test]
    fn a_window_without_a_latency_changes_nothing() {
        let config = AdaptiveLimit::gradient();
        let warm = run(&config, start(40.0), 1_000.0, 10);
        let empty = Window {
            successes: 0,
            mean_latency: 0.0,
            failures: 0,
            busy: 40,
        };
        for window in [
            empty,
            Window {
                mean_latency: 5_000.0,
                ..empty
            },
            Window {
                successes: 10,
                mean_latency: f64::NAN,
                ..empty
            },
            Window {
                successes: 10,
                ..empty
            },
            Window {
                successes: 10,
                mean_latency: -1.0,
                ..empty
            },
        ] {
            assert_eq!(next(&config, 100, warm, window), warm, "{window:?}");
        }
    }

    #[test]
    fn a_caller_using_half_the_limit_moves_it() {
        let config = AdaptiveLimit::gradient();
        let warm = run(&config, start(40.0), 1_000.0, 10);
        assert_eq!(warm.limit, 50.0);
        assert_eq!(next(&config, 100, warm, window(1_000.0, 25)).limit, 51.0);
    }

    #[test]
    fn a_baseline_twice_the_latency_is_not_stale_yet() {
        // Averaged over 3 windows (a factor of one half): 3,000 and 1,000 make 2,000,
        // twice the window's latency: kept; a little more is cut by a tenth.
        let config = AdaptiveLimit::gradient().long_window(3);
        let warm = State {
            limit: 40.0,
            baseline: 3_000.0,
            warmup: WARMUP,
        };
        assert_eq!(
            next(&config, 100, warm, window(1_000.0, 0)).baseline,
            2_000.0
        );
        let stale = next(&config, 100, warm, window(999.0, 0));
        assert!(
            (stale.baseline - 1_999.5 * BASELINE_DECAY).abs() < 1e-9,
            "{stale:?}"
        );
    }

    #[test]
    fn a_stale_baseline_decays_when_latency_falls() {
        let config = AdaptiveLimit::gradient();
        let loaded = run(&config, start(10.0), 10_000.0, 10);
        let healed = next(&config, 100, loaded, window(1_000.0, 100));
        let averaged = 10_000.0 + (1_000.0 - 10_000.0) * 2.0 / 601.0;
        assert!((healed.baseline - averaged * 0.9).abs() < 1e-6);
    }

    proptest! {
        /// Whatever the windows, the limit stays between the floor and maxsize and the
        /// baseline stays finite and non-negative.
        #[test]
        fn the_limit_stays_between_floor_and_maxsize(
            maxsize in 1usize..200,
            floor_part in 0.0f64..1.0,
            windows in proptest::collection::vec(
                (0u64..1_000, 0.0f64..1e9, 0u64..1_000, 0usize..400), 1..60),
        ) {
            let floor = 1 + ((maxsize - 1) as f64 * floor_part) as usize;
            let config = AdaptiveLimit::gradient().min_limit(floor);
            let mut state = start(maxsize as f64);
            for (successes, mean_latency, failures, busy) in windows {
                state = next(&config, maxsize, state, Window { successes, mean_latency, failures, busy });
                prop_assert!(state.limit >= floor as f64 && state.limit <= maxsize as f64, "{state:?}");
                prop_assert!(state.baseline.is_finite() && state.baseline >= 0.0);
            }
        }
    }
}
