//! The interleaved bench's budget and output: the plan (rounds, calls, scaling windows) read
//! from the environment, the human tables, the targets it checks, and a machine-readable copy
//! of every figure for `scripts/interleaved-merge.py`, which merges several processes.
//!
//! Why several processes: the `http::Request` lines depend on the process's address layout
//! (with ASLR, a pool line's overhead over bare moved several-fold between runs of the same
//! binary, and by a few percent with ASLR off), so one process's table can pass or fail a
//! target by chance. `scripts/benchmarks.sh` runs the bench in several processes, each with
//! fewer calls, and reports each line's median across them with its spread.
//!
//! Environment (each optional):
//! - `FORTIFY_BENCH_QUICK=1`: 3 rounds of 20,000 calls, 100 ms scaling windows (checks that
//!   the bench works, figures meaningless);
//! - `FORTIFY_BENCH_ROUNDS=n`, `FORTIFY_BENCH_CALLS=n`, `FORTIFY_BENCH_SCALING_MS=n`,
//!   `FORTIFY_BENCH_SCALING_ROUNDS=n`: rounds, calls per variant per round, the length of each
//!   scaling window and the scaling samples per shared service (each a window of one task and
//!   one of two), over the defaults (9, 400,000, 500 ms, and `min(rounds, 5)`) or the quick
//!   ones;
//! - `FORTIFY_BENCH_TSV=path`: also write every figure to `path` as tab-separated records:
//!   `plan  rounds  calls  scaling_ms  scaling_rounds`, `layout  stack  heap` (the offsets
//!   within a page of a local of the bench's first frames and of an early allocation), then
//!   per table row `variant  table  name  baseline  median_ns  round_ns,...` (the first row is
//!   the bare service, `baseline` empty when the row has none), per target
//!   `claim  table  ours  baseline  at_most` (ours' overhead over bare at most `at_most` times
//!   the baseline's), and per shared service `scaling  name  median  ratio,...  at_least`
//!   (`at_least` empty without a target).

use std::{
    fs::File,
    io::{BufWriter, Write},
    time::Duration,
};

pub(crate) struct Plan {
    pub(crate) rounds: usize,
    pub(crate) calls: u64,
    pub(crate) scaling: Duration,
    /// Samples per shared service on the scaling line.
    pub(crate) scaling_rounds: usize,
}

fn number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number, not {value:?}")),
    )
}

pub(crate) fn plan() -> Plan {
    let quick = std::env::var_os("FORTIFY_BENCH_QUICK").is_some();
    let (rounds, calls, scaling_ms) = if quick {
        (3, 20_000, 100)
    } else {
        (9, 400_000, 500)
    };
    let rounds = number("FORTIFY_BENCH_ROUNDS").map_or(rounds, |n| n.max(1) as usize);
    Plan {
        rounds,
        calls: number("FORTIFY_BENCH_CALLS").map_or(calls, |n| n.max(10)),
        scaling: Duration::from_millis(number("FORTIFY_BENCH_SCALING_MS").unwrap_or(scaling_ms)),
        scaling_rounds: number("FORTIFY_BENCH_SCALING_ROUNDS")
            .map_or(rounds.min(5), |n| n.max(1) as usize),
    }
}

pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// A target in one table: `ours`' overhead over bare at most `at_most` times `baseline`'s.
pub(crate) struct Claim {
    pub(crate) ours: &'static str,
    pub(crate) baseline: &'static str,
    pub(crate) at_most: f64,
}

/// Prints the human tables and, with `FORTIFY_BENCH_TSV`, writes the records.
pub(crate) struct Report {
    tsv: Option<BufWriter<File>>,
    /// The targets' rows, printed last: claim, ratio, target, verdict.
    verdicts: Vec<String>,
}

impl Report {
    pub(crate) fn new(plan: &Plan) -> Self {
        let tsv = std::env::var_os("FORTIFY_BENCH_TSV").map(|path| {
            let file =
                File::create(&path).unwrap_or_else(|e| panic!("FORTIFY_BENCH_TSV={path:?}: {e}"));
            BufWriter::new(file)
        });
        let mut report = Report {
            tsv,
            verdicts: Vec::new(),
        };
        report.record(&[
            "plan",
            &plan.rounds.to_string(),
            &plan.calls.to_string(),
            &plan.scaling.as_millis().to_string(),
            &plan.scaling_rounds.to_string(),
        ]);
        // Where this process's stack and heap start within a page (ASLR moves both): the
        // runs' futures live on the stack of `block_on`, the requests' parts on the heap.
        let local = 0u8;
        let heap = Box::new(0u64);
        let stack = std::hint::black_box(&local) as *const u8 as usize % 4096;
        let heap = std::hint::black_box(&*heap) as *const u64 as usize % 4096;
        println!("address layout: stack at {stack:#05x}, heap at {heap:#05x} within a page");
        report.record(&["layout", &stack.to_string(), &heap.to_string()]);
        report
    }

    fn record(&mut self, fields: &[&str]) {
        if let Some(tsv) = &mut self.tsv {
            writeln!(tsv, "{}", fields.join("\t")).expect("FORTIFY_BENCH_TSV is writable");
        }
    }

    /// One table: `rows` (name, baseline) with each row's ns per call per round, the first
    /// row the bare service; then the table's targets whose rows ran.
    pub(crate) fn table(
        &mut self,
        title: &str,
        rows: &[(&str, Option<&str>)],
        samples: &[Vec<f64>],
        claims: &[Claim],
    ) {
        let medians: Vec<f64> = samples.iter().map(|s| median(s)).collect();
        let bare = medians[0];
        let overhead =
            |name: &str| Some(medians[rows.iter().position(|(n, _)| *n == name)?] - bare);
        println!("\n### {title}\n");
        println!("| variant | ns per call | over bare | ratio of overheads |");
        println!("|---|---|---|---|");
        for (i, &(name, baseline)) in rows.iter().enumerate() {
            let ratio = match baseline.and_then(|b| Some((b, overhead(b)?))) {
                Some((b, over)) => format!("{:.2}x {b}", (medians[i] - bare) / over),
                None => String::new(),
            };
            println!(
                "| {name} | {:.1} | {:+.1} | {ratio} |",
                medians[i],
                medians[i] - bare
            );
            let rounds: Vec<String> = samples[i].iter().map(|ns| format!("{ns:.2}")).collect();
            self.record(&[
                "variant",
                title,
                name,
                baseline.unwrap_or(""),
                &format!("{:.3}", medians[i]),
                &rounds.join(","),
            ]);
        }
        for claim in claims {
            let (Some(ours), Some(baseline)) = (overhead(claim.ours), overhead(claim.baseline))
            else {
                continue; // Left out by `FORTIFY_BENCH_ONLY`.
            };
            let ratio = ours / baseline;
            self.verdicts.push(format!(
                "| {} / {} | {ratio:.2}x | <= {:.2}x | {} |",
                claim.ours,
                claim.baseline,
                claim.at_most,
                if ratio <= claim.at_most {
                    "met"
                } else {
                    "NOT met"
                }
            ));
            self.record(&[
                "claim",
                title,
                claim.ours,
                claim.baseline,
                &claim.at_most.to_string(),
            ]);
        }
    }

    pub(crate) fn scaling_header(&self) {
        println!("\n### One shared instance: calls/s of 2 tasks on 2 workers over 1 task on 1\n");
        println!("| shared service | median | range |");
        println!("|---|---|---|");
    }

    /// One shared service's ratios (2 tasks over 1), with its target if it has one.
    pub(crate) fn scaling(&mut self, name: &str, mut ratios: Vec<f64>, at_least: Option<f64>) {
        ratios.sort_by(|a, b| a.total_cmp(b));
        let m = median(&ratios);
        println!(
            "| {name} | {m:.2}x | {:.2}x to {:.2}x |",
            ratios[0],
            ratios[ratios.len() - 1]
        );
        if let Some(at_least) = at_least {
            self.verdicts.push(format!(
                "| {name}, 2 threads / 1 | {m:.2}x | >= {at_least:.2}x | {} |",
                if m >= at_least { "met" } else { "NOT met" }
            ));
        }
        let samples: Vec<String> = ratios.iter().map(|r| format!("{r:.4}")).collect();
        self.record(&[
            "scaling",
            name,
            &format!("{m:.4}"),
            &samples.join(","),
            &at_least.map(|a| a.to_string()).unwrap_or_default(),
        ]);
    }

    /// Prints the targets (this process's figures only) and flushes the records.
    pub(crate) fn finish(mut self) {
        if !self.verdicts.is_empty() {
            println!("\n### Targets (this process; a claim holds in the median of several)\n");
            println!("| claim | ratio | target | verdict |");
            println!("|---|---|---|---|");
            for row in &self.verdicts {
                println!("{row}");
            }
        }
        if let Some(mut tsv) = self.tsv.take() {
            tsv.flush().expect("FORTIFY_BENCH_TSV is writable");
        }
    }
}
