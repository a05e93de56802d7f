//! Paired timing: our variant and its baseline timed in alternating batches, in the same
//! moments, with the ratio taken from those same calls.
//!
//! Measured one after the other, as criterion does with two functions, two variants a few
//! percent apart swap places from run to run on a shared 2-core machine: the machine drifts
//! (clock frequency, the other tenants' load) between the two measurements. Here one
//! criterion function per pair runs both sides in alternating batches of 128 calls (which
//! side goes first alternates too), reports our side's time to criterion, and adds both
//! sides' times to a running total; the summary prints the ratio of those totals, so every
//! call of ours is compared with calls of the baseline made in the same moments. Shared by
//! the benches that state a target against a baseline
//! (`#[path = "support/paired.rs"] mod paired;`).

use criterion::{measurement::WallTime, BenchmarkGroup};
use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// Calls per batch: the clock is read twice per batch (about 23 ns a read here), about
/// 0.4 ns per call, on both sides alike.
const BATCH: u64 = 128;

/// Both sides' time and calls, per pair, over the whole run (warm-up included: both sides
/// alike).
#[derive(Default)]
struct Totals {
    ours: Duration,
    baseline: Duration,
    calls: u64,
}

static TOTALS: Mutex<Vec<(String, Totals)>> = Mutex::new(Vec::new());

/// Registers `name` in `group`: `ours` and `baseline` (each a closure making one call on
/// its own service) timed in alternating batches; criterion reports `ours`.
pub(crate) fn paired(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    ours: impl FnMut(),
    baseline: impl FnMut(),
) {
    paired_in_batches(group, name, BATCH, ours, baseline);
}

/// [`paired`] with `batch` calls per batch instead of `BATCH`: calls that take
/// milliseconds (a batch of requests over loopback) alternate every call or few calls,
/// or criterion's few iterations per sample would all run in one batch of each side.
pub(crate) fn paired_in_batches(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    batch: u64,
    mut ours: impl FnMut(),
    mut baseline: impl FnMut(),
) {
    // Which side goes first carries over from one sample to the next, so that samples
    // shorter than two batches do not always start with the same side.
    let mut ours_first = true;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (ours_time, baseline_time) =
                alternate(iters, batch, &mut ours_first, &mut ours, &mut baseline);
            let mut totals = TOTALS.lock().unwrap();
            let index = match totals.iter().position(|(n, _)| n == name) {
                Some(index) => index,
                None => {
                    totals.push((name.to_owned(), Totals::default()));
                    totals.len() - 1
                }
            };
            let entry = &mut totals[index].1;
            entry.ours += ours_time;
            entry.baseline += baseline_time;
            entry.calls += iters;
            ours_time
        });
    });
}

/// `iters` calls of each side in alternating batches of `batch`: the time each side took.
fn alternate(
    iters: u64,
    batch_size: u64,
    ours_first: &mut bool,
    ours: &mut impl FnMut(),
    baseline: &mut impl FnMut(),
) -> (Duration, Duration) {
    let (mut ours_time, mut baseline_time) = (Duration::ZERO, Duration::ZERO);
    let mut left = iters;
    while left > 0 {
        let n = left.min(batch_size);
        if *ours_first {
            ours_time += batch(n, ours);
            baseline_time += batch(n, baseline);
        } else {
            baseline_time += batch(n, baseline);
            ours_time += batch(n, ours);
        }
        *ours_first = !*ours_first;
        left -= n;
    }
    (ours_time, baseline_time)
}

/// The time `n` calls of `call` took.
#[inline(always)]
fn batch(n: u64, call: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        call();
    }
    start.elapsed()
}

/// The ratio of our time to the baseline's for pair `name` in this run, if it was measured.
#[allow(dead_code)] // for the benches whose summary states a target from a pair
pub(crate) fn ratio(name: &str) -> Option<f64> {
    let totals = TOTALS.lock().unwrap();
    let (_, t) = totals.iter().find(|(n, _)| n == name)?;
    Some(t.ours.as_secs_f64() / t.baseline.as_secs_f64())
}

/// Prints each pair measured in this run: both sides' time per call and their ratio.
pub(crate) fn print_ratios() {
    let totals = TOTALS.lock().unwrap();
    if totals.is_empty() {
        return;
    }
    println!("\npaired (both sides timed in alternating batches, in the same moments):");
    println!(
        "{:<48} {:>9} {:>9} {:>7} {:>12}",
        "pair", "ours", "baseline", "ratio", "calls each"
    );
    for (name, t) in totals.iter() {
        let per_call = |d: Duration| d.as_nanos() as f64 / t.calls as f64;
        let (ours, baseline) = (per_call(t.ours), per_call(t.baseline));
        println!(
            "{name:<48} {ours:>9.1} {baseline:>9.1} {:>7.3} {:>12}",
            ours / baseline,
            t.calls
        );
    }
}
