//! How many of a pool's calls are timed: one in `every`, drawn at random on each thread
//! (`internal::draw`), with `every` following the pool's call rate. The estimator needs
//! enough timed successes per window for a mean it can trust, and no more: a pool times
//! one call in [`MIN_EVERY`] at most, a busy one one call in up to [`MAX_EVERY`] (two clock
//! reads per timed call cost about a fixed pool's whole call). Each window's close sets the next window's
//! `every` from the timed successes it counted, per `window` of time.

/// The timed successes a window aims at: its mean latency is then the mean of about this
/// many calls (Netflix's windowed limits take 10 at least).
const TARGET: f64 = 32.0;

/// A window whose timed successes (per `window` of time) fall in `LOW..=HIGH` leaves
/// `every` as it is (the rate moves a little from window to window; `every` need not).
const LOW: f64 = 16.0;
const HIGH: f64 = 64.0;

/// The fewest calls a timed one stands for: the share the estimator's convergence was
/// tuned with. Timing more (every call of a quiet pool) left the adaptive pool's backend
/// p99 over the demo's overload closer to the fixed pool's (the limit fell later; why is
/// not established). One in the loom models (see [`MAX_EVERY`]).
#[cfg(not(fortify_loom))]
pub(super) const MIN_EVERY: u32 = 4;
#[cfg(fortify_loom)]
pub(super) const MIN_EVERY: u32 = 1;

/// The most calls a timed one stands for. One in the loom models, whose threads share the
/// thread-local draw and must run the same way every time: every call is timed there.
#[cfg(not(fortify_loom))]
pub(super) const MAX_EVERY: u32 = 64;
#[cfg(fortify_loom)]
pub(super) const MAX_EVERY: u32 = 1;

/// The `every` of the window after one that timed `timed` successes at one in `every`, and
/// lasted `lasted` (nanoseconds) for windows of `window`: unchanged while the timed
/// successes per `window` stay within `LOW..=HIGH`, else the calls per `window` over
/// [`TARGET`], between [`MIN_EVERY`] and [`MAX_EVERY`]. A window lasts longer than `window` when its
/// calls are sparse (it closes at a timed success or a failure), shorter when it filled:
/// counting per `window` makes a fall in the rate lower `every` in one step.
pub(super) fn next_every(every: u32, timed: u64, lasted: u64, window: u64) -> u32 {
    let per_window = timed as f64 * (window as f64 / lasted.max(1) as f64);
    if (LOW..=HIGH).contains(&per_window) {
        return every;
    }
    // `as` saturates (and makes a NaN 0): clamped either way.
    ((per_window * f64::from(every) / TARGET) as u32).clamp(MIN_EVERY, MAX_EVERY)
}

#[cfg(all(test, not(fortify_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WINDOW: u64 = 100_000_000;

    #[test]
    fn a_window_in_the_band_leaves_every_alone() {
        for timed in [16, 32, 64] {
            assert_eq!(next_every(8, timed, WINDOW, WINDOW), 8, "{timed} timed");
        }
        assert_eq!(next_every(1, 40, WINDOW, WINDOW), 1);
    }

    #[test]
    fn many_timed_calls_time_fewer_next_up_to_the_cap() {
        // 800 calls per window at one in 4 (200 timed): one in 25 next (32 timed).
        assert_eq!(next_every(4, 200, WINDOW, WINDOW), 25);
        // 400 per window: one in 12 would time 33, but never more than one in 4.
        assert_eq!(next_every(4, 100, WINDOW, WINDOW), 12);
        assert_eq!(next_every(4, 70, WINDOW, WINDOW), 8);
        // 992 calls per window at one in 4: one in 31.
        assert_eq!(next_every(4, 248, WINDOW, WINDOW), 31);
        // A million: the cap.
        assert_eq!(next_every(1, 1_000_000, WINDOW, WINDOW), MAX_EVERY);
        assert_eq!(next_every(MAX_EVERY, 10_000, WINDOW, WINDOW), MAX_EVERY);
    }

    #[test]
    fn few_timed_calls_time_more_next_down_to_every_call() {
        // 8 timed at one in 64 (512 calls): one in 16 next (32 timed).
        assert_eq!(next_every(64, 8, WINDOW, WINDOW), 16);
        // A quiet pool: one in `MIN_EVERY`.
        assert_eq!(next_every(64, 1, WINDOW, WINDOW), MIN_EVERY);
        assert_eq!(next_every(8, 3, WINDOW, WINDOW), MIN_EVERY);
        assert_eq!(next_every(8, 0, WINDOW, WINDOW), MIN_EVERY, "failures only");
    }

    #[test]
    fn counted_per_window_of_time() {
        // 32 timed successes over ten windows' time (a window waited for a timed call):
        // 3.2 per window, so one in 64 becomes one in 6, not left alone.
        assert_eq!(next_every(64, 32, 10 * WINDOW, WINDOW), 6);
        // A window that filled in a tenth of `window`: ten times the rate.
        assert_eq!(next_every(4, 10, WINDOW / 10, WINDOW), 12);
        // A window that never closes by time (saturated) counts as busy.
        assert_eq!(next_every(4, 1 << 19, WINDOW, u64::MAX), MAX_EVERY);
        assert_eq!(next_every(4, 100, 0, WINDOW), MAX_EVERY, "lasted nothing");
    }

    proptest! {
        /// Whatever the window, `every` stays between `MIN_EVERY` and the cap, and a window out of
        /// the band moves it towards the target: up when it timed more than `HIGH` per
        /// window, down when fewer than `LOW`.
        #[test]
        fn every_stays_in_bounds_and_moves_towards_the_target(
            every in MIN_EVERY..=MAX_EVERY,
            timed in 0u64..2_000_000,
            lasted in 0u64..u64::MAX,
            window in 1u64..u64::MAX,
        ) {
            let next = next_every(every, timed, lasted, window);
            prop_assert!((MIN_EVERY..=MAX_EVERY).contains(&next));
            let per_window = timed as f64 * (window as f64 / lasted.max(1) as f64);
            if per_window > HIGH {
                prop_assert!(next >= every);
            } else if per_window < LOW {
                prop_assert!(next <= every);
            } else {
                prop_assert_eq!(next, every);
            }
        }
    }
}

/// The share followed by a pool's limiter, on paused time.
#[cfg(all(test, not(fortify_loom)))]
mod with_a_limiter {
    use super::{MAX_EVERY, MIN_EVERY};
    use crate::pool::{
        adaptive::{AdaptiveLimit, Limiter, Outcome, Shared, Stamp},
        semaphore::Semaphore,
    };
    use std::time::Duration;
    use tokio::time::Instant;

    fn limiter(config: AdaptiveLimit, maxsize: usize) -> (Limiter, Semaphore) {
        let shared = Shared::new(config, maxsize, "test");
        let limiter = Limiter::new(&shared);
        let semaphore = Semaphore::new(maxsize - limiter.parked());
        (limiter, semaphore)
    }

    /// `calls` successful calls started at once and answered after `latency`, with `busy`
    /// calls holding a permit: how many were timed.
    async fn batch(
        limiter: &Limiter,
        semaphore: &Semaphore,
        calls: usize,
        latency: Duration,
        busy: usize,
    ) -> usize {
        let mut stamps: Vec<Stamp> = (0..calls).map(|_| Stamp::start(Some(limiter))).collect();
        let timed = stamps.iter().filter(|s| **s != Stamp::UNTIMED).count();
        tokio::time::advance(latency).await;
        for stamp in &mut stamps {
            limiter.record(stamp, Outcome::Success, semaphore, || busy);
        }
        timed
    }

    /// `ticks` batches of `calls` calls answered after `latency`: how many of the last
    /// half's calls were timed.
    async fn batches(
        limiter: &Limiter,
        semaphore: &Semaphore,
        ticks: usize,
        calls: usize,
        latency: Duration,
    ) -> usize {
        let mut timed = 0;
        for tick in 0..ticks {
            let n = batch(limiter, semaphore, calls, latency, 0).await;
            if tick >= ticks / 2 {
                timed += n;
            }
        }
        timed
    }

    /// A busy pool (5,000 calls a window) times one call in `MAX_EVERY` from its second
    /// window on; once it turns quiet (20 calls a window) it times one in `MIN_EVERY`
    /// again.
    #[tokio::test(start_paused = true)]
    async fn the_share_of_timed_calls_follows_the_call_rate() {
        let (limiter, semaphore) = limiter(AdaptiveLimit::gradient(), 64);
        let ms = Duration::from_millis(1);
        assert_eq!(
            limiter.every(),
            MIN_EVERY,
            "a new pool times one call in MIN_EVERY"
        );
        let timed = batches(&limiter, &semaphore, 1_000, 50, ms).await;
        assert_eq!(limiter.every(), MAX_EVERY);
        let expected = 25_000 / MAX_EVERY as usize;
        assert!(
            timed.abs_diff(expected) <= expected / 4,
            "{timed} of 25,000 calls timed, expected about {expected}"
        );
        // Quiet: 4 calls every 5 ms for two seconds, one in `MIN_EVERY` timed in the last
        // half.
        let quiet = batches(&limiter, &semaphore, 400, 4, 5 * ms).await;
        assert_eq!(limiter.every(), MIN_EVERY);
        let expected = 800 / MIN_EVERY as usize;
        assert!(
            quiet.abs_diff(expected) <= expected / 4,
            "{quiet} of 800 calls of a quiet pool timed, expected about {expected}"
        );
    }

    /// A closed loop for `duration`: as many callers as the limit, calling back to back,
    /// each call taking `base` while at most `capacity` are in flight and
    /// `base * in_flight / capacity` beyond (the backend's throughput is capped). Returns
    /// the lowest limit and the lowest `every` seen.
    async fn closed_loop(
        limiter: &Limiter,
        semaphore: &Semaphore,
        duration: Duration,
        base: Duration,
        capacity: usize,
    ) -> (usize, u32) {
        let end = Instant::now() + duration;
        let (mut limit_min, mut every_min) = (usize::MAX, u32::MAX);
        while Instant::now() < end {
            let limit = limiter.limit();
            limit_min = limit_min.min(limit);
            let latency = base * limit.max(capacity) as u32 / capacity as u32;
            batch(limiter, semaphore, limit, latency, limit).await;
            every_min = every_min.min(limiter.every());
        }
        (limit_min, every_min)
    }

    /// At tens of thousands of calls a window, one call in `MAX_EVERY` timed, the limit
    /// falls when the backend's latency rises with the concurrency (to about where it is
    /// 1.5 times the base: 12 calls for 8 workers) and comes back to `maxsize` when it
    /// heals, as it does with every call timed (`tests/pool/adaptive.rs`).
    #[tokio::test(start_paused = true)]
    async fn at_a_high_call_rate_the_limit_still_falls_and_recovers() {
        let (limiter, semaphore) = limiter(AdaptiveLimit::gradient().min_limit(2), 40);
        let base = Duration::from_micros(100);
        let (second, healthy) = (Duration::from_secs(1), usize::MAX / 2);
        // The first window (100 ms) times one call in `MIN_EVERY`, the next ones one in 64.
        closed_loop(&limiter, &semaphore, second / 10, base, healthy).await;
        let warm = closed_loop(&limiter, &semaphore, 2 * second, base, healthy).await;
        assert_eq!(warm, (40, MAX_EVERY), "(lowest limit, lowest every)");
        let (_, every) = closed_loop(&limiter, &semaphore, 2 * second, base, 8).await;
        let fallen = limiter.limit();
        assert!((8..=16).contains(&fallen), "limit {fallen}");
        assert_eq!(every, MAX_EVERY, "thousands of calls a window");
        let (_, every) = closed_loop(&limiter, &semaphore, 5 * second, base, healthy).await;
        assert_eq!(limiter.limit(), 40, "recovered");
        assert_eq!(every, MAX_EVERY);
    }
}
