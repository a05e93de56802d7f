//! Heap allocations per call, counted exactly with a counting global allocator.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    future::Future,
    io,
    pin::pin,
    task::{Context, Poll, Waker},
};
use tower::{Layer, Service};
use tower_fortify::classify::ErrorClassifyLayer;

struct Counting;

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

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Calls `svc` `n` times, polling each response future to completion.
fn drive<S: Service<u32>>(svc: &mut S, n: u32) -> usize
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut ok = 0;
    for i in 0..n {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut fut = pin!(svc.call(i));
        if let Poll::Ready(Ok(_)) = fut.as_mut().poll(&mut cx) {
            ok += 1;
        }
    }
    ok
}

#[test]
fn success_path_allocates_nothing() {
    let inner = tower::service_fn(|x: u32| std::future::ready(Ok::<_, io::Error>(x)));
    // Building the service registers metric handles and allocates: that is once per service.
    let mut svc = ErrorClassifyLayer::new().layer(inner);
    drive(&mut svc, 10);

    let before = allocations();
    let ok = drive(&mut svc, 10_000);
    let after = allocations();
    assert_eq!(ok, 10_000);
    assert_eq!(after - before, 0, "allocations on the success path");
}

#[test]
fn the_counter_sees_allocations() {
    // The check above can fail: an error path does allocate (the Failure box).
    let inner = tower::service_fn(|_: u32| {
        std::future::ready(Err::<u32, _>(io::Error::from(
            io::ErrorKind::ConnectionReset,
        )))
    });
    let mut svc = ErrorClassifyLayer::new().layer(inner);
    let before = allocations();
    let ok = drive(&mut svc, 100);
    assert_eq!(ok, 0);
    assert!(allocations() - before >= 100);
}
