//! Loopback TLS: the fortified HTTPS client in one call (`ClientConfig::https()`) against a
//! bare hyper-util + hyper-rustls client with the same roots, the same server, in one run.
//!
//! The server is the demo's backend without faults (`FlakyBackend::start_tls`): HTTPS with
//! keep-alive on 127.0.0.1, a certificate for `backend.test` issued by a certificate
//! authority made at start-up, which both clients trust and nothing else; both resolve
//! `backend.test` through the backend's resolver. Server and clients share one tokio runtime
//! of two workers.
//!
//! Three groups:
//! - `tls/keep_alive`: `REQUESTS` GETs from `CONCURRENCY` tasks over kept-alive connections
//!   (handshakes happen once, at warm-up): the stack's cost on the request path, as a
//!   throughput ratio (target: fortified ≥ 0.95 of bare);
//! - `tls/connection_per_request`: one GET at a time with `connection: close`, so that each
//!   request opens a new connection and performs a TLS handshake, through both clients;
//! - `tls/new_connection`: the connectors alone, one new TLS connection per iteration: the
//!   bare hyper-rustls connector (the handshake's own time), the fortified connector with
//!   its telemetry recorded into a Prometheus recorder, and the same connector with no
//!   recorder (its metric handles do nothing): the difference of the last two is the
//!   telemetry's cost per new connection, reported against the handshake's time.
//!
//! After criterion's report, the ratios are printed from criterion's estimates of this run.
//! Figures from a loaded machine are noise; only the same run's ratios mean something.
//!
//! Run with `cargo bench --bench tls`.

#[path = "support/batches.rs"]
mod batches;
#[path = "support/estimates.rs"]
mod estimates;
use fortify_test_support::flaky;

use batches::{keep_alive_pair, time_batches};
use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use flaky::{Faults, FlakyBackend, TlsFaults};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::time::{Duration, SystemTime};
use tower::{Service, ServiceExt};
use tower_fortify::{client::TlsRoots, stack::ClientConfig, BoxError};

/// Requests per keep-alive iteration, and the tasks sending them.
const REQUESTS: usize = 256;
const CONCURRENCY: usize = 8;

/// GETs `uri` through `client` and reads the body to its end.
async fn get<S, B>(mut client: S, uri: Uri, close: bool)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut request = Request::get(uri);
    if close {
        request = request.header(http::header::CONNECTION, "close");
    }
    let request = request.body(Full::default()).expect("a valid request");
    let response = client
        .ready()
        .await
        .map_err(Into::into)
        .expect("ready")
        .call(request)
        .await
        .map_err(Into::into)
        .expect("a request over loopback TLS");
    assert!(response.status().is_success());
    response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)
        .expect("the body");
}

/// `REQUESTS` GETs from `CONCURRENCY` tasks, each on its own clone of the client.
async fn batch<S, B>(client: &S, uri: &Uri)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, uri) = (client.clone(), uri.clone());
        tasks.spawn(async move {
            for _ in 0..REQUESTS / CONCURRENCY {
                get(client.clone(), uri.clone(), false).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a task panicked");
    }
}

fn tls(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let backend = runtime.block_on(FlakyBackend::start_tls(Faults::none(), TlsFaults::none()));
    let uri = backend.uri("/item/1");

    // The bare client: hyper-util over hyper-rustls, the backend's roots only.
    let bare_connector = backend.https_connector(Duration::from_secs(3));
    let bare =
        Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(bare_connector.clone());

    // The fortified client in one call, its telemetry recorded (a Prometheus recorder, as
    // a service would install), and the same without a recorder.
    let config = || {
        ClientConfig::default()
            .name("bench")
            .tls_roots(TlsRoots::Custom(backend.roots()))
            .resolver(backend.resolver())
    };
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let (fortified, silent) = {
        let _entered = runtime.enter();
        let fortified = metrics::with_local_recorder(&recorder, || config().https::<Full<Bytes>>())
            .expect("a valid configuration");
        let silent = config()
            .https::<Full<Bytes>>()
            .expect("a valid configuration");
        (fortified, silent)
    };

    keep_alive_pair(
        c,
        &runtime,
        "tls/keep_alive",
        REQUESTS as u64,
        ("bare", || batch(&bare, &uri)),
        ("fortified", || batch(&fortified, &uri)),
    );

    let mut group = c.benchmark_group("tls/connection_per_request");
    group.sample_size(10);
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            time_batches(&runtime, iters, || get(bare.clone(), uri.clone(), true))
        })
    });
    group.bench_function("fortified", |b| {
        b.iter_custom(|iters| {
            time_batches(&runtime, iters, || {
                get(fortified.clone(), uri.clone(), true)
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("tls/new_connection");
    group.sample_size(10);
    let connect = |connector: tower_fortify::client::Connector| {
        let uri = uri.clone();
        async move {
            let connection = connector.oneshot(uri).await.expect("a TLS connection");
            drop(connection);
        }
    };
    group.bench_function("bare_handshake", |b| {
        b.iter_custom(|iters| {
            time_batches(&runtime, iters, || {
                let (connector, uri) = (bare_connector.clone(), uri.clone());
                async move {
                    let connection = connector.oneshot(uri).await.expect("a TLS connection");
                    drop(connection);
                }
            })
        })
    });
    group.bench_function("fortified_with_telemetry", |b| {
        b.iter_custom(|iters| {
            time_batches(&runtime, iters, || connect(fortified.connector().clone()))
        })
    });
    group.bench_function("fortified_without_recorder", |b| {
        b.iter_custom(|iters| time_batches(&runtime, iters, || connect(silent.connector().clone())))
    });
    group.finish();
    drop(backend);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .nresamples(10_000);
    targets = tls
}

// ===== summary =====

fn summary(since: SystemTime) {
    let e = |group: &str, function: &str| estimates::estimate(group, function, since);
    println!("\nsummary (one run; a shared machine: noisy, only the ratios of this run count)");
    if let (Some(bare), Some(fortified)) = (
        e("tls/keep_alive", "bare"),
        e("tls/keep_alive", "fortified"),
    ) {
        let per_second = |ns: f64| REQUESTS as f64 / (ns * 1e-9);
        println!(
            "keep-alive: bare {:.0} requests/s, fortified {:.0} requests/s; fortified / bare \
             throughput {:.3} (target >= 0.95); {:+.2} us per request",
            per_second(bare),
            per_second(fortified),
            bare / fortified,
            (fortified - bare) / REQUESTS as f64 / 1e3
        );
    }
    if let (Some(bare), Some(fortified)) = (
        e("tls/connection_per_request", "bare"),
        e("tls/connection_per_request", "fortified"),
    ) {
        println!(
            "connection per request: bare {:.1} us, fortified {:.1} us per request; fortified \
             / bare throughput {:.3}",
            bare / 1e3,
            fortified / 1e3,
            bare / fortified
        );
    }
    if let (Some(handshake), Some(with), Some(without)) = (
        e("tls/new_connection", "bare_handshake"),
        e("tls/new_connection", "fortified_with_telemetry"),
        e("tls/new_connection", "fortified_without_recorder"),
    ) {
        println!(
            "new connection: bare connector (resolve, TCP, handshake) {:.1} us; fortified {:.1} \
             us with telemetry, {:.1} us without a recorder; telemetry {:+.2} us per connection \
             = {:.2}% of the handshake's time",
            handshake / 1e3,
            with / 1e3,
            without / 1e3,
            (with - without) / 1e3,
            (with - without) / handshake * 100.0
        );
    }
}

fn main() {
    estimates::main_with_summary(benches, summary);
}
