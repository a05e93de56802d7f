//! Success-path overhead of `tower_fortify::retry::Retry` per call, side by side with the
//! bare service, tower's `Retry` with a policy that copies every field of the request
//! (alone, and with tower's `TpsBudget` to set beside the production preset, which has a
//! budget), that copy alone and the copy our layer keeps alone, and tower-resilience's
//! retry layer (3 attempts, no backoff sleeps).
//!
//! Every variant is called with a clone of one `http::Request<Full<Bytes>>` built before
//! the timed loop; the clone is made inside the loop for all of them alike, so its cost is
//! in every figure, the bare one included, and cancels out of the differences.
//!
//! Every future here is ready at the first poll, tower-resilience's included (it touches
//! tokio's timer only to sleep before a retry), so each call is driven by one poll with
//! `Waker::noop()` and no runtime: the figures hold no executor cost.
//!
//! The group `retry/paired` measures the target's comparisons again, each pair in
//! alternating batches (`support/paired.rs`), so the ratio compares calls made in the same
//! moments; a summary prints those ratios.
//!
//! Run with `cargo bench --bench retry`; criterion prints ns per call for each, the ratios
//! are read off the same run.

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{header, Method, Request, Response};
use http_body_util::Full;
use std::{
    hint::black_box,
    io,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};
use tower::{Layer, Service};
use tower_fortify::retry::{RetryLayer, RetryPolicy};

#[path = "support/calls.rs"]
mod calls;
// Only its `main` helper: the ratios here come from `paired`, not criterion's estimates.
#[allow(dead_code)]
#[path = "support/estimates.rs"]
mod estimates;
#[path = "support/paired.rs"]
mod paired;
#[path = "support/tower_policy.rs"]
mod tower_policy;

use calls::{call_once, caller, ok_service, Req};
use paired::paired;
use tower_policy::{CopyRequest, CopyRequestWithBudget};

/// A GET a client would send: idempotent, so every retry layer keeps a copy.
fn request() -> Req {
    Request::builder()
        .method(Method::GET)
        .uri("https://api.example.com/v1/items?page=2")
        .header(header::HOST, "api.example.com")
        .header(header::USER_AGENT, "tower-fortify-bench/0.1")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from_static(b"")))
        .expect("a valid request")
}

fn bench(c: &mut Criterion) {
    let req = request();
    let mut group = c.benchmark_group("retry/success");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("bare", |b| {
        let mut svc = ok_service();
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.bench_function("tower_policy_copy_only", |b| {
        let mut svc = CopyOnly(ok_service(), policy_copy);
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.bench_function("fields_copy_only", |b| {
        let mut svc = CopyOnly(ok_service(), fields_copy);
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.bench_function("tower_retry", |b| {
        let mut svc = tower::retry::RetryLayer::new(CopyRequest).layer(ok_service());
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.bench_function("tower_retry_budget", |b| {
        let mut svc =
            tower::retry::RetryLayer::new(CopyRequestWithBudget::new()).layer(ok_service());
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.bench_function("tower_resilience_retry", |b| {
        let mut svc = tower_resilience_retry().layer(ok_service());
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.bench_function("fortify_retry_default", |b| {
        let layer = RetryLayer::builder().build().unwrap();
        let mut svc = layer.layer(ok_service());
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.bench_function("fortify_retry_production", |b| {
        // The production preset has a budget: each call deposits into it.
        let layer = RetryLayer::builder()
            .policy(RetryPolicy::production())
            .build()
            .unwrap();
        let mut svc = layer.layer(ok_service());
        assert!(call_once(&mut svc, req.clone()));
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
    group.finish();
}

/// A copy of each request made by `F` and dropped when the call returns, around the bare
/// service, and nothing else: what a retry layer's copy costs alone.
#[derive(Clone)]
struct CopyOnly<S, F>(S, F);

impl<S: Service<Req>, F: Fn(&Req) -> T, T> Service<Req> for CopyOnly<S, F> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> S::Future {
        let copy = (self.1)(&req);
        let future = self.0.call(req);
        drop(black_box(copy));
        future
    }
}

/// The copy tower's policy (`CopyRequest`) makes: every field, the header map cloned (two
/// allocations).
fn policy_copy(req: &Req) -> Option<Req> {
    <CopyRequest as tower::retry::Policy<Req, Response<()>, io::Error>>::clone_request(
        &mut CopyRequest,
        req,
    )
}

/// The copy our layer keeps, made the same way here (its type is private): every field,
/// the header fields in one vector (one allocation).
#[allow(clippy::type_complexity)]
fn fields_copy(
    req: &Req,
) -> (
    http::Method,
    http::Uri,
    http::Version,
    Vec<(header::HeaderName, header::HeaderValue)>,
    usize,
    http::Extensions,
    Full<Bytes>,
) {
    let headers = req.headers();
    let mut fields = Vec::with_capacity(headers.len());
    fields.extend(headers.iter().map(|(n, v)| (n.clone(), v.clone())));
    (
        req.method().clone(),
        req.uri().clone(),
        req.version(),
        fields,
        headers.keys_len(),
        req.extensions().clone(),
        req.body().clone(),
    )
}

/// tower-resilience's retry layer: 3 attempts, no backoff sleeps.
fn tower_resilience_retry() -> tower_resilience::retry::RetryLayer<Req, Response<()>, io::Error> {
    tower_resilience::retry::RetryLayer::<Req, Response<()>, io::Error>::builder()
        .max_attempts(3)
        .fixed_backoff(Duration::ZERO)
        .build()
}

/// The targets' comparisons, each pair timed in alternating batches, its ratio printed in
/// the summary (see `support/paired.rs`).
fn bench_paired(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry/paired");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    paired(
        &mut group,
        "fortify_default_vs_tower_retry",
        caller(
            RetryLayer::builder().build().unwrap().layer(ok_service()),
            request(),
        ),
        caller(
            tower::retry::RetryLayer::new(CopyRequest).layer(ok_service()),
            request(),
        ),
    );
    paired(
        &mut group,
        "fortify_production_vs_tower_retry_budget",
        caller(
            RetryLayer::builder()
                .policy(RetryPolicy::production())
                .build()
                .unwrap()
                .layer(ok_service()),
            request(),
        ),
        caller(
            tower::retry::RetryLayer::new(CopyRequestWithBudget::new()).layer(ok_service()),
            request(),
        ),
    );
    paired(
        &mut group,
        "fortify_default_vs_tower_resilience",
        caller(
            RetryLayer::builder().build().unwrap().layer(ok_service()),
            request(),
        ),
        caller(tower_resilience_retry().layer(ok_service()), request()),
    );
    group.finish();
}

/// The ratios of the paired group.
fn summary(_since: SystemTime) {
    paired::print_ratios();
}

criterion_group!(benches, bench, bench_paired);

fn main() {
    estimates::main_with_summary(benches, summary);
}
