//! The overload phase: a backend whose capacity drops, three clients at once, and its report.

use crate::{
    client::{client, fortified_config, Kind},
    options::Options,
    run::Ticker,
    table::{count_pct, ms, ms_or_dash, quantile, Table},
    workload::{drive, Progress, Record, Workload},
};
use fortify_test_support::flaky::{Capacity, Faults, FlakyBackend, TlsFaults};
use std::{
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};
use tower_fortify::{pool::AdaptiveLimit, stack::ClientConfig};

/// The overload phase's backend: each request it answers holds one of its workers for
/// `SERVICE`; it has `WORKERS` of them (3,200 answers/s), then `WORKERS_LOW` (400/s) during
/// the overload, then `WORKERS` again.
const SERVICE: Duration = Duration::from_millis(5);
const WORKERS: usize = 16;
const WORKERS_LOW: usize = 2;
/// Normal service before the overload (the adaptive limit learns the no-load latency) and
/// after it.
const OVERLOAD_BEFORE: Duration = Duration::from_secs(2);
const OVERLOAD_AFTER: Duration = Duration::from_secs(1);
/// Requests in flight at most during the overload phase: twice the default `pool_maxsize`
/// (64), so that a fixed pool of `maxsize` holds.
const OVERLOAD_CONCURRENCY: usize = 128;

/// The clients of the overload phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// The bare client: as many in flight as the callers send.
    Bare,
    /// The fortified client with its fixed pool of `pool_maxsize`.
    Fixed,
    /// The fortified client with an adaptive pool (`AdaptiveLimit::gradient()`).
    Adaptive,
}

impl Limit {
    const ALL: [Limit; 3] = [Limit::Bare, Limit::Fixed, Limit::Adaptive];

    fn column(self, maxsize: usize) -> String {
        match self {
            Limit::Bare => "bare".into(),
            Limit::Fixed => format!("fixed pool ({maxsize})"),
            Limit::Adaptive => "adaptive pool".into(),
        }
    }

    fn config(self) -> ClientConfig {
        match self {
            Limit::Bare | Limit::Fixed => fortified_config(),
            Limit::Adaptive => fortified_config().pool_adaptive(AdaptiveLimit::gradient()),
        }
    }
}

/// What one client of the overload phase did.
pub(crate) struct OverloadRun {
    records: Vec<Record>,
    /// The backend's samples: when each request arrived (since the start), the requests in
    /// flight at the backend then, and how long the backend took with it.
    load: Vec<(Duration, u32, Duration)>,
    /// The overload: from, to.
    window: (Duration, Duration),
    elapsed: Duration,
    /// During the overload (fortified clients).
    pool_max_in_use: usize,
    /// The pool's limit: the lowest during the overload, and at the end of the run.
    limit_min: usize,
    limit_end: usize,
    pool_timed_out: u64,
    /// `maxsize` (0 for the bare client).
    pool_max: usize,
}

/// The overload phase's workload: the main run's mix and rate, for the length of the
/// phase, at most `OVERLOAD_CONCURRENCY` in flight.
fn overload_workload(options: &Options) -> Workload {
    let rate = if options.rate > 0.0 {
        options.rate
    } else {
        1000.0
    };
    let planned = OVERLOAD_BEFORE.as_secs_f64() + options.overload + OVERLOAD_AFTER.as_secs_f64();
    Workload {
        requests: (planned * rate).ceil() as usize,
        rate,
        concurrency: OVERLOAD_CONCURRENCY,
        seed: options.seed,
        unkeyed: options.unkeyed,
    }
}

/// Runs the overload phase for every client at once, each against its own backend (the
/// clients and backends mostly wait: they share the machine's cores, not their queues).
pub(crate) async fn overload_phase(options: &Options) -> Vec<(Limit, OverloadRun)> {
    let workload = overload_workload(options);
    let progress = Arc::new(Progress {
        done: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let runs: Vec<_> = Limit::ALL
        .iter()
        .map(|&limit| {
            let (options, progress) = (options.clone(), progress.clone());
            tokio::spawn(async move { (limit, overload_run(limit, &options, progress).await) })
        })
        .collect();
    let mut ticker = Ticker::new("overload ", workload.requests * runs.len());
    while !ticker.tick(&progress, started.elapsed()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        out.push(run.await.expect("overload run"));
    }
    out
}

/// One client's overload run; `progress` counts the requests of every client.
async fn overload_run(limit: Limit, options: &Options, progress: Arc<Progress>) -> OverloadRun {
    let faults = Faults {
        seed: options.seed,
        ..Faults::none()
    };
    let backend = if options.plain {
        FlakyBackend::start(faults).await
    } else {
        FlakyBackend::start_tls(faults, TlsFaults::none()).await
    };
    let normal = Capacity {
        workers: WORKERS,
        service: SERVICE,
    };
    backend.set_capacity(Some(normal));
    let kind = match limit {
        Limit::Bare => Kind::Bare,
        _ => Kind::Fortified,
    };
    let (service, pool, _) = client(kind, limit.config(), options.plain, &backend);
    let workload = overload_workload(options);
    let window = (
        OVERLOAD_BEFORE,
        OVERLOAD_BEFORE + Duration::from_secs_f64(options.overload),
    );
    let started = Instant::now();
    let overload = {
        let backend = backend.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((started + window.0).into()).await;
            backend.set_capacity(Some(Capacity {
                workers: WORKERS_LOW,
                ..normal
            }));
            tokio::time::sleep_until((started + window.1).into()).await;
            backend.set_capacity(Some(normal));
        })
    };
    // Watches the pool every 5 ms during the overload.
    let watcher = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let (mut max_in_use, mut limit_min) = (0, usize::MAX);
            tokio::time::sleep_until((started + window.0).into()).await;
            while started.elapsed() < window.1 {
                let total = pool.snapshot().total;
                max_in_use = max_in_use.max(total.in_use);
                if total.max > 0 {
                    limit_min = limit_min.min(total.limit);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (max_in_use, limit_min)
        })
    };
    let records = drive(service, &backend, &workload, started, &progress).await;
    let elapsed = started.elapsed();
    let (pool_max_in_use, limit_min) = watcher.await.expect("watcher");
    overload.abort();
    let load = backend
        .load()
        .into_iter()
        .map(|s| {
            (
                s.arrived.saturating_duration_since(started),
                s.in_flight,
                s.took,
            )
        })
        .collect();
    let snapshot = pool.snapshot();
    OverloadRun {
        pool_max: snapshot.pools.iter().map(|p| p.max).max().unwrap_or(0),
        records,
        load,
        window,
        elapsed,
        pool_max_in_use,
        limit_min: if limit_min == usize::MAX {
            0
        } else {
            limit_min
        },
        limit_end: snapshot.total.limit,
        pool_timed_out: snapshot.total.timed_out,
    }
}

/// The figures of one client during the overload.
struct OverloadSummary {
    /// Requests started during the overload, and those that failed.
    requests: usize,
    failures: usize,
    /// Successful answers completed during the overload, per second.
    throughput: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    /// At the backend, over the requests that arrived during the overload, then during
    /// its last second (the adaptive limit has settled).
    backend: BackendLoad,
    settled: BackendLoad,
}

/// The load on the backend from the requests that arrived in a window.
struct BackendLoad {
    requests: usize,
    in_flight_max: u32,
    in_flight_p99: Option<u32>,
    took_p50: Option<Duration>,
    took_p99: Option<Duration>,
}

impl BackendLoad {
    fn of(run: &OverloadRun, from: Duration, to: Duration) -> BackendLoad {
        let arrived: Vec<&(Duration, u32, Duration)> = run
            .load
            .iter()
            .filter(|(at, _, _)| (from..to).contains(at))
            .collect();
        let mut in_flight: Vec<u32> = arrived.iter().map(|s| s.1).collect();
        in_flight.sort_unstable();
        let mut took: Vec<Duration> = arrived.iter().map(|s| s.2).collect();
        took.sort_unstable();
        BackendLoad {
            requests: arrived.len(),
            in_flight_max: in_flight.last().copied().unwrap_or(0),
            in_flight_p99: quantile(&in_flight, 0.99),
            took_p50: quantile(&took, 0.50),
            took_p99: quantile(&took, 0.99),
        }
    }

    fn in_flight(&self) -> String {
        format!(
            "{} / {}",
            self.in_flight_max,
            self.in_flight_p99
                .map_or_else(|| "-".into(), |n| n.to_string())
        )
    }

    fn took(&self) -> String {
        format!(
            "{} / {}",
            ms_or_dash(self.took_p50),
            ms_or_dash(self.took_p99)
        )
    }
}

fn summarize_overload(run: &OverloadRun) -> OverloadSummary {
    let (from, to) = run.window;
    let during = |t: Duration| (from..to).contains(&t);
    let started: Vec<&Record> = run.records.iter().filter(|r| during(r.start)).collect();
    let mut latencies: Vec<Duration> = started.iter().map(|r| r.latency()).collect();
    latencies.sort();
    let answered = run
        .records
        .iter()
        .filter(|r| r.failure.is_none() && during(r.end))
        .count();
    OverloadSummary {
        requests: started.len(),
        failures: started.iter().filter(|r| r.failure.is_some()).count(),
        throughput: answered as f64 / (to - from).as_secs_f64().max(1e-9),
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        backend: BackendLoad::of(run, from, to),
        settled: BackendLoad::of(run, to.saturating_sub(Duration::from_secs(1)).max(from), to),
    }
}

pub(crate) fn report_overload(options: &Options, runs: &[(Limit, OverloadRun)]) {
    let maxsize = runs.iter().map(|(_, r)| r.pool_max).max().unwrap_or(0);
    let workload = overload_workload(options);
    println!(
        "\nOverload: a backend of {WORKERS} workers taking {SERVICE:?} per request (nominally \
         {:.0} answers/s) drops to {WORKERS_LOW} ({:.0}/s) for {:.1} s, {:.1} s into the run, then heals; \
         no other fault. The same workload ({} requests at {} req/s, at most {} in flight) \
         through each client at once, each against its own backend; the adaptive pool is \
         `ClientConfig::pool_adaptive(AdaptiveLimit::gradient())`. Figures of the overload window: \
         requests started in it, answers completed in it, and at the backend requests that \
         arrived in it.\n",
        Capacity {
            workers: WORKERS,
            service: SERVICE
        }
        .per_second(),
        Capacity {
            workers: WORKERS_LOW,
            service: SERVICE
        }
        .per_second(),
        options.overload,
        OVERLOAD_BEFORE.as_secs_f64(),
        workload.requests,
        workload.rate,
        workload.concurrency,
    );
    let columns: Vec<String> = runs.iter().map(|(l, _)| l.column(maxsize)).collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut t = Table::new(&columns);
    let sums: Vec<OverloadSummary> = runs.iter().map(|(_, r)| summarize_overload(r)).collect();
    let row =
        |t: &mut Table, label: &str, cell: &dyn Fn(&OverloadSummary, &OverloadRun) -> String| {
            t.row_n(label, sums.iter().zip(runs).map(|(s, (_, r))| cell(s, r)));
        };
    t.section("the client, during the overload");
    row(&mut t, "requests started", &|s, _| s.requests.to_string());
    row(&mut t, "successful answers per second", &|s, _| {
        format!("{:.0}", s.throughput)
    });
    row(&mut t, "failures", &|s, _| {
        count_pct(s.failures, s.requests)
    });
    row(&mut t, "latency p50 / p99", &|s, _| {
        format!("{} / {}", ms_or_dash(s.p50), ms_or_dash(s.p99))
    });
    row(&mut t, "pool: max in use", &|_, r| {
        r.pool_max_in_use.to_string()
    });
    row(
        &mut t,
        "pool: limit, lowest / at the end of the run",
        &|_, r| format!("{} / {}", r.limit_min, r.limit_end),
    );
    t.section("the backend, during the overload");
    row(&mut t, "requests received", &|s, _| {
        s.backend.requests.to_string()
    });
    row(&mut t, "requests in flight at it: max / p99", &|s, _| {
        s.backend.in_flight()
    });
    row(&mut t, "its own time per request: p50 / p99", &|s, _| {
        s.backend.took()
    });
    t.section("the backend, in the last second of the overload");
    row(&mut t, "requests in flight at it: max / p99", &|s, _| {
        s.settled.in_flight()
    });
    row(&mut t, "its own time per request: p50 / p99", &|s, _| {
        s.settled.took()
    });
    t.section("the whole run");
    row(&mut t, "failures", &|_, r| {
        count_pct(
            r.records.iter().filter(|r| r.failure.is_some()).count(),
            r.records.len(),
        )
    });
    row(&mut t, "pool timeouts", &|_, r| {
        r.pool_timed_out.to_string()
    });
    row(&mut t, "run time", &|_, r| {
        format!("{:.1} s", r.elapsed.as_secs_f64())
    });
    t.print();

    let each = |cell: &dyn Fn(&OverloadSummary) -> String| {
        runs.iter()
            .zip(&sums)
            .map(|((l, _), s)| format!("{} {}", l.column(maxsize), cell(s)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\nConclusions (overload):");
    let p99 = |s: &OverloadSummary| s.backend.took_p99.unwrap_or_default();
    let settled_p99 = |s: &OverloadSummary| s.settled.took_p99.unwrap_or_default();
    let n = |n: Option<u32>| n.map_or_else(|| "-".into(), |n| n.to_string());
    println!(
        "- Load on the backend during the overload: requests in flight at it, p99: {} (in \
         its last second: {}); its own time per request, p99: {} (in its last second: {}).",
        each(&|s| n(s.backend.in_flight_p99)),
        each(&|s| n(s.settled.in_flight_p99)),
        each(&|s| ms_or_dash(s.backend.took_p99)),
        each(&|s| ms_or_dash(s.settled.took_p99)),
    );
    let find = |limit: Limit| {
        runs.iter()
            .zip(&sums)
            .find(|((l, _), _)| *l == limit)
            .map(|((_, r), s)| (r, s))
    };
    if let (Some((_, fixed)), Some((adaptive_run, adaptive))) =
        (find(Limit::Fixed), find(Limit::Adaptive))
    {
        let held = |a: Duration, f: Duration| if a < f { "lower" } else { "NOT lower" };
        println!(
            "- The adaptive pool held the backend's p99 {} than the fixed pool of {maxsize} \
             over the overload ({} against {}) and {} in its last second, its limit down \
             to {} at the lowest ({} against {}); the limit came back to {} by the end.",
            held(p99(adaptive), p99(fixed)),
            ms(p99(adaptive)),
            ms(p99(fixed)),
            held(settled_p99(adaptive), settled_p99(fixed)),
            adaptive_run.limit_min,
            ms(settled_p99(adaptive)),
            ms(settled_p99(fixed)),
            adaptive_run.limit_end,
        );
    }
    println!(
        "- The callers: successful answers per second: {}; latency p99: {}; failures: {}. \
         The backend's capacity sets the throughput whatever the client; what a pool holds \
         back waits in the client instead of in the backend's queue, where the backend's \
         other callers wait too.",
        each(&|s| format!("{:.0}", s.throughput)),
        each(&|s| ms_or_dash(s.p99)),
        each(&|s| s.failures.to_string()),
    );
}
