//! Per-call overhead of `tower_fortify::pool::PoolLimit` on a trivial service, side by side
//! with the bare service, tower's `ConcurrencyLimit` and tower-resilience's bulkhead, in one
//! run.
//!
//! Every call is `poll_ready`, `call`, one poll of the response future (ready at once),
//! then the response is dropped: for `PoolLimit` that drops the body that holds the
//! permit, for the others the permit went with the future. The pools never fill (64
//! permits, one call at a time), so this is the uncontended path. No runtime: each call is
//! driven with `Waker::noop()`, so the figures hold no executor cost.
//!
//! tower-resilience's bulkhead is measured in its backpressure mode (reserve in
//! `poll_ready`, like `ConcurrencyLimit` and our single pool) and in its default mode
//! (acquire in the boxed response future). `GenericPoolLimit` gives its permit back with
//! the response future, as `ConcurrencyLimit` does; `PoolLimit` moves it into the response
//! body. The `leak_threshold` variant adds a clock read per call (tokio's clock, which
//! checks for a paused test clock since the dev-dependencies enable `test-util`).
//!
//! The group `pool/paired` measures the target's comparisons again (one pool and per host
//! against `ConcurrencyLimit`, the generic pool on `http::Request` and `u64` requests), each pair and the bare
//! service in rotating batches (`support/paired.rs`, `paired_overhead`), so the ratio
//! compares calls made in the same moments; a control pair of identical services checks
//! the harness. Its calls are made as a caller makes them (`ready().await`, `.await`, in
//! one `block_on` per batch), as in the plain view (`benches/interleaved.rs`), and the
//! summary prints both ratios: of totals, and of overheads over the bare service, which is
//! the target's ratio and the plain view's. This group once reported `GenericPoolLimit` at
//! 0.93x `ConcurrencyLimit` while the plain view found 2.3x, for two reasons: a ratio of
//! totals counts the request, the inner service and the harness on both sides, which pulls
//! it towards 1; and calls driven by hand with a no-op waker compile differently from a
//! caller's, so the pool's cost there was not the one callers paid (its permit, copied as
//! a split word, stalled on store forwarding under `ready().await`, not there). The generic
//! pool is compared on `u64` requests too, as in the plain view.
//!
//! Run with `cargo bench --bench pool`; criterion prints ns per call for each.

use criterion::{criterion_group, Criterion};
use std::{
    future::{ready, Ready},
    hint::black_box,
    io,
    time::{Duration, SystemTime},
};
use tower::{limit::ConcurrencyLimit, Layer, Service, ServiceExt};
use tower_fortify::pool::{PoolLimitBuilder, PoolLimitLayer};
use tower_resilience::bulkhead::BulkheadLayer;

// Only its `main` helper: the ratios here come from `paired`, not criterion's estimates.
#[allow(dead_code)]
#[path = "support/estimates.rs"]
mod estimates;
#[path = "support/paired.rs"]
mod paired;
#[path = "support/pool_calls.rs"]
mod pool_calls;

use paired::paired_overhead;
use pool_calls::{call_once, ok_service, request, Req};

const MAX: usize = 64;

fn bench<S: Service<Req>>(c: &mut Criterion, name: &str, mut svc: S) {
    assert!(call_once(&mut svc, request()), "{name}: a call succeeds");
    c.bench_function(name, |b| {
        b.iter(|| call_once(&mut svc, black_box(request())));
    });
}

fn ours(builder: PoolLimitBuilder) -> impl Service<Req, Error = tower_fortify::BoxError> {
    builder.build().unwrap().layer(ok_service())
}

fn overhead(c: &mut Criterion) {
    bench(c, "bare", ok_service());
    bench(
        c,
        "tower ConcurrencyLimit",
        ConcurrencyLimit::new(ok_service(), MAX),
    );
    bench(
        c,
        "tower-resilience bulkhead (backpressure)",
        BulkheadLayer::builder()
            .max_concurrent_calls(MAX)
            .backpressure()
            .build()
            .unwrap()
            .layer(ok_service()),
    );
    bench(
        c,
        "tower-resilience bulkhead (default)",
        BulkheadLayer::builder()
            .max_concurrent_calls(MAX)
            .build()
            .unwrap()
            .layer(ok_service()),
    );
    bench(
        c,
        "PoolLimit one pool, block",
        ours(
            PoolLimitLayer::builder(MAX)
                .per_host(false)
                .block(true)
                .pool_timeout(Some(Duration::from_secs(1))),
        ),
    );
    bench(
        c,
        "GenericPoolLimit, block",
        PoolLimitLayer::builder(MAX)
            .block(true)
            .build_generic()
            .unwrap()
            .layer(ok_service()),
    );
    bench(
        c,
        "PoolLimit one pool, block=False",
        ours(PoolLimitLayer::builder(MAX).per_host(false)),
    );
    bench(
        c,
        "PoolLimit one pool, block, leak_threshold",
        ours(
            PoolLimitLayer::builder(MAX)
                .per_host(false)
                .block(true)
                .leak_threshold(Some(Duration::from_secs(60))),
        ),
    );
    bench(
        c,
        "PoolLimit per host, block",
        ours(PoolLimitLayer::builder(MAX).block(true)),
    );
    bench(
        c,
        "PoolLimit per host, block=False",
        ours(PoolLimitLayer::builder(MAX)),
    );
}

/// A batch closure over its own service, for the paired group: it makes the calls it is
/// given on requests from `make`, as a caller makes them (`ready().await`, then
/// `call(..).await`, in one `block_on` of a current-thread runtime), as the plain view
/// does. Driven by hand with a no-op waker instead, the compiled call differs, and so can
/// its cost: a permit copy that stalled on store forwarding under `ready().await` did not
/// there.
fn caller<Q, S>(mut svc: S, make: fn() -> Q) -> impl FnMut(u64)
where
    S: Service<Q>,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut calls = move |n: u64| {
        rt.block_on(async {
            for _ in 0..n {
                let response = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(black_box(make()))
                    .await
                    .expect("a call succeeds");
                drop(black_box(response));
            }
        });
    };
    calls(1);
    calls
}

fn ok_u64(
) -> impl Service<u64, Response = u64, Error = io::Error, Future = Ready<Result<u64, io::Error>>> {
    tower::service_fn(|n: u64| ready(Ok(n)))
}

fn u64_request() -> u64 {
    7
}

/// The target's comparisons, each pair and the bare service timed in rotating batches,
/// the ratio of overheads printed in the summary (see `support/paired.rs`).
fn paired_overhead_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/paired");
    let block = || PoolLimitLayer::builder(MAX).block(true);
    let concurrency_limit = || caller(ConcurrencyLimit::new(ok_service(), MAX), request);
    let bare = || caller(ok_service(), request);
    paired_overhead(
        &mut group,
        "PoolLimit one pool, block vs ConcurrencyLimit",
        caller(
            ours(
                block()
                    .per_host(false)
                    .pool_timeout(Some(Duration::from_secs(1))),
            ),
            request,
        ),
        concurrency_limit(),
        bare(),
    );
    paired_overhead(
        &mut group,
        "PoolLimit per host, block vs ConcurrencyLimit",
        caller(ours(block()), request),
        concurrency_limit(),
        bare(),
    );
    paired_overhead(
        &mut group,
        "GenericPoolLimit, block vs ConcurrencyLimit",
        caller(
            block().build_generic().unwrap().layer(ok_service()),
            request,
        ),
        concurrency_limit(),
        bare(),
    );
    paired_overhead(
        &mut group,
        "GenericPoolLimit u64, block vs ConcurrencyLimit",
        caller(
            block().build_generic().unwrap().layer(ok_u64()),
            u64_request,
        ),
        caller(ConcurrencyLimit::new(ok_u64(), MAX), u64_request),
        caller(ok_u64(), u64_request),
    );
    // The control: two identical services must come out at 1.000 (to within a few
    // thousandths for the totals, more for the overheads, which are smaller), or the
    // harness favours one side.
    paired_overhead(
        &mut group,
        "control: ConcurrencyLimit vs ConcurrencyLimit",
        concurrency_limit(),
        concurrency_limit(),
        bare(),
    );
    group.finish();
}

/// The ratios of the paired group.
fn summary(_since: SystemTime) {
    paired::print_ratios();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = overhead, paired_overhead_group
}

fn main() {
    estimates::main_with_summary(benches, summary);
}
