//! Criterion's own estimates of the current run, read back for a summary table.
//!
//! Shared by the benches that print ratios after criterion has run
//! (`#[path = "support/estimates.rs"] mod estimates;`).

use std::{path::PathBuf, time::SystemTime};

/// Where criterion writes its estimates: `$CRITERION_HOME`, or `criterion/` in the target
/// directory, which holds this executable in `<profile>/deps/`.
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The point estimate criterion reports for `group/function` (the slope when it has one,
/// else the mean), in ns; `None` if it was not measured since `since`.
pub(crate) fn estimate(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let safe = |s: &str| s.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    let path = criterion_dir()?
        .join(safe(group))
        .join(safe(function))
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let point = |key: &str| json.get(key)?.get("point_estimate")?.as_f64();
    point("slope").or_else(|| point("mean"))
}

/// A bench's `main`: runs the criterion groups, then `summary` of what this run measured
/// (only under `cargo bench`).
pub(crate) fn main_with_summary(benches: fn(), summary: fn(SystemTime)) {
    let started = SystemTime::now();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    if benchmarking() {
        summary(started);
    }
}

/// Whether this run benchmarks (`cargo bench`), as opposed to `cargo test --benches` or
/// `--list`: only then is there a summary to print.
pub(crate) fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list")
}
