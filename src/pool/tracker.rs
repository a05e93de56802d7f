//! Permit ages, for leak detection: one slot per permit of a pool, stamped when the permit
//! is taken and cleared when it is given back.
//!
//! A pool holds at most `maxsize` permits, so `maxsize` slots always suffice; a bitmap says
//! which are taken. The checks (on a snapshot, and when a call finds its pool full) scan
//! the slots; a slot reported as leaked carries a flag, so that each permit is reported
//! once.

use crate::internal::sync::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Slots are indexed by `u32`, and a pool's table is `maxsize * 8` bytes: tracking is
/// offered up to this `maxsize`.
pub(crate) const MAX_TRACKED: usize = 1 << 16;

const REPORTED: u64 = 1 << 63;

#[derive(Debug)]
pub(crate) struct Tracker {
    base: Instant,
    /// Nanoseconds since `base` plus one when the permit was taken; zero when free.
    stamps: Box<[AtomicU64]>,
    taken: Box<[AtomicU64]>,
    hint: AtomicUsize,
    /// When the next check on a full pool is due, in nanoseconds since `base`.
    next_check: AtomicU64,
}

/// What a scan found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) oldest: Option<Duration>,
    /// Ages of the permits that crossed the threshold since the last scan.
    pub(crate) leaked: Vec<Duration>,
}

impl Tracker {
    pub(crate) fn new(slots: usize) -> Self {
        debug_assert!(slots <= MAX_TRACKED);
        Tracker {
            base: Instant::now(),
            stamps: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            taken: (0..slots.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            hint: AtomicUsize::new(0),
            next_check: AtomicU64::new(0),
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX >> 2)
            .min(u64::MAX >> 2)
    }

    /// Takes a free slot and stamps it with `now`. The caller holds a permit, so a slot is
    /// free.
    pub(crate) fn claim(&self, now: Instant) -> u32 {
        let words = self.taken.len();
        let slots = self.stamps.len();
        let start = self.hint.load(Ordering::Relaxed) % words;
        for step in 0..words * 2 {
            let w = (start + step) % words;
            let mut bits = self.taken[w].load(Ordering::Relaxed);
            loop {
                let free = !bits;
                if free == 0 {
                    break;
                }
                let b = free.trailing_zeros() as usize;
                let index = w * 64 + b;
                if index >= slots {
                    break;
                }
                let previous = self.taken[w].fetch_or(1 << b, Ordering::Acquire);
                if previous & (1 << b) == 0 {
                    self.hint.store(w, Ordering::Relaxed);
                    let stamp = self.nanos(now) + 1;
                    self.stamps[index].store(stamp, Ordering::Release);
                    return index as u32;
                }
                bits = previous | (1 << b);
            }
        }
        // Unreachable while permits bound the holders; an untracked permit is harmless.
        u32::MAX
    }

    /// Frees a slot. Returns the permit's age if it had been reported as leaked.
    pub(crate) fn free(&self, slot: u32) -> Option<Duration> {
        let index = slot as usize;
        if index >= self.stamps.len() {
            return None;
        }
        let stamp = self.stamps[index].swap(0, Ordering::AcqRel);
        self.taken[index / 64].fetch_and(!(1 << (index % 64)), Ordering::Release);
        if stamp & REPORTED == 0 {
            return None;
        }
        let taken = (stamp & !REPORTED) - 1;
        Some(Duration::from_nanos(
            self.nanos(Instant::now()).saturating_sub(taken),
        ))
    }

    /// Whether a check on a full pool is due, and if so, pushes the next one back.
    pub(crate) fn check_due(&self, now: Instant, every: Duration) -> bool {
        let now = self.nanos(now);
        let due = self.next_check.load(Ordering::Relaxed);
        if now < due {
            return false;
        }
        let next = now.saturating_add(u64::try_from(every.as_nanos()).unwrap_or(u64::MAX));
        self.next_check
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// The age of the oldest permit, and the permits that crossed `threshold` unreported.
    pub(crate) fn scan(&self, now: Instant, threshold: Option<Duration>) -> Scan {
        let now = self.nanos(now);
        let threshold = threshold.map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        let mut scan = Scan::default();
        let mut oldest = None::<u64>;
        for slot in self.stamps.iter() {
            let stamp = slot.load(Ordering::Acquire);
            if stamp == 0 {
                continue;
            }
            let age = now.saturating_sub((stamp & !REPORTED) - 1);
            oldest = Some(oldest.map_or(age, |o| o.max(age)));
            let Some(threshold) = threshold else { continue };
            if age > threshold
                && stamp & REPORTED == 0
                && slot
                    .compare_exchange(stamp, stamp | REPORTED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                scan.leaked.push(Duration::from_nanos(age));
            }
        }
        scan.oldest = oldest.map(Duration::from_nanos);
        scan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_ages_and_reports_once() {
        let tracker = Tracker::new(70);
        let slots: Vec<u32> = (0..70).map(|_| tracker.claim(Instant::now())).collect();
        let mut sorted = slots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 70, "every holder has its own slot");
        assert_eq!(tracker.free(slots[3]), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            tracker.claim(Instant::now()),
            slots[3],
            "a freed slot is taken again"
        );

        let scan = tracker.scan(Instant::now(), Some(Duration::from_secs(4)));
        assert_eq!(scan.oldest, Some(Duration::from_secs(5)));
        assert_eq!(scan.leaked.len(), 69, "the slot stamped now is young");
        let again = tracker.scan(Instant::now(), Some(Duration::from_secs(4)));
        assert!(again.leaked.is_empty(), "reported once");
        assert_eq!(tracker.free(slots[0]), Some(Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_permit_is_leaked_once_older_than_the_threshold_not_at_it() {
        let tracker = Tracker::new(1);
        tracker.claim(Instant::now());
        let threshold = Duration::from_secs(4);
        tokio::time::advance(threshold).await;
        assert!(tracker
            .scan(Instant::now(), Some(threshold))
            .leaked
            .is_empty());
        tokio::time::advance(Duration::from_nanos(1)).await;
        let scan = tracker.scan(Instant::now(), Some(threshold));
        assert_eq!(scan.leaked, [threshold + Duration::from_nanos(1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn checks_are_spaced() {
        let tracker = Tracker::new(1);
        let every = Duration::from_millis(100);
        assert!(tracker.check_due(Instant::now(), every));
        assert!(!tracker.check_due(Instant::now(), every));
        tokio::time::advance(every).await;
        assert!(tracker.check_due(Instant::now(), every));
    }
}

/// Loom models of the permit ages' slots: two holders claiming at once get slots of their
/// own. See `internal::sync` for how to run them.
#[cfg(all(test, fortify_loom))]
mod loom {
    use super::*;
    use ::loom::thread;
    use std::sync::Arc;

    /// Two threads claim a slot at once in a table whose first slot is taken: each gets its
    /// own, both among the free ones (a thread that loses the race for a bit looks further).
    #[test]
    fn loom_two_claims_at_once_take_two_slots() {
        ::loom::model(|| {
            let tracker = Arc::new(Tracker::new(3));
            assert_eq!(tracker.claim(Instant::now()), 0);
            let other = {
                let tracker = Arc::clone(&tracker);
                thread::spawn(move || tracker.claim(Instant::now()))
            };
            let mine = tracker.claim(Instant::now());
            let theirs = other.join().unwrap();
            assert_ne!(mine, theirs, "one slot for two holders");
            assert!(mine < 3 && theirs < 3, "{mine} {theirs}: no slot found");
        });
    }
}
