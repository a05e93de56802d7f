//! Scenario 4: the breaker closes after the outage.

use std::time::{Duration, Instant};

use crate::{
    calls::{Call, Op, Outcome},
    checks::{assert_everything_returned, count, host_key, tally, wait_for},
    harness::{config, harness, CONCURRENCY},
    load::{run, Load},
};
use fortify_test_support::flaky::{Faults, FlakyBackend, Outage};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerLayer, State, Window},
    retry::RetryPolicy,
};

/// After an outage ends, the breaker (short open duration) probes, closes, and the success
/// rate recovers: within 5 s a window of 200 consecutive calls succeeds >= 99%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_closes_after_the_outage() {
    const WINDOW: usize = 200;
    const RECOVERY: Duration = Duration::from_secs(5);
    let backend = FlakyBackend::start(Faults::none()).await;
    let config = config()
        .retry(RetryPolicy::production().deadline(Some(Duration::from_secs(5))))
        .circuit_breaker(
            CircuitBreakerLayer::builder()
                .window(Window::Count(20))
                .minimum_calls(10)
                .open_duration(Duration::from_millis(300))
                .open_duration_max(Duration::from_secs(1))
                .half_open_successes(2),
        );
    let h = harness(&backend, config);

    let warm = run(&h.stack, &backend, 0..200, CONCURRENCY, |id| {
        Call::new(Op::Get, id)
    })
    .await;
    assert_eq!(
        count(&warm, |o| !o.ok()),
        0,
        "healthy backend: {:?}",
        tally(&warm)
    );

    let load = Load::start(&h.stack, &backend, 1_000, 8, |id| Call::new(Op::Get, id));
    backend.set_outage(Outage::Unavailable);
    wait_for(
        "the breaker to open in the outage",
        Duration::from_secs(10),
        || h.metrics.transitions(State::Closed, State::Open) > 0,
    )
    .await;
    // Let a probe fail during the outage, so the breaker reopens for longer.
    wait_for(
        "a probe to fail in the outage",
        Duration::from_secs(10),
        || h.metrics.transitions(State::HalfOpen, State::Open) > 0,
    )
    .await;
    backend.set_outage(Outage::None);
    let ended = Instant::now();
    let calls_in_outage = load.calls();

    // The first window of WINDOW consecutive calls (in completion order, all started after
    // the outage ended) with >= 99% successes.
    let recovered = || {
        let log = load.log.lock().unwrap();
        let after: Vec<&Outcome> = log.iter().filter(|o| o.started >= ended).collect();
        after.windows(WINDOW).find_map(|w| {
            let ok = w.iter().filter(|o| o.ok()).count();
            (ok * 100 >= WINDOW * 99).then(|| (w[WINDOW - 1].finished, ok))
        })
    };
    let mut found = None;
    wait_for(
        "a window of consecutive successful calls after the outage",
        RECOVERY + Duration::from_secs(5),
        || {
            found = recovered();
            found.is_some()
        },
    )
    .await;
    let outcomes = load.stop().await;
    let (at, ok) = found.expect("found");
    let took = at.duration_since(ended);
    let after: Vec<Outcome> = outcomes
        .iter()
        .filter(|o| o.started >= ended)
        .cloned()
        .collect();
    println!(
        "recovery: {ok}/{WINDOW} consecutive successes completed {took:?} after the \
         outage ended; {calls_in_outage} calls before, {:?} after; transitions \
         closed->open {}, open->half_open {}, half_open->open {}, half_open->closed {}",
        tally(&after),
        h.metrics.transitions(State::Closed, State::Open),
        h.metrics.transitions(State::Open, State::HalfOpen),
        h.metrics.transitions(State::HalfOpen, State::Open),
        h.metrics.transitions(State::HalfOpen, State::Closed),
    );
    assert!(
        took <= RECOVERY,
        "the success rate must recover within {RECOVERY:?} of the outage's end: the first \
         window of {WINDOW} calls with >= 99% successes completed after {took:?}"
    );
    let breaker = h
        .layer
        .breaker_handle()
        .get(&host_key())
        .expect("the host's breaker");
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the breaker must be closed after the recovery"
    );
    assert!(h.metrics.transitions(State::HalfOpen, State::Closed) >= 1);
    assert_everything_returned(&h, "recovery");
}
