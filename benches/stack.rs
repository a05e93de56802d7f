//! Per-call overhead of each layer of the preset client stack and of the whole stack, side
//! by side with their tower and tower-resilience equivalents, in one run.
//!
//! The inner service is trivial: `http::Request<Full<Bytes>>` in, `http::Response<Full<Bytes>>`
//! out, its future ready at once. Every call is `poll_ready`, `call` and the response future
//! polled until ready with `Waker::noop()` (every future here is ready at its first poll on
//! the success path, tower-resilience's boxed ones included), then the response is dropped:
//! for our pool limit that drops the body holding the permit. The request is a clone of one
//! GET built before the timed loop; the clone is made inside the loop for every variant, the
//! bare one included, so it cancels out of the differences. Services are built outside the
//! timed closures.
//!
//! Groups (each with `bare` as its baseline):
//!
//! - `stack/classify`: `ErrorClassify` vs tower's `MapErr` boxing the error;
//! - `stack/retry`: our `Retry` (the production policy, as in the stack: budget and
//!   deadline) vs `tower::retry` with a policy that copies every field of the request (no
//!   budget) vs tower-resilience's retry;
//! - `stack/circuit_breaker`: our breaker, single and per host (as in the stack), vs
//!   tower-resilience's;
//! - `stack/pool`: our `PoolLimit` per host, block mode (as in the stack) vs tower's
//!   `ConcurrencyLimit` vs tower-resilience's bulkhead (backpressure mode);
//! - `stack/timeout`: `tower::timeout::Timeout`, the stack's per-attempt timeout;
//! - `stack/preset`: `ClientConfig::default().build()` vs a tower-only composition of the
//!   same jobs (Retry + ConcurrencyLimit + Timeout) vs a tower-resilience one (retry +
//!   circuit breaker + bulkhead + tower's Timeout).
//!
//! A tokio runtime is entered (not running) for every variant: tower's `Timeout` creates its
//! `Sleep` in `call`, which needs a runtime's timer. The dev-dependencies enable tokio's
//! `test-util`, so each clock read also checks for a paused clock, as in the other benches.
//!
//! After criterion's own report, a summary table gives ns per call for every variant, its
//! overhead over `bare`, and its ratio to ours in the same group, read from criterion's
//! estimates of this run (`<target>/criterion/<group>/<function>/new/estimates.json`).
//!
//! Run with `cargo bench --bench stack` (`-- --warm-up-time 1 --measurement-time 2` for a
//! quicker run). For a profiler (instruction counts under callgrind, which hold whatever
//! the load), `FORTIFY_BENCH_PROFILE=<group>/<function>` builds every variant, calls each
//! once, then calls the one named `FORTIFY_BENCH_CALLS` times (default 100 000) in
//! `profiled`, without criterion; counted alone, the total over the calls is its cost per
//! call:
//!
//! ```text
//! cargo bench --no-run --bench stack
//! FORTIFY_BENCH_PROFILE=stack/preset/fortify_client_stack FORTIFY_BENCH_CALLS=10000 \
//!   valgrind --tool=callgrind --toggle-collect='stack::profiled*' target/release/deps/stack-<hash>
//! ```

#[path = "support/estimates.rs"]
mod estimates;
// Only the policy without a budget.
#[allow(dead_code)]
#[path = "support/tower_policy.rs"]
mod tower_policy;

use tower_policy::CopyRequest;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{header, Method, Request, Response};
use http_body_util::Full;
use std::{
    future::{ready, Future, Ready},
    hint::black_box,
    io,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, SystemTime},
};
use tower::{limit::ConcurrencyLimit, timeout::Timeout, Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerLayer, GenericCircuitBreakerLayer},
    classify::ErrorClassifyLayer,
    pool::PoolLimitLayer,
    retry::RetryLayer,
    stack::ClientConfig,
    BoxError,
};
use tower_resilience::{
    bulkhead::BulkheadLayer, circuitbreaker::CircuitBreakerLayer as ResilienceBreakerLayer,
};

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

/// The stack's defaults, for the equivalents.
const MAXSIZE: usize = 64;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One call: `poll_ready`, `call`, the future polled until ready; `true` on success.
fn call_once<S: Service<Req>>(svc: &mut S, req: Req) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = pin!(svc.call(req));
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => {
                drop(black_box(response));
                return true;
            }
            Poll::Ready(Err(_)) => return false,
            Poll::Pending => std::hint::spin_loop(),
        }
    }
}

fn ok_service(
) -> impl Service<Req, Response = Res, Error = io::Error, Future = Ready<Result<Res, io::Error>>>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_: Req| ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))))
}

/// A GET a client would send: idempotent, so every retry layer keeps a copy.
fn request() -> Req {
    Request::builder()
        .method(Method::GET)
        .uri("http://api.example.com/v1/items?page=2")
        .header(header::HOST, "api.example.com")
        .header(header::USER_AGENT, "tower-fortify-bench/0.1")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

// ===== tower-resilience =====

fn resilience_retry<E: Send + 'static>() -> tower_resilience::retry::RetryLayer<Req, Res, E> {
    // Three attempts, no backoff sleep: the success path never sleeps anyway.
    tower_resilience::retry::RetryLayer::<Req, Res, E>::builder()
        .max_attempts(3)
        .fixed_backoff(Duration::ZERO)
        .build()
}

fn resilience_breaker() -> ResilienceBreakerLayer {
    ResilienceBreakerLayer::builder()
        .build()
        .expect("valid defaults")
}

fn resilience_bulkhead() -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent_calls(MAXSIZE)
        .backpressure()
        .build()
        .expect("valid settings")
}

// ===== the benches =====

/// A criterion group and its name.
struct Group<'a> {
    name: &'static str,
    inner: criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>,
}

impl<'a> Group<'a> {
    fn new(c: &'a mut Criterion, name: &'static str) -> Self {
        Group {
            name,
            inner: c.benchmark_group(name),
        }
    }

    /// Benches `svc` as `group/name`, after checking that a call succeeds; under
    /// `FORTIFY_BENCH_PROFILE`, runs it alone for a profiler if it is the one named.
    fn bench<S: Service<Req>>(&mut self, name: &str, mut svc: S) {
        let req = request();
        assert!(call_once(&mut svc, req.clone()), "{name}: a call succeeds");
        if let Some(profile) = profile() {
            if profile == format!("{}/{name}", self.name) {
                profiled(&mut svc, &req, profile_calls());
            }
            return;
        }
        self.inner.bench_function(name, |b| {
            b.iter(|| call_once(&mut svc, black_box(&req).clone()))
        });
    }

    fn finish(self) {
        self.inner.finish();
    }
}

/// `FORTIFY_BENCH_PROFILE=<group>/<function>`: the variant to run alone, for a profiler.
fn profile() -> Option<String> {
    std::env::var("FORTIFY_BENCH_PROFILE").ok()
}

/// `FORTIFY_BENCH_CALLS`: how many profiled calls (default 100 000).
fn profile_calls() -> u64 {
    std::env::var("FORTIFY_BENCH_CALLS").map_or(100_000, |n| n.parse().expect("a number"))
}

/// The profiled calls, apart from building the services and their first call: never
/// inlined, so that callgrind counts them alone (`--toggle-collect='stack::profiled*'`).
#[inline(never)]
fn profiled<S: Service<Req>>(svc: &mut S, req: &Req, calls: u64) {
    for _ in 0..calls {
        assert!(call_once(svc, black_box(req).clone()));
    }
}

fn layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();

    let mut group = Group::new(c, "stack/classify");
    group.bench("bare", ok_service());
    group.bench("tower_map_err_boxed", ok_service().map_err(BoxError::from));
    group.bench(
        "fortify_error_classify",
        ErrorClassifyLayer::new().layer(ok_service()),
    );
    group.finish();

    let mut group = Group::new(c, "stack/retry");
    group.bench("bare", ok_service());
    group.bench(
        "tower_retry",
        tower::retry::RetryLayer::new(CopyRequest).layer(ok_service()),
    );
    group.bench(
        "tower_resilience_retry",
        resilience_retry::<io::Error>().layer(ok_service()),
    );
    group.bench(
        "fortify_retry_production",
        RetryLayer::builder()
            .policy(ClientConfig::default().build().unwrap().retry().clone())
            .build()
            .unwrap()
            .layer(ok_service()),
    );
    group.finish();

    let mut group = Group::new(c, "stack/circuit_breaker");
    group.bench("bare", ok_service());
    group.bench(
        "tower_resilience_breaker",
        resilience_breaker().layer(ok_service()),
    );
    group.bench(
        "fortify_breaker_single",
        GenericCircuitBreakerLayer::new().layer(ok_service()),
    );
    group.bench(
        "fortify_breaker_per_host",
        CircuitBreakerLayer::new().layer(ok_service()),
    );
    group.finish();

    let mut group = Group::new(c, "stack/pool");
    group.bench("bare", ok_service());
    group.bench(
        "tower_concurrency_limit",
        ConcurrencyLimit::new(ok_service(), MAXSIZE),
    );
    group.bench(
        "tower_resilience_bulkhead",
        resilience_bulkhead().layer(ok_service()),
    );
    group.bench(
        "fortify_pool_per_host_block",
        PoolLimitLayer::builder(MAXSIZE)
            .block(true)
            .pool_timeout(Some(Duration::from_secs(5)))
            .build()
            .unwrap()
            .layer(ok_service()),
    );
    group.finish();

    let mut group = Group::new(c, "stack/timeout");
    group.bench("bare", ok_service());
    group.bench("tower_timeout", Timeout::new(ok_service(), ATTEMPT_TIMEOUT));
    group.finish();

    let mut group = Group::new(c, "stack/preset");
    group.bench("bare", ok_service());
    group.bench(
        "tower_only",
        tower::ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(CopyRequest))
            .concurrency_limit(MAXSIZE)
            .timeout(ATTEMPT_TIMEOUT)
            .service(ok_service()),
    );
    let timeout = Timeout::new(ok_service(), ATTEMPT_TIMEOUT);
    let bulkhead = resilience_bulkhead().layer(timeout);
    let breaker = resilience_breaker().layer(bulkhead);
    let resilience = resilience_retry().layer(breaker);
    group.bench("tower_resilience", resilience);
    group.bench(
        "fortify_client_stack",
        ClientConfig::default().build().unwrap().layer(ok_service()),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    // Fewer bootstrap resamples than the default 100 000: the analysis of 20 benchmarks
    // would otherwise take longer than their measurement.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .nresamples(10_000);
    targets = layers
}

// ===== summary =====

const GROUPS: &[(&str, &[&str])] = &[
    (
        "stack/classify",
        &["bare", "tower_map_err_boxed", "fortify_error_classify"],
    ),
    (
        "stack/retry",
        &[
            "bare",
            "tower_retry",
            "tower_resilience_retry",
            "fortify_retry_production",
        ],
    ),
    (
        "stack/circuit_breaker",
        &[
            "bare",
            "tower_resilience_breaker",
            "fortify_breaker_single",
            "fortify_breaker_per_host",
        ],
    ),
    (
        "stack/pool",
        &[
            "bare",
            "tower_concurrency_limit",
            "tower_resilience_bulkhead",
            "fortify_pool_per_host_block",
        ],
    ),
    ("stack/timeout", &["bare", "tower_timeout"]),
    (
        "stack/preset",
        &[
            "bare",
            "tower_only",
            "tower_resilience",
            "fortify_client_stack",
        ],
    ),
];

fn summary(since: SystemTime) {
    println!("\nsummary (criterion's estimates of this run; a shared machine: noisy)");
    println!(
        "{:<22} {:<28} {:>10} {:>11} {:>9}",
        "group", "variant", "ns/call", "over bare", "vs ours"
    );
    for (group, functions) in GROUPS {
        let ns: Vec<Option<f64>> = functions
            .iter()
            .map(|f| estimates::estimate(group, f, since))
            .collect();
        let bare = ns[0];
        // Ours: the last `fortify_` variant listed, the one the stack uses.
        let ours = functions
            .iter()
            .rposition(|f| f.starts_with("fortify_"))
            .and_then(|i| ns[i]);
        for (function, ns) in functions.iter().zip(&ns) {
            let Some(ns) = *ns else {
                println!("{group:<22} {function:<28} {:>10}", "not run");
                continue;
            };
            let over = bare.map_or(String::from("-"), |b| format!("{:+.1}", ns - b));
            let ratio = ours.map_or(String::from("-"), |o| format!("{:.2}x", ns / o));
            println!("{group:<22} {function:<28} {ns:>10.1} {over:>11} {ratio:>9}");
        }
    }
}

fn main() {
    if profile().is_some() {
        layers(&mut Criterion::default());
        return;
    }
    estimates::main_with_summary(benches, summary);
}
