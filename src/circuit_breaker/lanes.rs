//! Lanes: a breaker has a few *owned* lanes (one per CPU and one more, up to 16) and one
//! *shared* lane. A thread claims an owned lane index for its lifetime if one is free (the
//! same index in every breaker), and uses the shared lane otherwise. Only its owner writes
//! an owned lane's counter of buffered successes, with plain loads and stores; the shared
//! lane's is updated with atomic read-modify-writes. Successes enter the count ring from the
//! lanes in batches; a time window has buckets per lane.

use super::{ticket::Lane, window::Buckets};
use crate::internal::{
    spare::Spared,
    sync::{thread_local_const, AccessError, AtomicU64},
};
use std::{
    cell::Cell,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
};

/// The most owned lanes.
pub(super) const MAX_LANES: usize = 16;

/// The owned lanes of every breaker: one per CPU and one more (a runtime's workers and the
/// thread that blocks on its main future), up to 16. The shared lane's index is this.
pub(super) fn lane_count() -> usize {
    static LANES: OnceLock<usize> = OnceLock::new();
    *LANES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .saturating_add(1)
            .clamp(2, MAX_LANES)
    })
}

/// Which owned lane indexes threads have claimed.
static CLAIMS: [AtomicBool; MAX_LANES] = [const { AtomicBool::new(false) }; MAX_LANES];

/// The lane of the current thread: the owned lane it claimed, or the shared lane.
#[inline]
pub(super) fn current_lane() -> usize {
    LOCAL
        .try_with(ThreadLane::index)
        .unwrap_or_else(|_| lane_count())
}

#[derive(Debug)]
pub(super) struct LaneData {
    /// Successes not yet pushed into the count ring nor reported to the metrics, tagged with
    /// the generation they belong to: `generation << 32 | count`.
    pub(super) pending: AtomicU64,
    /// A time window's buckets, allocated when the lane is first used.
    pub(super) buckets: OnceLock<Box<Buckets>>,
}

pub(super) const COUNT_BITS: u64 = 0xFFFF_FFFF;

impl LaneData {
    /// Adds a success of generation `gen`; returns the successes to push (a full batch, or
    /// none) and those of an older generation to drop (counted in the metrics only).
    ///
    /// `owned`: only the calling thread writes this lane, so a load and a store do.
    #[inline]
    pub(super) fn add_success(&self, owned: bool, gen: u32, batch: u64) -> (u64, u64) {
        let tag = u64::from(gen) << 32;
        let mut word = self.pending.load(Ordering::Relaxed);
        // The common case: one more success of the lane's generation, short of a batch.
        if owned && word & !COUNT_BITS == tag && (word & COUNT_BITS) + 1 < batch {
            self.pending.store(word + 1, Ordering::Relaxed);
            return (0, 0);
        }
        loop {
            let (count, stale) = if word & !COUNT_BITS == tag {
                ((word & COUNT_BITS) + 1, 0)
            } else {
                (1, word & COUNT_BITS)
            };
            let (next, full) = if count >= batch {
                (tag, count)
            } else {
                (tag | count, 0)
            };
            if owned {
                self.pending.store(next, Ordering::Relaxed);
                return (full, stale);
            }
            match self.pending.compare_exchange_weak(
                word,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (full, stale),
                Err(actual) => word = actual,
            }
        }
    }

    /// Takes the buffered successes: those of generation `gen`, and older ones.
    pub(super) fn take(&self, owned: bool, gen: u32) -> (u64, u64) {
        let tag = u64::from(gen) << 32;
        let word = if owned {
            let word = self.pending.load(Ordering::Relaxed);
            self.pending.store(tag, Ordering::Relaxed);
            word
        } else {
            self.pending.swap(tag, Ordering::AcqRel)
        };
        if word & !COUNT_BITS == tag {
            (word & COUNT_BITS, 0)
        } else {
            (0, word & COUNT_BITS)
        }
    }
}

/// A thread's own: the owned lane index it claimed, or the shared lane's (`usize::MAX`: not
/// claimed yet), and its spare lane reference. One thread-local for both, so that a call
/// reads it once as it is admitted and once as its result is recorded.
pub(super) struct ThreadLane {
    index: Cell<usize>,
    /// The lane reference the thread's last call held, kept for its next call (see
    /// [`ticket`](super::ticket)).
    pub(super) spare: Cell<Option<Arc<Lane>>>,
}

thread_local_const! {
    static LOCAL: ThreadLane = const {
        ThreadLane {
            index: Cell::new(usize::MAX),
            spare: Cell::new(None),
        }
    };
}

impl Drop for ThreadLane {
    fn drop(&mut self) {
        // The next thread to claim the index becomes its lanes' only writer.
        let lane = self.index.get();
        if lane < lane_count() {
            CLAIMS[lane].store(false, Ordering::Release);
        }
    }
}

/// The thread's lane: claims a free owned lane index on the thread's first call. `None`
/// while the thread exits (its lane is gone; the shared one is left).
#[inline]
pub(super) fn try_current_lane() -> Option<usize> {
    LOCAL.try_with(ThreadLane::index).ok()
}

/// Runs `f` on the thread's own lane data, unless the thread is exiting.
#[inline(always)]
pub(super) fn with_local<R>(f: impl FnOnce(&ThreadLane) -> R) -> Result<R, AccessError> {
    LOCAL.try_with(f)
}

// The thread's spare lane reference is its `ThreadLane`'s.
impl Spared for Lane {
    #[inline]
    fn with_slot<R>(f: impl FnOnce(&Cell<Option<Arc<Self>>>) -> R) -> Result<R, AccessError> {
        LOCAL.try_with(|local| f(&local.spare))
    }
}

impl ThreadLane {
    /// The lane index: claimed on the thread's first call.
    #[inline(always)]
    pub(super) fn index(&self) -> usize {
        let lane = self.index.get();
        if lane != usize::MAX {
            return lane;
        }
        claim(self)
    }
}

#[cold]
#[inline(never)]
fn claim(local: &ThreadLane) -> usize {
    // Under loom every thread takes the shared lane: the claims are a std static that
    // outlives loom's executions, so owned lanes would make one execution unlike the next.
    if cfg!(all(test, fortify_loom)) {
        let shared = lane_count();
        local.index.set(shared);
        return shared;
    }
    let owned = lane_count();
    let lane = (0..owned)
        .find(|&i| {
            CLAIMS[i]
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
        .unwrap_or(owned);
    local.index.set(lane);
    lane
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    pub(super) fn live_threads_never_share_an_owned_lane() {
        let owned = lane_count();
        assert!((1..=MAX_LANES).contains(&owned));
        let here = current_lane();
        assert_eq!(current_lane(), here, "a thread keeps its lane");
        assert!(here <= owned);
        // Threads alive at the same time: distinct owned lanes, or the shared one (other
        // tests claim lanes too, so which ones is not known).
        let barrier = Arc::new(std::sync::Barrier::new(12));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let lane = current_lane();
                    barrier.wait();
                    lane
                })
            })
            .collect();
        let mut lanes: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        lanes.push(here);
        let mut claimed: Vec<usize> = lanes.into_iter().filter(|&l| l < owned).collect();
        let count = claimed.len();
        claimed.sort_unstable();
        claimed.dedup();
        assert_eq!(claimed.len(), count, "two live threads own one lane");
    }
}
