//! Loopback TLS: the fortified HTTPS client in one call (`ClientConfig::https()`) against a
//! bare hyper-util + hyper-rustls client with the same roots, the same server, in one run.
//!
//! The server is the demo's backend without faults (`FlakyBackend::start_tls`): HTTPS with
//! keep-alive on 127.0.0.1, a certificate for `backend.test` issued by a certificate
//! authority made at start-up, which both clients trust and nothing else; both resolve
//! `backend.test` through the backend's resolver. Server and clients share one tokio runtime
//! of two workers.
//!
//! Four groups:
//! - `tls/keep_alive`: `REQUESTS` GETs from `CONCURRENCY` tasks over kept-alive connections
//!   (handshakes happen once, at warm-up, outside the timing): the request path, as a
//!   throughput ratio (target: `fortified` ≥ 0.95 of `bare`). Four clients, each adding one
//!   thing to the one before, so that the gap splits into its parts:
//!   - `bare`: hyper-util's legacy client over hyper-rustls;
//!   - `stack_over_bare`: the preset stack (`ClientConfig::build()`, the same settings)
//!     around that bare client, no recorder: the stack's cost;
//!   - `fortified_without_recorder`: `ClientConfig::https()` with no recorder installed
//!     (every metric handle a no-op): the client's own path on top (one hyper-util client
//!     shared by every clone, hyper-rustls's connection type, its hyper-util pool
//!     settings), which costs less than the bare client's;
//!   - `fortified`: the same client recording into a Prometheus recorder (as a service
//!     would install): the recording's cost on top;
//! - `tls/connection_per_request`: one GET at a time with `connection: close`, so that each
//!   request opens a new connection and performs a TLS handshake, through `bare` and
//!   `fortified`. Each client reads the server's session ticket with the response, so
//!   these handshakes resume a session (no certificate to verify);
//! - `tls/new_connection`: the connectors alone, one new TLS connection per iteration
//!   (closed before a session ticket is read: every handshake is a full one): the
//!   bare hyper-rustls connector (`bare_handshake`: resolve, TCP, the handshake's own
//!   time), the fortified connector with its telemetry recorded into the Prometheus recorder
//!   (`fortified_with_telemetry`), and the same connector with no recorder
//!   (`fortified_without_recorder`, its metric handles do nothing): the difference of the
//!   last two is the telemetry's cost per new connection, reported against the handshake's
//!   time;
//! - `tls/paired`: the comparisons that carry a claim measured again, each pair in
//!   alternating calls (`support/paired.rs`), so that the ratio compares calls made in the
//!   same moments: keep-alive `fortified` against `bare` (the target), the same harness on
//!   `bare` against itself (a control: 1.000 or the harness favours a side), and a new
//!   connection with telemetry against none (per connection; the ratio's excess over 1 is
//!   the telemetry's share of the handshake). Sequential criterion functions a few
//!   percent apart trade places from run to run as the machine drifts; alternating calls
//!   share the drift, so that it cancels out of the ratio.
//!
//! After criterion's report, the ratios are printed from criterion's estimates of this run.
//! Figures from a loaded machine are noise; only the same run's ratios mean something.
//!
//! Run with `cargo bench --bench tls`. For a profiler (instruction counts under callgrind,
//! which hold whatever the load), `FORTIFY_BENCH_PROFILE=<group>/<function>` runs one
//! variant alone, without criterion, on a current-thread runtime: one warm-up batch, then
//! `FORTIFY_BENCH_BATCHES` batches (default 10) in `profiled`. Counted alone (callgrind's
//! `--toggle-collect`), the total divided by the batches (and by `REQUESTS` for a
//! keep-alive variant) is the variant's cost per batch (per request), server side
//! included; two runs of the same variant differ by about half a percent:
//!
//! ```text
//! cargo bench --no-run --bench tls
//! FORTIFY_BENCH_PROFILE=tls/keep_alive/fortified FORTIFY_BENCH_BATCHES=20 \
//!   valgrind --tool=callgrind --toggle-collect='tls::profiled*' target/release/deps/tls-<hash>
//! ```

// `keep_alive_pair` is e2e's; this bench runs four clients per group.
#[allow(dead_code)]
#[path = "support/batches.rs"]
mod batches;
#[path = "support/estimates.rs"]
mod estimates;
// `paired` is for calls of nanoseconds; this bench's calls take milliseconds.
#[allow(dead_code)]
#[path = "support/paired.rs"]
mod paired;
use fortify_test_support::flaky;

use batches::time_batches;
use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use flaky::{Faults, FlakyBackend, FlakyResolver, TlsFaults};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use std::time::{Duration, SystemTime};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    client::{HttpsClient, TlsRoots},
    stack::{ClientConfig, ClientStack},
    BoxError,
};

/// Requests per keep-alive iteration, and the tasks sending them.
const REQUESTS: usize = 256;
const CONCURRENCY: usize = 8;

/// The clients of the request-path groups, each adding one thing to the one before.
#[derive(Clone, Copy, Debug)]
enum ClientVariant {
    Bare,
    StackOverBare,
    FortifiedWithoutRecorder,
    Fortified,
}

/// The connectors of `tls/new_connection`.
#[derive(Clone, Copy, Debug)]
enum ConnectorVariant {
    Bare,
    FortifiedWithTelemetry,
    FortifiedWithoutRecorder,
}

/// What one iteration of a variant does.
#[derive(Clone, Copy, Debug)]
enum Batch {
    /// `REQUESTS` GETs from `CONCURRENCY` tasks over kept-alive connections.
    KeepAlive(ClientVariant),
    /// One GET with `connection: close`: a new connection and handshake for it.
    ConnectionPerRequest(ClientVariant),
    /// One new TLS connection through a connector alone, then closed.
    NewConnection(ConnectorVariant),
}

/// Every variant, in criterion's order: group, function, what one iteration does.
const VARIANTS: &[(&str, &str, Batch)] = &[
    (
        "tls/keep_alive",
        "bare",
        Batch::KeepAlive(ClientVariant::Bare),
    ),
    (
        "tls/keep_alive",
        "stack_over_bare",
        Batch::KeepAlive(ClientVariant::StackOverBare),
    ),
    (
        "tls/keep_alive",
        "fortified_without_recorder",
        Batch::KeepAlive(ClientVariant::FortifiedWithoutRecorder),
    ),
    (
        "tls/keep_alive",
        "fortified",
        Batch::KeepAlive(ClientVariant::Fortified),
    ),
    (
        "tls/connection_per_request",
        "bare",
        Batch::ConnectionPerRequest(ClientVariant::Bare),
    ),
    (
        "tls/connection_per_request",
        "fortified",
        Batch::ConnectionPerRequest(ClientVariant::Fortified),
    ),
    (
        "tls/new_connection",
        "bare_handshake",
        Batch::NewConnection(ConnectorVariant::Bare),
    ),
    (
        "tls/new_connection",
        "fortified_with_telemetry",
        Batch::NewConnection(ConnectorVariant::FortifiedWithTelemetry),
    ),
    (
        "tls/new_connection",
        "fortified_without_recorder",
        Batch::NewConnection(ConnectorVariant::FortifiedWithoutRecorder),
    ),
];

/// The pairs of `tls/paired`: name, ours, baseline.
const PAIRS: [(&str, Batch, Batch); 3] = [
    (
        "keep_alive: fortified vs bare",
        Batch::KeepAlive(ClientVariant::Fortified),
        Batch::KeepAlive(ClientVariant::Bare),
    ),
    // Two identical clients must come out at 1.000, or the harness favours one side.
    (
        "keep_alive control: bare vs bare",
        Batch::KeepAlive(ClientVariant::Bare),
        Batch::KeepAlive(ClientVariant::Bare),
    ),
    (
        "new_connection: telemetry vs no recorder",
        Batch::NewConnection(ConnectorVariant::FortifiedWithTelemetry),
        Batch::NewConnection(ConnectorVariant::FortifiedWithoutRecorder),
    ),
];

type BareConnector = HttpsConnector<HttpConnector<FlakyResolver>>;
type BareClient = Client<BareConnector, Full<Bytes>>;

/// The backend, the runtime and every client, built once. Fields drop in this order: the
/// server first, the runtime last.
struct Bench {
    /// Serves until the bench ends.
    _backend: FlakyBackend,
    uri: Uri,
    bare_connector: BareConnector,
    bare: BareClient,
    stack_over_bare: ClientStack<BareClient>,
    silent: HttpsClient,
    fortified: HttpsClient,
    runtime: Runtime,
}

impl Bench {
    /// Starts the backend and builds the clients on `runtime`.
    fn start(runtime: Runtime) -> Bench {
        let backend = runtime.block_on(FlakyBackend::start_tls(Faults::none(), TlsFaults::none()));
        let uri = backend.uri("/item/1");

        // The bare client: hyper-util over hyper-rustls, the backend's roots only.
        let bare_connector = backend.https_connector(Duration::from_secs(3));
        let bare = Client::builder(TokioExecutor::new()).build(bare_connector.clone());

        // The same settings for the stack over the bare client and for both one-call
        // clients: one records into a Prometheus recorder (as a service would install),
        // the others register their handles with no recorder installed.
        let config = || {
            ClientConfig::default()
                .name("bench")
                .tls_roots(TlsRoots::Custom(backend.roots()))
                .resolver(backend.resolver())
        };
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let (stack_over_bare, silent, fortified) = {
            let _entered = runtime.enter();
            let stack_over_bare = config()
                .build()
                .expect("a valid configuration")
                .layer(bare.clone());
            let silent = config().https().expect("a valid configuration");
            let fortified = metrics::with_local_recorder(&recorder, || config().https())
                .expect("a valid configuration");
            (stack_over_bare, silent, fortified)
        };
        Bench {
            _backend: backend,
            uri,
            bare_connector,
            bare,
            stack_over_bare,
            silent,
            fortified,
            runtime,
        }
    }

    /// One iteration of `batch`.
    async fn run(&self, batch: Batch) {
        let uri = &self.uri;
        match batch {
            Batch::KeepAlive(client) => match client {
                ClientVariant::Bare => requests(&self.bare, uri).await,
                ClientVariant::StackOverBare => requests(&self.stack_over_bare, uri).await,
                ClientVariant::FortifiedWithoutRecorder => requests(&self.silent, uri).await,
                ClientVariant::Fortified => requests(&self.fortified, uri).await,
            },
            Batch::ConnectionPerRequest(client) => match client {
                ClientVariant::Bare => get(self.bare.clone(), uri.clone(), true).await,
                ClientVariant::StackOverBare => {
                    get(self.stack_over_bare.clone(), uri.clone(), true).await
                }
                ClientVariant::FortifiedWithoutRecorder => {
                    get(self.silent.clone(), uri.clone(), true).await
                }
                ClientVariant::Fortified => get(self.fortified.clone(), uri.clone(), true).await,
            },
            Batch::NewConnection(connector) => match connector {
                ConnectorVariant::Bare => connect(self.bare_connector.clone(), uri.clone()).await,
                ConnectorVariant::FortifiedWithTelemetry => {
                    connect(self.fortified.connector().clone(), uri.clone()).await
                }
                ConnectorVariant::FortifiedWithoutRecorder => {
                    connect(self.silent.connector().clone(), uri.clone()).await
                }
            },
        }
    }
}

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
async fn requests<S, B>(client: &S, uri: &Uri)
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

/// Opens one connection through `connector`, then closes it.
async fn connect<C>(connector: C, uri: Uri)
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
{
    let connection = connector
        .oneshot(uri)
        .await
        .map_err(Into::into)
        .expect("a TLS connection");
    drop(connection);
}

fn tls(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let bench = Bench::start(runtime);
    let mut variants = VARIANTS.iter().peekable();
    while let Some(&&(group_name, _, first)) = variants.peek() {
        let members: Vec<_> = std::iter::from_fn(|| variants.next_if(|v| v.0 == group_name))
            .map(|&(_, function, batch)| (function, batch))
            .collect();
        let mut group = c.benchmark_group(group_name);
        group.sample_size(10);
        if let Batch::KeepAlive(_) = first {
            // Every client's connections opened before the group's timing starts.
            bench.runtime.block_on(async {
                for &(_, batch) in &members {
                    bench.run(batch).await;
                }
            });
            group.throughput(Throughput::Elements(REQUESTS as u64));
        }
        for (function, batch) in members {
            group.bench_function(function, |b| {
                b.iter_custom(|iters| time_batches(&bench.runtime, iters, || bench.run(batch)))
            });
        }
        group.finish();
    }

    // The comparisons that carry a claim, each pair in alternating calls.
    let mut group = c.benchmark_group("tls/paired");
    group.sample_size(10);
    let bench = &bench;
    let call = |batch| move || bench.runtime.block_on(bench.run(batch));
    for (name, ours, baseline) in PAIRS {
        paired::paired_in_batches(&mut group, name, 1, call(ours), call(baseline));
    }
    group.finish();
}

/// `FORTIFY_BENCH_PROFILE=<group>/<function>`: that variant alone, for a profiler.
fn profile(variant: &str) {
    let Some(&(_, _, batch)) = VARIANTS
        .iter()
        .find(|(group, function, _)| format!("{group}/{function}") == variant)
    else {
        let names: Vec<_> = VARIANTS
            .iter()
            .map(|(g, f, _)| format!("{g}/{f}"))
            .collect();
        panic!("FORTIFY_BENCH_PROFILE={variant}: no such variant; one of {names:?}");
    };
    let (runtime, batches) = batches::profile_setup();
    let bench = Bench::start(runtime);
    bench.runtime.block_on(bench.run(batch));
    let elapsed = profiled(&bench, batch, batches);
    println!(
        "{variant}: 1 warm-up batch, then {batches} batches ({batch:?}) in {:.3} s",
        elapsed.as_secs_f64()
    );
}

/// The profiled batches, apart from start-up and warm-up: never inlined, so that callgrind
/// can count its calls alone (`--toggle-collect=tls::profiled`).
#[inline(never)]
fn profiled(bench: &Bench, batch: Batch, batches: u64) -> Duration {
    time_batches(&bench.runtime, batches, || bench.run(batch))
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
    paired::print_ratios();
    let e = |group: &str, function: &str| estimates::estimate(group, function, since);
    println!("\nsummary (one run; a shared machine: noisy, only the ratios of this run count)");
    let keep_alive = |function| e("tls/keep_alive", function);
    if let Some(bare) = keep_alive("bare") {
        let per_second = |ns: f64| REQUESTS as f64 / (ns * 1e-9);
        let per_request = |ns: f64| ns / REQUESTS as f64 / 1e3;
        println!("keep-alive: bare {:.0} requests/s", per_second(bare));
        let mut before = ("bare", bare);
        for (function, adds) in [
            ("stack_over_bare", "the preset stack"),
            ("fortified_without_recorder", "the client's own path"),
            ("fortified", "recording into Prometheus"),
        ] {
            let Some(ns) = keep_alive(function) else {
                continue;
            };
            println!(
                "  {function}: {:.0} requests/s, {:.3} of bare (target for fortified >= 0.95); \
                 {adds}: {:+.2} us per request over {}",
                per_second(ns),
                bare / ns,
                per_request(ns - before.1),
                before.0
            );
            before = (function, ns);
        }
    }
    if let Some(ratio) = paired::ratio(PAIRS[0].0) {
        println!(
            "keep-alive, paired: fortified / bare throughput {:.3} (target >= 0.95); control {}",
            1.0 / ratio,
            paired::ratio(PAIRS[1].0).map_or("not run".into(), |r| format!("{:.3}", 1.0 / r))
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
    if let Ok(variant) = std::env::var("FORTIFY_BENCH_PROFILE") {
        profile(&variant);
        return;
    }
    estimates::main_with_summary(benches, summary);
}
