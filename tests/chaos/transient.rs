//! Scenario 1: transient connection faults are absorbed.

use std::collections::BTreeMap;

use crate::{
    calls::{request, Call, Op},
    checks::{assert_everything_returned, count, injected_rate, some_errors, tally},
    harness::{config, harness, hyper_client, CONCURRENCY},
    load::{run, run_with},
};
use fortify_test_support::flaky::{Faults, FlakyBackend};
use http_body_util::BodyExt;
use tower_fortify::classify::Failure;

/// 3% transient connection failures (2/3 refused, 1/3 reset after the request head was
/// read): the stack turns them into a failure rate of at most 0.02%, while a bare client
/// fails well over 1% of its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_absorbed() {
    const BARE: u64 = 1_500;
    const CALLS: u64 = 6_000;
    let backend = FlakyBackend::start(Faults::transient(0.03).seed(0x5eed_0001)).await;

    // A bare client: the faults reach it.
    let bare = hyper_client(&backend, &config());
    let bare_results = {
        let backend = backend.clone();
        run_with(0..BARE, CONCURRENCY, move |id| {
            let (bare, backend) = (bare.clone(), backend.clone());
            async move {
                let op = if id % 2 == 0 { Op::Get } else { Op::KeyedPost };
                match bare.request(request(&backend, op, id)).await {
                    Ok(response) => response.into_body().collect().await.map(drop).map_err(|e| {
                        Failure::classify(e, tower_fortify::classify::Stage::Request).kind()
                    }),
                    Err(err) => {
                        Err(Failure::classify(err, tower_fortify::classify::Stage::Request).kind())
                    }
                }
            }
        })
        .await
    };
    let bare_stats = backend.stats();
    let mut bare_failures: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in bare_results.iter().filter_map(|r| r.as_ref().err()) {
        *bare_failures.entry(kind.as_str()).or_default() += 1;
    }
    let bare_failed: usize = bare_failures.values().sum();
    let bare_rate = bare_failed as f64 / BARE as f64;
    println!(
        "bare client: {bare_failed}/{BARE} failed ({:.2}%), {bare_failures:?}; injected \
         {:.2}% of connection attempts",
        bare_rate * 100.0,
        injected_rate(&bare_stats) * 100.0
    );
    assert!(
        bare_rate > 0.01,
        "the faults must reach a client without the stack: only {bare_failed}/{BARE} \
         bare calls failed ({bare_failures:?}), backend {bare_stats:?}"
    );

    // The stack, on the same backend: GETs and keyed POSTs.
    let h = harness(&backend, config());
    let outcomes = run(&h.stack, &backend, BARE..BARE + CALLS, CONCURRENCY, |id| {
        Call::new(if id % 2 == 0 { Op::Get } else { Op::KeyedPost }, id)
    })
    .await;
    let stats = backend.stats() - bare_stats;
    let failed = count(&outcomes, |o| !o.ok());
    let retried = count(&outcomes, |o| o.ok() && !o.retries.is_empty());
    let injected = injected_rate(&stats);
    println!(
        "stack: {failed}/{CALLS} failed ({:.3}%), {retried} succeeded after retries; \
         injected {:.2}% of {} connection attempts ({} refused, {} reset); {:?}",
        failed as f64 * 100.0 / CALLS as f64,
        injected * 100.0,
        stats.connections + stats.refused,
        stats.refused,
        stats.resets,
        tally(&outcomes),
    );
    assert!(
        (0.015..=0.045).contains(&injected),
        "the backend must inject ~3% connection faults: {:.2}% ({stats:?})",
        injected * 100.0
    );
    // 0.02% of 6 000 calls is 1.2: at most one failure.
    assert!(
        failed as f64 <= CALLS as f64 * 0.0002,
        "the stack's failure rate must be <= 0.02%: {failed}/{CALLS} failed; {:?}; {:?}",
        tally(&outcomes),
        some_errors(&outcomes)
    );
    assert!(
        retried as u64 >= (stats.refused + stats.resets) / 2,
        "the faults must have been retried: {retried} calls succeeded after a retry, \
         {} faults injected",
        stats.refused + stats.resets
    );
    assert_everything_returned(&h, "transient faults");
}
