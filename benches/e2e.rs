//! End-to-end throughput over loopback: a bare hyper-util client vs the same client wrapped
//! in the preset client stack (`ClientConfig::default().build()`), in one run.
//!
//! A hyper HTTP/1.1 server on 127.0.0.1 (keep-alive on) answers every request with `200`
//! and a 2-byte body. Each iteration sends `REQUESTS` GETs from `CONCURRENCY` tasks, each
//! task sending its share one after the other on its own clone of the client and reading
//! every body to its end; criterion reports requests per second (`Throughput::Elements`).
//! Server and clients share one multi-threaded tokio runtime of two workers, so the figures
//! are the whole machine's throughput: on a shared 2-core machine they are noisy, and the
//! ratio between the two variants of one run says more than either figure.
//!
//! The stack is the preset: 64 permits per host (so the 64 tasks never wait), one breaker
//! for the server's host, a retry budget that every request deposits into, a 10 s timeout
//! per attempt.
//!
//! A third client is tower's own composition of the same jobs over the same hyper-util
//! client: `tower::retry::Retry` (a policy copying every request and depositing into tower's
//! own retry budget, as ours does, and never retrying) around `ConcurrencyLimit` (64) around `Timeout` (10 s): the baseline the issue
//! names for the preset's overhead, here end to end, so that the fortified client's ratio
//! can be read beside what tower's own layers cost over a real connection in the same run.
//!
//! Two groups:
//! - `e2e/loopback`: each client measured on its own, one after the other (criterion's
//!   view: requests per second of each);
//! - `e2e/paired`: the same two clients in alternating batches (`support/paired.rs`,
//!   `paired_per_pair`), one batch of `REQUESTS` of each side per pair, which side goes
//!   first alternating, so that both sides of a pair meet the same moment of the machine.
//!   Measured one after the other, the bare client alone moved by half its throughput
//!   between runs on a shared 2-core machine, and the ratio with it: the drift lands on
//!   one side. The figure is the median of the pairs' ratios (our
//!   batch's time over the bare batch's beside it), which a burst of load on a few batches
//!   moves by a few pairs of many; the ratio of totals is printed too. A control pair of two
//!   bare clients (each with its own connections) must come out at 1.000, or the harness
//!   favours one side. A third pair sets tower's composition against the bare client, and a
//!   fourth the least any retry does (`support/floor.rs`: a copy of each request kept until
//!   its answer, nothing else) against the bare client, for scale: the part of any retrying
//!   client's cost that no design of the layers removes.
//!
//! After criterion's report, the requests per second of both variants and their ratio are
//! printed, from criterion's estimates of this run, then the paired ratios (the target:
//! the fortified client's throughput ≥ 0.97 of the bare client's).
//!
//! Run with `cargo bench --bench e2e`; `cargo bench --bench e2e -- paired` runs the paired
//! group alone.
//!
//! For a profiler (instruction counts under callgrind, which hold whatever the load),
//! `FORTIFY_BENCH_PROFILE=<group>/<function>` (`e2e/loopback/hyper_client`,
//! `e2e/loopback/fortify_client_stack` or `e2e/loopback/tower_composition`) runs one client alone, without criterion, on a
//! current-thread runtime: one warm-up batch (its connections opened), then
//! `FORTIFY_BENCH_BATCHES` batches (default 10) in `profiled`. Counted alone (callgrind's
//! `--toggle-collect`), the total divided by the batches and by `REQUESTS` is the client's
//! cost per request, server side included; the difference of the two is the stack's cost
//! over a real connection:
//!
//! ```text
//! cargo bench --no-run --bench e2e
//! FORTIFY_BENCH_PROFILE=e2e/loopback/fortify_client_stack FORTIFY_BENCH_BATCHES=20 \
//!   valgrind --tool=callgrind --toggle-collect='e2e::profiled*' target/release/deps/e2e-<hash>
//! ```

#[path = "support/batches.rs"]
mod batches;
#[path = "support/estimates.rs"]
mod estimates;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/paired.rs"]
mod paired;
#[path = "support/tower_policy.rs"]
mod tower_policy;
use fortify_test_support::servers;

use batches::keep_alive_pair;
use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use floor::Floor;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::{body::Body, service::service_fn};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use std::{
    convert::Infallible,
    net::SocketAddr,
    time::{Duration, SystemTime},
};
use tokio::net::TcpStream;
use tower::{limit::ConcurrencyLimit, timeout::Timeout, Layer, Service, ServiceExt};
use tower_fortify::{
    stack::{ClientConfig, ClientStack},
    BoxError,
};
use tower_policy::CopyRequestWithBudget;

/// Requests per iteration, and tasks sending them.
const REQUESTS: usize = 2048;
const CONCURRENCY: usize = 64;

type Req = Request<Full<Bytes>>;

async fn start_server() -> SocketAddr {
    servers::spawn_server(|stream: TcpStream| async move {
        let _ = stream.set_nodelay(true);
        let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
    .await
}

fn hyper_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(
        ClientConfig::default().build().unwrap().connect_timeout(),
    ));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The preset stack around a hyper-util client, its timer on `runtime`.
fn fortified_client(
    runtime: &tokio::runtime::Runtime,
) -> ClientStack<Client<HttpConnector, Full<Bytes>>> {
    let _entered = runtime.enter();
    ClientConfig::default()
        .build()
        .expect("the defaults are valid")
        .layer(hyper_client())
}

/// tower's own composition of the preset's jobs around a hyper-util client: a retry that
/// copies every request and deposits into tower's retry budget (and never retries), a concurrency limit of the preset's 64
/// permits per host, and the preset's 10 s timeout per attempt.
type TowerComposition = tower::retry::Retry<
    CopyRequestWithBudget,
    ConcurrencyLimit<Timeout<Client<HttpConnector, Full<Bytes>>>>,
>;

fn tower_composition() -> TowerComposition {
    let config = ClientConfig::default()
        .build()
        .expect("the defaults are valid");
    tower::retry::RetryLayer::new(CopyRequestWithBudget::new()).layer(ConcurrencyLimit::new(
        Timeout::new(hyper_client(), config.attempt_timeout()),
        64,
    ))
}

/// `REQUESTS` GETs from `CONCURRENCY` tasks; panics unless every one answered 200.
async fn batch<S, B>(svc: &S, uri: &Uri)
where
    S: Service<Req, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let mut svc = svc.clone();
        let uri = uri.clone();
        tasks.spawn(async move {
            let mut ok = 0;
            for _ in 0..REQUESTS / CONCURRENCY {
                let request = Request::get(uri.clone())
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request");
                let ready = svc.ready().await.map_err(Into::into)?;
                let response = ready.call(request).await.map_err(Into::into)?;
                let ok_status = response.status().is_success();
                response.into_body().collect().await.map_err(Into::into)?;
                ok += usize::from(ok_status);
            }
            Ok::<_, BoxError>(ok)
        });
    }
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        ok += done.expect("a task panicked").expect("a request failed");
    }
    assert_eq!(
        ok,
        REQUESTS / CONCURRENCY * CONCURRENCY,
        "every request answered 200"
    );
}

fn e2e(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = runtime.block_on(start_server());
    let uri: Uri = format!("http://{addr}/items").parse().expect("a valid URI");

    let bare = hyper_client();
    let stack = fortified_client(&runtime);
    keep_alive_pair(
        c,
        &runtime,
        "e2e/loopback",
        REQUESTS as u64,
        ("hyper_client", || batch(&bare, &uri)),
        ("fortify_client_stack", || batch(&stack, &uri)),
    );

    // The paired view: every client's connections opened before the timing starts.
    let control = hyper_client();
    let tower = tower_composition();
    let copy = Floor {
        inner: hyper_client(),
        sleep: None,
    };
    runtime.block_on(async {
        batch(&bare, &uri).await;
        batch(&stack, &uri).await;
        batch(&control, &uri).await;
        batch(&tower, &uri).await;
        batch(&copy, &uri).await;
    });
    let mut group = c.benchmark_group("e2e/paired");
    // Criterion counts our side's time alone, so the group runs about twice its
    // measurement time: some hundreds of pairs on an idle machine, fewer on a loaded one.
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    paired::paired_per_pair(
        &mut group,
        PAIR,
        1,
        || runtime.block_on(batch(&stack, &uri)),
        || runtime.block_on(batch(&bare, &uri)),
    );
    paired::paired_per_pair(
        &mut group,
        CONTROL,
        1,
        || runtime.block_on(batch(&control, &uri)),
        || runtime.block_on(batch(&bare, &uri)),
    );
    paired::paired_per_pair(
        &mut group,
        TOWER,
        1,
        || runtime.block_on(batch(&tower, &uri)),
        || runtime.block_on(batch(&bare, &uri)),
    );
    paired::paired_per_pair(
        &mut group,
        COPY,
        1,
        || runtime.block_on(batch(&copy, &uri)),
        || runtime.block_on(batch(&bare, &uri)),
    );
    group.finish();
}

/// The paired group's pairs: ours, then the baseline.
const PAIR: &str = "fortify_client_stack vs hyper_client";
const CONTROL: &str = "control: hyper_client vs hyper_client";
const TOWER: &str = "tower_composition vs hyper_client";
const COPY: &str = "request_copy vs hyper_client";

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .nresamples(10_000);
    targets = e2e
}

// ===== summary =====

fn summary(since: SystemTime) {
    let per_second = |ns: f64| REQUESTS as f64 / (ns * 1e-9);
    let bare = estimates::estimate("e2e/loopback", "hyper_client", since);
    let stack = estimates::estimate("e2e/loopback", "fortify_client_stack", since);
    println!(
        "\nsummary ({REQUESTS} requests per iteration, {CONCURRENCY} at once; a shared machine: noisy)"
    );
    for (name, ns) in [("hyper_client", bare), ("fortify_client_stack", stack)] {
        match ns {
            Some(ns) => println!("{name:<22} {:>10.0} requests/s", per_second(ns)),
            None => println!("{name:<22} {:>10}", "not run"),
        }
    }
    if let (Some(bare), Some(stack)) = (bare, stack) {
        println!(
            "stack / bare throughput: {:.3}; {:+.2} us per request",
            bare / stack,
            (stack - bare) / REQUESTS as f64 / 1e3
        );
    }
    paired::print_ratios();
    // Throughput is the inverse of time (as BENCHMARKS.md writes it: 1 / the median).
    let throughput =
        |name| paired::pair_ratios(name).map(|pairs| (1.0 / paired::median(&pairs), pairs.len()));
    if let Some((ratio, pairs)) = throughput(PAIR) {
        println!(
            "\npaired: fortified / bare throughput {ratio:.3}, median of {pairs} pairs (target >= 0.97); control {}; tower's composition / bare {}; the request copy alone / bare {}",
            throughput(CONTROL).map_or("not run".into(), |(r, _)| format!("{r:.3}")),
            throughput(TOWER).map_or("not run".into(), |(r, _)| format!("{r:.3}")),
            throughput(COPY).map_or("not run".into(), |(r, _)| format!("{r:.3}"))
        );
    }
}

// ===== profile =====

/// `FORTIFY_BENCH_PROFILE=<group>/<function>`: that client alone, for a profiler.
fn profile(variant: &str) {
    const VARIANTS: [&str; 3] = [
        "e2e/loopback/hyper_client",
        "e2e/loopback/fortify_client_stack",
        "e2e/loopback/tower_composition",
    ];
    assert!(
        VARIANTS.contains(&variant),
        "FORTIFY_BENCH_PROFILE={variant}: no such variant; one of {VARIANTS:?}"
    );
    let (runtime, batches) = batches::profile_setup();
    let addr = runtime.block_on(start_server());
    let uri: Uri = format!("http://{addr}/items").parse().expect("a valid URI");
    let elapsed = if variant == VARIANTS[0] {
        let bare = hyper_client();
        runtime.block_on(batch(&bare, &uri));
        profiled(&runtime, batches, || batch(&bare, &uri))
    } else if variant == VARIANTS[1] {
        let stack = fortified_client(&runtime);
        runtime.block_on(batch(&stack, &uri));
        profiled(&runtime, batches, || batch(&stack, &uri))
    } else {
        let tower = tower_composition();
        runtime.block_on(batch(&tower, &uri));
        profiled(&runtime, batches, || batch(&tower, &uri))
    };
    println!(
        "{variant}: 1 warm-up batch, then {batches} batches of {REQUESTS} requests in {:.3} s",
        elapsed.as_secs_f64()
    );
}

/// The profiled batches, apart from start-up and warm-up: never inlined, so that callgrind
/// can count its calls alone (`--toggle-collect='e2e::profiled*'`).
#[inline(never)]
fn profiled<F: std::future::Future<Output = ()>>(
    runtime: &tokio::runtime::Runtime,
    batches: u64,
    batch: impl FnMut() -> F,
) -> Duration {
    batches::time_batches(runtime, batches, batch)
}

fn main() {
    if let Ok(variant) = std::env::var("FORTIFY_BENCH_PROFILE") {
        profile(&variant);
        return;
    }
    estimates::main_with_summary(benches, summary);
}
