//! Probe rules the other tests left open (mutation testing, MUTANTS.md).

use crate::support::{breaker, send, Backend, Mode};
use std::time::Duration;
use tokio::time::advance;
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
