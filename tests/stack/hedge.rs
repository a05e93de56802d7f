//! Hedging in the preset (`ClientConfig::hedge`): a hyper server on 127.0.0.1 that answers
//! each request after the delay the test scripted, behind the whole stack over
//! hyper-util's client. The hedge wins against a stalled request and the loser's pool
//! permit comes back; a POST without the `Idempotent` marker is never duplicated; no hedge
//! goes out when the retry budget is spent or the host's breaker is open.

use bytes::Bytes;
use fortify_test_support::delayed::{delayed, Delayed};
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
use tower::{ServiceBuilder, ServiceExt};
use tower_fortify::{
    hedge::HedgeLayer,
    key::HostKey,
    retry::{Idempotent, RetryBudget, RetryPolicy},
    stack::{ClientConfig, ClientStack, ClientStackLayer, Hedged},
    ServiceBuilderExt,
};

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type Preset = ClientStack<HttpClient, Hedged>;

/// The hedge delay after the warm-up: every answer came at once, so the floor.
const DELAY: Duration = Duration::from_millis(100);

/// The preset with `config`'s settings and a hedge after p95, at least 100 ms, from the
/// fifth answer on, around hyper-util's client (through `ServiceBuilder::client_stack`,
/// which takes the hedged layer as it takes the plain one).
fn preset(config: ClientConfig) -> (ClientStackLayer<Hedged>, Preset) {
    let layer = config
        .hedge(HedgeLayer::builder().min_delay(DELAY).min_samples(5))
        .build()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new()
        .client_stack(layer.clone())
        .service(client);
    (layer, svc)
}

fn request(method: Method, addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}/"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

/// One call through the preset, its body read; how long it took.
async fn call(svc: &Preset, request: Request<Full<Bytes>>) -> Duration {
    let start = Instant::now();
    let response = svc.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
    start.elapsed()
}

/// Five GETs answered at once: the host's hedge delay is then the floor.
async fn warm(layer: &ClientStackLayer<Hedged>, svc: &Preset, addr: SocketAddr) {
    for _ in 0..5 {
        call(svc, request(Method::GET, addr)).await;
    }
    let uri = format!("http://{addr}/").parse().unwrap();
    assert_eq!(layer.hedge().hedge_delay(&uri), Some(DELAY));
}

/// A warmed preset with `config`'s settings whose next request (the sixth) stalls for
/// `stall`.
async fn stalling(
    config: ClientConfig,
    stall: Duration,
) -> (ClientStackLayer<Hedged>, Preset, SocketAddr, Delayed) {
    let (addr, server) = delayed().await;
    let (layer, svc) = preset(config);
    warm(&layer, &svc, addr).await;
    server.slow_after(5, stall);
    (layer, svc, addr, server)
}

/// A retry budget of 60 retries (one a second over a minute), none earned by requests.
fn budget() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(60), 1, 0.0).unwrap()
}

/// The default settings with `budget` as the retry policy's budget.
fn paying_from(budget: &RetryBudget) -> ClientConfig {
    ClientConfig::default().retry(RetryPolicy::production().budget(budget.clone()))
}

#[tokio::test]
async fn a_stalled_get_is_hedged_the_hedge_wins_and_the_losers_permit_comes_back() {
    let budget = budget();
    let (layer, svc, addr, server) = stalling(paying_from(&budget), Duration::from_secs(60)).await;
    let pool = layer.pool_handle();
    let available = budget.available();

    let start = Instant::now();
    let response = svc
        .clone()
        .oneshot(request(Method::GET, addr))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= DELAY, "sent after the delay: {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "the hedge answered, long before the attempt timeout: {elapsed:?}"
    );
    assert_eq!(server.arrivals(), vec![Method::GET; 7]);
    assert_eq!(
        budget.available(),
        available - 1,
        "paid from the retry budget"
    );
    // The stalled attempt was dropped: only the winner's body holds a permit.
    assert_eq!(pool.snapshot().total.in_use, 1);
    response.into_body().collect().await.unwrap();
    assert_eq!(pool.snapshot().total.in_use, 0);
}

#[tokio::test]
async fn a_post_without_the_marker_is_never_hedged() {
    let stall = 3 * DELAY;
    let (_layer, svc, addr, server) = stalling(ClientConfig::default(), stall).await;

    let elapsed = call(&svc, request(Method::POST, addr)).await;
    assert!(elapsed >= stall, "its own answer: {elapsed:?}");
    let posts = vec![
        Method::GET,
        Method::GET,
        Method::GET,
        Method::GET,
        Method::GET,
        Method::POST,
    ];
    assert_eq!(server.arrivals(), posts);

    // Marked idempotent: hedged, and the hedge answers first.
    server.slow_after(6, Duration::from_secs(60));
    let mut marked = request(Method::POST, addr);
    marked.extensions_mut().insert(Idempotent);
    let elapsed = call(&svc, marked).await;
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(server.arrivals().len(), 8);
}

#[tokio::test]
async fn no_hedge_when_the_retry_budget_is_spent() {
    let budget = budget();
    let stall = 3 * DELAY;
    let (_layer, svc, addr, server) = stalling(paying_from(&budget), stall).await;
    while budget.withdraw() {}

    let elapsed = call(&svc, request(Method::GET, addr)).await;
    assert!(elapsed >= stall, "its own answer: {elapsed:?}");
    assert_eq!(server.arrivals().len(), 6, "no hedge");
}

#[tokio::test]
async fn no_hedge_when_the_hosts_breaker_is_open() {
    let budget = budget();
    let stall = 3 * DELAY;
    let (layer, svc, addr, server) = stalling(paying_from(&budget), stall).await;
    let available = budget.available();

    // The breaker opens while the sixth request waits for its answer, before its delay.
    let stalled = tokio::spawn({
        let svc = svc.clone();
        async move { call(&svc, request(Method::GET, addr)).await }
    });
    tokio::time::sleep(DELAY / 2).await;
    let uri = format!("http://{addr}/").parse().unwrap();
    let breaker = layer
        .breaker_handle()
        .get(&HostKey::from_uri(&uri))
        .unwrap();
    breaker.force_open();

    let elapsed = stalled.await.unwrap();
    assert!(elapsed >= stall, "its own answer: {elapsed:?}");
    assert_eq!(server.arrivals().len(), 6, "no hedge");
    // Not even one the breaker would have rejected: nothing was withdrawn for it.
    assert_eq!(budget.available(), available);
}

/// The HTTPS client (`ClientConfig::https`) gets the same hedging from the same setting
/// (here to a plain `http://` URI: the same connector, client and stack).
#[cfg(feature = "client")]
#[tokio::test]
async fn the_https_client_hedges_through_the_same_setting() {
    use tower_fortify::client::HttpsClient;

    let (addr, server) = delayed().await;
    let client: HttpsClient<Full<Bytes>, Hedged> = ClientConfig::default()
        .hedge(HedgeLayer::builder().min_delay(DELAY).min_samples(5))
        .https()
        .unwrap();
    for _ in 0..5 {
        let response = client
            .clone()
            .oneshot(request(Method::GET, addr))
            .await
            .unwrap();
        response.into_body().collect().await.unwrap();
    }
    server.slow_after(5, Duration::from_secs(60));

    let start = Instant::now();
    let response = client
        .clone()
        .oneshot(request(Method::GET, addr))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        (DELAY..Duration::from_secs(5)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(server.arrivals().len(), 7);
    assert_eq!(client.pool_handle().snapshot().total.in_use, 1);
    response.into_body().collect().await.unwrap();
    assert_eq!(client.pool_handle().snapshot().total.in_use, 0);
}
