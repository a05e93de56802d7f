//! Cancellation stress: thousands of calls dropped at random while they wait or run, from
//! many tasks on a multi-threaded runtime. Nothing may be lost, doubled, or left hanging.

use crate::support::{get, Req, Res, Rng};
use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use std::{future::Future, io, pin::pin, task::Poll, time::Duration};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::pool::{PoolBody, PoolHandle, PoolLimitBuilder, PoolLimitLayer};

const TASKS: u64 = 16;
const CALLS: u64 = 400;
const MAXSIZE: usize = 4;

/// An inner service whose calls yield a few times, and sometimes sleep a little.
fn jittery() -> impl Service<Req, Response = Res, Error = io::Error, Future: Send> + Clone + Send {
    tower::service_fn(|req: Req| {
        let seed = req.uri().path().len() as u64 + req.headers().len() as u64;
        let n = req.extensions().get::<u64>().copied().unwrap_or(seed);
        async move {
            for _ in 0..n % 4 {
                tokio::task::yield_now().await;
            }
            if n % 5 == 0 {
                tokio::time::sleep(Duration::from_micros(50 + n % 200)).await;
            }
            Ok::<_, io::Error>(Response::new(Full::new(Bytes::from_static(b"body"))))
        }
    })
}

/// One call, driven and dropped as `rng` says.
async fn one_call<S>(svc: &S, host: &str, rng: &mut Rng)
where
    S: Service<Req, Response = Response<PoolBody<Full<Bytes>>>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut request = get(host);
    request.extensions_mut().insert(rng.next());
    let call = svc.clone().oneshot(request);
    match rng.below(4) {
        // Complete, and read the body to its end.
        0 => {
            if let Ok(response) = call.await {
                let _ = response.into_body().collect().await;
            }
        }
        // Complete, and drop the body unread.
        1 => drop(call.await),
        // Dropped after a few polls: while waiting for readiness, in a queue, or running.
        2 => {
            let mut call = pin!(call);
            let mut polls = rng.below(6);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(result) = call.as_mut().poll(cx) {
                    drop(result);
                    return Poll::Ready(());
                }
                if polls == 0 {
                    return Poll::Ready(());
                }
                polls -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
        }
        // Dropped by a timeout, wherever it is.
        _ => {
            let limit = Duration::from_micros(rng.below(300));
            let _ = tokio::time::timeout(limit, call).await;
        }
    }
}

/// `TASKS` tasks of `CALLS` calls each, to hosts drawn from `hosts`, scheduled by `seed`:
/// no task may panic, and all must end within a minute (no waiter hangs).
async fn hammer<S>(svc: &S, hosts: &'static [&'static str], seed: u64)
where
    S: Service<Req, Response = Response<PoolBody<Full<Bytes>>>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ (t + 1));
            for _ in 0..CALLS {
                let host = hosts[rng.below(hosts.len() as u64) as usize];
                one_call(&svc, host, &mut rng).await;
            }
        }));
    }
    let all = async {
        for task in tasks {
            task.await.expect("a task panicked");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("a waiter hung");
}

async fn stress(builder: PoolLimitBuilder, hosts: &'static [&'static str]) -> PoolHandle {
    let layer = builder.build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(jittery());
    hammer(&svc, hosts, 0x9E37_79B9_7F4A_7C15).await;

    let snapshot = handle.snapshot();
    assert_eq!(snapshot.total.in_use, 0, "{snapshot:?}");
    assert_eq!(snapshot.total.waiting, 0, "{snapshot:?}");
    assert_eq!(snapshot.total.overflowing, 0, "{snapshot:?}");

    // No permit lost: each pool still serves `maxsize` calls at once, at once.
    for host in hosts {
        let mut held = Vec::new();
        for _ in 0..MAXSIZE {
            let response =
                tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(get(host)))
                    .await
                    .expect("a permit was lost")
                    .unwrap();
            held.push(response);
        }
    }
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_pool_blocking_with_a_pool_timeout() {
    let handle = stress(
        PoolLimitLayer::builder(MAXSIZE)
            .block(true)
            .pool_timeout(Some(Duration::from_millis(1)))
            .per_host(false),
        &["a"],
    )
    .await;
    assert!(
        handle.snapshot().total.timed_out > 0,
        "calls did wait in vain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_pool_blocking_forever() {
    stress(
        PoolLimitLayer::builder(MAXSIZE).block(true).per_host(false),
        &["a"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_host_pools_blocking_with_a_pool_timeout() {
    stress(
        PoolLimitLayer::builder(MAXSIZE)
            .block(true)
            .pool_timeout(Some(Duration::from_millis(1)))
            .max_pools(2),
        &["a", "b", "c"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_host_pools_overflowing() {
    let handle = stress(PoolLimitLayer::builder(MAXSIZE), &["a", "b"]).await;
    assert!(
        handle.snapshot().total.overflowed > 0,
        "the pools did overflow"
    );
}

/// No permit doubled: after the stress, a fail-fast pool holds exactly `maxsize`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fail_fast_pool_keeps_exactly_maxsize_permits() {
    let builder = PoolLimitLayer::builder(MAXSIZE).fail_fast().per_host(false);
    let layer = builder.build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(jittery());
    hammer(&svc, &["a"], 0x1234_5678).await;
    assert_eq!(handle.snapshot().total.in_use, 0);
    let mut held = Vec::new();
    for _ in 0..MAXSIZE {
        held.push(
            svc.clone()
                .oneshot(get("a"))
                .await
                .expect("a permit was lost"),
        );
    }
    let extra = svc.clone().oneshot(get("a")).await;
    assert!(extra.is_err(), "a permit was doubled");
    assert!(handle.snapshot().total.rejected > 0);
}
