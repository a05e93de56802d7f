//! One run of the main comparison: a fresh flaky backend, one client, its watcher and progress.

use crate::{
    client::{client, fortified_config, hedged_client, Kind},
    options::Options,
    workload::{drive, Progress, Record, Workload},
};
use fortify_test_support::flaky::{BackendStats, Faults, FlakyBackend, Outage, TlsFaults};
use metrics_util::debugging::{DebugValue, Snapshotter};
use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};
use tower_fortify::circuit_breaker::State;

/// Where the outage starts, as a share of the planned run.
pub(crate) const OUTAGE_AT: f64 = 0.4;

pub(crate) struct Run {
    pub(crate) records: Vec<Record>,
    pub(crate) elapsed: Duration,
    pub(crate) outage: Option<(Duration, Duration)>,
    /// When the breaker was last seen closed again after the outage ended.
    pub(crate) recovered: Option<Duration>,
    pub(crate) backend: BackendStats,
    /// How long each TLS handshake took at the backend (empty with `--plain`).
    pub(crate) handshakes: Vec<Duration>,
    pub(crate) max_in_flight: usize,
    pub(crate) pool_max_in_use: usize,
    pub(crate) pool_max: usize,
    pub(crate) pool_timed_out: u64,
    pub(crate) pool_overflowed: u64,
    pub(crate) pool_rejected: u64,
    pub(crate) budget_stops: u64,
    pub(crate) metrics: BTreeMap<String, u64>,
}

pub(crate) async fn run(kind: Kind, options: &Options, snapshotter: &Snapshotter) -> Run {
    let faults = Faults {
        refuse: options.refuse,
        reset: options.reset,
        unavailable: options.unavailable,
        slow: options.slow,
        slow_delay: Duration::from_secs(1),
        seed: options.seed,
    };
    let backend = if options.plain {
        FlakyBackend::start(faults).await
    } else {
        let tls = TlsFaults {
            stall: options.tls_stall,
            reset: options.tls_reset,
        };
        FlakyBackend::start_tls(faults, tls).await
    };
    let (service, pool, breakers) = if kind == Kind::Fortified && options.hedge && !options.plain {
        hedged_client(&backend)
    } else {
        client(kind, fortified_config(), options.plain, &backend)
    };
    let before = metrics_of(snapshotter);

    let progress = Arc::new(Progress {
        done: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let label = match kind {
        Kind::Bare => "bare     ",
        Kind::Fortified => "fortified",
    };
    let planned = if options.rate > 0.0 {
        Duration::from_secs_f64(options.requests as f64 / options.rate)
    } else {
        Duration::ZERO
    };
    let started = Instant::now();
    let outage = (options.outage > 0.0).then(|| {
        let at = if options.rate > 0.0 {
            planned.mul_f64(OUTAGE_AT)
        } else {
            Duration::from_millis(500)
        };
        (at, at + Duration::from_secs_f64(options.outage))
    });
    let outage_task = outage.map(|(from, to)| {
        let backend = backend.clone();
        let kind = options.outage_kind;
        tokio::spawn(async move {
            tokio::time::sleep_until((started + from).into()).await;
            backend.set_outage(kind);
            tokio::time::sleep_until((started + to).into()).await;
            backend.set_outage(Outage::None);
        })
    });
    // Watches the pool and the breaker every 5 ms.
    let watcher = {
        let (pool, breakers, progress) = (pool.clone(), breakers.clone(), progress.clone());
        let total = options.requests;
        let outage_end = outage.map(|(_, to)| to);
        tokio::spawn(async move {
            let (mut max_in_use, mut max_in_flight, mut recovered) = (0, 0, None);
            let mut ticker = Ticker::new(label, total);
            loop {
                max_in_use = max_in_use.max(pool.snapshot().total.in_use);
                max_in_flight = max_in_flight.max(progress.in_flight.load(Relaxed));
                let now = started.elapsed();
                if let Some(end) = outage_end {
                    let closed = breakers
                        .breakers()
                        .iter()
                        .all(|b| b.state() == State::Closed);
                    if now < end || !closed {
                        recovered = None;
                    } else if recovered.is_none() {
                        recovered = Some(now);
                    }
                }
                if ticker.tick(&progress, now) {
                    return (max_in_use, max_in_flight, recovered);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let records = drive(
        service,
        &backend,
        &Workload::of(options),
        started,
        &progress,
    )
    .await;
    let elapsed = started.elapsed();
    let (pool_max_in_use, max_in_flight, recovered) = watcher.await.expect("watcher");
    if let Some(task) = outage_task {
        task.abort();
    }
    let after = metrics_of(snapshotter);
    let metrics = after
        .into_iter()
        .map(|(k, v)| {
            let d = v - before.get(&k).copied().unwrap_or(0);
            (k, d)
        })
        .filter(|(_, v)| *v > 0)
        .collect::<BTreeMap<_, _>>();
    let snapshot = pool.snapshot();
    let fortified_run = kind == Kind::Fortified;
    Run {
        budget_stops: metrics
            .get("fortify_retry_stopped_total{stop=budget}")
            .copied()
            .unwrap_or(0),
        records,
        elapsed,
        outage,
        recovered: if fortified_run { recovered } else { None },
        backend: backend.stats(),
        handshakes: backend.handshake_times(),
        max_in_flight,
        pool_max_in_use,
        pool_max: snapshot.pools.iter().map(|p| p.max).max().unwrap_or(0),
        pool_timed_out: snapshot.total.timed_out,
        pool_overflowed: snapshot.total.overflowed,
        pool_rejected: snapshot.total.rejected,
        metrics: if fortified_run {
            metrics
        } else {
            BTreeMap::new()
        },
    }
}

/// Shows a run's progress on stderr: a bar redrawn every 100 ms on a terminal, else a line
/// per quarter of the requests.
pub(crate) struct Ticker {
    label: &'static str,
    total: usize,
    tty: bool,
    last_draw: Option<Instant>,
    printed_quarter: usize,
}

impl Ticker {
    pub(crate) fn new(label: &'static str, total: usize) -> Ticker {
        Ticker {
            label,
            total,
            tty: std::io::stderr().is_terminal(),
            last_draw: None,
            printed_quarter: 0,
        }
    }

    /// Shows the progress if it is time to; true once every request is done.
    pub(crate) fn tick(&mut self, progress: &Progress, now: Duration) -> bool {
        let (label, total) = (self.label, self.total);
        let done = progress.done.load(Relaxed);
        if self.tty
            && self
                .last_draw
                .is_none_or(|last| last.elapsed() >= Duration::from_millis(100))
        {
            self.last_draw = Some(Instant::now());
            self.draw(done, now, progress.in_flight.load(Relaxed));
        } else if !self.tty && done * 4 >= (self.printed_quarter + 1) * total {
            self.printed_quarter += 1;
            eprintln!(
                "{label} {done}/{total} requests, {:.1} s",
                now.as_secs_f64()
            );
        }
        if done == total && self.tty {
            self.draw(done, now, 0);
            eprintln!();
        }
        done == total
    }

    fn draw(&self, done: usize, now: Duration, in_flight: usize) {
        const WIDTH: usize = 30;
        let (label, total) = (self.label, self.total);
        let filled = done * WIDTH / total.max(1);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{label} [{}{}] {done:>6}/{total} {:>5.1} s  in flight {in_flight:>3} ",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            now.as_secs_f64()
        );
        let _ = err.flush();
    }
}

/// Every counter of the recorder, as `name{label=value,...}` without the `name` label.
fn metrics_of(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .filter(|l| l.key() != "name")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = if labels.is_empty() {
            key.name().to_string()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        *out.entry(name).or_insert(0) += n;
    }
    out
}
