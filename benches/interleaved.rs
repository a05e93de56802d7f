//! The plain view: no criterion, no pairing. Every variant runs once per round, in the same
//! order, for the plan's calls; after the plan's rounds each variant's figure is the median
//! of its rounds. Requests are built in every call, for every variant (the bare one too), as
//! a caller builds them, so that costs that show only on a fresh request (a first clone of
//! a parsed URI's bytes allocates) are counted. Calls go through a current-thread tokio
//! runtime with `ready().await` and `call().await`, as a caller's code does.
//!
//! Three tables, then the targets they check (this process's figures):
//! - `u64` requests: the pool against tower's `ConcurrencyLimit`;
//! - `http::Request` (a GET with two headers): each layer and the preset against tower's and
//!   tower-resilience's equivalents, and the adaptive pools against their fixed twins (issue
//!   17's target: at most 1.5 times the fixed pool's cost; `block(true)`, which an adaptive
//!   limit needs, and the twins' `block=False` take the same path while the pool is not full);
//! - one shared instance, calls per second from two tasks on a two-worker runtime against one
//!   task on a one-worker runtime (the scaling of a shared limit, breaker or retry budget:
//!   the budget's line a service that deposits at every call, as the preset does).
//!
//! The paired view (`benches/support/paired.rs`, in `cargo bench --bench pool -- paired`
//! and `--bench retry -- paired`) compares calls made in the same moments; a claim must hold
//! in both views. Run with `cargo bench --bench interleaved` (about a minute); set
//! `FORTIFY_BENCH_QUICK=1` for a short run that only checks that it works, and
//! `FORTIFY_BENCH_ONLY=text` to run only the variants whose name holds `text` (with the bare
//! one and their baselines), for a profiler; with `FORTIFY_BENCH_ALONE=1` too, without their
//! baselines (callgrind counts a closure per type: a variant and a baseline of the same type,
//! as the adaptive pools and their fixed twins, would be counted together).
//!
//! One process's `http::Request` lines depend on its address layout, enough to pass or fail a
//! target by chance: `scripts/benchmarks.sh` runs this bench in several processes and reports
//! each line's median across them (`scripts/interleaved-merge.py`). The budget's variables
//! (`FORTIFY_BENCH_ROUNDS`, `FORTIFY_BENCH_CALLS`, `FORTIFY_BENCH_SCALING_*`) and the
//! machine-readable output (`FORTIFY_BENCH_TSV=path`) are described in `interleaved/report.rs`.

#[path = "interleaved/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "support/tower_policy.rs"]
mod tower_policy;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use report::{plan, Claim, Plan, Report};
use std::{
    convert::Infallible,
    future::{ready, Ready},
    hint::black_box,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tower::{
    limit::{ConcurrencyLimit, GlobalConcurrencyLimitLayer},
    timeout::Timeout,
    Layer, Service, ServiceExt,
};
use tower_fortify::{
    circuit_breaker::CircuitBreakerLayer,
    pool::{AdaptiveLimit, PoolLimitLayer},
    retry::{RetryBudget, RetryLayer, RetryPolicy},
    stack::ClientConfig,
};
use tower_policy::CopyRequest;

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

const LIMIT: usize = 1000;

fn request() -> Req {
    Request::get("http://api.example.com/v1/items?page=2")
        .header(header::USER_AGENT, "tower-fortify-bench/0.1")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

fn ok_http(
) -> impl Service<Req, Response = Res, Error = Infallible, Future = Ready<Result<Res, Infallible>>>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_: Req| ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))))
}

fn ok_u64(
) -> impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|n: u64| ready(Ok(n)))
}

/// One variant: a closure that makes `calls` calls and returns the time they took.
type Run = Box<dyn FnMut(&tokio::runtime::Runtime, u64) -> Duration>;

fn variant<Q: 'static, S>(mut svc: S, make: fn(u64) -> Q) -> Run
where
    S: Service<Q> + 'static,
    S::Error: std::fmt::Debug,
{
    Box::new(move |rt, calls| {
        rt.block_on(async {
            let start = Instant::now();
            for i in 0..calls {
                let response = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(make(i))
                    .await
                    .expect("a call succeeds");
                drop(black_box(response));
            }
            start.elapsed()
        })
    })
}

/// Runs every variant once per round, in order, and reports the median ns per call of each,
/// with its overhead over the first (bare) variant, the ratio of that overhead to the named
/// baseline's, and the table's targets.
fn table(
    report: &mut Report,
    title: &str,
    plan: &Plan,
    mut variants: Vec<(&str, Option<&str>, Run)>,
    claims: &[Claim],
) {
    // `FORTIFY_BENCH_ONLY=text`: the bare variant and those whose name holds `text`, with
    // their baselines (for a profiler such as callgrind).
    if let Ok(only) = std::env::var("FORTIFY_BENCH_ONLY") {
        let alone = std::env::var_os("FORTIFY_BENCH_ALONE").is_some();
        let keep: Vec<String> = variants
            .iter()
            .filter(|(name, _, _)| name.contains(only.as_str()))
            .flat_map(|(name, baseline, _)| {
                [
                    Some(name.to_string()),
                    baseline.filter(|_| !alone).map(String::from),
                ]
            })
            .flatten()
            .collect();
        let mut first = true;
        variants
            .retain(|(name, _, _)| std::mem::take(&mut first) || keep.iter().any(|k| k == name));
        if variants.len() == 1 {
            return;
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    for (_, _, run) in variants.iter_mut() {
        run(&rt, plan.calls / 10); // warm-up
    }
    let mut samples = vec![Vec::new(); variants.len()];
    for _ in 0..plan.rounds {
        for (i, (_, _, run)) in variants.iter_mut().enumerate() {
            let took = run(&rt, plan.calls);
            samples[i].push(took.as_nanos() as f64 / plan.calls as f64);
        }
    }
    let rows: Vec<(&str, Option<&str>)> = variants.iter().map(|(n, b, _)| (*n, *b)).collect();
    report.table(title, &rows, &samples, claims);
}

/// Calls per second of one shared service from `tasks` tasks on a runtime of `tasks`
/// workers, for `time`.
fn throughput<S>(svc: S, tasks: usize, time: Duration) -> f64
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(tasks)
        .enable_time()
        .build()
        .expect("a runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (mut svc, stop, calls) = (svc.clone(), stop.clone(), calls.clone());
            handles.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..256 {
                        let response = svc.ready().await.expect("ready").call(i).await;
                        drop(black_box(response.expect("a call succeeds")));
                    }
                    n += 256;
                    // Let the other task run if both share a worker.
                    tokio::task::yield_now().await;
                }
                calls.fetch_add(n, Ordering::Relaxed);
            }));
        }
        tokio::time::sleep(time).await;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.expect("a task");
        }
    });
    calls.load(Ordering::Relaxed) as f64 / time.as_secs_f64()
}

fn scaling<S>(
    report: &mut Report,
    name: &str,
    svc: impl Fn() -> S,
    plan: &Plan,
    at_least: Option<f64>,
) where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    if std::env::var("FORTIFY_BENCH_ONLY").is_ok_and(|only| !name.contains(only.as_str())) {
        return;
    }
    let ratios = (0..plan.scaling_rounds)
        .map(|_| {
            let one = throughput(svc(), 1, plan.scaling);
            let two = throughput(svc(), 2, plan.scaling);
            two / one
        })
        .collect();
    report.scaling(name, ratios, at_least);
}

fn main() {
    let plan = plan();
    let _ = std::env::args(); // `cargo bench` passes `--bench`.
    let mut report = Report::new(&plan);

    let generic_pool = || {
        PoolLimitLayer::builder(LIMIT)
            .build_generic()
            .expect("valid")
            .layer(ok_u64())
    };
    table(
        &mut report,
        "u64 requests (limit 1000, never full)",
        &plan,
        vec![
            ("bare", None, variant(ok_u64(), |i| i)),
            (
                "tower ConcurrencyLimit",
                None,
                variant(ConcurrencyLimit::new(ok_u64(), LIMIT), |i| i),
            ),
            (
                "fortify GenericPoolLimit (block)",
                Some("tower ConcurrencyLimit"),
                variant(generic_pool(), |i| i),
            ),
        ],
        &[Claim {
            ours: "fortify GenericPoolLimit (block)",
            baseline: "tower ConcurrencyLimit",
            at_most: 1.0,
        }],
    );

    let request = |_| request();
    table(
        &mut report,
        "http::Request (GET, two headers, built per call)",
        &plan,
        vec![
            ("bare", None, variant(ok_http(), request)),
            (
                "tower ConcurrencyLimit",
                None,
                variant(ConcurrencyLimit::new(ok_http(), LIMIT), request),
            ),
            (
                "fortify PoolLimit (per host)",
                Some("tower ConcurrencyLimit"),
                variant(
                    PoolLimitLayer::builder(LIMIT)
                        .build()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "fortify PoolLimit (one pool)",
                Some("tower ConcurrencyLimit"),
                variant(
                    PoolLimitLayer::builder(LIMIT)
                        .per_host(false)
                        .build()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "fortify GenericPoolLimit, http",
                Some("tower ConcurrencyLimit"),
                variant(
                    PoolLimitLayer::builder(LIMIT)
                        .build_generic()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "fortify PoolLimit adaptive (one pool)",
                Some("fortify PoolLimit (one pool)"),
                variant(
                    PoolLimitLayer::builder(LIMIT)
                        .per_host(false)
                        .block(true)
                        .adaptive(AdaptiveLimit::gradient())
                        .build()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "fortify PoolLimit adaptive (per host)",
                Some("fortify PoolLimit (per host)"),
                variant(
                    PoolLimitLayer::builder(LIMIT)
                        .block(true)
                        .adaptive(AdaptiveLimit::gradient())
                        .build()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "fortify CircuitBreaker (per host)",
                None,
                variant(
                    CircuitBreakerLayer::builder()
                        .build()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "tower Retry (cloning policy)",
                None,
                variant(
                    tower::retry::RetryLayer::new(CopyRequest).layer(ok_http()),
                    request,
                ),
            ),
            (
                "fortify Retry (default policy)",
                Some("tower Retry (cloning policy)"),
                variant(
                    RetryLayer::builder()
                        .policy(RetryPolicy::default())
                        .build()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "tower Retry + ConcurrencyLimit + Timeout",
                None,
                variant(
                    tower::retry::RetryLayer::new(CopyRequest).layer(ConcurrencyLimit::new(
                        Timeout::new(ok_http(), Duration::from_secs(10)),
                        64,
                    )),
                    request,
                ),
            ),
            (
                "fortify preset stack",
                Some("tower Retry + ConcurrencyLimit + Timeout"),
                variant(
                    ClientConfig::default()
                        .build()
                        .expect("valid")
                        .layer(ok_http()),
                    request,
                ),
            ),
            (
                "tower-resilience retry + breaker + bulkhead + timeout",
                None,
                variant(resilience(), request),
            ),
        ],
        &http_claims(),
    );

    report.scaling_header();
    scaling(
        &mut report,
        "tower GlobalConcurrencyLimit",
        || GlobalConcurrencyLimitLayer::new(LIMIT).layer(ok_u64()),
        &plan,
        None,
    );
    let shared_pool = PoolLimitLayer::builder(LIMIT)
        .build_generic()
        .expect("valid");
    scaling(
        &mut report,
        "fortify GenericPoolLimit",
        || shared_pool.layer(ok_u64()),
        &plan,
        Some(1.0),
    );
    let breaker = CircuitBreakerLayer::builder()
        .classifier(tower_fortify::circuit_breaker::ErrorsOnly)
        .build_generic()
        .expect("valid");
    scaling(
        &mut report,
        "fortify CircuitBreaker (count window)",
        || breaker.layer(ok_u64()),
        &plan,
        None,
    );
    // A retry budget that every call deposits into, shared (the preset's, tower's own).
    let tower_budget = Arc::new(tower::retry::budget::TpsBudget::new(
        Duration::from_secs(10),
        10,
        0.2,
    ));
    scaling(
        &mut report,
        "tower TpsBudget (deposits)",
        || {
            let budget = Arc::clone(&tower_budget);
            tower::service_fn(move |n: u64| {
                tower::retry::budget::Budget::deposit(&*budget);
                ready(Ok::<_, Infallible>(n))
            })
        },
        &plan,
        None,
    );
    let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2).expect("valid");
    scaling(
        &mut report,
        "fortify RetryBudget (deposits)",
        || {
            let budget = budget.clone();
            tower::service_fn(move |n: u64| {
                budget.deposit();
                ready(Ok::<_, Infallible>(n))
            })
        },
        &plan,
        Some(1.0),
    );
    report.finish();
}

/// The targets of the `http::Request` table (issue 15; the adaptive pools': issue 17).
fn http_claims() -> [Claim; 6] {
    let claim = |ours, baseline, at_most| Claim {
        ours,
        baseline,
        at_most,
    };
    [
        claim(
            "fortify PoolLimit (per host)",
            "tower ConcurrencyLimit",
            1.5,
        ),
        claim(
            "fortify PoolLimit adaptive (one pool)",
            "fortify PoolLimit (one pool)",
            1.5,
        ),
        claim(
            "fortify PoolLimit adaptive (per host)",
            "fortify PoolLimit (per host)",
            1.5,
        ),
        claim(
            "fortify Retry (default policy)",
            "tower Retry (cloning policy)",
            1.0,
        ),
        claim(
            "fortify preset stack",
            "tower Retry + ConcurrencyLimit + Timeout",
            1.25,
        ),
        claim(
            "fortify preset stack",
            "tower-resilience retry + breaker + bulkhead + timeout",
            0.5,
        ),
    ]
}

/// tower-resilience's retry, breaker, bulkhead and timeout, outermost first.
fn resilience() -> impl Service<Req, Response = Res, Error = impl std::fmt::Debug> {
    use tower_resilience::{
        bulkhead::BulkheadLayer, circuitbreaker::CircuitBreakerLayer as Breaker,
    };
    let timeout = Timeout::new(ok_http(), Duration::from_secs(10));
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(64)
        .backpressure()
        .build()
        .expect("valid")
        .layer(timeout);
    let breaker = Breaker::builder().build().expect("valid").layer(bulkhead);
    tower_resilience::retry::RetryLayer::<Req, Res, _>::builder()
        .max_attempts(3)
        .fixed_backoff(Duration::ZERO)
        .build()
        .layer(breaker)
}
