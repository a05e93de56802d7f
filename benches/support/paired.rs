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
//!
//! A ratio of totals is not a ratio of costs: both sides' totals include the work every
//! call does without the layer (building the request, the inner service, dropping the
//! response, the harness), which pulls the ratio towards 1 (a layer costing twice the
//! baseline's overhead shows as about 1.3 when that work is twice the baseline's overhead).
//! A target stated as a ratio of overheads (the plain view's, `benches/interleaved.rs`) is
//! measured with [`paired_overhead`], which times the bare service in the same batches and
//! prints the ratio of both sides' overheads over it.
//!
//! For calls that take milliseconds (a batch of requests over loopback), a burst of the
//! other tenants' load that lands on a few batches moves the ratio of totals; a pair
//! registered with [`paired_per_pair`] also keeps each pair's own ratio (our batch over the
//! baseline's batch next to it), and the summary prints their median, which such a burst
//! moves by one pair of many.

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
    /// The bare service's time, for a pair timed with [`paired_overhead`].
    bare: Option<Duration>,
    calls: u64,
    /// Each pair's ratio, ours over the baseline, for a pair timed with [`paired_per_pair`].
    per_pair: Option<Vec<f64>>,
}

static TOTALS: Mutex<Vec<(String, Totals)>> = Mutex::new(Vec::new());

/// Registers `name` in `group`: `ours` and `baseline` (each a closure making one call on
/// its own service) timed in alternating batches; criterion reports `ours`.
#[allow(dead_code)] // Each bench that includes this file uses one of the two pairings.
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
#[allow(dead_code)]
pub(crate) fn paired_in_batches(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    batch: u64,
    ours: impl FnMut(),
    baseline: impl FnMut(),
) {
    alternating(group, name, batch, false, ours, baseline);
}

/// [`paired_in_batches`], keeping each pair's ratio too (our batch's time over the
/// baseline's batch beside it): the summary prints their median ([`pair_ratios`]) beside
/// the ratio of totals.
#[allow(dead_code)]
pub(crate) fn paired_per_pair(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    batch: u64,
    ours: impl FnMut(),
    baseline: impl FnMut(),
) {
    alternating(group, name, batch, true, ours, baseline);
}

fn alternating(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    batch: u64,
    keep_pairs: bool,
    mut ours: impl FnMut(),
    mut baseline: impl FnMut(),
) {
    // Which side goes first carries over from one sample to the next, so that samples
    // shorter than two batches do not always start with the same side.
    let mut ours_first = true;
    let mut pairs = Vec::new();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            pairs.clear();
            let kept = keep_pairs.then_some(&mut pairs);
            let (ours_time, baseline_time) = alternate(
                iters,
                batch,
                &mut ours_first,
                &mut ours,
                &mut baseline,
                kept,
            );
            record(name, ours_time, baseline_time, None, iters);
            if keep_pairs {
                record_pairs(name, &pairs);
            }
            ours_time
        });
    });
}

/// Registers `name` in `group` as [`paired`] does, with a third side in the same batches:
/// `bare`, calls on the service both sides wrap; the summary prints the ratio of both
/// sides' overheads over it, which is what a target against a baseline states. Each side
/// is a closure that makes the number of calls it is given (a batch), so that a side can
/// make them as a caller does, in one `block_on` of a runtime.
#[allow(dead_code)]
pub(crate) fn paired_overhead(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut ours: impl FnMut(u64),
    mut baseline: impl FnMut(u64),
    mut bare: impl FnMut(u64),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let [ours_time, baseline_time, bare_time] =
                rotate(iters, &mut ours, &mut baseline, &mut bare);
            record(name, ours_time, baseline_time, Some(bare_time), iters);
            ours_time
        });
    });
}

/// Adds a measurement to the pair's totals.
fn record(name: &str, ours: Duration, baseline: Duration, bare: Option<Duration>, calls: u64) {
    let mut totals = TOTALS.lock().unwrap();
    let index = match totals.iter().position(|(n, _)| n == name) {
        Some(index) => index,
        None => {
            totals.push((name.to_owned(), Totals::default()));
            totals.len() - 1
        }
    };
    let entry = &mut totals[index].1;
    entry.ours += ours;
    entry.baseline += baseline;
    if let Some(bare) = bare {
        *entry.bare.get_or_insert(Duration::ZERO) += bare;
    }
    entry.calls += calls;
}

/// Adds each pair's ratio to the pair's list (registered by [`record`] first).
fn record_pairs(name: &str, pairs: &[f64]) {
    let mut totals = TOTALS.lock().unwrap();
    if let Some((_, entry)) = totals.iter_mut().find(|(n, _)| n == name) {
        entry
            .per_pair
            .get_or_insert_with(Vec::new)
            .extend_from_slice(pairs);
    }
}

/// `iters` calls of each of three sides in batches, the side that goes first rotating: the
/// time each side took.
#[allow(dead_code)]
fn rotate(
    iters: u64,
    ours: &mut impl FnMut(u64),
    baseline: &mut impl FnMut(u64),
    bare: &mut impl FnMut(u64),
) -> [Duration; 3] {
    let mut times = [Duration::ZERO; 3];
    let mut left = iters;
    let mut first = 0;
    while left > 0 {
        let n = left.min(BATCH);
        for k in 0..3 {
            let side = (first + k) % 3;
            let start = Instant::now();
            match side {
                0 => ours(n),
                1 => baseline(n),
                _ => bare(n),
            }
            times[side] += start.elapsed();
        }
        first = (first + 1) % 3;
        left -= n;
    }
    times
}

/// `iters` calls of each side in alternating batches of `batch`: the time each side took;
/// each pair's ratio (ours over the baseline) pushed to `pairs` if given.
#[allow(dead_code)]
fn alternate(
    iters: u64,
    batch_size: u64,
    ours_first: &mut bool,
    ours: &mut impl FnMut(),
    baseline: &mut impl FnMut(),
    mut pairs: Option<&mut Vec<f64>>,
) -> (Duration, Duration) {
    let (mut ours_time, mut baseline_time) = (Duration::ZERO, Duration::ZERO);
    let mut left = iters;
    while left > 0 {
        let n = left.min(batch_size);
        let (ours_batch, baseline_batch) = if *ours_first {
            let ours_batch = batch(n, ours);
            (ours_batch, batch(n, baseline))
        } else {
            let baseline_batch = batch(n, baseline);
            (batch(n, ours), baseline_batch)
        };
        ours_time += ours_batch;
        baseline_time += baseline_batch;
        if let Some(pairs) = pairs.as_deref_mut() {
            pairs.push(ours_batch.as_secs_f64() / baseline_batch.as_secs_f64());
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

/// Each pair's ratio (ours over the baseline) for pair `name` in this run, if it was
/// measured with [`paired_per_pair`], in the order measured.
#[allow(dead_code)]
pub(crate) fn pair_ratios(name: &str) -> Option<Vec<f64>> {
    let totals = TOTALS.lock().unwrap();
    let (_, t) = totals.iter().find(|(n, _)| n == name)?;
    t.per_pair.clone().filter(|pairs| !pairs.is_empty())
}

/// The median of `xs` (the mean of the two middle values for an even count); `NaN` if empty.
#[allow(dead_code)]
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(|a, b| a.total_cmp(b));
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Prints each pair measured in this run: both sides' time per call and their ratio; then,
/// for the pairs timed with [`paired_per_pair`], the median of their pairs' ratios.
pub(crate) fn print_ratios() {
    let totals = TOTALS.lock().unwrap();
    if totals.is_empty() {
        return;
    }
    println!("\npaired (both sides timed in alternating batches, in the same moments):");
    println!(
        "{:<48} {:>9} {:>9} {:>7} {:>9} {:>9} {:>12}",
        "pair", "ours", "baseline", "ratio", "bare", "overhead", "calls each"
    );
    for (name, t) in totals.iter() {
        let per_call = |d: Duration| d.as_nanos() as f64 / t.calls as f64;
        let (ours, baseline) = (per_call(t.ours), per_call(t.baseline));
        // The ratio of overheads over the bare service, when it was timed too.
        let (bare, overhead) = match t.bare.map(per_call) {
            Some(bare) => (
                format!("{bare:.1}"),
                format!("{:.3}", (ours - bare) / (baseline - bare)),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{name:<48} {ours:>9.1} {baseline:>9.1} {:>7.3} {bare:>9} {overhead:>9} {:>12}",
            ours / baseline,
            t.calls
        );
    }
    let per_pair: Vec<_> = totals
        .iter()
        .filter_map(|(name, t)| Some((name, t.per_pair.as_ref().filter(|p| !p.is_empty())?)))
        .collect();
    if per_pair.is_empty() {
        return;
    }
    println!(
        "\npaired, per pair (ours over the baseline in each pair of batches; median, quartiles):"
    );
    println!(
        "{:<48} {:>7} {:>7} {:>7} {:>7}",
        "pair", "median", "q1", "q3", "pairs"
    );
    for (name, pairs) in per_pair {
        let mut sorted = pairs.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let quartile = |q: usize| sorted[(sorted.len() - 1) * q / 4];
        println!(
            "{name:<48} {:>7.3} {:>7.3} {:>7.3} {:>7}",
            median(pairs),
            quartile(1),
            quartile(3),
            pairs.len()
        );
    }
}
