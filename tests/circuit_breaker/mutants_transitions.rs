//! Probe rules the other tests left open (mutation testing, MUTANTS.md).

use crate::support::{assert_rejected, breaker, request, send, Backend, Mode};
use http::Request;
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

type Probe = <GenericCircuitBreaker<Backend> as Service<Request<()>>>::Future;

/// A breaker with one probe slot and a 30 s `probe_timeout`, tripped and half-open, its
/// probe (returned, not yet polled) hanging in the slot.
async fn with_a_hanging_probe() -> (GenericCircuitBreaker<Backend>, Backend, Probe) {
    let builder = builder(1).probe_timeout(Duration::from_secs(30));
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    trip_and_wait(&mut svc, &backend).await;
    backend.set(Mode::Hang);
    svc.ready().await.unwrap();
    let probe = svc.call(request());
    (svc, backend, probe)
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
    let (mut svc, _backend, stuck) = with_a_hanging_probe().await;
    let handle = svc.handle();
    let stuck = tokio::spawn(stuck);
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

/// A probe's success that comes back after its half-open period ended (another probe of
/// the period failed, the breaker reopened and is half-open again) counts nothing towards
/// closing the new period: the one-thread case of the loom model
/// `loom_a_late_probe_result_never_acts_on_a_newer_generation`. Two slots, two successes
/// to close: after the late success, one success of the new period leaves it half-open.
#[tokio::test(start_paused = true)]
async fn a_late_probe_success_counts_nothing_in_a_newer_half_open_period() {
    let (mut svc, backend) = breaker(builder(2).half_open_max_probes(2), Mode::Status(200));
    trip_and_wait(&mut svc, &backend).await;
    let handle = svc.handle();
    // The late probe: a 200 in 30 s.
    backend.set(Mode::Slow(Duration::from_secs(30), 200));
    svc.ready().await.unwrap();
    let late = tokio::spawn(svc.call(request()));
    tokio::task::yield_now().await;
    assert_eq!(handle.state(), State::HalfOpen);
    // The other probe fails: open again (20 s), then half-open again with a probe that
    // hangs, when the late one answers.
    backend.set(Mode::Status(500));
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    advance(handle.retry_in().expect("open for a while")).await;
    backend.set(Mode::Hang);
    svc.ready().await.unwrap();
    let hanging = svc.call(request());
    assert_eq!(handle.state(), State::HalfOpen);
    advance(Duration::from_secs(30)).await;
    assert_eq!(late.await.unwrap().unwrap().status(), 200);
    assert_eq!(handle.state(), State::HalfOpen);
    // The new period's first success: one of two.
    backend.set(Mode::Status(200));
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen, "the late success counted");
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    drop(hanging);
}

/// A half-open period gives the probes it finds in the slots `probe_timeout` from its own
/// start before it reclaims them: the move to half-open stamps the slots' last probe. A
/// probe that hangs through an operator's reset is still in its slot when the breaker trips
/// again a minute later; the next half-open period rejects calls for 30 s (the slot is
/// taken) instead of reclaiming at once after the old probe's stamp.
#[tokio::test(start_paused = true)]
async fn a_new_half_open_period_waits_a_probe_timeout_before_reclaiming() {
    let (mut svc, backend, stuck) = with_a_hanging_probe().await;
    let handle = svc.handle();
    assert_eq!(
        (handle.state(), handle.probes_in_flight()),
        (State::HalfOpen, 1)
    );
    handle.reset();
    assert_eq!(handle.state(), State::Closed);

    advance(Duration::from_secs(60)).await;
    trip_and_wait(&mut svc, &backend).await;
    assert_eq!(handle.probes_in_flight(), 1, "the stuck probe's slot");
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::HalfOpen);
    advance(Duration::from_secs(29)).await;
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::HalfOpen);
    advance(Duration::from_secs(1)).await;
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::Open);
    assert_eq!(handle.probes_in_flight(), 0, "reclaimed");
    drop(stuck);
}

/// A `Retry-After` opens a closed breaker, never a disabled one: an operator's `disable`
/// lets every call through until `reset`, whatever the backend answers.
#[tokio::test(start_paused = true)]
async fn a_retry_after_never_opens_a_disabled_breaker() {
    let builder = builder(1).retry_after_open(Duration::from_secs(30));
    let (mut svc, _backend) = breaker(builder, Mode::RetryAfter(503, "12"));
    let handle = svc.handle();
    handle.disable();
    assert_eq!(send(&mut svc).await.unwrap().status(), 503);
    assert_eq!(handle.state(), State::Disabled);
    handle.reset();
    assert_eq!(send(&mut svc).await.unwrap().status(), 503);
    assert_eq!(
        handle.state(),
        State::Open,
        "the same answer opens a closed breaker"
    );
}

/// The open duration's growth is forgotten one step per `recovery_period` spent closed,
/// counted from the moment the breaker closed, not from the half-open period before it: a
/// probe that took 50 s to succeed, then 50 s closed (under the 60 s period), and the next
/// trip still opens for the grown 20 s.
#[tokio::test(start_paused = true)]
async fn recovery_counts_from_the_close_not_from_the_probe() {
    let builder = builder(1).recovery_period(Duration::from_secs(60));
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    trip_and_wait(&mut svc, &backend).await;
    let handle = svc.handle();
    // A failed probe: open for 20 s (one step of growth).
    send(&mut svc).await.unwrap();
    assert_eq!(handle.retry_in(), Some(OPEN * 2));
    advance(OPEN * 2).await;
    // A probe that takes 50 s, then succeeds: closed.
    backend.set(Mode::Slow(Duration::from_secs(50), 200));
    assert_eq!(send(&mut svc).await.unwrap().status(), 200);
    assert_eq!(handle.state(), State::Closed);
    advance(Duration::from_secs(50)).await;
    backend.set(Mode::Status(500));
    while handle.state() == State::Closed {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(
        handle.retry_in(),
        Some(OPEN * 2),
        "50 s closed: no step recovered"
    );
}
