//! The cost of the adaptive limit: `PoolLimit` with `adaptive(AdaptiveLimit::gradient())`
//! beside the same pool with a fixed limit, in one run, on the uncontended path (issue 17's
//! target: at most 1.5 times the fixed pool's cost).
//!
//! Every call is `poll_ready`, `call`, one poll of the response future (ready at once),
//! then the response is dropped (its body holds the permit). The pools never fill (64
//! permits, one call at a time). No runtime: each call is driven with `Waker::noop()`. The
//! adaptive pool reads the clock twice in one call in `every`, drawn per thread (when the
//! permit is taken and when the response arrives: tokio's clock, which checks for a paused
//! test clock since the dev-dependencies enable `test-util`), adds each timed call to its
//! window, and once per window (100 ms) closes it; its limit stays at `maxsize` (one call
//! at a time leaves it app-limited, so it never moves). A new pool times every call in its
//! first window; then, at millions of calls a second, one in 64 (the most: `every` follows
//! the call rate).
//!
//! The group `adaptive/paired` measures each adaptive variant against its fixed twin in
//! alternating batches (`support/paired.rs`), with a control pair of identical fixed pools.
//!
//! For instruction counts (repeatable on a loaded machine), `FORTIFY_BENCH_CALLS=n` with
//! `FORTIFY_BENCH_ONLY=text` runs `n` calls of the first variant whose name holds `text`,
//! without criterion: run it under `valgrind --tool=callgrind` with two values of `n`, and
//! divide the difference of the totals by the difference of the calls. That measures a
//! new adaptive pool, whose first window (100 ms of wall-clock time, a few thousand calls
//! under callgrind) times every call. For the share a busy pool settles at, add
//! `FORTIFY_BENCH_WARMUP_MS=m` (calls for `m` ms first, e.g. 2000) and count the calls
//! alone with `--toggle-collect='adaptive::profiled*'`:
//!
//! ```text
//! cargo bench --no-run --bench adaptive
//! FORTIFY_BENCH_WARMUP_MS=2000 FORTIFY_BENCH_CALLS=6000 FORTIFY_BENCH_ONLY='adaptive one' \
//!   valgrind --tool=callgrind --toggle-collect='adaptive::profiled*' target/release/deps/adaptive-<hash>
//! ```
//!
//! Run with `cargo bench --bench adaptive`.

use criterion::{criterion_group, Criterion};
use std::time::{Duration, SystemTime};
use tower::{Layer, Service};
use tower_fortify::pool::{AdaptiveLimit, PoolLimitBuilder, PoolLimitLayer};

#[allow(dead_code)]
#[path = "support/estimates.rs"]
mod estimates;
#[path = "support/paired.rs"]
mod paired;
#[path = "support/pool_calls.rs"]
mod pool_calls;

use paired::paired;
use pool_calls::{caller, ok_service, Req};

const MAX: usize = 64;

/// The variants: each fixed pool and its adaptive twin.
fn variants() -> Vec<(&'static str, PoolLimitBuilder)> {
    let one = || {
        PoolLimitLayer::builder(MAX)
            .per_host(false)
            .block(true)
            .pool_timeout(Some(Duration::from_secs(1)))
    };
    let per_host = || PoolLimitLayer::builder(MAX).block(true);
    vec![
        ("fixed one pool, block", one()),
        (
            "adaptive one pool, block",
            one().adaptive(AdaptiveLimit::gradient()),
        ),
        ("fixed per host, block", per_host()),
        (
            "adaptive per host, block",
            per_host().adaptive(AdaptiveLimit::gradient()),
        ),
    ]
}

fn service(builder: PoolLimitBuilder) -> impl Service<Req> {
    builder.build().unwrap().layer(ok_service())
}

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive");
    let mut bare = caller(ok_service());
    group.bench_function("bare", |b| b.iter(&mut bare));
    for (name, builder) in variants() {
        let mut call = caller(service(builder));
        group.bench_function(name, |b| b.iter(&mut call));
    }
    group.finish();
}

fn paired_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive/paired");
    let mut variants = variants().into_iter();
    while let (Some((_, fixed)), Some((name, adaptive))) = (variants.next(), variants.next()) {
        paired(
            &mut group,
            &format!("{name} vs fixed"),
            caller(service(adaptive)),
            caller(service(fixed)),
        );
    }
    let fixed = || PoolLimitLayer::builder(MAX).block(true);
    paired(
        &mut group,
        "control: fixed vs fixed",
        caller(service(fixed())),
        caller(service(fixed())),
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

/// `FORTIFY_BENCH_CALLS=n FORTIFY_BENCH_ONLY=text`: `n` calls of one variant, for callgrind,
/// after `FORTIFY_BENCH_WARMUP_MS` of calls (default none).
fn counted(calls: &str) {
    let calls: u64 = calls.parse().expect("FORTIFY_BENCH_CALLS is a number");
    let only = std::env::var("FORTIFY_BENCH_ONLY").unwrap_or_default();
    let mut call: Box<dyn FnMut()> = if "bare".contains(only.as_str()) && !only.is_empty() {
        Box::new(caller(ok_service()))
    } else {
        let (_, builder) = variants()
            .into_iter()
            .find(|(name, _)| name.contains(only.as_str()))
            .unwrap_or_else(|| panic!("no variant holds {only:?}"));
        Box::new(caller(service(builder)))
    };
    let warm_up = std::env::var("FORTIFY_BENCH_WARMUP_MS").map_or(0, |ms| {
        ms.parse::<u64>()
            .expect("FORTIFY_BENCH_WARMUP_MS is a number")
    });
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(warm_up) {
        for _ in 0..100 {
            call();
        }
    }
    profiled(calls, &mut call);
}

/// The counted calls, apart from start-up and warm-up: never inlined, so that callgrind
/// can count them alone (`--toggle-collect='adaptive::profiled*'`).
#[inline(never)]
fn profiled(calls: u64, call: &mut dyn FnMut()) {
    for _ in 0..calls {
        call();
    }
}

fn main() {
    match std::env::var("FORTIFY_BENCH_CALLS") {
        Ok(calls) => counted(&calls),
        Err(_) => estimates::main_with_summary(benches, summary),
    }
}
