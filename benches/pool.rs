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
//! The group `pool/paired` measures the target's comparisons again, each pair in
//! alternating batches (`support/paired.rs`), so the ratio compares calls made in the same
//! moments (one criterion function per pair, the ratio of both sides' totals; a control
//! pair of identical services checks the harness); a summary prints those ratios.
//!
//! Run with `cargo bench --bench pool`; criterion prints ns per call for each.

use criterion::{criterion_group, Criterion};
use std::{
    hint::black_box,
    time::{Duration, SystemTime},
};
use tower::{limit::ConcurrencyLimit, Layer, Service};
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

use paired::paired;
use pool_calls::{call_once, caller, ok_service, request, Req};

const MAX: usize = 64;

fn bench<S: Service<Req>>(c: &mut Criterion, name: &str, mut svc: S) {
    assert!(call_once(&mut svc, request()), "{name}: a call succeeds");
    c.bench_function(name, |b| {
        b.iter(|| call_once(&mut svc, black_box(request())));
    });
}

fn ours(builder: PoolLimitBuilder) -> impl Service<Req> {
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

/// The target's comparisons, each pair timed in alternating batches, its ratio printed in
/// the summary (see `support/paired.rs`).
fn paired_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/paired");
    let block = || PoolLimitLayer::builder(MAX).block(true);
    paired(
        &mut group,
        "PoolLimit one pool, block vs ConcurrencyLimit",
        caller(ours(
            block()
                .per_host(false)
                .pool_timeout(Some(Duration::from_secs(1))),
        )),
        caller(ConcurrencyLimit::new(ok_service(), MAX)),
    );
    paired(
        &mut group,
        "GenericPoolLimit, block vs ConcurrencyLimit",
        caller(block().build_generic().unwrap().layer(ok_service())),
        caller(ConcurrencyLimit::new(ok_service(), MAX)),
    );
    // The control: two identical services must come out at 1.000 (they do, to within 0.002),
    // or the harness favours one side.
    paired(
        &mut group,
        "control: ConcurrencyLimit vs ConcurrencyLimit",
        caller(ConcurrencyLimit::new(ok_service(), MAX)),
        caller(ConcurrencyLimit::new(ok_service(), MAX)),
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
    targets = overhead, paired_overhead
}

fn main() {
    estimates::main_with_summary(benches, summary);
}
