//! The printed table and the number formatting both reports share.

use std::time::Duration;

pub(crate) fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.2}%", n as f64 * 100.0 / of as f64)
    }
}

pub(crate) fn pct3(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.3}%", n as f64 * 100.0 / of as f64)
    }
}

pub(crate) fn count_pct(n: usize, of: usize) -> String {
    format!("{n} ({})", pct(n, of))
}

pub(crate) fn per_request(n: u64, requests: usize) -> String {
    format!("{:.3}", n as f64 / requests.max(1) as f64)
}

pub(crate) fn row2(t: &mut Table, label: &str, bare: u64, fort: u64) {
    t.row(label, bare.to_string(), fort.to_string());
}

/// The `p` quantile (`0.0..=1.0`) of `sorted`, by the nearest rank (`None` if empty).
pub(crate) fn quantile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(i - 1).copied()
}

/// p50 and p99 of `times`, in ms (`-` if empty).
pub(crate) fn percentiles(times: &[Duration]) -> (String, String) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let pct = |p: f64| quantile(&sorted, p).map_or_else(|| "-".into(), ms);
    (pct(0.50), pct(0.99))
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub(crate) fn ms_or_dash(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), ms)
}

/// A table: a label column, then one column per client.
pub(crate) struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(columns: &[&str]) -> Table {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// A row of a two-client table.
    pub(crate) fn row(
        &mut self,
        label: impl Into<String>,
        bare: impl Into<String>,
        fort: impl Into<String>,
    ) {
        self.rows.push(vec![label.into(), bare.into(), fort.into()]);
    }

    /// A row with one cell per column.
    pub(crate) fn row_n(
        &mut self,
        label: impl Into<String>,
        cells: impl IntoIterator<Item = String>,
    ) {
        self.rows
            .push(std::iter::once(label.into()).chain(cells).collect());
    }

    pub(crate) fn section(&mut self, title: &str) {
        self.rows.push(vec![format!("# {title}")]);
    }

    pub(crate) fn print(&self) {
        let width = |i: usize, min: usize| {
            self.rows
                .iter()
                .filter(|r| r.len() > 1)
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
                .max(min)
        };
        let widths: Vec<usize> = std::iter::once(width(0, 0))
            .chain(
                self.columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| width(i + 1, c.len())),
            )
            .collect();
        let line = |cells: &[String]| {
            let mut out = format!("  {:<w$}", cells[0], w = widths[0]);
            for (cell, w) in cells[1..].iter().zip(&widths[1..]) {
                out.push_str(&format!(" | {cell:>w$}"));
            }
            println!("{out}");
        };
        let mut header = vec![String::new()];
        header.extend(self.columns.iter().cloned());
        line(&header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("  {}", rule.join("-+-"));
        for row in &self.rows {
            match row[0].strip_prefix("# ") {
                Some(title) if row.len() == 1 => println!("  {title}"),
                _ => line(row),
            }
        }
    }
}
