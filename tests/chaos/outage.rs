//! Scenario 3: an outage is bounded by the retry budget and the breaker.

use std::time::Duration;

use crate::{
    calls::{Call, Op},
    checks::{assert_everything_returned, count, host_key, tally},
    harness::{config, harness, CONCURRENCY},
    load::run,
};
use fortify_test_support::flaky::{Faults, FlakyBackend, Outage};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerLayer, State, Window},
    classify::FailureKind,
    retry::{RetryBudget, RetryPolicy, Stop},
};

/// A total outage (every request 503): the retry budget caps the extra load at 20% of the
/// requests plus the reserve, the breaker opens, and then calls fail fast with
/// `CircuitOpen` without reaching the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_bounded_by_budget_and_breaker() {
    const WINDOW: Duration = Duration::from_secs(10);
    const RESERVE_PER_SEC: u32 = 2;
    const RATIO: f32 = 0.2;
    // The budget counts deposits and withdrawals for WINDOW: the whole test fits in it, so
    // nothing ages out and the reserve is spent once.
    let reserve = f64::from(RESERVE_PER_SEC) * WINDOW.as_secs_f64();
    let bound = |issued: u64| issued as f64 * (1.0 + f64::from(RATIO)) + reserve;
    const N0: u64 = 200;
    const N1: u64 = 200;
    const N2: u64 = 400;

    let backend = FlakyBackend::start(Faults::none()).await;
    let budget = RetryBudget::new(WINDOW, RESERVE_PER_SEC, RATIO).expect("valid budget");
    let config = config()
        .retry(
            RetryPolicy::production()
                .budget(budget)
                .deadline(Some(Duration::from_secs(10))),
        )
        .circuit_breaker(
            CircuitBreakerLayer::builder()
                .window(Window::Count(20))
                .minimum_calls(10)
                .failure_rate_threshold(0.5)
                // Long enough that the breaker stays open for the rest of the test.
                .open_duration(Duration::from_secs(30))
                .open_duration_jitter(0.0),
        );
    let h = harness(&backend, config);
    let retries = || h.metrics.counter("fortify_retries_total", &[]);
    let budget_stops = || {
        h.metrics
            .counter("fortify_retry_stopped_total", &[("stop", "budget")])
    };

    // One healthy call creates the host's breaker (its deposit counts in the bound).
    let warm = run(&h.stack, &backend, 0..1, 1, |id| Call::new(Op::Get, id)).await;
    assert!(warm[0].ok(), "warm-up call failed: {:?}", warm[0]);
    let breaker = h
        .layer
        .breaker_handle()
        .get(&host_key())
        .expect("the host's breaker");
    backend.set_outage(Outage::Unavailable);

    // Phase 0: the budget alone (the breaker is disabled: it measures but never trips).
    breaker.disable();
    let p0 = run(&h.stack, &backend, 1..1 + N0, CONCURRENCY, |id| {
        Call::new(Op::Get, id)
    })
    .await;
    let s0 = backend.stats();
    let (retries0, stops0) = (retries(), budget_stops());
    let stopped0 = count(&p0, |o| o.stop == Some(Stop::Budget));
    println!(
        "outage, budget only: {N0} calls -> {} backend requests ({retries0} retries, \
         {stops0} refused by the budget, {stopped0} calls stopped by it, bound {:.0}); {:?}",
        s0.outage_requests,
        bound(1 + N0),
        tally(&p0)
    );
    assert!(
        s0.outage_requests >= N0,
        "every call must reach the backend once: {s0:?}"
    );
    assert!(
        s0.outage_requests as f64 <= bound(1 + N0),
        "retries beyond the budget: {} backend requests for {N0} calls, bound {:.0} \
         ({RATIO} x calls + {reserve} reserve)",
        s0.outage_requests,
        bound(1 + N0)
    );
    assert!(
        retries0 > 0 && stops0 > 0 && stopped0 > 0,
        "the budget must have allowed some retries and refused others: {retries0} \
         retries, {stops0} refused, {stopped0} calls stopped by the budget"
    );

    // Phase 1: the breaker armed again; it opens.
    breaker.reset();
    let p1 = run(&h.stack, &backend, 1 + N0..1 + N0 + N1, CONCURRENCY, |id| {
        Call::new(Op::Get, id)
    })
    .await;
    let s1 = backend.stats();
    let open1 = count(&p1, |o| o.kind() == Some(FailureKind::CircuitOpen));
    println!(
        "outage, breaker armed: {N1} calls -> {} backend requests, {open1} CircuitOpen; {:?}",
        s1.outage_requests - s0.outage_requests,
        tally(&p1)
    );
    assert_eq!(
        breaker.state(),
        State::Open,
        "the breaker must be open after {N1} calls into an outage; figures {:?}",
        breaker.figures()
    );
    assert_eq!(
        h.metrics.transitions(State::Closed, State::Open),
        1,
        "the breaker must have opened once"
    );
    assert!(
        open1 as u64 >= N1 / 2,
        "most calls after the trip must fail fast: {open1}/{N1} CircuitOpen"
    );

    // Phase 2: while open, calls fail fast and the backend sees nothing.
    let p2 = run(
        &h.stack,
        &backend,
        1 + N0 + N1..1 + N0 + N1 + N2,
        CONCURRENCY,
        |id| Call::new(Op::Get, id),
    )
    .await;
    let s2 = backend.stats();
    let open2 = count(&p2, |o| o.kind() == Some(FailureKind::CircuitOpen));
    println!(
        "outage, breaker open: {N2} calls -> {} backend requests, {open2} CircuitOpen",
        s2.outage_requests - s1.outage_requests
    );
    assert!(
        open2 as f64 >= N2 as f64 * 0.99,
        "calls on an open breaker must fail fast with CircuitOpen: {open2}/{N2}; {:?}",
        tally(&p2)
    );
    assert_eq!(
        s2.outage_requests, s1.outage_requests,
        "the backend must see no request while the breaker is open"
    );
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        h.metrics.transitions(State::Open, State::HalfOpen),
        0,
        "the breaker must have stayed open"
    );

    let issued = N0 + N1 + N2;
    println!(
        "outage total: {issued} calls -> {} backend requests (bound {:.0})",
        s2.outage_requests,
        bound(1 + issued)
    );
    assert!(
        s2.outage_requests as f64 <= bound(1 + issued),
        "the backend got more than the budgeted load: {} requests for {issued} calls",
        s2.outage_requests
    );
    assert_everything_returned(&h, "outage");
}
