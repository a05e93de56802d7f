//! The thread's own lane data: the lane index it claimed ([`lanes`](super::lanes)) and its
//! spare lane reference ([`ticket`](super::ticket)), in one thread-local, so that a call
//! reads it once as it is admitted and once as its result is recorded.

use super::{
    breaker::Breaker,
    lanes::{claim, lane_count, release},
};
use crate::internal::{
    spare::Spared,
    sync::{thread_local_const, AccessError},
};
use std::{cell::Cell, sync::Arc};

/// A reference to a breaker, one per lane, held by the futures of calls. Its reference
/// count is written only when a thread switches breakers or has several calls in flight
/// (see [`ThreadLane::spare`]), so it needs no padding.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(super) breaker: Arc<Breaker>,
}

/// A thread's own: the owned lane index it claimed, or the shared lane's (`usize::MAX`: not
/// claimed yet), and its spare lane reference. One thread-local for both, so that a call
/// reads it once as it is admitted and once as its result is recorded.
pub(super) struct ThreadLane {
    index: Cell<usize>,
    /// The lane reference the thread's last call held, kept for its next call: a thread
    /// that calls one breaker again and again moves one `Arc` back and forth instead of
    /// incrementing and decrementing a shared reference count for every call. It keeps at
    /// most one breaker alive per thread, until the thread calls another one or exits.
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
        release(self.index.get());
    }
}

/// The lane of the current thread: the owned lane it claimed, or the shared lane.
#[inline]
pub(super) fn current_lane() -> usize {
    LOCAL
        .try_with(ThreadLane::index)
        .unwrap_or_else(|_| lane_count())
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
        let lane = claim();
        self.index.set(lane);
        lane
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::lanes::MAX_LANES;

    #[test]
    fn live_threads_never_share_an_owned_lane() {
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
