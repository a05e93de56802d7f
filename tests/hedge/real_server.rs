//! A hyper server on 127.0.0.1 that counts its requests and answers each after the delay
//! the test scripted, a hyper-util client behind a per-host pool limit and the hedge layer:
//! the hedge wins against a stalled request, the loser's pool permit comes back, a POST is
//! never duplicated.

use bytes::Bytes;
use fortify_test_support::delayed::delayed;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};
use tower::{Layer, ServiceExt};
use tower_fortify::{
    hedge::{Hedge, HedgeLayer},
    pool::{PoolHandle, PoolLimit, PoolLimitLayer},
    retry::Idempotent,
};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The hedge (p95, at least 100 ms, after 5 samples) around a per-host pool of 2 around
/// the client.
fn stack() -> (HedgeLayer, PoolHandle, Hedge<PoolLimit<HttpClient>>) {
    let hedge = HedgeLayer::builder()
        .min_delay(Duration::from_millis(100))
        .min_samples(5)
        .build()
        .unwrap();
    let pool = PoolLimitLayer::builder(2)
        .block(true)
        .pool_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    let handle = pool.handle();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let svc = hedge.layer(pool.layer(client));
    (hedge, handle, svc)
}

fn request(method: Method, addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}/"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

/// Five GETs answered at once: the host's delay is then the floor, 100 ms.
async fn warm(svc: &Hedge<PoolLimit<HttpClient>>, addr: SocketAddr, hedge: &HedgeLayer) {
    for _ in 0..5 {
        let response = svc
            .clone()
            .oneshot(request(Method::GET, addr))
            .await
            .unwrap();
        response.into_body().collect().await.unwrap();
    }
    let uri = format!("http://{addr}/").parse().unwrap();
    assert_eq!(hedge.hedge_delay(&uri), Some(Duration::from_millis(100)));
}

#[tokio::test]
async fn a_stalled_request_is_hedged_and_the_losers_permit_comes_back() {
    let (addr, server) = delayed().await;
    let (hedge, pool, svc) = stack();
    warm(&svc, addr, &hedge).await;

    // The sixth request stalls for a minute; its hedge is answered at once.
    server.slow_after(5, Duration::from_secs(60));
    let start = Instant::now();
    let response = svc
        .clone()
        .oneshot(request(Method::GET, addr))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(30),
        "the hedge answered: {elapsed:?}"
    );
    assert_eq!(server.arrivals().len(), 7);

    // The stalled request was dropped: only the winner's body holds a permit.
    assert_eq!(pool.snapshot().total.in_use, 1);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
    assert_eq!(pool.snapshot().total.in_use, 0);
}

#[tokio::test]
async fn a_fast_answer_sends_no_hedge() {
    let (addr, server) = delayed().await;
    let (hedge, pool, svc) = stack();
    warm(&svc, addr, &hedge).await;
    for _ in 0..5 {
        let response = svc
            .clone()
            .oneshot(request(Method::GET, addr))
            .await
            .unwrap();
        response.into_body().collect().await.unwrap();
    }
    // Each answered long before its 100 ms delay: once each.
    assert_eq!(server.arrivals().len(), 10);
    assert_eq!(pool.snapshot().total.in_use, 0);
}

#[tokio::test]
async fn a_post_is_never_duplicated_unless_marked() {
    let (addr, server) = delayed().await;
    let (hedge, _pool, svc) = stack();
    warm(&svc, addr, &hedge).await;

    // A POST that takes three hedge delays: sent once.
    server.slow_after(5, Duration::from_millis(300));
    let response = svc
        .clone()
        .oneshot(request(Method::POST, addr))
        .await
        .unwrap();
    response.into_body().collect().await.unwrap();
    assert_eq!(
        server.arrivals(),
        [vec![Method::GET; 5], vec![Method::POST]].concat()
    );

    // Marked idempotent (the server deduplicates it by its key): hedged.
    server.slow_after(6, Duration::from_secs(60));
    let mut marked = request(Method::POST, addr);
    marked.extensions_mut().insert(Idempotent);
    let response = svc.oneshot(marked).await.unwrap();
    response.into_body().collect().await.unwrap();
    assert_eq!(server.arrivals().len(), 8);
}
