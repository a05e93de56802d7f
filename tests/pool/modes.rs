//! The three modes at the limit, urllib3's pool cases, and FIFO order, on tokio's paused
//! clock.

use crate::support::{get, kind, slow, waiting};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    pool::{error::EmptyPool, PoolLimitBuilder, PoolLimitLayer},
    retry::{RetryLayer, RetryPolicy},
};

const SECOND: Duration = Duration::from_secs(1);

/// What the call that finds the pool full gets.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Through, after the inner service's delay, counted as overflow.
    Overflow,
    /// `PoolTimeout` after this long.
    Timeout(Duration),
    /// `PoolFull` at once.
    Full,
}

/// One row: a mode, one pool or per host, and what the second call gets.
struct Row {
    name: &'static str,
    builder: fn() -> PoolLimitBuilder,
    outcome: Outcome,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "block=False (urllib3's default)",
            builder: || PoolLimitLayer::builder(1),
            outcome: Outcome::Overflow,
        },
        Row {
            name: "block=True, pool_timeout=1",
            builder: || {
                PoolLimitLayer::builder(1)
                    .block(true)
                    .pool_timeout(Some(SECOND))
            },
            outcome: Outcome::Timeout(SECOND),
        },
        Row {
            name: "block=True, pool_timeout=2.5",
            builder: || {
                PoolLimitLayer::builder(1)
                    .block(true)
                    .pool_timeout(Some(Duration::from_millis(2500)))
            },
            outcome: Outcome::Timeout(Duration::from_millis(2500)),
        },
        Row {
            name: "fail fast",
            builder: || PoolLimitLayer::builder(1).fail_fast(),
            outcome: Outcome::Full,
        },
    ]
}

#[tokio::test(start_paused = true)]
async fn each_mode_at_the_limit() {
    for row in rows() {
        for per_host in [false, true] {
            let layer = (row.builder)().per_host(per_host).build().unwrap();
            let handle = layer.handle();
            let inner = slow(Duration::from_secs(10));
            let svc = layer.layer(inner.clone());
            let what = format!("{} (per_host {per_host})", row.name);

            // The first call takes the only permit and keeps it in its unread body.
            let held = svc.clone().oneshot(get("a")).await.unwrap();
            assert!(held.body().holds_permit(), "{what}");

            let start = Instant::now();
            let second = svc.clone().oneshot(get("a")).await;
            let elapsed = start.elapsed();
            let stats = handle.snapshot().total;
            match row.outcome {
                Outcome::Overflow => {
                    let response = second.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(elapsed, Duration::from_secs(10), "{what}: no wait");
                    assert_eq!(stats.overflowed, 1, "{what}");
                    assert_eq!((stats.in_use, stats.overflowing), (2, 1), "{what}");
                    drop(response);
                    let stats = handle.snapshot().total;
                    assert_eq!((stats.in_use, stats.overflowing), (1, 0), "{what}");
                }
                Outcome::Timeout(timeout) => {
                    let err = second.unwrap_err();
                    assert_eq!(kind(&err), FailureKind::PoolTimeout, "{what}");
                    assert_eq!(elapsed, timeout, "{what}: waited pool_timeout");
                    let failure = err.downcast_ref::<Failure>().unwrap();
                    let empty = failure.get_ref().downcast_ref::<EmptyPool>().unwrap();
                    assert_eq!(empty.waited(), timeout, "{what}");
                    assert_eq!(empty.maxsize(), 1, "{what}");
                    assert_eq!((stats.timed_out, stats.waiting), (1, 0), "{what}");
                }
                Outcome::Full => {
                    let err = second.unwrap_err();
                    assert_eq!(kind(&err), FailureKind::PoolFull, "{what}");
                    assert_eq!(elapsed, Duration::ZERO, "{what}: at once");
                    assert_eq!(stats.rejected, 1, "{what}");
                }
            }
            let expected_calls = if row.outcome == Outcome::Overflow {
                2
            } else {
                1
            };
            assert_eq!(inner.calls(), expected_calls, "{what}: inner calls");

            // Once the permit is back, the next call goes through in every mode.
            drop(held);
            assert_eq!(handle.snapshot().total.in_use, 0, "{what}");
            let start = Instant::now();
            svc.oneshot(get("a")).await.unwrap();
            assert_eq!(start.elapsed(), Duration::from_secs(10), "{what}");
        }
    }
}

/// urllib3: `HTTPConnectionPool(maxsize=1, block=True)`, `pool_timeout=1`: the second
/// concurrent request raises `EmptyPoolError` after one second; `Retry` does not retry it.
#[tokio::test(start_paused = true)]
async fn urllib3_block_pool_timeout_is_not_retried() {
    let inner = slow(Duration::from_secs(30));
    let pool = PoolLimitLayer::builder(1)
        .block(true)
        .pool_timeout(Some(SECOND))
        .per_host(false)
        .build()
        .unwrap();
    let handle = pool.handle();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .policy(RetryPolicy::default())
                .build()
                .unwrap(),
        )
        .layer(pool)
        .service(inner.clone());

    let first = tokio::spawn(svc.clone().oneshot(get("a")));
    tokio::task::yield_now().await;
    assert_eq!(handle.snapshot().total.in_use, 1);

    let start = Instant::now();
    let err = svc.oneshot(get("a")).await.unwrap_err();
    assert_eq!(start.elapsed(), SECOND, "one pool_timeout, no retry sleep");
    assert_eq!(kind(&err), FailureKind::PoolTimeout, "{err}");
    assert_eq!(
        inner.calls(),
        1,
        "the timed-out call never reached the service"
    );
    assert_eq!(
        handle.snapshot().total.timed_out,
        1,
        "one timeout: not retried"
    );

    let response = first.await.unwrap().unwrap();
    drop(response);
    assert_eq!(handle.snapshot().total.in_use, 0);
}

/// urllib3: `HTTPConnectionPool(maxsize=1, block=False)`: two concurrent requests both
/// succeed; the extra connection is discarded with "Connection pool is full".
#[tokio::test(start_paused = true)]
async fn urllib3_no_block_two_concurrent_calls_both_succeed() {
    let layer = PoolLimitLayer::builder(1).per_host(false).build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(SECOND));

    let start = Instant::now();
    let (a, b) = tokio::join!(svc.clone().oneshot(get("a")), svc.oneshot(get("a")));
    assert_eq!(start.elapsed(), SECOND, "concurrent: nobody waited");
    let (a, b) = (a.unwrap(), b.unwrap());
    let stats = handle.snapshot().total;
    assert_eq!(stats.overflowed, 1);
    assert_eq!(stats.in_use, 2, "both bodies unread");
    drop((a, b));
    let stats = handle.snapshot().total;
    assert_eq!(
        (stats.in_use, stats.overflowing, stats.overflowed),
        (0, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn block_without_timeout_waits_as_long_as_it_takes() {
    for per_host in [false, true] {
        let layer = PoolLimitLayer::builder(1)
            .block(true)
            .per_host(per_host)
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(slow(Duration::ZERO));
        let held = svc.clone().oneshot(get("a")).await.unwrap();

        let second = tokio::spawn(svc.oneshot(get("a")));
        waiting(&handle, 1).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!second.is_finished(), "still waiting after an hour");
        assert_eq!(handle.snapshot().total.timed_out, 0);

        let start = Instant::now();
        drop(held);
        second.await.unwrap().unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "served as soon as the permit came back"
        );
        assert_eq!(handle.snapshot().total.in_use, 0);
    }
}

/// Calls that wait are served in the order they came, one pool or per host.
#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served() {
    for per_host in [false, true] {
        let layer = PoolLimitLayer::builder(1)
            .block(true)
            .pool_timeout(Some(Duration::from_secs(60)))
            .per_host(per_host)
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(slow(Duration::ZERO));
        let held = svc.clone().oneshot(get("a")).await.unwrap();

        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (svc, order) = (svc.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let response = svc.oneshot(get("a")).await.unwrap();
                order.lock().unwrap().push(i);
                // Hold the permit a while: the next waiter must wait for it.
                tokio::time::sleep(SECOND).await;
                drop(response);
            }));
            // The next call comes once this one queues.
            waiting(&handle, i + 1).await;
        }
        let start = Instant::now();
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [0, 1, 2, 3, 4],
            "per_host {per_host}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(5), "one at a time");
        assert_eq!(handle.snapshot().total.in_use, 0);
    }
}

/// A newcomer does not overtake the queue, even if it calls when the permit is back.
#[tokio::test(start_paused = true)]
async fn a_newcomer_does_not_overtake_waiters() {
    let layer = PoolLimitLayer::builder(1)
        .block(true)
        .per_host(false)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(slow(Duration::ZERO));
    let held = svc.clone().oneshot(get("a")).await.unwrap();
    let mut waiter = svc.clone();
    let queued = tokio::spawn(async move {
        waiter.ready().await.unwrap();
        waiter
    });
    waiting(&handle, 1).await;
    drop(held); // the permit goes to the waiter, not to whoever polls first
    assert!(crate::support::poll_ready_now(&mut svc).is_pending());
    let mut waiter = queued.await.unwrap();
    let response = waiter.call(get("a")).await.unwrap();
    drop(response);
    svc.ready().await.unwrap();
}

/// After a pool timeout, the same service works again (a timeout is the call's failure, not
/// the service's: `poll_ready` never returns it).
#[tokio::test(start_paused = true)]
async fn a_pool_timeout_leaves_the_service_usable() {
    let layer = PoolLimitLayer::builder(1)
        .block(true)
        .pool_timeout(Some(SECOND))
        .per_host(false)
        .build()
        .unwrap();
    let mut svc = layer.layer(slow(Duration::ZERO));
    let held = svc.clone().oneshot(get("a")).await.unwrap();
    // poll_ready resolves Ok after the timeout; the call carries the failure.
    svc.ready().await.unwrap();
    let err = svc.call(get("a")).await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::PoolTimeout);
    drop(held);
    // The timer is reset in place for the next wait.
    let held = svc.ready().await.unwrap().call(get("a")).await.unwrap();
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(get("a")).await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::PoolTimeout);
    assert_eq!(start.elapsed(), SECOND);
    drop(held);
}
