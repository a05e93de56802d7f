//! A sliding window of time in buckets, lock-free: the retry budget's window and the
//! circuit breaker's time window.
//!
//! Time is cut into epochs of a tenth of the window each; the counts of epoch `e` are in
//! bucket `e % BUCKETS`, which is tagged with the epoch it counts for. A bucket still tagged
//! with an older epoch is reset by the first thread that needs it: a compare-and-swap marks
//! the tag `RESETTING`, the counts are zeroed, and only then the tag names the new epoch, so
//! no count of the new epoch is wiped by the reset and no call ever waits for another. A
//! call that finds the bucket being reset gets no bucket: the budget then refuses the
//! retry (it never overspends), a deposit or a breaker's count is lost (both users document
//! that inaccuracy). Readers skip the buckets whose tag is outside the window.

use super::sync::{AtomicU64, Ordering};
use std::num::NonZeroU64;

/// The number of buckets a window is counted in: it slides in steps of a tenth.
pub(crate) const BUCKETS: usize = 10;

/// The tag of a bucket whose counts are being zeroed for a new epoch.
const RESETTING: u64 = u64::MAX;

/// Which epoch a time falls in.
#[derive(Debug)]
pub(crate) struct Epochs {
    bucket_nanos: NonZeroU64,
    /// The epoch last computed: most calls fall in it, and then need no division.
    hint: AtomicU64,
}

impl Epochs {
    /// Epochs of a tenth of `window_nanos` each (at least a nanosecond).
    pub(crate) fn new(window_nanos: u128) -> Self {
        let bucket_nanos = u64::try_from(window_nanos / BUCKETS as u128).unwrap_or(u64::MAX);
        Epochs {
            bucket_nanos: NonZeroU64::new(bucket_nanos).unwrap_or(NonZeroU64::MIN),
            hint: AtomicU64::new(0),
        }
    }

    /// The epoch (the number of whole buckets since the start) of `nanos` since the start.
    #[inline]
    pub(crate) fn at(&self, nanos: u64) -> u64 {
        let bucket = self.bucket_nanos.get();
        // `hint * bucket` does not overflow: the hint is some `nanos / bucket`.
        let hint = self.hint.load(Ordering::Relaxed);
        if nanos
            .checked_sub(hint * bucket)
            .is_some_and(|into| into < bucket)
        {
            return hint;
        }
        let epoch = nanos / bucket;
        self.hint.store(epoch, Ordering::Relaxed);
        epoch
    }
}

/// The `K` counts of one epoch.
#[derive(Debug)]
pub(crate) struct Bucket<const K: usize> {
    /// The epoch the counts belong to.
    epoch: AtomicU64,
    counts: [AtomicU64; K],
}

impl<const K: usize> Bucket<K> {
    /// Count `i`.
    #[cfg(feature = "retry")]
    #[inline]
    pub(crate) fn count(&self, i: usize) -> &AtomicU64 {
        &self.counts[i]
    }

    /// Count `i`'s value.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.counts[i].load(Ordering::Acquire)
    }

    /// Adds one to count `i`.
    #[inline]
    pub(crate) fn add_one(&self, i: usize) {
        // Wraps only after 2^64 counts within one bucket: unreachable.
        self.counts[i].fetch_add(1, Ordering::AcqRel);
    }

    /// Zeroes the counts (not the epoch).
    fn clear(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Release);
        }
    }
}

/// The buckets of one window, each with `K` counts.
#[derive(Debug)]
pub(crate) struct Ring<const K: usize> {
    buckets: [Bucket<K>; BUCKETS],
}

impl<const K: usize> Default for Ring<K> {
    fn default() -> Self {
        Ring {
            buckets: std::array::from_fn(|_| Bucket {
                epoch: AtomicU64::new(0),
                counts: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        }
    }
}

impl<const K: usize> Ring<K> {
    /// Makes `epoch`'s bucket count for `epoch`, resetting it when it still holds the counts
    /// of an older epoch. Returns the bucket and the epoch it counts for: a later one than
    /// `epoch` when a thread with a later clock reading got there first, and then the caller
    /// counts at that epoch. `None` while another thread resets the bucket.
    #[inline]
    pub(crate) fn claim(&self, epoch: u64) -> Option<(&Bucket<K>, u64)> {
        let bucket = &self.buckets[index(epoch)];
        let mut tag = bucket.epoch.load(Ordering::Acquire);
        while tag < epoch {
            match bucket.epoch.compare_exchange_weak(
                tag,
                RESETTING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // Zeroed before any thread can see the new tag (the store below
                    // releases these stores to the tag's acquiring loads).
                    bucket.clear();
                    bucket.epoch.store(epoch, Ordering::Release);
                    return Some((bucket, epoch));
                }
                Err(actual) => tag = actual,
            }
        }
        (tag != RESETTING).then_some((bucket, tag))
    }

    /// The buckets in the window that ends with `epoch`, each with the epoch it counts for
    /// (`epoch` itself for the current one). Stale buckets count for nothing; they are reset
    /// when their epoch comes.
    pub(crate) fn live(&self, epoch: u64) -> impl Iterator<Item = (&Bucket<K>, u64)> {
        self.buckets.iter().filter_map(move |bucket| {
            let tag = bucket.epoch.load(Ordering::Acquire);
            (tag <= epoch && epoch - tag < BUCKETS as u64).then_some((bucket, tag))
        })
    }

    /// Zeroes every bucket's counts.
    #[cfg(any(test, feature = "circuit-breaker"))]
    pub(crate) fn clear(&self) {
        for bucket in &self.buckets {
            bucket.clear();
        }
    }
}

fn index(epoch: u64) -> usize {
    // The remainder is below BUCKETS, so the cast is lossless.
    (epoch % BUCKETS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn totals(ring: &Ring<2>, epoch: u64) -> [u64; 2] {
        ring.live(epoch).fold([0, 0], |[a, b], (bucket, _)| {
            [a + bucket.get(0), b + bucket.get(1)]
        })
    }

    #[test]
    fn counts_leave_the_window_a_bucket_at_a_time() {
        let ring = Ring::<2>::default();
        for epoch in [0, 0, 3, 9] {
            let (bucket, tag) = ring.claim(epoch).unwrap();
            assert_eq!(tag, epoch);
            bucket.add_one(0);
        }
        ring.claim(9).unwrap().0.add_one(1);
        assert_eq!(totals(&ring, 9), [4, 1]);
        // Epoch 10 reuses epoch 0's bucket: its two counts leave, and only then.
        assert_eq!(totals(&ring, 10), [2, 1]);
        ring.claim(10).unwrap().0.add_one(0);
        assert_eq!(totals(&ring, 10), [3, 1]);
        assert_eq!(totals(&ring, 13), [2, 1]);
        assert_eq!(totals(&ring, 19), [1, 0]);
        assert_eq!(totals(&ring, 20), [0, 0]);
    }

    #[test]
    fn a_late_reading_counts_in_the_newer_epoch() {
        let ring = Ring::<2>::default();
        ring.claim(12).unwrap().0.add_one(0);
        // Epoch 2 shares the bucket of epoch 12, which a later reading already claimed.
        let (bucket, tag) = ring.claim(2).unwrap();
        assert_eq!(tag, 12);
        bucket.add_one(0);
        assert_eq!(totals(&ring, 12), [2, 0]);
    }

    #[test]
    fn clear_zeroes_every_count() {
        let ring = Ring::<2>::default();
        ring.claim(1).unwrap().0.add_one(0);
        ring.claim(2).unwrap().0.add_one(1);
        ring.clear();
        assert_eq!(totals(&ring, 2), [0, 0]);
    }

    proptest! {
        /// The hint never changes the answer: any sequence of readings gets the epochs a
        /// division gives.
        #[test]
        fn epochs_agree_with_a_division(
            window in 1u128..=u128::from(u64::MAX) * 20,
            readings in proptest::collection::vec(any::<u64>(), 1..50),
        ) {
            let epochs = Epochs::new(window);
            let bucket = u64::try_from(window / BUCKETS as u128).unwrap_or(u64::MAX).max(1);
            for nanos in readings {
                prop_assert_eq!(epochs.at(nanos), nanos / bucket);
                prop_assert_eq!(epochs.at(nanos), nanos / bucket);
            }
        }
    }
}
