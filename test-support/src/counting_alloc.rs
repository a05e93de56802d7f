//! A global allocator that counts the allocations of each thread, for exact per-call
//! allocation tests. A test binary installs it itself (a library cannot choose the
//! allocator of every binary that links it):
//!
//! ```ignore
//! use fortify_test_support::counting_alloc::Counting;
//!
//! #[global_allocator]
//! static GLOBAL: Counting = Counting;
//! ```
//!
//! [`allocations`] counts only in a binary that did so.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};
use tower::Service;

/// The counting allocator: every call forwarded to the system allocator.
pub struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The allocations (and reallocations) the current thread made so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// `n` calls of `svc` with `request(i)`: `poll_ready` (which must be ready), `call`, one
/// poll of the response future (every service in these tests answers at once), the
/// response dropped. Returns the successes and the allocations made meanwhile (building
/// the requests included: the callers build them without allocating).
pub fn drive<S, R>(svc: &mut S, n: u32, request: impl FnMut(u32) -> R) -> (u32, u64)
where
    S: Service<R>,
{
    drive_checked(svc, n, request, |_, response| drop(response))
}

/// As [`drive`], handing each successful response to `check` with its call's index
/// (`check` is counted too: it should not allocate).
pub fn drive_checked<S, R>(
    svc: &mut S,
    n: u32,
    mut request: impl FnMut(u32) -> R,
    mut check: impl FnMut(u32, S::Response),
) -> (u32, u64)
where
    S: Service<R>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let before = allocations();
    let mut ok = 0;
    for i in 0..n {
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let fut = pin!(svc.call(request(i)));
        if let Poll::Ready(Ok(response)) = fut.poll(&mut cx) {
            check(i, response);
            ok += 1;
        }
    }
    (ok, allocations() - before)
}
