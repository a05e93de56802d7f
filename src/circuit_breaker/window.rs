//! The sliding windows: the last N calls (a ring of bits) and the last T seconds (buckets).
//!
//! Both are lock-free and O(1) per call. Neither is written by every call from every thread:
//! the count ring receives successes in batches from per-thread lanes (see `state.rs`), and the
//! time window keeps one set of buckets per lane.

use crate::{
    internal::buckets::{Epochs, Ring},
    internal::padded::Padded,
    internal::sync::{AtomicI64, AtomicU64, Ordering},
};
use std::fmt;

/// What a window holds: its calls, and how many of them failed or were slow.
///
/// Read it from a [`CircuitBreakerHandle`](super::CircuitBreakerHandle). The rates are the
/// ones the breaker compares with its thresholds.
///
/// ```
/// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
///
/// let layer = GenericCircuitBreakerLayer::new();
/// let figures = layer.handle().figures();
/// assert_eq!(figures.calls(), 0);
/// assert_eq!(figures.failure_rate(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowFigures {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow_calls: u64,
}

impl WindowFigures {
    /// The calls in the window.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = CircuitBreakerLayer::builder().minimum_calls(4).build_generic().unwrap();
    /// let svc = layer.layer(tower::service_fn(|status: u16| async move {
    ///     Ok::<_, std::io::Error>(http::Response::builder().status(status).body(()).unwrap())
    /// }));
    /// for status in [200, 503, 200] {
    ///     let _ = svc.clone().oneshot(status).await;
    /// }
    /// let figures = layer.handle().figures();
    /// assert_eq!((figures.calls(), figures.failures(), figures.slow_calls()), (3, 1, 0));
    /// # }
    /// ```
    pub const fn calls(&self) -> u64 {
        self.calls
    }

    /// The calls in the window that failed.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
    ///
    /// assert_eq!(GenericCircuitBreakerLayer::new().handle().figures().failures(), 0);
    /// ```
    pub const fn failures(&self) -> u64 {
        self.failures
    }

    /// The calls in the window that were slower than the slow-call duration (failed or not).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::GenericCircuitBreakerLayer;
    ///
    /// assert_eq!(GenericCircuitBreakerLayer::new().handle().figures().slow_calls(), 0);
    /// ```
    pub const fn slow_calls(&self) -> u64 {
        self.slow_calls
    }

    /// `failures / calls`, or 0 for an empty window.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::WindowFigures;
    ///
    /// assert_eq!(WindowFigures::default().failure_rate(), 0.0);
    /// ```
    pub fn failure_rate(&self) -> f64 {
        rate(self.failures, self.calls)
    }

    /// `slow_calls / calls`, or 0 for an empty window.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::WindowFigures;
    ///
    /// assert_eq!(WindowFigures::default().slow_call_rate(), 0.0);
    /// ```
    pub fn slow_call_rate(&self) -> f64 {
        rate(self.slow_calls, self.calls)
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

// ===== count window =====

/// The last `size` calls: one bit per call for "failed", one for "slow", in a ring.
///
/// A call takes the next position (`head`), and its bits replace those of the call `size`
/// positions before it, which leaves the window. The counters of set bits are kept exact
/// from the results of the atomic read-modify-writes, so reading the figures is O(1).
pub(crate) struct CountRing {
    size: u64,
    counters: Padded<Counters>,
    fail_bits: Box<[AtomicU64]>,
    slow_bits: Box<[AtomicU64]>,
}

#[derive(Default)]
struct Counters {
    /// Calls ever pushed since the last reset.
    head: AtomicU64,
    /// Set bits in `fail_bits` / `slow_bits`. Signed: a reset racing with a push may briefly
    /// leave them below zero; readers clamp.
    failures: AtomicI64,
    slow: AtomicI64,
}

impl CountRing {
    pub(crate) fn new(size: u32) -> Self {
        let size = u64::from(size.max(1));
        let words = size.div_ceil(64) as usize;
        let zeros = || (0..words).map(|_| AtomicU64::new(0)).collect();
        CountRing {
            size,
            counters: Padded(Counters::default()),
            fail_bits: zeros(),
            slow_bits: zeros(),
        }
    }

    /// Pushes one call.
    pub(crate) fn push(&self, failed: bool, slow: bool) {
        let pos = self.counters.head.fetch_add(1, Ordering::AcqRel) % self.size;
        assign(&self.fail_bits, &self.counters.failures, pos, failed);
        assign(&self.slow_bits, &self.counters.slow, pos, slow);
    }

    /// Pushes `n` calls that succeeded and were not slow: takes `n` positions at once and
    /// clears their bits. A word whose bits are already clear is only read, so a healthy
    /// window is not written at all beyond `head`.
    pub(crate) fn push_successes(&self, n: u64) {
        if n == 0 {
            return;
        }
        // A full window of plain successes stays one after `n` more: each would replace a
        // success. So while healthy the shared head is only read, not written, and stays in
        // every thread's cache. (Failures keep their exact positions either way: one pushed
        // next is evicted `size` calls later wherever the head stands.)
        let c = &self.counters;
        if c.failures.load(Ordering::Acquire) == 0
            && c.slow.load(Ordering::Acquire) == 0
            && c.head.load(Ordering::Acquire) >= self.size
        {
            return;
        }
        let start = self.counters.head.fetch_add(n, Ordering::AcqRel) % self.size;
        let len = n.min(self.size);
        clear(
            &self.fail_bits,
            &self.counters.failures,
            start,
            len,
            self.size,
        );
        clear(&self.slow_bits, &self.counters.slow, start, len, self.size);
    }

    pub(crate) fn figures(&self) -> WindowFigures {
        let c = &self.counters;
        WindowFigures {
            calls: c.head.load(Ordering::Acquire).min(self.size),
            failures: clamp(c.failures.load(Ordering::Acquire)),
            slow_calls: clamp(c.slow.load(Ordering::Acquire)),
        }
    }

    pub(crate) fn reset(&self) {
        for word in self.fail_bits.iter().chain(self.slow_bits.iter()) {
            word.store(0, Ordering::Release);
        }
        self.counters.failures.store(0, Ordering::Release);
        self.counters.slow.store(0, Ordering::Release);
        self.counters.head.store(0, Ordering::Release);
    }
}

fn clamp(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Sets or clears bit `pos`, keeping `count` equal to the number of set bits.
fn assign(words: &[AtomicU64], count: &AtomicI64, pos: u64, value: bool) {
    let word = &words[(pos / 64) as usize];
    let mask = 1u64 << (pos % 64);
    if value {
        if word.fetch_or(mask, Ordering::AcqRel) & mask == 0 {
            count.fetch_add(1, Ordering::AcqRel);
        }
    } else if word.load(Ordering::Acquire) & mask != 0
        && word.fetch_and(!mask, Ordering::AcqRel) & mask != 0
    {
        count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Clears `len` bits from `start`, wrapping at `size`.
fn clear(words: &[AtomicU64], count: &AtomicI64, start: u64, len: u64, size: u64) {
    let first = len.min(size - start);
    clear_run(words, count, start, first);
    clear_run(words, count, 0, len - first);
}

fn clear_run(words: &[AtomicU64], count: &AtomicI64, mut pos: u64, mut len: u64) {
    while len > 0 {
        let bit = pos % 64;
        let take = len.min(64 - bit);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << bit
        };
        let word = &words[(pos / 64) as usize];
        if word.load(Ordering::Acquire) & mask != 0 {
            let cleared = (word.fetch_and(!mask, Ordering::AcqRel) & mask).count_ones();
            count.fetch_sub(i64::from(cleared), Ordering::AcqRel);
        }
        pos += take;
        len -= take;
    }
}

impl fmt::Debug for CountRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountRing")
            .field("size", &self.size)
            .field("figures", &self.figures())
            .finish()
    }
}

// ===== time window =====

/// The counts of a time window's bucket.
const CALLS: usize = 0;
const FAILURES: usize = 1;
const SLOW: usize = 2;

/// One lane's buckets. Each lane (a group of threads) has its own, so that no two threads
/// write the same counters; the figures add up all lanes.
pub(crate) type Buckets = Padded<Ring<3>>;

pub(crate) fn new_buckets() -> Box<Buckets> {
    Box::default()
}

/// The last `window` of time, in 10 buckets per lane: a call counts in the bucket of the time
/// it completed, and leaves the window with its bucket, between 0.9 and 1.0 `window` later.
///
/// Lanes are per thread group, so a bucket is rarely written by two threads at once; when it
/// is, a call that races with the reset at a bucket boundary may lose its count.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    epochs: Epochs,
}

impl TimeWindow {
    pub(crate) fn new(window_nanos: u64) -> Self {
        TimeWindow {
            epochs: Epochs::new(u128::from(window_nanos)),
        }
    }

    /// Counts one call at `now_nanos` in `buckets` (the caller's lane). A thread whose clock
    /// reading is older than the bucket's epoch counts in the newer one.
    pub(crate) fn record(&self, buckets: &Buckets, now_nanos: u64, failed: bool, slow: bool) {
        // Lost while another thread of the lane resets the bucket.
        let Some((bucket, _)) = buckets.claim(self.epochs.at(now_nanos)) else {
            return;
        };
        bucket.add_one(CALLS);
        if failed {
            bucket.add_one(FAILURES);
        }
        if slow {
            bucket.add_one(SLOW);
        }
    }

    /// Adds the counts of `buckets` that are in the window at `now_nanos` to `figures`.
    pub(crate) fn add_figures(
        &self,
        buckets: &Buckets,
        now_nanos: u64,
        figures: &mut WindowFigures,
    ) {
        for (bucket, _) in buckets.live(self.epochs.at(now_nanos)) {
            figures.calls += bucket.get(CALLS);
            figures.failures += bucket.get(FAILURES);
            figures.slow_calls += bucket.get(SLOW);
        }
    }

    pub(crate) fn reset(buckets: &Buckets) {
        buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::buckets::BUCKETS;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn count_ring_forgets_the_oldest_call() {
        let ring = CountRing::new(3);
        ring.push(true, false);
        ring.push(true, true);
        ring.push(false, false);
        assert_eq!(
            ring.figures(),
            WindowFigures {
                calls: 3,
                failures: 2,
                slow_calls: 1
            }
        );
        ring.push(false, false); // the first failure leaves
        assert_eq!(ring.figures().failures, 1);
        ring.push_successes(5); // more than the ring holds
        assert_eq!(
            ring.figures(),
            WindowFigures {
                calls: 3,
                failures: 0,
                slow_calls: 0
            }
        );
        ring.reset();
        assert_eq!(ring.figures(), WindowFigures::default());
    }

    #[test]
    fn batches_wrap_around_word_and_ring_boundaries() {
        for size in [1u32, 63, 64, 65, 100, 130] {
            let ring = CountRing::new(size);
            for _ in 0..size {
                ring.push(true, true);
            }
            assert_eq!(ring.figures().failures, u64::from(size));
            ring.push_successes(u64::from(size) - 1);
            assert_eq!(ring.figures().failures, 1, "size {size}");
            assert_eq!(ring.figures().slow_calls, 1, "size {size}");
            ring.push_successes(1);
            assert_eq!(ring.figures().failures, 0, "size {size}");
        }
    }

    #[test]
    fn time_window_buckets_age_out() {
        let window = TimeWindow::new(10_000);
        let buckets = new_buckets();
        window.record(&buckets, 0, true, false);
        window.record(&buckets, 999, false, true);
        window.record(&buckets, 1_000, false, false);
        let figures = |now| {
            let mut f = WindowFigures::default();
            window.add_figures(&buckets, now, &mut f);
            f
        };
        assert_eq!(figures(1_000).calls, 3);
        assert_eq!(figures(9_999).calls, 3);
        // At 10 000 the bucket of epoch 0 leaves: the window is epochs 1..=10.
        assert_eq!(
            figures(10_000),
            WindowFigures {
                calls: 1,
                failures: 0,
                slow_calls: 0
            }
        );
        assert_eq!(figures(11_000).calls, 0);
        // A bucket is reused for a later epoch from zero.
        window.record(&buckets, 20_500, true, false);
        assert_eq!(figures(20_500).failures, 1);
        assert_eq!(figures(20_500).calls, 1);
    }

    // ===== property tests against a model =====

    #[derive(Debug, Clone, Copy)]
    enum Op {
        /// One call: failed, slow.
        Call(bool, bool),
        /// Successes in one batch, as a lane flushes them.
        Successes(u8),
        /// Time passes (time window only), in nanoseconds.
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), any::<bool>()).prop_map(|(f, s)| Op::Call(f, s)),
            1 => (1u8..=40).prop_map(Op::Successes),
            2 => (0u16..=3_000).prop_map(Op::Advance),
        ]
    }

    fn figures_of<'a>(calls: impl Iterator<Item = &'a (bool, bool)>) -> WindowFigures {
        let mut f = WindowFigures::default();
        for &(failed, slow) in calls {
            f.calls += 1;
            f.failures += u64::from(failed);
            f.slow_calls += u64::from(slow);
        }
        f
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The count ring holds exactly the last `size` calls of a `VecDeque` model.
        #[test]
        fn count_ring_matches_a_vecdeque(
            size in 1u32..=200,
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let ring = CountRing::new(size);
            let mut model: VecDeque<(bool, bool)> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Call(failed, slow) => {
                        ring.push(failed, slow);
                        model.push_back((failed, slow));
                    }
                    Op::Successes(n) => {
                        ring.push_successes(u64::from(n));
                        model.extend(std::iter::repeat_n((false, false), usize::from(n)));
                    }
                    Op::Advance(_) => {}
                }
                while model.len() > size as usize {
                    model.pop_front();
                }
                prop_assert_eq!(ring.figures(), figures_of(model.iter()));
            }
        }

        /// The time window holds exactly the calls of the model whose bucket is one of the
        /// last 10 at the current time, across lanes.
        #[test]
        fn time_window_matches_a_vecdeque(
            window_nanos in 10u64..=50_000,
            ops in proptest::collection::vec((op(), 0usize..3), 0..400),
        ) {
            let window = TimeWindow::new(window_nanos);
            let bucket = (window_nanos / 10).max(1);
            let lanes: Vec<_> = (0..3).map(|_| new_buckets()).collect();
            let mut now = 0u64;
            // (time, failed, slow)
            let mut model: VecDeque<(u64, bool, bool)> = VecDeque::new();
            for (op, lane) in ops {
                match op {
                    Op::Call(failed, slow) => {
                        window.record(&lanes[lane], now, failed, slow);
                        model.push_back((now, failed, slow));
                    }
                    Op::Successes(n) => {
                        for _ in 0..n {
                            window.record(&lanes[lane], now, false, false);
                            model.push_back((now, false, false));
                        }
                    }
                    Op::Advance(ns) => now += u64::from(ns),
                }
                let epoch = now / bucket;
                while model.front().is_some_and(|&(t, _, _)| epoch - t / bucket >= BUCKETS as u64) {
                    model.pop_front();
                }
                let mut figures = WindowFigures::default();
                for lane in &lanes {
                    window.add_figures(lane, now, &mut figures);
                }
                let calls: Vec<_> = model.iter().map(|&(_, f, s)| (f, s)).collect();
                prop_assert_eq!(figures, figures_of(calls.iter()));
            }
        }
    }
}
