//! Loom models of a pool through its real API: `Pool::acquire` / `try_acquire`, the
//! `Permit` they hand out (dropped as a response body drops it, through `PoolBody`), and an
//! `Acquire` dropped while it waits. The semaphore's own models (`semaphore.rs`) drive the
//! raw semaphore; these add what `Pool` does around it (the tracker's slot, the in-use
//! count, the hand-over of a permit a cancelled waiter was given). See `internal::sync` for
//! how to run them.
//!
//! tokio's runtime cannot run under loom, so a wait is polled with
//! `loom::future::block_on`, which parks the thread until it is woken: a lost wake-up is a
//! deadlock loom reports. Every pool tracks its permits (`leak_threshold` of an hour, so no
//! permit is ever reported as leaked), so that a slot lost or left held shows.

use super::{
    acquire::Acquire,
    body::PoolBody,
    permit::{Core, Counts, Mode, Permit, Pool},
};
use crate::internal::sync::{AtomicUsize, Ordering};
use ::loom::thread;
use bytes::Bytes;
use http_body_util::Full;
use std::{
    future::poll_fn,
    sync::Arc,
    task::{Context, Waker},
    time::Duration,
};
use tokio::time::Instant;

/// A pool of `maxsize` permits that waits for one (`block=True`, no timeout) and tracks
/// their ages.
fn pool(maxsize: usize) -> Arc<Pool> {
    pool_with(maxsize, Some(Duration::from_secs(3600)))
}

/// A pool of `maxsize` permits that waits for one and tracks nothing: its permits are
/// plain, so, as a layer's only pool, it parks free permits per thread (`semaphore::lease`).
fn plain_pool(maxsize: usize) -> Arc<Pool> {
    pool_with(maxsize, None)
}

fn pool_with(maxsize: usize, leak_threshold: Option<Duration>) -> Arc<Pool> {
    Arc::new(Pool::new(core(maxsize, leak_threshold), None))
}

/// The settings of a layer's pools of `maxsize` permits that wait for one (no timeout),
/// tracking their ages if `leak_threshold` is set (the per-host map's models too).
pub(super) fn core(maxsize: usize, leak_threshold: Option<Duration>) -> Arc<Core> {
    Arc::new(Core {
        name: "loom",
        maxsize,
        mode: Mode::Block(None),
        release_on_body_end: true,
        leak_threshold,
        adaptive: None,
        totals: Counts::default(),
        #[cfg(feature = "metrics")]
        keyed: None,
        #[cfg(feature = "metrics")]
        instruments: super::metrics::Instruments::register("loom"),
    })
}

/// Waits for a permit as the service's `poll_ready` does, parked until woken.
pub(super) fn wait(acquire: &mut Acquire) -> Permit {
    ::loom::future::block_on(poll_fn(|cx| acquire.poll(cx)))
}

/// A wait polled once: queued behind the holders (the pool is full).
pub(super) fn queued(pool: &Arc<Pool>) -> Acquire {
    let mut acquire = pool.acquire(Instant::now());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(acquire.poll(&mut cx).is_pending(), "the pool is full");
    acquire
}

/// A response body holding its call's permit, as the service returns it.
fn body(permit: Permit) -> PoolBody<Full<Bytes>> {
    let body = PoolBody::with_permit(Full::new(Bytes::from_static(b"x")), permit);
    assert!(body.holds_permit());
    body
}

/// Once every call is done: no permit in use, nobody waiting, no tracker slot held (the
/// oldest age is that of a held slot), none reported as leaked, and the whole pool free to
/// the next callers.
fn assert_all_returned(pool: &Arc<Pool>, maxsize: usize) {
    let stats = pool.stats();
    assert_eq!(stats.in_use, 0, "a permit was lost");
    assert_eq!(stats.waiting, 0, "a waiter was left in the queue");
    assert_eq!(stats.oldest_in_use, None, "a tracker slot was left held");
    assert_eq!(stats.leaked, 0);
    let permits: Vec<Permit> = (0..maxsize).filter_map(|_| pool.try_acquire()).collect();
    assert_eq!(permits.len(), maxsize, "a permit was lost");
    assert!(pool.try_acquire().is_none(), "a permit was doubled");
}

/// Acquires (waiting if it must), holds the permit (counted in `holders`, which must stay
/// within `maxsize`), and drops it in a response body.
fn call(pool: &Arc<Pool>, holders: &AtomicUsize, maxsize: usize) {
    let permit = wait(&mut pool.acquire(Instant::now()));
    let held = holders.fetch_add(1, Ordering::SeqCst) + 1;
    assert!(held <= maxsize, "{held} holders of {maxsize} permits");
    assert!(pool.in_use() >= held, "a held permit is not counted in use");
    holders.fetch_sub(1, Ordering::SeqCst);
    drop(body(permit));
}

/// Acquire and release through `Pool`, no permit lost or doubled: one permit, three
/// callers (two threads and the model's own) that each acquire it, waiting if they must,
/// hold it and drop it in a response body. Never two holders at once; every waiter is
/// woken (a lost wake-up is a deadlock); at the end the in-use count and the tracker's
/// slots are back to zero and the permit is free.
///
/// Seeded bug it caught: `Semaphore::poll_acquire` without its re-check after setting the
/// waiters bit (a permit released between the failed `try_acquire` and the bit is then left
/// in the state word while the caller queues): loom reported the deadlock of a waiter that
/// nobody wakes.
#[test]
fn loom_pool_permits_are_neither_lost_nor_doubled() {
    permits_are_neither_lost_nor_doubled(pool);
}

/// [`loom_pool_permits_are_neither_lost_nor_doubled`] on a pool whose free permits are
/// parked per thread: a release may park the permit while a caller starts to wait (the
/// waiter's sweep or the releaser's re-check must give it over), a caller may take the one
/// parked in its own slot or steal it from another.
///
/// Seeded bug it caught: `Semaphore::poll_acquire` without its sweep of the slots after
/// the caller joined the queue: loom reported the deadlock of a waiter left while the
/// permit sat parked (parked before the release saw the waiters bit, and no release
/// followed).
#[test]
fn loom_pool_with_leases_permits_are_neither_lost_nor_doubled() {
    permits_are_neither_lost_nor_doubled(plain_pool);
}

fn permits_are_neither_lost_nor_doubled(pool: fn(usize) -> Arc<Pool>) {
    ::loom::model(move || {
        let pool = pool(1);
        let holders = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (pool, holders) = (Arc::clone(&pool), Arc::clone(&holders));
                thread::spawn(move || call(&pool, &holders, 1))
            })
            .collect();
        call(&pool, &holders, 1);
        for t in threads {
            t.join().unwrap();
        }
        assert_all_returned(&pool, 1);
    });
}

/// A waiter cancelled while it waits loses no permit and passes on one it was handed:
/// one permit held in a response body, two callers queued behind it. The body is dropped
/// on one thread while the first waiter's `Acquire` is dropped on another (the permit may
/// already have been handed to it). The second waiter gets the permit (the hand-over
/// through the dropped `Acquire` works, or the release skipped the leaver), and at the end
/// nothing is in use, nobody waits and no slot is held.
///
/// Seeded bug it caught: `Drop for Acquire` that does not release a permit handed to it
/// (`cancel` returning `true` ignored): loom reported the second waiter's deadlock.
#[test]
fn loom_pool_a_cancelled_waiter_passes_its_permit_on() {
    ::loom::model(|| {
        let pool = pool(1);
        let held = body(pool.try_acquire().unwrap());
        let first = queued(&pool);
        let mut second = queued(&pool);
        let leaver = thread::spawn(move || drop(first));
        drop(held);
        let permit = wait(&mut second);
        leaver.join().unwrap();
        assert_eq!(pool.in_use(), 1);
        drop(permit);
        assert_all_returned(&pool, 1);
    });
}

/// A body's drop racing another permit's release and a new acquire: FIFO hand-off holds
/// and no permit is lost or doubled. Two permits, one held by a response body and one by a
/// call; a caller waits for one. On three threads at once: the body is dropped, the call's
/// permit is dropped, and a newcomer acquires. The waiter queued first is served first:
/// the newcomer gets a permit only once both have been given back (one went to the
/// waiter), or once the waiter has given back its own. Afterwards the in-use count and
/// the tracker are back to zero.
///
/// Seeded bugs it caught: `Semaphore::release_slow` handing the permit to the last waiter
/// (`pop_back`): loom reported the newcomer served after a single release, ahead of the
/// waiter ("a newcomer overtook a queued waiter"); and `Semaphore::release` whose fast
/// path ignores the waiters bit (the permit goes back to the state word, where the newcomer
/// takes it): loom reported the deadlock of the waiter left in the queue.
#[test]
fn loom_pool_a_body_drop_racing_a_release_and_an_acquire_hands_off_fifo() {
    a_body_drop_racing_a_release_and_an_acquire_hands_off_fifo(pool);
}

/// [`loom_pool_a_body_drop_racing_a_release_and_an_acquire_hands_off_fifo`] on a pool
/// whose free permits are parked per thread: while a caller waits, a release parks
/// nothing and a newcomer takes no parked permit, so the waiter is still served first.
///
/// Seeded bugs it caught: a waiter's sweep that keeps the first permit it finds for
/// itself (leaving the queue) instead of giving it to the semaphore: loom reported "a
/// newcomer overtook a queued waiter" (the newcomer, queued second, swept the permit a
/// release had parked before it saw the bit); and `Semaphore::poll_acquire` without its
/// sweep: loom reported the deadlock of a waiter left with the permit parked.
#[test]
fn loom_pool_with_leases_hands_off_fifo() {
    a_body_drop_racing_a_release_and_an_acquire_hands_off_fifo(plain_pool);
}

fn a_body_drop_racing_a_release_and_an_acquire_hands_off_fifo(pool: fn(usize) -> Arc<Pool>) {
    ::loom::model(move || {
        let pool = pool(2);
        let held = body(pool.try_acquire().unwrap());
        let call = pool.try_acquire().unwrap();
        let mut waiter = queued(&pool);
        let released = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let dropper = {
            let released = Arc::clone(&released);
            thread::spawn(move || {
                released.fetch_add(1, Ordering::SeqCst);
                drop(held);
            })
        };
        let newcomer = {
            let (pool, released, served) = (
                Arc::clone(&pool),
                Arc::clone(&released),
                Arc::clone(&served),
            );
            thread::spawn(move || {
                let permit = wait(&mut pool.acquire(Instant::now()));
                // Its permit is the second one given back, or the waiter's own.
                assert!(
                    released.load(Ordering::SeqCst) == 2 || served.load(Ordering::SeqCst) == 1,
                    "a newcomer overtook a queued waiter"
                );
                drop(permit);
            })
        };
        released.fetch_add(1, Ordering::SeqCst);
        drop(call);
        let permit = wait(&mut waiter);
        served.store(1, Ordering::SeqCst);
        drop(permit);
        dropper.join().unwrap();
        newcomer.join().unwrap();
        assert_all_returned(&pool, 2);
    });
}
