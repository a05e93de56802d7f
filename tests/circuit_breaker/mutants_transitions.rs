//! Probe rules the other tests left open (mutation testing, MUTANTS.md).

use crate::support::{assert_rejected, breaker, request, send, Backend, Mode};
use std::time::Duration;
use tokio::time::advance;
use tower::{Service, ServiceExt};
use tower_fortify::circuit_breaker::{
    CircuitBreakerBuilder, CircuitBreakerLayer, GenericCircuitBreaker, State, Window,
};

const OPEN: Duration = Duration::from_secs(10);

/// No jitter, 10 s open, `successes` probe successes to close.
fn builder(successes: u32) -> CircuitBreakerBuilder {
    CircuitBreakerLayer::builder()
        .window(Window::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(0.5)
        .open_duration(OPEN)
        .open_duration_jitter(0.0)
        .half_open_successes(successes)
}

/// Trips the breaker with 5xx responses and waits until the next call is a probe.
async fn trip_and_wait(svc: &mut GenericCircuitBreaker<Backend>, backend: &Backend) {
    backend.set(Mode::Status(500));
    let handle = svc.handle();
    while handle.state() == State::Closed {
        send(svc).await.unwrap();
    }
    assert_eq!(handle.state(), State::Open);
    advance(OPEN).await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_successful_probe_reopens() {
    let builder = builder(2).slow_call_duration(Duration::from_secs(1));
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    trip_and_wait(&mut svc, &backend).await;
    let handle = svc.handle();
    // A 200 after 2 s: a success, but slower than the slow-call duration.
    backend.set(Mode::Slow(Duration::from_secs(2), 200));
    assert_eq!(send(&mut svc).await.unwrap().status(), 200);
    assert_eq!(handle.state(), State::Open, "a slow probe counts as failed");
    // A quick one after the next wait is a success of two.
    advance(OPEN * 2).await;
    backend.set(Mode::Status(200));
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn each_probe_success_counts_once_until_the_last_closes() {
    let (mut svc, backend) = breaker(builder(3), Mode::Status(200));
    trip_and_wait(&mut svc, &backend).await;
    let handle = svc.handle();
    backend.set(Mode::Status(200));
    for success in 1..3 {
        send(&mut svc).await.unwrap();
        assert_eq!(
            handle.state(),
            State::HalfOpen,
            "{success} success(es) of 3"
        );
    }
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
}

/// A probe stuck past `probe_timeout` is reclaimed by the next call, however long after
/// (here 45 s into a 30 s timeout, not exactly at it), and its late release belongs to the
/// old slots: it frees nothing of the probe of the next half-open period. The reclaim
/// starts a new epoch of the slots; a stuck probe that came back in the same epoch would
/// free the new probe's slot and let a second probe in.
#[tokio::test(start_paused = true)]
async fn a_reclaimed_probe_coming_back_frees_no_newer_slot() {
    let builder = builder(1).probe_timeout(Duration::from_secs(30));
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    trip_and_wait(&mut svc, &backend).await;
    let handle = svc.handle();
    backend.set(Mode::Hang);
    svc.ready().await.unwrap();
    let stuck = tokio::spawn(svc.call(request()));
    tokio::task::yield_now().await;
    assert_eq!(
        (handle.state(), handle.probes_in_flight()),
        (State::HalfOpen, 1)
    );

    advance(Duration::from_secs(45)).await;
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::Open);
    assert_eq!(handle.probes_in_flight(), 0, "reclaimed");
    advance(handle.retry_in().expect("open for a while")).await;

    // A new probe hangs too, then the stuck one is cancelled: its slot was reclaimed.
    svc.ready().await.unwrap();
    let probe = svc.call(request());
    assert_eq!(
        (handle.state(), handle.probes_in_flight()),
        (State::HalfOpen, 1)
    );
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    assert_eq!(
        handle.probes_in_flight(),
        1,
        "the new probe still holds its slot"
    );
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::HalfOpen);
    drop(probe);
    assert_eq!(handle.probes_in_flight(), 0);
}
