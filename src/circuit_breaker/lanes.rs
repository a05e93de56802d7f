//! Lanes: a breaker has a few *owned* lanes (one per CPU and one more, up to 16) and one
//! *shared* lane. A thread claims an owned lane index for its lifetime if one is free (the
//! same index in every breaker), and uses the shared lane otherwise. Only its owner writes
//! an owned lane's counter of buffered successes, with plain loads and stores; the shared
//! lane's is updated with atomic read-modify-writes. Successes enter the count ring from the
//! lanes in batches; a time window has buckets per lane.

use super::window::Buckets;
use crate::internal::sync::AtomicU64;
use std::sync::{
    atomic::{AtomicBool, Ordering},
    OnceLock,
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

/// Claims a free owned lane index for the calling thread for its lifetime, or gives the
/// shared lane's if none is free: the thread's first call ([`local`](super::local) keeps
/// it).
#[cold]
#[inline(never)]
pub(super) fn claim() -> usize {
    // Under loom every thread takes the shared lane: the claims are a std static that
    // outlives loom's executions, so owned lanes would make one execution unlike the next.
    if cfg!(all(test, fortify_loom)) {
        return lane_count();
    }
    let owned = lane_count();
    (0..owned)
        .find(|&i| {
            CLAIMS[i]
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
        .unwrap_or(owned)
}

/// Gives back a lane index [`claim`] gave, as its thread exits: the next thread to claim the
/// index becomes its lanes' only writer.
pub(super) fn release(lane: usize) {
    if lane < lane_count() {
        CLAIMS[lane].store(false, Ordering::Release);
    }
}
