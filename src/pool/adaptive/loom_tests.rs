//! Loom models of the adaptive limit's parking (issue 17): a pool's semaphore keeps
//! `maxsize` permits and its limiter holds back (parks) `maxsize - limit` of them, parking
//! permits given back while it wants more parked (`Limiter::park`, on every release) and
//! parking free ones or giving parked ones back when a window moves the limit
//! (`Limiter::rebalance`, at the end of every window). These models drive it through the
//! pool's own API, as the service does: `Pool::try_acquire` / `acquire`, a `Permit`'s
//! `record` and drop, and `Pool::timed_out` (a caller that waited `pool_timeout` in vain,
//! an overload sign that closes a window). See `internal::sync` for how to run them.
//!
//! Invariant of every model:
//!
//! - the limit never leaves `[min_limit, maxsize]`;
//! - a limit change racing releases neither loses nor doubles a permit: once the calls are
//!   done, nothing is in use, so parked + free == `maxsize` (`Pool::in_use` is
//!   `maxsize - parked - free`);
//! - and once the next window has closed at quiescence, exactly `limit` permits can be
//!   taken (parked == `maxsize - limit`, free == `limit`), no more and no fewer.
//!
//! Not an invariant: parked == `maxsize - limit` right after a window that raced a
//! release. A release that read the old limit gives its permit back to the semaphore (or
//! parks it) after the window's rebalance has looked, so the limit holds from the next
//! window on (every window rebalances, not only one that moved the limit). The first
//! model shows that lag is reachable (see its comment).
//!
//! Each window is made to close by its count: the window lasts a nanosecond, so the
//! `MIN_SAMPLES`-th call of a window closes it whatever the clock reads (the models use the
//! real clock: every reading is past the window's start). Every call is timed in the
//! models (`sampling::MAX_EVERY` is 1 under `fortify_loom`, so `every` stays 1: the
//! thread-local draw that picks the timed calls would be shared by loom's threads and
//! differ between runs), so every success counts once.

use super::{limiter::MIN_SAMPLES, AdaptiveLimit, Outcome, Shared};
use crate::pool::{
    loom_tests::{queued, wait},
    permit::{Core, Counts, Mode, Permit, Pool},
};
use ::loom::thread;
use std::{sync::Arc, time::Duration};

/// An adaptive pool of `maxsize` permits starting at `initial` (floor 1), waiting for a
/// permit when none is free (`block=True`, no timeout), whose windows close on their
/// `MIN_SAMPLES`-th call. Untracked: the models are about the limiter's permits.
fn pool(maxsize: usize, initial: usize) -> Arc<Pool> {
    let adaptive = AdaptiveLimit::gradient()
        .min_limit(1)
        .initial_limit(initial)
        .window(Duration::from_nanos(1));
    adaptive.validate(maxsize).unwrap();
    let core = Arc::new(Core {
        name: "loom",
        maxsize,
        mode: Mode::Block(None),
        release_on_body_end: true,
        leak_threshold: None,
        adaptive: Some(Shared::new(adaptive, maxsize, "loom")),
        totals: Counts::default(),
        #[cfg(feature = "metrics")]
        keyed: None,
        #[cfg(feature = "metrics")]
        instruments: crate::pool::metrics::Instruments::register("loom"),
    });
    Arc::new(Pool::new(core, None))
}

/// `n` callers that waited in vain: each one an overload sign (the `MIN_SAMPLES`-th of a
/// window closes it, all failures: the limit is multiplied by 0.9).
fn timeouts(pool: &Pool, n: u64) {
    for _ in 0..n {
        drop(pool.timed_out(Duration::ZERO));
    }
}

/// `n` calls that take a free permit, succeed and give it back.
fn successes(pool: &Arc<Pool>, n: u64) {
    for _ in 0..n {
        let mut permit = pool.try_acquire().expect("a free permit");
        permit.record(|| Outcome::Success);
        drop(permit);
    }
}

/// Once every call is done: the limit within its bounds, nothing in use (parked + free ==
/// `maxsize`: no permit lost). Then one more window closes at quiescence, and exactly
/// `limit` permits can be taken: none lost, none doubled, none left parked over the limit.
fn assert_settled(pool: &Arc<Pool>, maxsize: usize) {
    let limit = pool.stats().limit;
    assert!(
        (1..=maxsize).contains(&limit),
        "limit {limit} out of bounds"
    );
    assert_eq!(pool.in_use(), 0, "a permit was lost");
    timeouts(pool, MIN_SAMPLES);
    let limit = pool.stats().limit;
    assert!(
        (1..=maxsize).contains(&limit),
        "limit {limit} out of bounds"
    );
    let permits: Vec<Permit> = (0..limit).filter_map(|_| pool.try_acquire()).collect();
    assert_eq!(permits.len(), limit, "a permit was lost or left parked");
    assert!(pool.try_acquire().is_none(), "a permit was doubled");
    assert_eq!(pool.in_use(), limit);
}

/// A lowered limit racing two releases: a pool of two permits, both in use; a window of
/// failures closes on one thread (the limit falls from 2 to 1: one permit to park) while
/// the two permits are given back on two others. Whichever order, the permits are parked
/// or free, never lost or doubled, and the next window settles the pool at one free
/// permit and one parked.
///
/// The lag is reachable here: both releases read the old limit (nothing to park) and give
/// their permits to the semaphore after the window's rebalance found none free, so both
/// are free until the next window parks one. `assert_settled` closes that window.
///
/// Seeded bug it caught: `Limiter::park` with its compare-and-swap split into a load and a
/// store (`if parked < keep { parked.store(parked + 1); return true }`): both releases
/// read one parked permit short and both park, but the count says one (loom: "a permit
/// was lost", `in_use` 1 with nothing held).
#[test]
fn loom_adaptive_a_lowered_limit_racing_releases_loses_no_permit() {
    ::loom::model(|| {
        let pool = pool(2, 2);
        let first = pool.try_acquire().unwrap();
        let second = pool.try_acquire().unwrap();
        timeouts(&pool, MIN_SAMPLES - 1);
        let closer = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || timeouts(&pool, 1))
        };
        let releaser = thread::spawn(move || drop(first));
        drop(second);
        closer.join().unwrap();
        releaser.join().unwrap();
        assert_eq!(pool.stats().limit, 1, "2 * 0.9");
        assert_settled(&pool, 2);
    });
}

/// A raised limit gives its parked permit to a waiter: a pool of two permits at a limit
/// of one (one parked), its free permit in use by a call, and two callers waiting. The
/// call's success closes a window that raises the limit to two (the parked permit goes
/// back to the semaphore, to the first waiter) and then gives its own permit back, while
/// the two waiters wait on two threads. Both are served (a permit given back without a
/// wake-up would leave one waiting forever: loom reports the deadlock), and the pool
/// settles with every permit accounted for.
///
/// Seeded bug it caught: `Limiter::rebalance` that takes a permit off the parked count
/// without giving it to the semaphore (`semaphore.release()` left out): the second waiter
/// is served only by the first one's permit, and `assert_settled` finds a permit lost.
#[test]
fn loom_adaptive_a_raised_limit_gives_its_parked_permit_to_a_waiter() {
    ::loom::model(|| {
        let pool = pool(2, 1);
        successes(&pool, MIN_SAMPLES - 1);
        let mut call = pool.try_acquire().unwrap();
        let mut first = queued(&pool);
        let mut second = queued(&pool);
        let waiter = thread::spawn(move || drop(wait(&mut first)));
        let caller = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                // Busy when the window closes: this call and the two waiters, over half
                // the limit, and a latency equal to the baseline it starts: one more.
                call.record(|| Outcome::Success);
                assert_eq!(pool.stats().limit, 2, "1 + 1");
                drop(call);
            })
        };
        drop(wait(&mut second));
        waiter.join().unwrap();
        caller.join().unwrap();
        assert_settled(&pool, 2);
    });
}
