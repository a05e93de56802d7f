//! Paired timing: a variant and its baseline measured in alternating batches inside every
//! criterion sample, so that both see the same machine (clock frequency, the other tenants'
//! load) and their ratio holds still while a shared machine drifts.
//!
//! Measured one after the other, as criterion does by default, two variants a few percent
//! apart swap places from run to run on a shared 2-core machine. Here each of the two
//! criterion functions times only its own calls, and runs the other variant's calls (not
//! timed) between its batches: the ratio of the two estimates compares calls made in the
//! same moments. Shared by the benches that state a target against a baseline
//! (`#[path = "support/paired.rs"] mod paired;`).

use criterion::{measurement::WallTime, BenchmarkGroup};
use std::time::{Duration, Instant, SystemTime};

/// Calls per batch: the clock is read twice per batch, about 0.2 ns per call.
const BATCH: u64 = 128;

/// Registers `ours` and `baseline` in `group`, each timed in batches alternating with the
/// other's. `make_*` build a fresh call closure (with its own service) for each function.
pub(crate) fn paired<A, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    ours: (&str, impl Fn() -> A),
    baseline: (&str, impl Fn() -> B),
) where
    A: FnMut(),
    B: FnMut(),
{
    let (ours_name, make_ours) = ours;
    let (baseline_name, make_baseline) = baseline;
    group.bench_function(ours_name, |b| {
        let (mut timed, mut other) = (make_ours(), make_baseline());
        b.iter_custom(|iters| alternate(iters, &mut timed, &mut other));
    });
    group.bench_function(baseline_name, |b| {
        let (mut timed, mut other) = (make_baseline(), make_ours());
        b.iter_custom(|iters| alternate(iters, &mut timed, &mut other));
    });
}

/// The time `iters` calls of `timed` took, with as many calls of `other` between batches.
fn alternate(iters: u64, timed: &mut impl FnMut(), other: &mut impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        let start = Instant::now();
        for _ in 0..n {
            timed();
        }
        total += start.elapsed();
        for _ in 0..n {
            other();
        }
        left -= n;
    }
    total
}

/// Prints `ours / baseline` for each pair of `group`, from criterion's estimates of the run
/// that began at `since` (needs `mod estimates;` beside this module).
pub(crate) fn print_ratios(group: &str, pairs: &[(&str, &str)], since: SystemTime) {
    println!("\nsummary: paired ratios (each pair timed in alternating batches)");
    for (ours, baseline) in pairs {
        let ns = |name| super::estimates::estimate(group, name, since);
        match (ns(ours), ns(baseline)) {
            (Some(a), Some(b)) => {
                println!("{ours} / {baseline}: {a:.1} / {b:.1} ns = {:.3}", a / b)
            }
            _ => println!("{ours} / {baseline}: not run"),
        }
    }
}
