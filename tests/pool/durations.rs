//! Every `Duration` setting of the pool limit, over arbitrary values up to
//! `Duration::MAX`: no overflow, no panic, and each still means what it says (issue 16).

use crate::support::{kind, Req, Res};
use proptest::prelude::*;
use std::{io, time::Duration};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    pool::{AdaptiveLimit, PoolLimitLayer},
    BoxError,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Any non-zero duration: `Duration::MAX`, any seconds and nanoseconds, and short ones
/// (so that the timeouts that fire within a day are tried too).
fn durations() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::MAX),
        (any::<u64>(), 0..1_000_000_000u32).prop_map(|(secs, nanos)| Duration::new(secs, nanos)),
        (1..DAY.as_millis() as u64 * 2).prop_map(Duration::from_millis),
    ]
    .prop_filter("zero is rejected by build", |d| !d.is_zero())
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A service whose calls never answer (so that they hold their permits).
fn stuck() -> impl Service<Req, Response = Res, Error = io::Error, Future: Send> + Clone + Send {
    tower::service_fn(|_: Req| std::future::pending::<Result<Res, io::Error>>())
}

/// With its only permit held, a call waits `pool_timeout`: it fails with `PoolTimeout`
/// within a day if the timeout is shorter, and still waits after a day if it is longer.
fn second_call_waits(timeout: Duration, per_host: bool) -> Result<(), TestCaseError> {
    paused().block_on(async {
        let layer = PoolLimitLayer::builder(1)
            .block(true)
            .pool_timeout(Some(timeout))
            .per_host(per_host)
            .build()
            .unwrap();
        let svc = layer.layer(stuck());
        let mut first = svc.clone();
        let held = first
            .ready()
            .await
            .unwrap()
            .call(crate::support::get("a.example"));
        let second = svc.oneshot(crate::support::get("a.example"));
        let outcome: Result<Result<_, BoxError>, _> = tokio::time::timeout(DAY, second).await;
        match outcome {
            Ok(Err(err)) => {
                prop_assert_eq!(kind(&err), FailureKind::PoolTimeout);
                prop_assert!(timeout <= DAY, "timed out after {timeout:?}");
            }
            Ok(Ok(_)) => prop_assert!(false, "the second call got the held permit"),
            Err(_) => prop_assert!(timeout >= DAY, "still waiting after {timeout:?}"),
        }
        drop(held);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pool_timeout_of_one_pool(timeout in durations()) {
        second_call_waits(timeout, false)?;
    }

    #[test]
    fn pool_timeout_per_host(timeout in durations()) {
        second_call_waits(timeout, true)?;
    }

    /// An adaptive limit's `window`: eight failed calls, a day, one more; the limit falls
    /// then if the window is a day or shorter, and not otherwise.
    #[test]
    fn adaptive_window(window in durations(), per_host in any::<bool>()) {
        paused().block_on(async {
            let layer = PoolLimitLayer::builder(4)
                .fail_fast()
                .adaptive(AdaptiveLimit::gradient().window(window))
                .per_host(per_host)
                .build()
                .unwrap();
            let handle = layer.handle();
            let svc = layer.layer(tower::service_fn(|_: Req| async {
                let mut response = Res::default();
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, io::Error>(response)
            }));
            for _ in 0..8 {
                svc.clone().oneshot(crate::support::get("a.example")).await.unwrap();
            }
            prop_assert_eq!(handle.snapshot().total.limit, 4);
            tokio::time::advance(DAY).await;
            svc.oneshot(crate::support::get("a.example")).await.unwrap();
            let expected = if window <= DAY { 3 } else { 4 };
            prop_assert_eq!(handle.snapshot().total.limit, expected, "{:?}", window);
            Ok(())
        })?;
    }

    #[test]
    fn leak_threshold(threshold in durations(), per_host in any::<bool>()) {
        paused().block_on(async {
            let layer = PoolLimitLayer::builder(2)
                .leak_threshold(Some(threshold))
                .per_host(per_host)
                .build()
                .unwrap();
            let handle = layer.handle();
            let mut svc = layer.layer(stuck());
            let held = svc.ready().await.unwrap().call(crate::support::get("a.example"));
            tokio::time::advance(DAY).await;
            // A call that takes a permit runs the check too, then a snapshot does.
            let other = svc.ready().await.unwrap().call(crate::support::get("a.example"));
            let total = handle.snapshot().total;
            prop_assert_eq!(total.leaked, u64::from(threshold < DAY), "{:?}", threshold);
            prop_assert_eq!(total.oldest_in_use, Some(DAY));
            drop((held, other));
            prop_assert_eq!(handle.snapshot().total.in_use, 0);
            Ok(())
        })?;
    }
}
