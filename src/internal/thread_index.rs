//! Each thread's index, given at its first call from a global count: what spreads the
//! threads of a process over per-thread places in shared structures (a pool's permit
//! leases, the ticker's words), so that the workers of a runtime, started together, each
//! write cache lines of their own.

#[cfg(all(test, fortify_loom))]
use crate::internal::sync::AtomicUsize;
use crate::internal::sync::Ordering;

/// How many per-thread places a shared structure gets on this machine: two per processor
/// the process may run on (so that threads whose first calls came in between the workers'
/// rarely share one), at most `max`; two in the loom models, whose threads are few (some
/// of them then share one).
pub(crate) fn places_per_machine(max: usize) -> usize {
    #[cfg(all(test, fortify_loom))]
    return 2.min(max);
    #[cfg(not(all(test, fortify_loom)))]
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_mul(2)
        .min(max)
}

/// The calling thread's index, given at its first call.
#[inline]
pub(crate) fn thread_index() -> usize {
    crate::internal::sync::thread_local_const! {
        static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    // While the thread exits its index is gone: 0 does as well as any.
    INDEX
        .try_with(|index| match index.get() {
            usize::MAX => {
                let new = next_index();
                index.set(new);
                new
            }
            assigned => assigned,
        })
        .unwrap_or(0)
}

/// A new thread's index: the next of a global count, never given back. So two live threads
/// can share a pool's lease slot (correct, only slower) when other threads' first calls came in between
/// theirs, or when threads came and went before them (a blocking pool's, a runtime's that
/// shut down). Giving indices back when a thread exits (the lowest free index at the first
/// call, a thread-local with a destructor to return it) would keep live threads apart, but
/// measured on one thread it cost 19 instructions a call with the index itself in that
/// thread-local, and 22 with the destructor in a second one touched only here (callgrind,
/// `benches/interleaved.rs` `GenericPoolLimit (block)`, 62,000 calls: 14.11 M -> 15.29 M
/// and 15.47 M instructions in all), more than the sharing it would avoid is likely to cost.
#[cold]
fn next_index() -> usize {
    // Wraps long before `usize::MAX` (which marks "none yet").
    NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1)
}

#[cfg(not(all(test, fortify_loom)))]
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// Reset for every execution of a model, so that a thread's index is the same when loom
// replays it.
#[cfg(all(test, fortify_loom))]
::loom::lazy_static! {
    static ref NEXT: AtomicUsize = AtomicUsize::new(0);
}
