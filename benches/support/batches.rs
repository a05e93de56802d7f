//! Timing for criterion's `iter_custom` over a tokio runtime: the benches that send whole
//! batches of requests over loopback (`#[path = "support/batches.rs"] mod batches;`).

use criterion::{Criterion, Throughput};
use std::{
    future::Future,
    time::{Duration, Instant},
};
use tokio::runtime::Runtime;

/// The runtime and batch count of a `FORTIFY_BENCH_PROFILE` run: one thread (callgrind runs
/// one thread at a time anyway, and with two workers the order in which tasks are stolen
/// and parked changes the counts from run to run), and `FORTIFY_BENCH_BATCHES` batches
/// (default 10).
#[allow(dead_code)] // not every bench that includes this file has a profile mode
pub(crate) fn profile_setup() -> (Runtime, u64) {
    let batches: u64 = std::env::var("FORTIFY_BENCH_BATCHES")
        .map_or(Ok(10), |n| n.parse())
        .expect("FORTIFY_BENCH_BATCHES: a number of batches");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    (runtime, batches)
}

/// The time `iters` runs of `batch` take on `runtime`.
pub(crate) fn time_batches<F: Future<Output = ()>>(
    runtime: &Runtime,
    iters: u64,
    mut batch: impl FnMut() -> F,
) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            batch().await;
        }
        started.elapsed()
    })
}

/// Two clients' keep-alive batches side by side in one criterion group: both warmed up
/// outside the timing (their connections opened), then each measured in requests per
/// second (`requests` per batch).
pub(crate) fn keep_alive_pair<A, FA, B, FB>(
    c: &mut Criterion,
    runtime: &Runtime,
    group: &str,
    requests: u64,
    (name_a, mut a): (&str, A),
    (name_b, mut b): (&str, B),
) where
    A: FnMut() -> FA,
    FA: Future<Output = ()>,
    B: FnMut() -> FB,
    FB: Future<Output = ()>,
{
    runtime.block_on(async {
        a().await;
        b().await;
    });
    let mut group = c.benchmark_group(group);
    group
        .throughput(Throughput::Elements(requests))
        .sample_size(10);
    group.bench_function(name_a, |bench| {
        bench.iter_custom(|iters| time_batches(runtime, iters, &mut a))
    });
    group.bench_function(name_b, |bench| {
        bench.iter_custom(|iters| time_batches(runtime, iters, &mut b))
    });
    group.finish();
}
