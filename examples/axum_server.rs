//! An axum 0.8 server that sheds load and protects itself from a failing downstream.
//!
//! - **Load shedding**: the whole router is wrapped in a `PoolLimitLayer` in fail-fast mode
//!   (one pool of `MAX_IN_FLIGHT` permits for the server). A request that finds every permit
//!   taken fails at once with a `PoolFull` failure, which axum's `HandleErrorLayer` turns
//!   into `503 Service Unavailable` with `Retry-After: 1`. The permit rides in the response
//!   body (`PoolBody`) until hyper has written it. `HandleErrorLayer` converts the
//!   `Response<PoolBody<Body>>` with `IntoResponse`, so the stack's response is axum's own
//!   `Response<Body>` and fits `axum::serve` with no extra body mapping.
//! - **Circuit breaker**: the `/quote` handler calls a downstream HTTP service (another tiny
//!   server started here, which can be flipped to answer 500) through the preset client
//!   stack, kept in axum's `State` under its named type
//!   `ClientStack<Client<HttpConnector, Full<Bytes>>>`. When the downstream fails, its
//!   host's breaker opens and the handler answers `503` at once, without calling it, with
//!   the breaker's `Retry-After`; after the open duration, probes close it again.
//!
//! The breaker's figures printed along the way lag behind for successes: each thread adds
//! its successes to the window in batches (see the circuit breaker module's "Cost"); a
//! failure pushes them in at once.
//!
//! The example drives itself over 127.0.0.1: a burst of concurrent requests (count of 200
//! vs 503), then the downstream flipped to failing (breaker opens), then back (recovery),
//! prints a summary and exits.
//!
//! ```text
//! cargo run --example axum_server
//! ```

use axum::{
    error_handling::HandleErrorLayer,
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use std::{
    error::Error,
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::net::TcpListener;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_fortify::{
    circuit_breaker::{error::Open, CircuitBreakerLayer, State as BreakerState},
    classify::{Failure, FailureKind},
    key::HostKey,
    pool::PoolLimitLayer,
    stack::{ClientConfig, ClientStack, ClientStackLayer},
    BoxError,
};

/// Requests the server handles at once; the rest are shed.
const MAX_IN_FLIGHT: usize = 8;
/// Concurrent requests in the burst.
const BURST: usize = 40;
/// How long `/slow` works.
const SLOW: Duration = Duration::from_millis(300);
/// How long the downstream's breaker stays open after it trips.
const OPEN_FOR: Duration = Duration::from_millis(500);

type Downstream = ClientStack<Client<HttpConnector, Full<Bytes>>>;

/// The router's state: the fortified client of the downstream service.
#[derive(Clone)]
struct AppState {
    downstream: Downstream,
    price_uri: Arc<str>,
}

// ===== handlers =====

async fn slow() -> &'static str {
    tokio::time::sleep(SLOW).await;
    "done\n"
}

async fn quote(State(app): State<AppState>) -> Response {
    let request = http::Request::get(&*app.price_uri)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    match app.downstream.clone().oneshot(request).await {
        Ok(response) if response.status().is_success() => {
            match response.into_body().collect().await {
                Ok(body) => (StatusCode::OK, body.to_bytes()).into_response(),
                Err(err) => {
                    (StatusCode::BAD_GATEWAY, format!("downstream body: {err}\n")).into_response()
                }
            }
        }
        // Dropping the response gives its pool permit back.
        Ok(response) => (
            StatusCode::BAD_GATEWAY,
            format!("downstream answered {}\n", response.status()),
        )
            .into_response(),
        Err(err) => downstream_error(&*err),
    }
}

fn downstream_error(err: &(dyn Error + 'static)) -> Response {
    let kind = err.downcast_ref::<Failure>().map(Failure::kind);
    if kind != Some(FailureKind::CircuitOpen) {
        return (
            StatusCode::BAD_GATEWAY,
            format!("downstream failed: {err}\n"),
        )
            .into_response();
    }
    // Tell our callers when the breaker will let a probe through.
    let open =
        std::iter::successors(Some(err), |&e| e.source()).find_map(|e| e.downcast_ref::<Open>());
    let secs = open
        .and_then(Open::retry_in)
        .map_or(1, |d| d.as_secs_f64().ceil().max(1.0) as u64);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, secs.to_string())],
        "downstream circuit open\n",
    )
        .into_response()
}

/// What the server answers when the pool limit rejects a request (or anything else fails
/// below `HandleErrorLayer`).
async fn overloaded(err: BoxError) -> Response {
    match err.downcast_ref::<Failure>().map(Failure::kind) {
        Some(FailureKind::PoolFull) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "overloaded, try again\n",
        )
            .into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}

// ===== the downstream service =====

struct DownstreamServer {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
}

impl DownstreamServer {
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }
}

async fn start_downstream() -> io::Result<DownstreamServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let failing = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU32::new(0));
    let (f, c) = (Arc::clone(&failing), Arc::clone(&calls));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (failing, calls) = (Arc::clone(&f), Arc::clone(&c));
            tokio::spawn(async move {
                let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    let response = if failing.load(Ordering::Relaxed) {
                        http::Response::builder()
                            .status(StatusCode::INTERNAL_SERVER_ERROR)
                            .body(Full::new(Bytes::from_static(b"database down")))
                    } else {
                        http::Response::builder().body(Full::new(Bytes::from_static(b"42.00\n")))
                    };
                    std::future::ready(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(DownstreamServer {
        addr,
        failing,
        calls,
    })
}

// ===== the server =====

async fn start_server(downstream: Downstream, price_uri: String) -> Result<SocketAddr, BoxError> {
    let router = Router::new()
        .route("/slow", get(slow))
        .route("/quote", get(quote))
        .with_state(AppState {
            downstream,
            price_uri: price_uri.into(),
        });
    // One pool for the whole server (`per_host(false)`: a server's requests have no
    // authority to key on), failing fast when full.
    let shed = PoolLimitLayer::builder(MAX_IN_FLIGHT)
        .per_host(false)
        .fail_fast()
        .name("server")
        .build()?;
    let app = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .layer(shed)
        .service(router);

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, tower::make::Shared::new(app)).await {
            eprintln!("server error: {err}");
        }
    });
    Ok(addr)
}

// ===== the driver =====

type Driver = Client<HttpConnector, Empty<Bytes>>;

async fn get_status(client: &Driver, uri: &str) -> Result<(StatusCode, Duration), BoxError> {
    let started = Instant::now();
    let response = client.get(uri.parse()?).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok((status, started.elapsed()))
}

fn breaker_state(layer: &ClientStackLayer, key: &HostKey) -> String {
    match layer.breaker_handle().get(key) {
        Some(breaker) => {
            let figures = breaker.figures();
            format!(
                "{} ({} failures in {} calls)",
                breaker.state(),
                figures.failures(),
                figures.calls()
            )
        }
        None => "not tracked yet".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let downstream = start_downstream().await?;
    let config = ClientConfig::default().name("quotes").circuit_breaker(
        CircuitBreakerLayer::builder()
            .minimum_calls(5)
            .open_duration(OPEN_FOR)
            .open_duration_jitter(0.0),
    );
    let layer = config.build()?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(layer.connect_timeout()));
    let client = layer.layer(Client::builder(TokioExecutor::new()).build(connector));
    let addr = start_server(client, format!("http://{}/price", downstream.addr)).await?;
    let key = downstream.addr.to_string();
    // The downstream's breaker: one per scheme, host and port, as the pools.
    let host_key = HostKey::from_uri(&format!("http://{key}").parse()?);
    println!("axum server on http://{addr}, downstream on http://{key}\n");

    let driver: Driver = Client::builder(TokioExecutor::new()).build_http();

    // 1. Load shedding: a burst of slow requests against MAX_IN_FLIGHT permits.
    let slow_uri: Arc<str> = format!("http://{addr}/slow").into();
    let started = Instant::now();
    let burst: Vec<_> = (0..BURST)
        .map(|_| {
            let (driver, uri) = (driver.clone(), Arc::clone(&slow_uri));
            tokio::spawn(async move { get_status(&driver, &uri).await })
        })
        .collect();
    let (mut ok, mut shed, mut other) = (0, 0, 0);
    let mut slowest_shed = Duration::ZERO;
    for task in burst {
        match task.await? {
            Ok((StatusCode::OK, _)) => ok += 1,
            Ok((StatusCode::SERVICE_UNAVAILABLE, took)) => {
                shed += 1;
                slowest_shed = slowest_shed.max(took);
            }
            _ => other += 1,
        }
    }
    println!(
        "burst of {BURST} concurrent GET /slow ({} ms each), {MAX_IN_FLIGHT} in flight at most:",
        SLOW.as_millis()
    );
    println!(
        "    {ok} x 200, {shed} x 503 (shed, slowest answer {} ms), {other} other; {} ms in all",
        slowest_shed.as_millis(),
        started.elapsed().as_millis()
    );

    // 2. The downstream is healthy.
    let quote_uri = format!("http://{addr}/quote");
    let mut healthy = 0;
    for _ in 0..5 {
        if get_status(&driver, &quote_uri).await?.0 == StatusCode::OK {
            healthy += 1;
        }
    }
    println!("\ndownstream healthy: {healthy}/5 GET /quote answered 200");
    println!("    breaker {key}: {}", breaker_state(&layer, &host_key));

    // 3. The downstream fails: the breaker opens, and calls stop reaching it.
    downstream.set_failing(true);
    println!("\ndownstream flipped to failing (500):");
    let reached_before = downstream.calls();
    let (mut bad_gateway, mut open) = (0, 0);
    for n in 1..=12 {
        let (status, took) = get_status(&driver, &quote_uri).await?;
        match status {
            StatusCode::BAD_GATEWAY => bad_gateway += 1,
            StatusCode::SERVICE_UNAVAILABLE => open += 1,
            _ => {}
        }
        println!(
            "    request {n:>2}: {status} in {:>5.2} ms, breaker {}",
            took.as_secs_f64() * 1e3,
            breaker_state(&layer, &host_key)
        );
    }
    let reached = downstream.calls() - reached_before;
    println!(
        "    {bad_gateway} x 502, {open} x 503 circuit open; the downstream saw {reached} of 12"
    );

    // 4. The downstream recovers: after the open duration, probes close the breaker.
    downstream.set_failing(false);
    println!("\ndownstream flipped back to healthy:");
    let (status, _) = get_status(&driver, &quote_uri).await?;
    println!(
        "    at once: {status}, breaker {}",
        breaker_state(&layer, &host_key)
    );
    tokio::time::sleep(OPEN_FOR + Duration::from_millis(100)).await;
    let mut recovered_after = None;
    for n in 1..=5 {
        let (status, _) = get_status(&driver, &quote_uri).await?;
        let state = layer.breaker_handle().get(&host_key).map(|b| b.state());
        println!(
            "    after {} ms, request {n}: {status}, breaker {}",
            OPEN_FOR.as_millis() + 100,
            breaker_state(&layer, &host_key)
        );
        if state == Some(BreakerState::Closed) {
            recovered_after = Some(n);
            break;
        }
    }

    println!("\nsummary:");
    println!("    load shedding: {ok} served, {shed} shed with 503 out of {BURST}");
    println!(
        "    breaker: opened after {bad_gateway} failures, {open} calls rejected without reaching the downstream"
    );
    match recovered_after {
        Some(n) => println!("    recovery: closed again after {n} successful probe(s)"),
        None => println!("    recovery: breaker not closed yet"),
    }
    let pools = layer.pool_handle().snapshot();
    println!(
        "    downstream pool: {} in use of {} now",
        pools.total.in_use, pools.total.max
    );
    Ok(())
}
