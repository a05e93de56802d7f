//! The main comparison's report: the side-by-side table, the conclusions and the verdict.

use crate::{
    options::Options,
    run::Run,
    table::{count_pct, ms, pct, pct3, per_request, percentiles, quantile, row2, Table},
    workload::{Class, Record},
};
use fortify_test_support::flaky::{BackendStats, Outage};
use std::{collections::BTreeMap, time::Duration};

/// The target of the fortified client's steady-state failure rate.
const TARGET: f64 = 0.0002;

struct Summary {
    total: usize,
    failures: usize,
    steady: usize,
    steady_failures: usize,
    window: usize,
    window_failures: usize,
    by_kind: BTreeMap<String, usize>,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    attempts_mean: f64,
    attempts_max: u32,
    attempts_total: u64,
    /// Per class: requests, failures, steady-state requests, steady-state failures.
    classes: Vec<(Class, usize, usize, usize, usize)>,
    /// Steady-state failures of unkeyed POSTs, by kind.
    unkeyed_steady_kinds: BTreeMap<String, usize>,
    /// Per request, in workload order: its latency if it succeeded in steady state.
    steady_ok: Vec<Option<Duration>>,
}

fn summarize(run: &Run) -> Summary {
    // The disruption window: the outage, and for the fortified client until its breaker
    // was closed again. A request whose life overlaps it is counted there.
    let window = run
        .outage
        .map(|(from, to)| (from, run.recovered.unwrap_or(to).max(to)));
    let in_window = |r: &Record| window.is_some_and(|(from, to)| r.start < to && r.end > from);
    let mut latencies: Vec<Duration> = run.records.iter().map(Record::latency).collect();
    latencies.sort();
    let pct = |p: f64| quantile(&latencies, p).unwrap_or_default();
    let mut by_kind = BTreeMap::new();
    for r in &run.records {
        if let Some(f) = &r.failure {
            *by_kind.entry(f.clone()).or_insert(0) += 1;
        }
    }
    let count = |f: &dyn Fn(&Record) -> bool| run.records.iter().filter(|r| f(r)).count();
    let classes = Class::ALL
        .iter()
        .map(|&c| {
            (
                c,
                count(&|r| r.class == c),
                count(&|r| r.class == c && r.failure.is_some()),
                count(&|r| r.class == c && !in_window(r)),
                count(&|r| r.class == c && !in_window(r) && r.failure.is_some()),
            )
        })
        .collect();
    let attempts_total: u64 = run.records.iter().map(|r| u64::from(r.attempts)).sum();
    let mut unkeyed_steady_kinds = BTreeMap::new();
    for r in &run.records {
        if let (Class::UnkeyedPost, false, Some(kind)) = (r.class, in_window(r), &r.failure) {
            *unkeyed_steady_kinds.entry(kind.clone()).or_insert(0) += 1;
        }
    }
    Summary {
        total: run.records.len(),
        failures: count(&|r| r.failure.is_some()),
        steady: count(&|r| !in_window(r)),
        steady_failures: count(&|r| !in_window(r) && r.failure.is_some()),
        window: count(&|r| in_window(r)),
        window_failures: count(&|r| in_window(r) && r.failure.is_some()),
        by_kind,
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        attempts_mean: attempts_total as f64 / run.records.len().max(1) as f64,
        attempts_max: run.records.iter().map(|r| r.attempts).max().unwrap_or(0),
        attempts_total,
        classes,
        unkeyed_steady_kinds,
        steady_ok: run
            .records
            .iter()
            .map(|r| (!in_window(r) && r.failure.is_none()).then(|| r.latency()))
            .collect(),
    }
}

/// The mean and the p99 of a set of latencies.
#[derive(Clone, Copy)]
struct MeanP99 {
    n: usize,
    mean: Duration,
    p99: Duration,
    /// How many took a second or more.
    over_1s: usize,
}

impl MeanP99 {
    fn of(latencies: impl IntoIterator<Item = Duration>) -> MeanP99 {
        let mut sorted: Vec<Duration> = latencies.into_iter().collect();
        sorted.sort();
        let n = sorted.len();
        let total: Duration = sorted.iter().sum();
        MeanP99 {
            n,
            mean: total / u32::try_from(n.max(1)).unwrap_or(u32::MAX),
            p99: quantile(&sorted, 0.99).unwrap_or_default(),
            over_1s: sorted
                .iter()
                .filter(|d| **d >= Duration::from_secs(1))
                .count(),
        }
    }

    fn cell(&self) -> String {
        format!("{} / {}", ms(self.mean), ms(self.p99))
    }
}

/// The steady-state latency of successful requests: (bare, fortified) over each client's
/// own successes, then over the requests both answered.
fn steady_latency(b: &Summary, f: &Summary) -> [(MeanP99, MeanP99); 2] {
    let own = |s: &Summary| MeanP99::of(s.steady_ok.iter().flatten().copied());
    let both: Vec<(Duration, Duration)> = b
        .steady_ok
        .iter()
        .zip(&f.steady_ok)
        .filter_map(|(b, f)| Some(((*b)?, (*f)?)))
        .collect();
    [
        (own(b), own(f)),
        (
            MeanP99::of(both.iter().map(|p| p.0)),
            MeanP99::of(both.iter().map(|p| p.1)),
        ),
    ]
}

/// Prints the table and the conclusions; returns whether no unkeyed POST was duplicated,
/// and the verdict's lines, to print last.
pub(crate) fn report(options: &Options, bare: &Run, fort: &Run) -> (bool, Vec<String>) {
    let b = summarize(bare);
    let f = summarize(fort);
    let mut t = Table::new(&["bare", "fortified"]);

    t.section("requests");
    t.row("logical requests", b.total.to_string(), f.total.to_string());
    t.row(
        "success rate",
        pct(b.total - b.failures, b.total),
        pct(f.total - f.failures, f.total),
    );
    t.row(
        "failures",
        count_pct(b.failures, b.total),
        count_pct(f.failures, f.total),
    );
    let mut kinds: Vec<&String> = b.by_kind.keys().chain(f.by_kind.keys()).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        t.row(
            format!("  {kind}"),
            b.by_kind.get(kind).copied().unwrap_or(0).to_string(),
            f.by_kind.get(kind).copied().unwrap_or(0).to_string(),
        );
    }
    t.row(
        "steady state: failed / requests",
        format!("{}/{}", b.steady_failures, b.steady),
        format!("{}/{}", f.steady_failures, f.steady),
    );
    t.row(
        "steady-state failure rate",
        pct(b.steady_failures, b.steady),
        pct(f.steady_failures, f.steady),
    );
    let window = |run: &Run| match run.outage {
        Some((from, to)) => format!(
            "{:.2}-{:.2} s",
            from.as_secs_f64(),
            run.recovered.unwrap_or(to).max(to).as_secs_f64()
        ),
        None => "-".into(),
    };
    t.row(
        "disruption window (outage + recovery)",
        window(bare),
        window(fort),
    );
    t.row(
        "  failed / requests overlapping it",
        format!("{}/{}", b.window_failures, b.window),
        format!("{}/{}", f.window_failures, f.window),
    );
    t.section("latency (all requests, from send to last body byte)");
    t.row("p50", ms(b.p50), ms(f.p50));
    t.row("p95", ms(b.p95), ms(f.p95));
    t.row("p99", ms(b.p99), ms(f.p99));
    let [(own_b, own_f), (both_b, both_f)] = steady_latency(&b, &f);
    t.row(
        "steady state, successful requests: mean / p99",
        own_b.cell(),
        own_f.cell(),
    );
    t.row(
        "  of them, a second or more",
        own_b.over_1s.to_string(),
        own_f.over_1s.to_string(),
    );
    t.row(
        format!("  the {} both clients answered: mean / p99", both_b.n),
        both_b.cell(),
        both_f.cell(),
    );
    t.row(
        "run time",
        format!("{:.1} s", bare.elapsed.as_secs_f64()),
        format!("{:.1} s", fort.elapsed.as_secs_f64()),
    );
    t.section("client");
    t.row(
        "attempts that reached the backend per request: mean / max",
        format!("{:.3} / {}", b.attempts_mean, b.attempts_max),
        format!("{:.3} / {}", f.attempts_mean, f.attempts_max),
    );
    t.row(
        "attempts that reached the backend in all",
        b.attempts_total.to_string(),
        f.attempts_total.to_string(),
    );
    let m = |name: &str| fort.metrics.get(name).copied().unwrap_or(0);
    t.row(
        "retries: connect / read / status",
        "-",
        format!(
            "{} / {} / {}",
            m("fortify_retries_total{category=connect}"),
            m("fortify_retries_total{category=read}"),
            m("fortify_retries_total{category=status}")
        ),
    );
    if options.hedge {
        t.row(
            "hedges sent / won",
            "-",
            format!(
                "{} / {}",
                m("fortify_hedges_sent_total"),
                m("fortify_hedges_won_total")
            ),
        );
    }
    t.row(
        "retries refused by the budget",
        "-",
        fort.budget_stops.to_string(),
    );
    let transitions: Vec<String> = fort
        .metrics
        .iter()
        .filter_map(|(k, v)| {
            let labels = k.strip_prefix("fortify_circuit_transitions_total{")?;
            let labels = labels.strip_suffix('}')?;
            let mut from = "";
            let mut to = "";
            for l in labels.split(',') {
                match l.split_once('=') {
                    Some(("from", v)) => from = v,
                    Some(("to", v)) => to = v,
                    _ => {}
                }
            }
            Some(format!("{from}->{to} {v}"))
        })
        .collect();
    let total_transitions: u64 = fort
        .metrics
        .iter()
        .filter(|(k, _)| k.starts_with("fortify_circuit_transitions_total"))
        .map(|(_, v)| v)
        .sum();
    t.row("breaker transitions", "-", total_transitions.to_string());
    for tr in &transitions {
        let (name, n) = tr.rsplit_once(' ').unwrap_or((tr, ""));
        t.row(format!("  {name}"), "-", n);
    }
    t.row(
        "calls rejected by the open breaker",
        "-",
        m("fortify_circuit_rejected_total").to_string(),
    );
    t.row(
        "requests in flight, max",
        bare.max_in_flight.to_string(),
        fort.max_in_flight.to_string(),
    );
    t.row(
        "pool: max in use / maxsize",
        "-",
        format!("{} / {}", fort.pool_max_in_use, fort.pool_max),
    );
    t.row(
        "pool: timeouts / overflow / rejected",
        "-",
        format!(
            "{} / {} / {}",
            fort.pool_timed_out, fort.pool_overflowed, fort.pool_rejected
        ),
    );
    let (sb, sf) = (&bare.backend, &fort.backend);
    t.section("connections (measured at the backend, the same way for both)");
    t.row(
        "connections accepted",
        sb.connections.to_string(),
        sf.connections.to_string(),
    );
    if options.plain {
        t.row(
            "connections opened per request",
            per_request(sb.connections, b.total),
            per_request(sf.connections, f.total),
        );
    } else {
        t.row(
            "TLS handshakes performed",
            sb.handshakes.to_string(),
            sf.handshakes.to_string(),
        );
        t.row(
            "connections opened per request (handshakes / requests)",
            per_request(sb.handshakes, b.total),
            per_request(sf.handshakes, f.total),
        );
        let (b50, b99) = percentiles(&bare.handshakes);
        let (f50, f99) = percentiles(&fort.handshakes);
        t.row(
            "handshake p50 / p99",
            format!("{b50} / {b99}"),
            format!("{f50} / {f99}"),
        );
        row2(
            &mut t,
            "handshakes stalled (injected)",
            sb.handshake_stalls,
            sf.handshake_stalls,
        );
        row2(
            &mut t,
            "handshakes reset (injected)",
            sb.handshake_resets,
            sf.handshake_resets,
        );
        t.row(
            "  the client's own count (fortify_connections_opened_total)",
            "-",
            m("fortify_connections_opened_total").to_string(),
        );
    }
    t.section("backend");
    let row = |t: &mut Table, label: &str, get: fn(&BackendStats) -> u64| {
        t.row(label, get(sb).to_string(), get(sf).to_string());
    };
    row(&mut t, "requests received (load)", |s| s.requests);
    row(&mut t, "connects refused", |s| s.refused);
    row(&mut t, "connections reset after the request", |s| s.resets);
    row(&mut t, "503 with Retry-After", |s| s.unavailable);
    row(&mut t, "503 during the outage", |s| s.outage_requests);
    if !options.plain && options.outage_kind == Outage::Refused {
        row(&mut t, "requests reset unread by the outage", |s| {
            s.outage_resets
        });
    }
    row(&mut t, "slow answers", |s| s.slow);
    row(
        &mut t,
        "POSTs without key received twice (must be 0)",
        |s| s.posts_without_key_duplicates,
    );
    row(&mut t, "keyed POSTs received again (deduplicated)", |s| {
        s.keyed_post_duplicates
    });
    t.section("by workload class: failed / requests (steady state)");
    for (i, class) in Class::ALL.iter().enumerate() {
        let (_, n, fail, sn, sfail) = b.classes[i];
        let (_, fn_, ffail, fsn, fsfail) = f.classes[i];
        t.row(
            format!("  {}", class.name()),
            format!("{fail}/{n} ({sfail}/{sn})"),
            format!("{ffail}/{fn_} ({fsfail}/{fsn})"),
        );
    }
    t.print();

    // ----- conclusions -----
    println!("\nConclusions:");
    let b_rate = b.steady_failures as f64 / b.steady.max(1) as f64;
    let f_rate = f.steady_failures as f64 / f.steady.max(1) as f64;
    let factor = if f.steady_failures == 0 {
        format!("none left out of {}", f.steady)
    } else {
        format!("{:.0}x fewer", b_rate / f_rate)
    };
    let retries = fort
        .metrics
        .iter()
        .filter(|(k, _)| k.starts_with("fortify_retries_total"))
        .map(|(_, v)| v)
        .sum::<u64>();
    println!(
        "- Steady state: the fortified client failed {} of requests against {} for the bare \
         client ({factor}). It made {retries} retries in all ({} of the requests); its p99 \
         latency is {} against {}{}.",
        pct(f.steady_failures, f.steady),
        pct(b.steady_failures, b.steady),
        pct(retries as usize, f.total),
        ms(f.p99),
        ms(b.p99),
        if f.p99 > b.p99 * 10 {
            ": it waits out `Retry-After` and slow answers where the bare client fails or \
             returns the 503"
        } else {
            ""
        },
    );
    let change = |f: Duration, b: Duration| {
        let ratio = f.as_secs_f64() / b.as_secs_f64().max(1e-9) - 1.0;
        if ratio <= 0.0 {
            format!("{:.0}% lower", -ratio * 100.0)
        } else {
            format!("{:.0}% higher", ratio * 100.0)
        }
    };
    println!(
        "- Latency of successful steady-state requests (the seed's claim: the fortified client \
         lowered the average by 15%): mean {} fortified against {} bare ({}: {}), p99 {} \
         against {}. Its successes include {} requests the bare client failed; {} of its \
         successes took a second or more (a 503 whose `Retry-After: 1` it waited out, a slow \
         answer{}), against {} of the bare client's. Over the {} requests both answered: mean \
         {} against {} ({}), p99 {} against {}.",
        ms(own_f.mean),
        ms(own_b.mean),
        change(own_f.mean, own_b.mean),
        if own_f.mean <= own_b.mean {
            "reproduced"
        } else {
            "not reproduced"
        },
        ms(own_f.p99),
        ms(own_b.p99),
        own_f.n.saturating_sub(both_f.n),
        own_f.over_1s,
        if m("fortify_hedges_won_total") > 0 {
            " its hedge did not beat"
        } else {
            ""
        },
        own_b.over_1s,
        both_b.n,
        ms(both_f.mean),
        ms(both_b.mean),
        change(both_f.mean, both_b.mean),
        ms(both_f.p99),
        ms(both_b.p99),
    );
    println!(
        "- Load: the backend received {} requests from the fortified client and {} from the \
         bare one ({:+.1}%).",
        sf.requests,
        sb.requests,
        (sf.requests as f64 / sb.requests.max(1) as f64 - 1.0) * 100.0,
    );
    if let Some((from, to)) = fort.outage {
        let recovery = match fort.recovered {
            Some(r) => format!(
                "its breaker was closed again {:.2} s after the outage ended",
                (r.max(to) - to).as_secs_f64()
            ),
            None => "its breaker was still open at the end".into(),
        };
        let load = match options.outage_kind {
            Outage::Refused => format!(
                "connects refused in all: {} (bare) and {} (fortified)",
                sb.refused, sf.refused
            ),
            _ => format!(
                "the backend answered {} outage 503s to the bare client and {} to the fortified one",
                sb.outage_requests, sf.outage_requests
            ),
        };
        println!(
            "- Outage ({:.1} s): the bare client failed {} of the requests overlapping it, the \
             fortified {}; {load}, as its breaker rejected {} calls without sending them; {recovery}.",
            (to - from).as_secs_f64(),
            count_pct(b.window_failures, b.window),
            count_pct(f.window_failures, f.window),
            m("fortify_circuit_rejected_total"),
        );
    }
    let (_, un, ufail, usn, usfail) = f.classes[2];
    let retryable: usize = f.classes[..2].iter().map(|c| c.3).sum();
    let retryable_failures: usize = f.classes[..2].iter().map(|c| c.4).sum();
    let kinds = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "- POSTs without key: {ufail} of {un} failed with the fortified client ({usfail} of {usn} \
         in steady state{}), and {} reached the backend twice: once such a POST may have reached \
         the server (a reset after sending it, or a 503), the stack returns the error instead \
         of risking a second order. GETs and keyed POSTs, which it may retry, failed {} in \
         steady state.",
        if f.unkeyed_steady_kinds.is_empty() {
            String::new()
        } else {
            format!(": {}", kinds(&f.unkeyed_steady_kinds))
        },
        sf.posts_without_key_duplicates,
        count_pct(retryable_failures, retryable),
    );

    // ----- verdict -----
    let duplicates = sb.posts_without_key_duplicates + sf.posts_without_key_duplicates;
    let verdict = |failed: usize, of: usize| {
        if (failed as f64) <= TARGET * of as f64 {
            "PASS"
        } else {
            "ABOVE TARGET"
        }
    };
    // The floor set by unkeyed POSTs: their share of the workload times the share of their
    // attempts that meet a reset or a 503 (neither may be retried for them).
    let unkeyed_share = f.classes[2].1 as f64 / f.total.max(1) as f64;
    let floor = unkeyed_share * (options.reset + options.unavailable) * 100.0;
    let mut lines = Vec::new();
    lines.push(format!(
        "\nVerdict (target: fortified steady-state failure rate <= {:.2}%):",
        TARGET * 100.0
    ));
    lines.push(format!(
        "  requests the stack may retry (GET, keyed POST): {}/{} = {} -> {}",
        retryable_failures,
        retryable,
        pct3(retryable_failures, retryable),
        verdict(retryable_failures, retryable)
    ));
    lines.push(format!(
        "  all requests: {}/{} = {} -> {}{}",
        f.steady_failures,
        f.steady,
        pct3(f.steady_failures, f.steady),
        verdict(f.steady_failures, f.steady),
        if usfail > 0 {
            format!(
                " ({} POSTs without key, which must not be retried; with {:.1}% of them in \
                 the workload, resets and 503s alone set a floor of about {floor:.3}%)",
                if usfail == f.steady_failures {
                    format!("all {usfail} are")
                } else {
                    format!("{usfail} of the {} are", f.steady_failures)
                },
                unkeyed_share * 100.0
            )
        } else {
            String::new()
        },
    ));
    lines.push(format!(
        "  POSTs without key received twice by the backend: {duplicates} -> {}",
        if duplicates == 0 { "PASS" } else { "BUG" }
    ));
    (duplicates == 0, lines)
}
