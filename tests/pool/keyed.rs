//! Per-host pools (urllib3's `PoolManager`): isolation, the bound on tracked pools, keys.

use crate::support::{get, kind, slow};
use std::{collections::BTreeSet, time::Duration};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_fortify::{classify::FailureKind, pool::PoolLimitLayer};

fn keys(layer: &PoolLimitLayer) -> BTreeSet<String> {
    layer
        .handle()
        .snapshot()
        .pools
        .into_iter()
        .map(|pool| pool.key.expect("per-host pools have keys"))
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn hosts_are_isolated() {
    let layer = PoolLimitLayer::builder(1)
        .block(true)
        .pool_timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));

    let a = svc.clone().oneshot(get("a.example")).await.unwrap();
    // Another host has its own pool: no wait.
    let start = Instant::now();
    let b = svc.clone().oneshot(get("b.example")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    // The same host (the same pool, whatever the case or the explicit default port) waits.
    let err = svc.clone().oneshot(get("A.EXAMPLE:80")).await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::PoolTimeout);
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    let snapshot = handle.snapshot();
    assert_eq!(
        keys(&layer),
        set(&["http://a.example:80", "http://b.example:80"])
    );
    let a_stats = snapshot
        .pools
        .iter()
        .find(|p| p.key.as_deref() == Some("http://a.example:80"))
        .unwrap();
    assert_eq!((a_stats.in_use, a_stats.timed_out), (1, 1));
    assert_eq!((snapshot.total.in_use, snapshot.total.max), (2, 2));
    assert_eq!(snapshot.total.timed_out, 1);
    drop((a, b));
    assert_eq!(handle.snapshot().total.in_use, 0);
}

#[tokio::test(start_paused = true)]
async fn idle_pools_are_evicted_least_recently_used_first() {
    let layer = PoolLimitLayer::builder(1).max_pools(2).build().unwrap();
    let svc = layer.layer(slow(Duration::ZERO));
    for host in ["a", "b", "a"] {
        drop(svc.clone().oneshot(get(host)).await.unwrap());
    }
    assert_eq!(keys(&layer), set(&["http://a:80", "http://b:80"]));
    // `b` was used least recently.
    drop(svc.clone().oneshot(get("c")).await.unwrap());
    assert_eq!(keys(&layer), set(&["http://a:80", "http://c:80"]));
}

#[tokio::test(start_paused = true)]
async fn busy_pools_are_never_evicted() {
    let layer = PoolLimitLayer::builder(1)
        .max_pools(2)
        .fail_fast()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));

    // Three hosts busy at once: three pools, beyond the bound, each limit intact.
    let held: Vec<_> = hold_all(&svc, &["a", "b", "c"]).await;
    assert_eq!(handle.snapshot().pools.len(), 3);
    for host in ["a", "b", "c"] {
        let err = svc.clone().oneshot(get(host)).await.unwrap_err();
        assert_eq!(
            kind(&err),
            FailureKind::PoolFull,
            "{host}: its pool is still there"
        );
    }
    // Once idle, the map comes back within the bound at the next scan: the scan for `c`
    // found every pool busy, so the next one waits until the map has grown by half (here
    // from 3 to 4 pools).
    drop(held);
    drop(svc.clone().oneshot(get("d")).await.unwrap());
    assert_eq!(handle.snapshot().pools.len(), 4);
    drop(svc.clone().oneshot(get("e")).await.unwrap());
    assert_eq!(handle.snapshot().pools.len(), 2);
    assert_eq!(
        handle.snapshot().total.rejected,
        3,
        "totals survive eviction"
    );
}

#[tokio::test(start_paused = true)]
async fn a_scan_of_many_hosts_stays_within_max_pools_and_keeps_a_busy_pool() {
    let layer = PoolLimitLayer::builder(1)
        .max_pools(256)
        .fail_fast()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));
    // A host kept busy throughout must keep its pool (and its limit) however many come.
    let busy = svc.clone().oneshot(get("busy.example")).await.unwrap();
    for i in 0..2_000 {
        drop(
            svc.clone()
                .oneshot(get(&format!("h{i}.example")))
                .await
                .unwrap(),
        );
        let pools = handle.snapshot().pools.len();
        assert!(pools <= 256, "{pools} pools after {i} hosts");
    }
    let pools = handle.snapshot().pools.len();
    assert!(
        pools >= 256 * 7 / 8 - 16,
        "evicts in batches, not all: {pools}"
    );
    let err = svc.clone().oneshot(get("busy.example")).await.unwrap_err();
    assert_eq!(
        kind(&err),
        FailureKind::PoolFull,
        "the busy host's pool is still there"
    );
    drop(busy);
}

async fn hold_all<S>(svc: &S, hosts: &[&str]) -> Vec<S::Response>
where
    S: tower::Service<crate::support::Req> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    for host in hosts {
        out.push(svc.clone().oneshot(get(host)).await.unwrap());
    }
    out
}

/// A scan of many hosts holds at most `max_pools` pools (here one call at a time).
#[tokio::test(start_paused = true)]
async fn a_scan_of_many_hosts_stays_bounded() {
    let layer = PoolLimitLayer::builder(4).max_pools(10).build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));
    for i in 0..5_000 {
        let host = format!("host-{i}.example");
        drop(svc.clone().oneshot(get(&host)).await.unwrap());
        if i % 500 == 0 {
            assert!(handle.snapshot().pools.len() <= 10);
        }
    }
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.pools.len(), 10);
    assert_eq!(
        snapshot.total.max, 40,
        "max is maxsize times the pools tracked"
    );
    assert_eq!(snapshot.total.in_use, 0);
}

#[tokio::test(start_paused = true)]
async fn a_key_function_chooses_the_pool() {
    let layer = PoolLimitLayer::builder(1)
        .fail_fast()
        .key_fn(|request: &http::Request<()>| {
            request
                .headers()
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("anonymous")
                .to_owned()
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));
    let tenant = |name: &'static str| {
        http::Request::get("http://shared.example/")
            .header("x-tenant", name)
            .body(())
            .unwrap()
    };
    let a = svc.clone().oneshot(tenant("a")).await.unwrap();
    let b = svc.clone().oneshot(tenant("b")).await.unwrap();
    let err = svc.clone().oneshot(tenant("a")).await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::PoolFull);
    let keys: BTreeSet<_> = handle
        .snapshot()
        .pools
        .into_iter()
        .filter_map(|p| p.key)
        .collect();
    assert_eq!(keys, set(&["\"a\"", "\"b\""]));
    drop((a, b));
}

/// On a server the URI has no authority: the `Host` header (client-controlled) must not
/// split the limit into pools of its own (issue 16).
#[tokio::test(start_paused = true)]
async fn a_server_shares_one_pool_whatever_the_host_header() {
    let layer = PoolLimitLayer::builder(1).fail_fast().build().unwrap();
    let svc = layer.layer(slow(Duration::ZERO));
    let request = |host: &'static str| {
        http::Request::get("/index.html")
            .header("host", host)
            .body(())
            .unwrap()
    };
    let a = svc.clone().oneshot(request("a.local")).await.unwrap();
    for host in ["b.local", "a.local", "c.local:8080"] {
        assert_eq!(
            kind(&svc.clone().oneshot(request(host)).await.unwrap_err()),
            FailureKind::PoolFull,
            "{host}"
        );
    }
    assert_eq!(keys(&layer), set(&["(no host)"]));
    drop(a);
}

/// A thread keeps its last pool to find it without a lookup; that never keeps the pool in
/// the map, and once another thread's call evicted it, the thread's next call to that host
/// takes a permit of the pool the map holds, not of the evicted one.
#[test]
fn a_threads_last_pool_never_outlives_its_place_in_the_map() {
    let layer = PoolLimitLayer::builder(1)
        .max_pools(1)
        .fail_fast()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let here = runtime();
    // This thread's last pool is `a`'s (twice: the second call finds it kept).
    for _ in 0..2 {
        drop(here.block_on(svc.clone().oneshot(get("a"))).unwrap());
    }
    // Another thread's call to `b` evicts `a`'s idle pool (the bound is one pool).
    let other = svc.clone();
    std::thread::spawn(move || drop(runtime().block_on(other.oneshot(get("b"))).unwrap()))
        .join()
        .unwrap();
    assert_eq!(keys(&layer), set(&["http://b:80"]));
    // `a` again: a new pool in the map, whose permit this call holds.
    let held = here.block_on(svc.clone().oneshot(get("a"))).unwrap();
    assert_eq!(keys(&layer), set(&["http://a:80"]));
    assert_eq!(
        handle.snapshot().total.in_use,
        1,
        "the map's pool holds the call"
    );
    let err = here.block_on(svc.clone().oneshot(get("a"))).unwrap_err();
    assert_eq!(kind(&err), FailureKind::PoolFull, "one pool, one limit");
    drop(held);
    assert_eq!(handle.snapshot().total.in_use, 0);
}

/// One call to `host` on another thread (its own runtime), whose last pool it becomes.
fn call_elsewhere<S>(svc: &S, host: &'static str)
where
    S: tower::Service<crate::support::Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let svc = svc.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        drop(rt.block_on(svc.oneshot(get(host))).unwrap());
    })
    .join()
    .unwrap();
}

/// Two pools at most: a called on this thread, then b on another, then a `a_calls` times
/// more on this thread (its last pool), then c on another, which evicts the least recently
/// used pool. A map search stamps a pool as used; a call through the thread's last pool
/// does not, but one in 64 touches it: which pool c evicts shows which of a's calls did.
async fn a_then_b_then_a_then_c(a_calls: u32) -> PoolLimitLayer {
    let layer = PoolLimitLayer::builder(1).max_pools(2).build().unwrap();
    let svc = layer.layer(slow(Duration::ZERO));
    drop(svc.clone().oneshot(get("a")).await.unwrap());
    call_elsewhere(&svc, "b");
    for _ in 0..a_calls {
        drop(svc.clone().oneshot(get("a")).await.unwrap());
    }
    call_elsewhere(&svc, "c");
    layer
}

#[tokio::test]
async fn a_pool_called_through_the_threads_last_pool_stays_recently_used() {
    // One of a's calls through the thread's last pool stamps it: b is evicted.
    let layer = a_then_b_then_a_then_c(65).await;
    assert_eq!(keys(&layer), set(&["http://a:80", "http://c:80"]));
}

#[tokio::test]
async fn calls_through_the_threads_last_pool_search_no_map() {
    // Three calls through the thread's last pool stamp nothing: a is evicted.
    let layer = a_then_b_then_a_then_c(3).await;
    assert_eq!(keys(&layer), set(&["http://b:80", "http://c:80"]));
}
