//! One pool's adaptive limit: its sample window in atomics, the permits it holds back, and
//! the layer-wide state every pool's limiter shares.

use super::{
    gradient::{self, State, Window},
    sampling, AdaptiveLimit,
};
use crate::{
    classify::{Failure, FailureKind},
    // loom's atomics in the models (`loom_tests`), so that they see the limit and the
    // parked count; `Shared` stays in a `std` `Arc`, as `internal::sync` explains.
    internal::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    pool::semaphore::Semaphore,
};
use std::{fmt, sync::Arc, time::Duration};
use tokio::time::Instant;

/// A window closes when it has lasted `window` and holds at least this many calls.
pub(super) const MIN_SAMPLES: u64 = 8;

/// `samples` packs the timed successes' count (high bits) over the sum of their latencies
/// in microseconds (low bits), so that recording one is one `fetch_add`.
const SUM_BITS: u32 = 44;
const ONE_SAMPLE: u64 = 1 << SUM_BITS;
const SUM_MASK: u64 = ONE_SAMPLE - 1;
/// One latency counts at most this (16.7 s).
const MAX_SAMPLE_MICROS: u64 = (1 << 24) - 1;
/// A window closes once it holds this many timed successes, however short it is, so that
/// the count (20 bits) never overflows.
const FULL_WINDOW: u64 = 1 << 19;
// Calls past `FULL_WINDOW` each try to close the window, so the count stays far below
// twice it; just under twice it, the count and the sum still fit.
const _: () = assert!((2 * FULL_WINDOW - 1) * MAX_SAMPLE_MICROS <= SUM_MASK);
const _: () = assert!(2 * FULL_WINDOW - 1 <= u64::MAX >> SUM_BITS);

/// What a call's end says about the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A success: its latency is a sample.
    Success,
    /// A sign of overload: a timeout, a refused or dropped connection, a 5xx or a 429.
    Overload,
    /// Neither (a 4xx, a certificate error, ...): not counted.
    Ignore,
}

impl Outcome {
    /// The outcome of an HTTP response: 5xx and 429 (the backend asks for less) are
    /// overload, anything else a success.
    #[inline]
    pub(crate) fn of_status(status: http::StatusCode) -> Self {
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            Outcome::Overload
        } else {
            Outcome::Success
        }
    }

    /// The outcome of an error (classified already, or classified now).
    pub(crate) fn of_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let kind = match error.downcast_ref::<Failure>() {
            Some(failure) => failure.kind(),
            None => crate::classify::classify_error(error, crate::classify::Stage::Request),
        };
        match kind {
            FailureKind::ConnectRefused
            | FailureKind::ConnectTimeout
            | FailureKind::ReadTimeout
            | FailureKind::ConnectionClosed
            | FailureKind::TlsHandshake
            | FailureKind::PoolTimeout => Outcome::Overload,
            _ => Outcome::Ignore,
        }
    }
}

/// When a call took its permit, as microseconds since its limiter's epoch (modulo 2^32,
/// the lowest bit set), [`UNTIMED`](Self::UNTIMED) for a call whose latency is not measured
/// (see `Limiter::every`), or even: nothing to record (a fixed pool, an overflowing call, or
/// recorded already).
///
/// Half a word, so that a permit stays two words: the permit keeps it beside its tracker
/// slot in one `u64`, always written whole. A larger stamp of its own (an
/// `Option<Instant>`, written as its 4-byte niche alone for a fixed pool) made every pool's
/// calls stall on store forwarding when the permit was read back. The latency of a call
/// taking 2^32 µs (71 minutes) or longer wraps; the lowest bit costs at most 1 µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stamp(u32);

impl Stamp {
    pub(crate) const NONE: Stamp = Stamp(0);

    /// A call of an adaptive pool whose latency is not measured: only a failure of it is
    /// recorded (a success counts through the timed ones).
    pub(crate) const UNTIMED: Stamp = Stamp(1);

    /// For a pool that adapts its limit: now (one clock read) for one call in the
    /// limiter's `every`, drawn on this thread, else [`UNTIMED`](Self::UNTIMED). Nothing
    /// for a fixed pool.
    #[inline]
    pub(crate) fn start(limiter: Option<&Limiter>) -> Self {
        match limiter {
            None => Stamp::NONE,
            Some(limiter) if crate::internal::draw::one_in(limiter.every()) => Stamp::now(limiter),
            Some(_) => Stamp::UNTIMED,
        }
    }

    /// Now, for a timed call of `limiter`. Out of line: a busy pool times one call in
    /// up to 64, and the others' grant then needs no stack frame.
    #[cold]
    #[inline(never)]
    fn now(limiter: &Limiter) -> Self {
        // The first two microseconds of every 71 minutes would read as `UNTIMED`: they
        // count as the third.
        Stamp((micros(limiter.since(Instant::now())) | 1).max(3))
    }

    /// Whether it holds a time (stamps are odd: a permit's word keeps an even value in
    /// their place once recorded).
    #[inline]
    pub(crate) fn is_set(self) -> bool {
        self.0 & 1 == 1
    }

    /// Whether a call that ends with `outcome` is recorded: a timed one, or a failure.
    #[inline]
    pub(crate) fn records(self, outcome: Outcome) -> bool {
        self != Stamp::UNTIMED || outcome == Outcome::Overload
    }

    /// The stamp as the permit keeps it.
    #[inline]
    pub(crate) const fn bits(self) -> u32 {
        self.0
    }

    /// A stamp from [`bits`](Self::bits).
    #[inline]
    pub(crate) const fn from_bits(bits: u32) -> Self {
        Stamp(bits)
    }
}

/// A time since a limiter's epoch in microseconds, modulo 2^32 (a [`Stamp`]'s clock):
/// computed in 32 bits, without the 128-bit nanoseconds of a `Duration`.
#[inline]
fn micros(since: Duration) -> u32 {
    (since.as_secs() as u32)
        .wrapping_mul(1_000_000)
        .wrapping_add(since.subsec_micros())
}

/// What every pool's limiter of one layer shares: the settings, the sum of the limits and
/// its gauge.
pub(crate) struct Shared {
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    name: &'static str,
    config: AdaptiveLimit,
    maxsize: usize,
    window_nanos: u64,
    /// The sum of the limits of the pools alive.
    total: AtomicUsize,
    #[cfg(feature = "metrics")]
    gauge: metrics::Gauge,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Registers the gauge (once per layer).
    pub(crate) fn new(config: AdaptiveLimit, maxsize: usize, name: &'static str) -> Arc<Self> {
        #[cfg(feature = "metrics")]
        metrics::describe_gauge!(
            super::LIMIT,
            "Adaptive limits of the layer's pools, summed (between min_limit and maxsize each)"
        );
        Arc::new(Shared {
            name,
            config,
            maxsize,
            // Saturates: a window of 584 years or more never closes by time.
            window_nanos: u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX),
            total: AtomicUsize::new(0),
            #[cfg(feature = "metrics")]
            gauge: metrics::gauge!(super::LIMIT, "name" => name),
        })
    }

    /// The sum of the limits moved from `from` to `to` (a pool's limit changed, a pool was
    /// created (`from` 0) or dropped (`to` 0)).
    fn moved(&self, from: usize, to: usize) {
        if to > from {
            self.total.fetch_add(to - from, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(from - to, Ordering::Relaxed);
        }
        // Publish, and again if another pool moved the sum meanwhile: the last writer
        // publishes a sum it read after its own change.
        #[cfg(feature = "metrics")]
        loop {
            let total = self.total.load(Ordering::Relaxed);
            self.gauge.set(total as f64);
            if self.total.load(Ordering::Relaxed) == total {
                break;
            }
        }
    }
}

/// One pool's adaptive limit.
///
/// The pool's semaphore keeps `maxsize` permits; the limiter holds back (parks)
/// `maxsize - limit` of them. To lower the limit it parks free permits, and keeps permits
/// given back until enough are parked; to raise it, it gives parked permits back to the
/// semaphore (to the first waiter, if any). So the fast paths of the semaphore stay as they
/// are, and the permits a caller can hold never exceed the limit once it has settled, nor
/// `maxsize` ever.
pub(crate) struct Limiter {
    shared: Arc<Shared>,
    epoch: Instant,
    /// One call in this many, on average, has its latency measured (a clock read when it
    /// takes its permit and one when it ends, which cost about a fixed pool's whole call):
    /// between `sampling::MIN_EVERY` and `sampling::MAX_EVERY`, set by each window's close for the next one
    /// from the timed successes it counted (`sampling::next_every`), read relaxed by every
    /// call. Calls are drawn at random on each thread (`internal::draw`), so that a thread
    /// calling several pools in turn times each of them alike; a timed success stands for
    /// `every` successes, and only timed successes touch the window's atomics. Failures are
    /// all counted (see `record`). A new pool times one call in `MIN_EVERY` until its
    /// first window closes.
    every: AtomicU32,
    /// The limit in force (whole permits).
    limit: AtomicUsize,
    parked: AtomicUsize,
    /// The open window: successes and their latency sum (see `SUM_BITS`), failures, and
    /// when it opened (nanoseconds since `epoch`).
    samples: AtomicU64,
    failures: AtomicU64,
    opened: AtomicU64,
    /// The estimator's state, written only by the call that closes a window (it claims the
    /// window with a compare-and-swap on `opened`).
    estimate: AtomicU64,
    baseline: AtomicU64,
    warmup: AtomicU32,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("limit", &self.limit)
            .field("parked", &self.parked)
            .finish_non_exhaustive()
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.shared.moved(self.limit.load(Ordering::Relaxed), 0);
    }
}

impl Limiter {
    /// A pool's limiter, starting at `initial_limit`: its pool's semaphore must be created
    /// with `maxsize - parked()` permits.
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        let maxsize = shared.maxsize;
        let limit = shared.config.initial_limit.unwrap_or(maxsize).min(maxsize);
        shared.moved(0, limit);
        Limiter {
            shared: Arc::clone(shared),
            epoch: Instant::now(),
            every: AtomicU32::new(sampling::MIN_EVERY),
            limit: AtomicUsize::new(limit),
            parked: AtomicUsize::new(maxsize - limit),
            samples: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            estimate: AtomicU64::new((limit as f64).to_bits()),
            baseline: AtomicU64::new(0f64.to_bits()),
            warmup: AtomicU32::new(0),
        }
    }

    /// The limit in force.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Permits held back from the semaphore.
    pub(crate) fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// One call in this many is timed (see the field).
    #[inline]
    pub(crate) fn every(&self) -> u32 {
        self.every.load(Ordering::Relaxed)
    }

    /// `now` since the epoch (zero before it).
    #[inline]
    fn since(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    /// A permit is being given back: keeps it (returns `true`) if the limit wants more
    /// permits parked. Two loads when it does not.
    #[inline]
    pub(crate) fn park(&self) -> bool {
        let keep = self.shared.maxsize - self.limit.load(Ordering::SeqCst);
        let mut parked = self.parked.load(Ordering::SeqCst);
        while parked < keep {
            match self.parked.compare_exchange_weak(
                parked,
                parked + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => parked = actual,
            }
        }
        false
    }

    /// Parks or gives back permits until `maxsize - limit` are parked (or no free permit
    /// is left to park: permits given back later are kept, by `park`).
    fn rebalance(&self, semaphore: &Semaphore) {
        loop {
            let keep = self.shared.maxsize - self.limit.load(Ordering::SeqCst);
            let parked = self.parked.load(Ordering::SeqCst);
            if parked > keep {
                if self
                    .parked
                    .compare_exchange(parked, parked - 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    semaphore.release();
                }
            } else if parked < keep && semaphore.try_acquire() {
                if !self.park() {
                    semaphore.release();
                }
            } else {
                return;
            }
        }
    }

    /// Records the end of a call that took its permit at `stamp` (then cleared, so that a
    /// call is recorded once), and closes the window if it is due. `busy` counts the calls
    /// holding or waiting for a permit.
    #[inline]
    pub(crate) fn record(
        &self,
        stamp: &mut Stamp,
        outcome: Outcome,
        semaphore: &Semaphore,
        busy: impl FnOnce() -> usize,
    ) {
        let started = std::mem::take(stamp);
        if !started.is_set() {
            return;
        }
        match outcome {
            // Untimed successes are not recorded (see `Stamp::records`).
            Outcome::Success if started != Stamp::UNTIMED => {
                // Whole microseconds already: at least one, at most `MAX_SAMPLE_MICROS`.
                let since = self.since(Instant::now());
                let took = micros(since).wrapping_sub(started.0 & !1);
                let took = u64::from(took).clamp(1, MAX_SAMPLE_MICROS);
                let sample = ONE_SAMPLE + took;
                let count = self.samples.fetch_add(sample, Ordering::Relaxed) >> SUM_BITS;
                self.maybe_close(since, count >= FULL_WINDOW - 1, semaphore, busy);
            }
            Outcome::Overload => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.maybe_close(self.since(Instant::now()), false, semaphore, busy);
            }
            Outcome::Success | Outcome::Ignore => {}
        }
    }

    /// A call waited `pool_timeout` for a permit in vain: an overload sign.
    pub(crate) fn timed_out(&self, semaphore: &Semaphore, busy: impl FnOnce() -> usize) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.maybe_close(self.since(Instant::now()), false, semaphore, busy);
    }

    /// Closes the window if it is due (`since`: now, since the epoch) or `full`.
    #[inline]
    fn maybe_close(
        &self,
        since: Duration,
        full: bool,
        semaphore: &Semaphore,
        busy: impl FnOnce() -> usize,
    ) {
        // Saturates: 584 years.
        let now = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        let opened = self.opened.load(Ordering::Relaxed);
        if full || now.saturating_sub(opened) >= self.shared.window_nanos {
            self.close(opened, now, semaphore, busy);
        }
    }

    #[cold]
    fn close(&self, opened: u64, now: u64, semaphore: &Semaphore, busy: impl FnOnce() -> usize) {
        // Written only by the close of a window: the share this window's calls were drawn
        // at (but for calls drawn before the last close and recorded after it).
        let every = self.every();
        let samples = self.samples.load(Ordering::Relaxed);
        let calls =
            (samples >> SUM_BITS) * u64::from(every) + self.failures.load(Ordering::Relaxed);
        if calls < MIN_SAMPLES {
            return;
        }
        // One call closes the window; it alone writes the estimator's state.
        if self
            .opened
            .compare_exchange(opened, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let samples = self.samples.swap(0, Ordering::Relaxed);
        let failures = self.failures.swap(0, Ordering::Relaxed);
        let timed = samples >> SUM_BITS;
        let next_every = sampling::next_every(
            every,
            timed,
            now.saturating_sub(opened),
            self.shared.window_nanos,
        );
        if next_every != every {
            self.every.store(next_every, Ordering::Relaxed);
        }
        let window = Window {
            successes: timed * u64::from(every),
            mean_latency: if timed == 0 {
                0.0
            } else {
                (samples & SUM_MASK) as f64 / timed as f64
            },
            failures,
            busy: busy(),
        };
        let state = State {
            limit: f64::from_bits(self.estimate.load(Ordering::Relaxed)),
            baseline: f64::from_bits(self.baseline.load(Ordering::Relaxed)),
            warmup: self.warmup.load(Ordering::Relaxed),
        };
        let next = gradient::next(&self.shared.config, self.shared.maxsize, state, window);
        self.estimate.store(next.limit.to_bits(), Ordering::Relaxed);
        self.baseline
            .store(next.baseline.to_bits(), Ordering::Relaxed);
        self.warmup.store(next.warmup, Ordering::Relaxed);
        let limit = next.limit as usize;
        let before = self.limit.swap(limit, Ordering::SeqCst);
        if before != limit {
            self.shared.moved(before, limit);
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "tower_fortify::pool",
                name = self.shared.name,
                limit,
                before,
                baseline_ms = next.baseline / 1e3,
                latency_ms = window.mean_latency / 1e3,
                failures,
                "adaptive pool limit changed"
            );
        }
        // Every window, not only on a change: a permit parked against a limit that had
        // just risen is given back here.
        self.rebalance(semaphore);
    }
}

#[cfg(test)]
mod tests;
