//! The latency tracker: per host, a small rotating histogram of attempt latencies and the
//! hedge delay computed from it, in a fixed table of slots. Lock-free: a call finds its
//! host's slot with a few atomic loads and records its latency with two atomic additions.
//!
//! # The histogram
//!
//! Latencies are counted in microseconds, in log-linear buckets: exact below 16 µs, then
//! 8 buckets per power of two (each 12.5% of its lower bound wide), up to 2^26 µs (67 s),
//! where every longer latency shares the top bucket. A percentile is read as the largest
//! latency its bucket holds: never below the true value, at most one eighth above it.
//!
//! Each slot keeps two windows of [`WINDOW`] samples: one filling, one full. When the
//! filling one is full, the call that filled it clears the older one, which is filled
//! next. The delay is computed over both windows (the last `WINDOW` to `2 * WINDOW`
//! samples, fewer at first) by the call that brings the host to `min_samples`, and then
//! by every `WINDOW / 4`-th: a few hundred atomic loads, once per 128 calls. Rotation
//! counts samples, not time: no clock is read to rotate, and a host's delay follows its
//! last thousand answers however slowly they come.
//!
//! # Accuracy
//!
//! Approximate at the scale of a few samples, as the retry budget is: a sample recorded
//! while another thread rotates the windows may be lost. A host that finds no slot (its
//! few probed slots all taken by others, and the one it would evict claimed by another
//! host at the same moment) is not tracked for that call.

use crate::internal::{
    padded::Padded,
    sync::{AtomicU64, Ordering},
};
use std::{
    sync::atomic::{AtomicU16, AtomicU32},
    time::Duration,
};

/// Samples per window.
pub(crate) const WINDOW: u64 = 512;
/// Samples between two computations of the delay (and at `min_samples`).
const UPDATE: u64 = WINDOW / 4;
/// Sub-buckets per power of two: `2^SUB_BITS`.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Latencies from `2^MAX_EXP` µs on share the top bucket.
const MAX_EXP: u32 = 26;
const BUCKETS: usize = SUB + (MAX_EXP - SUB_BITS) as usize * SUB;
/// Slots probed for a host before one is evicted.
const PROBES: usize = 8;
/// `Slot::delay` before the host has `min_samples` samples.
const NO_DELAY: u64 = u64::MAX;

/// The bucket of a latency of `micros`.
#[inline]
pub(crate) fn bucket_of(micros: u64) -> usize {
    if micros < SUB as u64 {
        return micros as usize;
    }
    let micros = micros.min((1 << MAX_EXP) - 1);
    let exp = 63 - micros.leading_zeros();
    let sub = (micros >> (exp - SUB_BITS)) as usize & (SUB - 1);
    (exp - SUB_BITS + 1) as usize * SUB + sub
}

/// The largest latency (µs) bucket `bucket` holds.
pub(crate) fn bucket_max(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let exp = (bucket / SUB) as u32 + SUB_BITS - 1;
    let sub = (bucket % SUB) as u64;
    ((SUB as u64 + sub + 1) << (exp - SUB_BITS)) - 1
}

/// The tag a slot holds for the host whose hash is `hash` (never 0, a free slot's).
#[inline]
pub(crate) fn tag(hash: u64) -> u64 {
    hash | 1
}

/// The settings the delay is computed with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DelayRule {
    /// From 1 to 100 (exclusive).
    pub(crate) percentile: f64,
    pub(crate) min_delay: Duration,
    /// From 1 to `2 * WINDOW`.
    pub(crate) min_samples: u32,
}

/// One host's state: first what every call reads and few write (its host, its delay, its
/// hedges in flight), then, on lines of their own, what every call writes (the samples),
/// so that one thread's samples do not evict the line other threads' calls read.
struct Slot {
    /// The host's hash (never 0), or 0 for a free slot.
    tag: AtomicU64,
    /// The table's rotation count when the slot was claimed or last rotated: the one with
    /// the oldest is evicted first.
    stamp: AtomicU64,
    /// The hedge delay in nanoseconds, or `NO_DELAY`.
    delay: AtomicU64,
    /// Hedges in flight. Not reset when the slot changes hands: the hedges of an evicted
    /// host still end, and count against the new one until they do.
    in_flight: AtomicU32,
    samples: Padded<Samples>,
}

/// A slot's samples.
struct Samples {
    /// Samples recorded since the slot was claimed.
    recorded: AtomicU64,
    /// Two windows of counts: at most `WINDOW` samples each between clears (and a few
    /// racing ones), far below `u16::MAX`.
    counts: [[AtomicU16; BUCKETS]; 2],
}

impl Slot {
    fn new() -> Self {
        Slot {
            tag: AtomicU64::new(0),
            stamp: AtomicU64::new(0),
            delay: AtomicU64::new(NO_DELAY),
            in_flight: AtomicU32::new(0),
            samples: Padded(Samples {
                recorded: AtomicU64::new(0),
                counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU16::new(0))),
            }),
        }
    }

    /// Forgets the previous host's latencies.
    fn reset(&self, stamp: u64) {
        self.stamp.store(stamp, Ordering::Relaxed);
        self.samples.recorded.store(0, Ordering::Relaxed);
        self.delay.store(NO_DELAY, Ordering::Relaxed);
        for window in &self.samples.counts {
            clear(window);
        }
    }
}

fn clear(window: &[AtomicU16; BUCKETS]) {
    for count in window {
        count.store(0, Ordering::Relaxed);
    }
}

/// The slots of one layer: one per host (`max_keys` of them, a power of two), or one for
/// every request.
pub(crate) struct Tracker {
    slots: Box<[Padded<Slot>]>,
    /// Rotations and claims so far: the stamp of a slot.
    clock: AtomicU64,
    rule: DelayRule,
}

impl Tracker {
    /// A table of at least `slots` slots (rounded up to a power of two).
    pub(crate) fn new(slots: usize, rule: DelayRule) -> Self {
        let slots = slots.max(1).next_power_of_two();
        Tracker {
            slots: (0..slots).map(|_| Padded(Slot::new())).collect(),
            clock: AtomicU64::new(0),
            rule,
        }
    }

    /// The slot of the host whose hash is `hash`, claimed for it if it had none; `None`
    /// when the slot to evict was claimed by another host at the same moment.
    #[inline]
    pub(crate) fn slot_of(&self, hash: u64) -> Option<usize> {
        let tag = tag(hash);
        let mask = self.slots.len() - 1;
        let start = (hash >> 32) as usize;
        let probes = PROBES.min(self.slots.len());
        for i in 0..probes {
            let index = start.wrapping_add(i) & mask;
            let slot = &self.slots[index];
            match slot.tag.load(Ordering::Acquire) {
                t if t == tag => return Some(index),
                0 => match slot
                    .tag
                    .compare_exchange(0, tag, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        slot.reset(self.clock.fetch_add(1, Ordering::Relaxed));
                        return Some(index);
                    }
                    Err(t) if t == tag => return Some(index),
                    Err(_) => {}
                },
                _ => {}
            }
        }
        self.evict(start, probes, tag)
    }

    /// Whether `slot` holds the host whose [`tag`] is `tag` (a slot found before, checked
    /// again: it may have been given to another host since).
    #[inline]
    pub(crate) fn holds(&self, slot: usize, tag: u64) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|s| s.tag.load(Ordering::Acquire) == tag)
    }

    /// Gives the probed slot with the oldest stamp to the host `tag`.
    #[cold]
    fn evict(&self, start: usize, probes: usize, tag: u64) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let index = (0..probes)
            .map(|i| start.wrapping_add(i) & mask)
            .min_by_key(|&index| self.slots[index].stamp.load(Ordering::Relaxed))?;
        let slot = &self.slots[index];
        let old = slot.tag.load(Ordering::Acquire);
        if old == tag {
            return Some(index);
        }
        slot.tag
            .compare_exchange(old, tag, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        slot.reset(self.clock.fetch_add(1, Ordering::Relaxed));
        Some(index)
    }

    /// The hedge delay of the host in `slot`, once it has `min_samples` samples.
    #[inline]
    pub(crate) fn delay(&self, slot: usize) -> Option<Duration> {
        match self.slots[slot].delay.load(Ordering::Relaxed) {
            NO_DELAY => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Records an attempt's latency for the host in `slot`, counting `weight` times (the
    /// latency of one timed call standing for the `weight` calls of its turn, see
    /// `future::TIME_EVERY`; from 1 to `UPDATE`).
    #[inline]
    pub(crate) fn record(&self, slot: usize, latency: Duration, weight: u16) {
        let slot_ref = &self.slots[slot];
        let samples = &slot_ref.samples;
        let step = u64::from(weight);
        let before = samples.recorded.fetch_add(step, Ordering::Relaxed);
        let n = before + step;
        // The window of the sample's first count (a weighted sample that crosses into the
        // next window fills this one a little over `WINDOW`).
        let window = ((before / WINDOW) % 2) as usize;
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        samples.counts[window][bucket_of(micros)].fetch_add(weight, Ordering::Relaxed);
        let full = before / WINDOW != n / WINDOW;
        let min = u64::from(self.rule.min_samples);
        // At `min_samples`, then every `UPDATE` samples (a weighted sample may step over
        // either count: crossing it is reaching it).
        if n >= min && (before < min || before / UPDATE != n / UPDATE) {
            self.update(slot_ref);
        }
        if full {
            // The older window is filled next.
            clear(&samples.counts[1 - window]);
            slot_ref.stamp.store(
                self.clock.fetch_add(1, Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
    }

    #[cold]
    fn update(&self, slot: &Slot) {
        let nanos = percentile(&slot.samples.counts, self.rule.percentile)
            .map(|micros| Duration::from_micros(micros).max(self.rule.min_delay))
            .map_or(NO_DELAY, |delay| {
                u64::try_from(delay.as_nanos()).map_or(NO_DELAY - 1, |n| n.min(NO_DELAY - 1))
            });
        slot.delay.store(nanos, Ordering::Relaxed);
    }

    /// Takes one of the `max` hedges the host in `slot` may have in flight.
    pub(crate) fn try_acquire(&self, slot: usize, max: u32) -> bool {
        self.slots[slot]
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a hedge taken with [`try_acquire`](Self::try_acquire).
    pub(crate) fn release(&self, slot: usize) {
        self.slots[slot].in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Hedges in flight for the host in `slot`.
    #[inline]
    pub(crate) fn in_flight(&self, slot: usize) -> u32 {
        self.slots[slot].in_flight.load(Ordering::Relaxed)
    }

    /// The slot of `hash` if the host is tracked now (for reading, never claims one).
    pub(crate) fn find(&self, hash: u64) -> Option<usize> {
        let tag = tag(hash);
        let mask = self.slots.len() - 1;
        let start = (hash >> 32) as usize;
        (0..PROBES.min(self.slots.len()))
            .map(|i| start.wrapping_add(i) & mask)
            .find(|&index| self.slots[index].tag.load(Ordering::Acquire) == tag)
    }
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("slots", &self.slots.len())
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// The `percentile` of the latencies counted in `windows` (µs, the largest value of its
/// bucket), or `None` when they hold none.
///
/// The counts are read once (a snapshot: records racing with it change neither the total
/// nor the ranks it sees), and the percentile's bucket is looked for from the top: a tail
/// percentile has few samples above it, so few buckets are summed a second time.
fn percentile(windows: &[[AtomicU16; BUCKETS]; 2], percentile: f64) -> Option<u64> {
    let mut counts = [0_u32; BUCKETS];
    let mut total = 0_u64;
    for (bucket, count) in counts.iter_mut().enumerate() {
        *count = windows
            .iter()
            .map(|w| u32::from(w[bucket].load(Ordering::Relaxed)))
            .sum();
        total += u64::from(*count);
    }
    if total == 0 {
        return None;
    }
    // The rank of the sample at the percentile: at least the first. Its bucket is the
    // lowest whose samples and those below it number `rank` or more, that is, the lowest
    // with at most `total - rank` samples above it.
    let rank = ((total as f64 * percentile / 100.0).ceil() as u64).clamp(1, total);
    let mut above = 0_u64;
    let mut found = BUCKETS - 1;
    for (bucket, &count) in counts.iter().enumerate().rev() {
        if above > total - rank {
            break;
        }
        found = bucket;
        above += u64::from(count);
    }
    Some(bucket_max(found))
}

#[cfg(all(test, fortify_loom))]
mod loom {
    //! Two threads claiming one free slot at once (see `internal::sync` for how to run it).

    use super::*;

    /// Two hosts whose probes start at slot 5 (the same high half), or one host twice,
    /// looked up by two threads at once: each host ends up with one slot of its own,
    /// whichever thread's claim of the free slot wins.
    fn claims(first: u64, second: u64) {
        ::loom::model(move || {
            let tracker = std::sync::Arc::new(Tracker::new(8, super::tests::rule(50.0, 1)));
            let other = {
                let tracker = std::sync::Arc::clone(&tracker);
                ::loom::thread::spawn(move || tracker.slot_of(second))
            };
            let mine = tracker.slot_of(first).expect("a free slot");
            let theirs = other.join().unwrap().expect("a free slot");
            if first == second {
                assert_eq!(mine, theirs, "one host in two slots");
            } else {
                assert_ne!(mine, theirs, "two hosts in one slot");
            }
            assert!(tracker.holds(mine, tag(first)) && tracker.holds(theirs, tag(second)));
        });
    }

    #[test]
    fn loom_one_host_claimed_twice_at_once_has_one_slot() {
        claims(5 << 32 | 0xA0, 5 << 32 | 0xA0);
    }

    #[test]
    fn loom_two_hosts_claiming_one_slot_at_once_each_have_their_own() {
        claims(5 << 32 | 0xA0, 5 << 32 | 0xB0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn rule(percentile: f64, min_samples: u32) -> DelayRule {
        DelayRule {
            percentile,
            min_delay: Duration::ZERO,
            min_samples,
        }
    }

    #[test]
    fn buckets_cover_every_latency_in_order() {
        let mut last = 0;
        for micros in (0..5_000).chain([1 << 20, (1 << 26) - 1, 1 << 26, u64::MAX]) {
            let bucket = bucket_of(micros);
            assert!(bucket < BUCKETS, "{micros}");
            assert!(
                bucket >= last || micros > 5_000,
                "{micros}: buckets in order"
            );
            last = bucket;
            // The bucket's largest value is not below the latency (except past the top).
            if micros < 1 << 26 {
                assert!(bucket_max(bucket) >= micros, "{micros}");
                // And at most an eighth above the bucket's smallest value.
                assert!(bucket_max(bucket) <= micros + micros / 8 + 1, "{micros}");
            }
        }
        for bucket in 0..BUCKETS {
            assert_eq!(bucket_of(bucket_max(bucket)), bucket, "{bucket}");
            if bucket + 1 < BUCKETS {
                assert_eq!(bucket_of(bucket_max(bucket) + 1), bucket + 1, "{bucket}");
            }
        }
        assert_eq!(bucket_max(BUCKETS - 1), (1 << 26) - 1);
    }

    #[test]
    fn the_percentile_of_a_known_distribution() {
        // 1 ms to 100 ms, once each, shuffled: p95 is 95 ms, p50 50 ms, p99 99 ms.
        for (p, want_ms) in [(50.0, 50), (95.0, 95), (99.0, 99)] {
            let tracker = Tracker::new(1, rule(p, 100));
            for i in 0..100u64 {
                let ms = (i * 37) % 100 + 1;
                assert_eq!(tracker.delay(0), None, "fewer than min_samples");
                tracker.record(0, Duration::from_millis(ms), 1);
            }
            let delay = tracker.delay(0).expect("100 samples");
            let want = Duration::from_millis(want_ms);
            // Never below the true value, at most one eighth above.
            assert!(delay >= want, "p{p}: {delay:?}");
            assert!(delay <= want + want / 8, "p{p}: {delay:?}");
        }
    }

    proptest::proptest! {
        /// The percentile found from the top is the first bucket, from the bottom, whose
        /// samples and those below it reach the rank: for any counts and percentile.
        #[test]
        fn the_percentile_is_the_first_bucket_to_reach_its_rank(
            counts in proptest::collection::vec((0..BUCKETS, 1_u16..300, 0..2_usize), 1..40),
            p in 0.5_f64..99.9,
        ) {
            let windows: [[AtomicU16; BUCKETS]; 2] =
                std::array::from_fn(|_| std::array::from_fn(|_| AtomicU16::new(0)));
            for &(bucket, n, window) in &counts {
                windows[window][bucket].fetch_add(n, Ordering::Relaxed);
            }
            let total: u64 = counts.iter().map(|&(_, n, _)| u64::from(n)).sum();
            let rank = ((total as f64 * p / 100.0).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            let want = (0..BUCKETS)
                .find(|&b| {
                    seen += windows.iter().map(|w| u64::from(w[b].load(Ordering::Relaxed))).sum::<u64>();
                    seen >= rank
                })
                .unwrap();
            proptest::prop_assert_eq!(percentile(&windows, p), Some(bucket_max(want)));
        }
    }

    #[test]
    fn no_samples_no_percentile() {
        let windows: [[AtomicU16; BUCKETS]; 2] =
            std::array::from_fn(|_| std::array::from_fn(|_| AtomicU16::new(0)));
        assert_eq!(percentile(&windows, 95.0), None);
    }

    #[test]
    fn the_delay_has_a_floor() {
        let tracker = Tracker::new(
            1,
            DelayRule {
                percentile: 95.0,
                min_delay: Duration::from_millis(10),
                min_samples: 3,
            },
        );
        for _ in 0..3 {
            tracker.record(0, Duration::from_micros(200), 1);
        }
        assert_eq!(tracker.delay(0), Some(Duration::from_millis(10)));
    }

    #[test]
    fn old_windows_are_forgotten() {
        let tracker = Tracker::new(1, rule(75.0, 10));
        for _ in 0..WINDOW {
            tracker.record(0, Duration::from_millis(100), 1);
        }
        let slow = tracker.delay(0).unwrap();
        assert!(slow >= Duration::from_millis(100));
        // One window of fast answers: half the samples are fast, p75 still slow.
        for _ in 0..WINDOW {
            tracker.record(0, Duration::from_millis(1), 1);
        }
        assert_eq!(tracker.delay(0), Some(slow), "both windows count");
        // A second: the slow window is gone.
        for _ in 0..WINDOW {
            tracker.record(0, Duration::from_millis(1), 1);
        }
        let fast = tracker.delay(0).unwrap();
        assert!(fast < Duration::from_millis(2), "{fast:?}");
        // And stays gone at the next update, with the next window begun.
        for _ in 0..UPDATE {
            tracker.record(0, Duration::from_millis(1), 1);
        }
        assert_eq!(tracker.delay(0), Some(fast));
    }

    #[test]
    fn hosts_have_slots_of_their_own_and_the_oldest_is_evicted() {
        let tracker = Tracker::new(8, rule(50.0, 1));
        let a = tracker.slot_of(0xAAAA_0000_0000).unwrap();
        let b = tracker.slot_of(0xBBBB_0000_0000).unwrap();
        assert_ne!(a, b);
        assert_eq!(tracker.slot_of(0xAAAA_0000_0000), Some(a));
        tracker.record(a, Duration::from_millis(5), 1);
        assert!(tracker.delay(a).is_some());
        assert_eq!(tracker.delay(b), None);
        // Fill the table: the next host evicts the slot claimed first (a's).
        for host in 0..6u64 {
            tracker.slot_of((host + 1) << 40).unwrap();
        }
        let c = tracker.slot_of(0xCCCC_0000_0000).unwrap();
        assert_eq!(c, a, "the oldest slot");
        // A slot remembered for a (the threads' `host_cache`) no longer holds it.
        assert!(!tracker.holds(a, tag(0xAAAA_0000_0000)));
        assert!(tracker.holds(c, tag(0xCCCC_0000_0000)));
        assert!(tracker.holds(b, tag(0xBBBB_0000_0000)));
        assert_eq!(tracker.delay(c), None, "a's latencies are not c's");
        assert_eq!(tracker.find(0xAAAA_0000_0000), None);
        assert_eq!(tracker.find(0xCCCC_0000_0000), Some(c));
        // Nor are a's counts: c's median is its own one sample's.
        tracker.record(c, Duration::from_millis(50), 1);
        assert!(tracker.delay(c) >= Some(Duration::from_millis(50)));
    }

    #[test]
    fn a_tracker_debugs_as_its_size_and_rule() {
        let text = format!("{:?}", Tracker::new(5, rule(50.0, 1)));
        assert!(
            text.starts_with("Tracker { slots: 8, rule: DelayRule { percentile: 50.0,"),
            "{text}"
        );
    }

    #[test]
    fn hosts_probing_from_one_slot_each_find_their_own() {
        // The same high half: both start at slot 5; the second takes the next free one.
        let tracker = Tracker::new(8, rule(50.0, 1));
        let (a, b) = (5 << 32 | 0xA0, 5 << 32 | 0xB0);
        assert_eq!(tracker.slot_of(a), Some(5));
        assert_eq!(tracker.slot_of(b), Some(6));
        assert_eq!((tracker.slot_of(a), tracker.slot_of(b)), (Some(5), Some(6)));
        assert!(tracker.holds(5, tag(a)) && tracker.holds(6, tag(b)));
    }

    #[test]
    fn hedges_in_flight_are_bounded() {
        let tracker = Tracker::new(1, rule(50.0, 1));
        assert!(tracker.try_acquire(0, 2));
        assert!(tracker.try_acquire(0, 2));
        assert!(!tracker.try_acquire(0, 2));
        assert_eq!(tracker.in_flight(0), 2);
        tracker.release(0);
        assert!(tracker.try_acquire(0, 2));
    }

    #[test]
    fn weighted_samples_count_as_that_many_answers() {
        // `min_samples` 5, reached by a sample of weight 2 stepping from 4 to 6.
        let tracker = Tracker::new(1, rule(50.0, 5));
        tracker.record(0, Duration::from_millis(1), 2);
        tracker.record(0, Duration::from_millis(1), 2);
        assert_eq!(tracker.delay(0), None, "4 of 5");
        tracker.record(0, Duration::from_millis(8), 2);
        let first = tracker.delay(0).expect("6 counts: past min_samples");
        // The median of 1, 1, 1, 1, 8, 8 (ms) is 1 ms.
        assert!(first < Duration::from_millis(2), "{first:?}");
        // Every `UPDATE` counts the delay is computed again, a weighted sample stepping
        // over the count: 128 samples of 8 ms by twos (6 -> 262) cross 128 and 256.
        for _ in 0..128 {
            tracker.record(0, Duration::from_millis(8), 2);
        }
        let later = tracker.delay(0).unwrap();
        assert!(later >= Duration::from_millis(8), "{later:?}");
        // Windows rotate every `WINDOW` counts: 1024 counts more of 1 ms, by twos, fill the
        // second window, then the first again once cleared of its 8 ms ones: only 1 ms left.
        for _ in 0..WINDOW {
            tracker.record(0, Duration::from_millis(1), 2);
        }
        let fast = tracker.delay(0).unwrap();
        assert!(fast < Duration::from_millis(2), "{fast:?}");
    }

    #[test]
    fn a_latency_too_long_for_the_buckets_saturates() {
        let tracker = Tracker::new(1, rule(50.0, 1));
        tracker.record(0, Duration::MAX, 1);
        assert_eq!(tracker.delay(0), Some(Duration::from_micros((1 << 26) - 1)));
        // A floor too long for the nanoseconds, or as long as the longest, saturates: a
        // delay, never reached (`u64::MAX` is the value of "no delay").
        for min_delay in [Duration::MAX, Duration::from_nanos(u64::MAX)] {
            let floor = DelayRule {
                min_delay,
                ..rule(50.0, 1)
            };
            let tracker = Tracker::new(1, floor);
            tracker.record(0, Duration::from_millis(1), 1);
            assert_eq!(tracker.delay(0), Some(Duration::from_nanos(u64::MAX - 1)));
        }
    }

    #[test]
    fn the_delay_moves_at_min_samples_then_every_update_samples() {
        let tracker = Tracker::new(1, rule(95.0, 3));
        for _ in 0..3 {
            tracker.record(0, Duration::from_millis(1), 1);
        }
        let fast = tracker.delay(0).unwrap();
        // A slow sample moves p95, but not the delay until `UPDATE` samples are in.
        tracker.record(0, Duration::from_millis(100), 1);
        assert_eq!(tracker.delay(0), Some(fast));
        for _ in 4..UPDATE {
            tracker.record(0, Duration::from_millis(100), 1);
        }
        assert!(tracker.delay(0) >= Some(Duration::from_millis(100)));
    }
}
