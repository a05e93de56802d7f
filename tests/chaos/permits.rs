//! Scenario 5: every permit and probe comes back.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::{
    calls::{Call, End, Op, Outcome},
    checks::{assert_everything_returned, count, host_key, tally, wait_for},
    harness::{config, harness, CONCURRENCY},
    load::{run, Load},
};
use fortify_test_support::flaky::{self, Faults, FlakyBackend, Outage};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerLayer, State, Window},
    classify::FailureKind,
    retry::RetryPolicy,
};

/// Every way a call can end (success, failure, retry, read timeout, pool wait, pool timeout,
/// cancellation at any point, a body read or dropped unread, breaker rejection, half-open
/// probes cancelled or not) gives its pool permit and probe slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_permit_and_probe_comes_back() {
    const CALLS: u64 = 1_500;
    const POOL: usize = 8;
    let faults = Faults {
        refuse: 0.05,
        reset: 0.05,
        unavailable: 0.02,
        slow: 0.1,
        // Past the attempt timeout: the attempt is abandoned (ReadTimeout).
        slow_delay: Duration::from_millis(300),
        seed: 0x5eed_0005,
    };
    let backend = FlakyBackend::start(faults).await;
    let config = config()
        .pool_maxsize(POOL)
        .pool_timeout(Some(Duration::from_secs(2)))
        .attempt_timeout(Duration::from_millis(150))
        .retry(RetryPolicy::production().deadline(Some(Duration::from_secs(3))))
        .circuit_breaker(
            // A window wide enough that ~22% failed attempts do not trip it (phase A goes
            // through); the outage does.
            CircuitBreakerLayer::builder()
                .window(Window::Count(100))
                .minimum_calls(20)
                .open_duration(Duration::from_millis(200))
                .open_duration_max(Duration::from_millis(400))
                .half_open_max_probes(2),
        );
    let h = harness(&backend, config);
    // A third of the calls drop their body unread; one in eight is cancelled after 0-49 ms.
    let plan = |id: u64| {
        let r = flaky::splitmix(id);
        let op = [Op::Get, Op::KeyedPost, Op::Post][(r % 3) as usize];
        Call {
            op,
            id,
            drop_body: (r >> 8).is_multiple_of(3),
            cancel_after: (r >> 16)
                .is_multiple_of(8)
                .then(|| Duration::from_millis((r >> 24) % 50)),
        }
    };

    // Watch the pool while it is contended.
    let pool = h.layer.pool_handle();
    let (max_in_use, max_waiting) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (max_in_use, max_waiting, watching) =
            (max_in_use.clone(), max_waiting.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let total = pool.snapshot().total;
                max_in_use.fetch_max(total.in_use, Ordering::Relaxed);
                max_waiting.fetch_max(total.waiting, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // Phase A: every fault at once.
    let outcomes = run(&h.stack, &backend, 0..CALLS, CONCURRENCY, plan).await;
    let rejected = count(&outcomes, |o| o.kind() == Some(FailureKind::CircuitOpen));
    println!("permits, phase A: {:?}", tally(&outcomes));
    assert!(
        rejected * 10 < outcomes.len(),
        "the faults alone must not keep the breaker open: {:?}",
        tally(&outcomes)
    );
    // Phase B: an outage, so the breaker opens and probes (some probes are cancelled), then
    // the end of the outage, until the breaker closes.
    let load = Load::start(&h.stack, &backend, CALLS, 16, plan);
    backend.set_outage(Outage::Unavailable);
    wait_for(
        "half-open probes in the outage",
        Duration::from_secs(10),
        || h.metrics.transitions(State::HalfOpen, State::Open) >= 2,
    )
    .await;
    backend.set_outage(Outage::None);
    let breaker = h
        .layer
        .breaker_handle()
        .get(&host_key())
        .expect("the host's breaker");
    wait_for(
        "the breaker to close after the outage",
        Duration::from_secs(10),
        || {
            breaker.state() == State::Closed
                && h.metrics.transitions(State::HalfOpen, State::Closed) >= 1
        },
    )
    .await;
    let more = load.stop().await;
    watching.store(false, Ordering::Relaxed);
    watcher.await.expect("the pool watcher panicked");

    let all: Vec<Outcome> = outcomes.into_iter().chain(more).collect();
    let stats = backend.stats();
    let snapshot = h.layer.pool_handle().snapshot();
    let (max_in_use, max_waiting) = (
        max_in_use.load(Ordering::Relaxed),
        max_waiting.load(Ordering::Relaxed),
    );
    println!(
        "permits: {} calls {:?}; pool max in use {max_in_use}/{POOL}, max waiting \
         {max_waiting}, timed out {}; half-open probes {}; backend {stats:?}",
        all.len(),
        tally(&all),
        snapshot.total.timed_out,
        h.metrics.transitions(State::Open, State::HalfOpen),
    );
    // The workload did exercise what it claims to.
    let cancelled = count(&all, |o| matches!(o.end, End::Cancelled));
    let read_timeouts: usize = all
        .iter()
        .map(|o| {
            o.retried_after(FailureKind::ReadTimeout)
                + usize::from(o.kind() == Some(FailureKind::ReadTimeout))
        })
        .sum();
    assert!(cancelled > 0, "no call was cancelled");
    assert!(read_timeouts > 0, "no attempt timed out");
    assert!(
        max_waiting > 0 && max_in_use <= POOL,
        "the pool must have been full with callers waiting, never over its size: max in \
         use {max_in_use}/{POOL}, max waiting {max_waiting}"
    );
    assert!(stats.resets > 0 && stats.refused > 0 && stats.slow > 0);
    assert_eq!(
        stats.posts_without_key_duplicates, 0,
        "an unkeyed POST reached the server twice"
    );
    assert_everything_returned(&h, "all faults");
}
