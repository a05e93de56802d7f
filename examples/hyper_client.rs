//! The fortified HTTPS client in one call: `ClientConfig::default().https()?`.
//!
//! Starts an HTTPS server on 127.0.0.1 with a certificate from a certificate authority
//! made at start-up (rcgen), builds the client with that CA as its only root, keeps it in
//! a struct field of its named type (`HttpsClient`), and sends it through scenarios in
//! which the server misbehaves once, printing what the stack did: the retry history from
//! the response's extensions (or from the `RetryError`, or from a failure returned as it
//! is), the per-host pool snapshot and the per-host breaker state.
//!
//! - a GET answered `503` with `Retry-After: 1`, then `200`: retried after the 1 s the
//!   server asked for;
//! - a POST whose response is lost (the server closes the connection after reading it):
//!   not retried, since it may have been processed;
//! - the same with an `idempotency-key` header and the `Idempotent` marker: retried, and
//!   the server answers the replay from its record of the key;
//! - a GET to a refused port: five immediate connect retries, then `RetryError`.
//!
//! ```text
//! cargo run --example hyper_client --features client
//! ```

use bytes::Bytes;
use fortify_test_support::local_tls::LocalTls;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_fortify::{
    classify::Failure,
    client::{HttpsClient, TlsRoots},
    pool::PoolBody,
    retry::{error::RetryError, Idempotent, RetryCause, RetryHistory},
    stack::ClientConfig,
    BoxError,
};

/// A backend of the application: the fortified HTTPS client.
struct Backend {
    http: HttpsClient,
}

impl Backend {
    fn new(roots: TlsRoots) -> Result<Self, BoxError> {
        // The one call (with the default roots, `ClientConfig::default().https()?`):
        let http = ClientConfig::default()
            .name("orders")
            .tls_roots(roots)
            .https()?;
        Ok(Backend { http })
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<PoolBody<Incoming>>, BoxError> {
        self.http.clone().oneshot(request).await
    }

    fn report(&self) {
        let pools = self.http.pool_handle().snapshot();
        for pool in &pools.pools {
            println!(
                "    pool {}: {} in use of {}, {} waiting",
                pool.key.as_deref().unwrap_or("-"),
                pool.in_use,
                pool.max,
                pool.waiting
            );
        }
        for breaker in self.http.breaker_handle().breakers() {
            let figures = breaker.figures();
            println!(
                "    breaker {}: {}, {} failures in {} calls",
                breaker.key().unwrap_or("-"),
                breaker.state(),
                figures.failures(),
                figures.calls()
            );
        }
    }
}

fn print_history(history: Option<&RetryHistory>) {
    let Some(history) = history else {
        println!("    retries: none");
        return;
    };
    for (n, record) in history.records().iter().enumerate() {
        let cause = match record.cause() {
            RetryCause::Status(status) => format!("status {}", status.as_u16()),
            RetryCause::Failure(kind) => format!("failure {kind}"),
            other => format!("{other:?}"),
        };
        println!(
            "    retry {}: after {cause} ({} counter), slept {} ms",
            n + 1,
            record.category().as_str(),
            record.sleep().as_millis()
        );
    }
    if let Some(stop) = history.stop() {
        println!("    stopped: {}", stop.as_str());
    }
}

/// The `RetryError` of a call that gave up. The stack's outer `ErrorClassify` wraps it in
/// a `Failure` of the last attempt's kind, so look inside that too.
fn retry_error(err: &BoxError) -> Option<&RetryError> {
    err.downcast_ref::<RetryError>().or_else(|| {
        err.downcast_ref::<Failure>()?
            .get_ref()
            .downcast_ref::<RetryError>()
    })
}

fn print_error(err: &BoxError) {
    match err.downcast_ref::<Failure>() {
        Some(failure) => println!(
            "    error kind {} ({} category)",
            failure.kind(),
            failure
                .kind()
                .category()
                .map_or("never retried", |c| c.as_str())
        ),
        None => println!("    error (unclassified): {err}"),
    }
    match retry_error(err) {
        // Stopped, or not retryable itself (a POST after it was sent, say) after retries.
        Some(retry) => {
            println!("    gave up: {retry}");
            print_history(Some(retry.history()));
        }
        None => println!("    not retried: {err}"),
    }
}

// ===== the misbehaving server =====

#[derive(Default)]
struct ServerState {
    flaky_calls: AtomicU32,
    /// Orders by idempotency key: (order number, attempts seen).
    orders: Mutex<HashMap<String, (u32, u32)>>,
    next_order: AtomicU32,
}

async fn handle(
    state: Arc<ServerState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, io::Error> {
    let (parts, body) = request.into_parts();
    // Read the whole request, so that it surely reached the server.
    let _ = body.collect().await;
    match (parts.method, parts.uri.path()) {
        (Method::GET, "/flaky") => {
            if state.flaky_calls.fetch_add(1, Ordering::Relaxed) == 0 {
                return Ok(Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .header("retry-after", "1")
                    .body(Full::new(Bytes::from_static(b"warming up")))
                    .expect("a valid response"));
            }
            Ok(Response::new(Full::new(Bytes::from_static(b"fresh data"))))
        }
        (Method::POST, "/orders") => {
            let key = parts
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let (order, attempts) = {
                let mut orders = state.orders.lock().expect("not poisoned");
                let entry = orders
                    .entry(key)
                    .or_insert_with(|| (state.next_order.fetch_add(1, Ordering::Relaxed) + 1, 0));
                entry.1 += 1;
                *entry
            };
            if attempts == 1 {
                // The order is created, then the response is lost: returning an error makes
                // hyper close the connection without answering.
                return Err(io::Error::other("response lost"));
            }
            Ok(Response::new(Full::new(Bytes::from(format!(
                "order #{order} (seen {attempts} times)"
            )))))
        }
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new()))
            .expect("a valid response")),
    }
}

/// The misbehaving server, over HTTPS with a certificate of the local CA.
async fn start_server(tls: &LocalTls) -> io::Result<SocketAddr> {
    let state = Arc::new(ServerState::default());
    tls.serve(service_fn(move |req| handle(Arc::clone(&state), req)))
        .await
}

async fn refused_addr() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    listener.local_addr()
}

fn post(uri: &str, key: Option<&str>) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut builder = Request::post(uri).header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    let mut request = builder.body(Full::new(Bytes::from_static(b"{\"item\":\"book\"}")))?;
    if key.is_some() {
        // The server deduplicates by key: safe to send again.
        request.extensions_mut().insert(Idempotent);
    }
    Ok(request)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let tls = LocalTls::new()?;
    let addr = start_server(&tls).await?;
    let refused = refused_addr().await?;
    let backend = Backend::new(TlsRoots::Custom(tls.roots()))?;
    println!(
        "server on https://{addr} (local CA); connector: resolve -> connect -> TLS handshake; \
         stack: classify -> retry -> breaker -> pool -> timeout\n"
    );

    // 1. 503 + Retry-After, then 200.
    println!("GET /flaky (503 with Retry-After: 1 once, then 200)");
    let started = Instant::now();
    let request = Request::get(format!("https://{addr}/flaky")).body(Full::new(Bytes::new()))?;
    let response = backend.send(request).await?;
    println!(
        "    {} after {} ms",
        response.status(),
        started.elapsed().as_millis()
    );
    print_history(response.extensions().get::<RetryHistory>());
    println!("  while the body is unread, its permit is held:");
    backend.report();
    let body = response.into_body().collect().await?.to_bytes();
    println!("  body {:?}; once read, the permit is back:", body);
    backend.report();

    // 2. A POST whose response is lost, without an idempotency key: not retried.
    println!("\nPOST /orders without idempotency key (response lost once)");
    match backend
        .send(post(&format!("https://{addr}/orders"), None)?)
        .await
    {
        Ok(response) => println!("    unexpected {}", response.status()),
        Err(err) => print_error(&err),
    }

    // 3. The same with a key and the `Idempotent` marker: retried, answered from the record.
    println!("\nPOST /orders with idempotency-key and the Idempotent marker (response lost once)");
    let response = backend
        .send(post(
            &format!("https://{addr}/orders"),
            Some("5f1c2e7a-order-42"),
        )?)
        .await?;
    let history = response.extensions().get::<RetryHistory>().cloned();
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("    {status}: {}", String::from_utf8_lossy(&body));
    print_history(history.as_ref());

    // 4. A refused port: connect failures are retried at once, then the call gives up.
    println!("\nGET https://{refused}/ (nothing listens)");
    let started = Instant::now();
    let request = Request::get(format!("https://{refused}/")).body(Full::new(Bytes::new()))?;
    match backend.send(request).await {
        Ok(response) => println!("    unexpected {}", response.status()),
        Err(err) => {
            println!("    failed after {} ms", started.elapsed().as_millis());
            print_error(&err);
        }
    }

    println!("\nlayer state at the end:");
    backend.report();
    Ok(())
}
