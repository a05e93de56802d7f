//! The state machine on tokio's paused clock: trip, open, half-open, close, reopen.

use crate::support::{assert_rejected, breaker, open_of, request, send, send_n, Backend, Mode};
use http::Request;
use std::time::Duration;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{
        BreakerHandle, CircuitBreakerBuilder, CircuitBreakerLayer, GenericCircuitBreaker,
        HttpStatus, State, Window,
    },
    classify::{Failure, FailureKind},
};

const SECOND: Duration = Duration::from_secs(1);

/// Deterministic settings: no jitter, 10 s base, x2 per failed probe, up to 80 s.
fn builder() -> CircuitBreakerBuilder {
    CircuitBreakerLayer::builder()
        .window(Window::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(0.5)
        .open_duration(Duration::from_secs(10))
        .open_duration_multiplier(2.0)
        .open_duration_max(Duration::from_secs(80))
        .open_duration_jitter(0.0)
        .half_open_successes(2)
}

/// Trips the breaker with 5xx responses.
async fn trip(svc: &mut GenericCircuitBreaker<Backend>, backend: &Backend) {
    backend.set(Mode::Status(500));
    let handle = svc.handle();
    while handle.state() == State::Closed {
        send(svc).await.unwrap();
    }
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn trips_when_the_failure_rate_reaches_the_threshold() {
    let (mut svc, backend) = breaker(builder(), Mode::Status(200));
    let handle = svc.handle();
    send_n(&mut svc, 5).await;
    backend.set(Mode::Status(503));
    for failures in 1..=4 {
        send(&mut svc).await.unwrap();
        assert_eq!(
            handle.state(),
            State::Closed,
            "{failures} failures of 9 calls"
        );
    }
    // The 10th call: 5 failures of 10, 50%.
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    let figures = handle.figures();
    assert_eq!((figures.calls(), figures.failures()), (10, 5));

    // Open: rejected without calling the backend.
    let before = backend.calls();
    let err = send(&mut svc).await.unwrap_err();
    let open = assert_rejected(&err, State::Open);
    assert_eq!(open.retry_in(), Some(Duration::from_secs(10)));
    assert_eq!(backend.calls(), before);
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_are_respected() {
    let (mut svc, _backend) = breaker(builder(), Mode::Status(500));
    let handle = svc.handle();
    for n in 1..10 {
        send(&mut svc).await.unwrap();
        assert_eq!(
            handle.state(),
            State::Closed,
            "{n} failures, 100%, but under 10 calls"
        );
    }
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Open);

    // The threshold is a rate: 40% over the minimum does not trip.
    let (mut svc, backend) = breaker(builder(), Mode::Status(200));
    for i in 0..20 {
        backend.set(Mode::Status(if i % 5 >= 3 { 500 } else { 200 }));
        send(&mut svc).await.unwrap();
    }
    assert_eq!(svc.handle().state(), State::Closed);
    assert_eq!(svc.handle().figures().failures(), 8);
}

#[tokio::test(start_paused = true)]
async fn half_open_after_the_jittered_wait() {
    for _ in 0..20 {
        let (mut svc, backend) = breaker(builder().open_duration_jitter(0.5), Mode::Status(200));
        trip(&mut svc, &backend).await;
        let handle = svc.handle();
        let wait = handle.retry_in().unwrap();
        assert!(
            (Duration::from_secs(5)..=Duration::from_secs(10)).contains(&wait),
            "{wait:?} outside [0.5, 1.0] x 10 s"
        );
        let calls = backend.calls();
        advance(wait - Duration::from_millis(1)).await;
        assert_rejected(&send(&mut svc).await.unwrap_err(), State::Open);
        assert_eq!(backend.calls(), calls);

        advance(Duration::from_millis(1)).await;
        backend.set(Mode::Status(200));
        send(&mut svc).await.unwrap();
        assert_eq!(
            backend.calls(),
            calls + 1,
            "the first call after the wait is a probe"
        );
        assert_eq!(handle.state(), State::HalfOpen);
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_the_waits_of_a_fleet() {
    // 50 clients tripped by the same outage, with the default jitter of 0.2.
    let mut waits = Vec::new();
    for _ in 0..50 {
        let (mut svc, backend) = breaker(builder().open_duration_jitter(0.2), Mode::Status(200));
        trip(&mut svc, &backend).await;
        waits.push(svc.handle().retry_in().unwrap());
    }
    assert!(waits
        .iter()
        .all(|w| (Duration::from_secs(8)..=Duration::from_secs(10)).contains(w)));
    waits.sort();
    waits.dedup();
    assert!(waits.len() > 40, "{} distinct waits of 50", waits.len());
    // Without jitter, always the base.
    let (mut svc, backend) = breaker(builder(), Mode::Status(200));
    trip(&mut svc, &backend).await;
    assert_eq!(svc.handle().retry_in(), Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn successful_probes_close_with_an_empty_window() {
    let (mut svc, backend) = breaker(builder(), Mode::Status(200));
    trip(&mut svc, &backend).await;
    let handle = svc.handle();
    advance(Duration::from_secs(10)).await;
    backend.set(Mode::Status(200));

    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen, "one success of two");
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.figures().calls(), 0, "the window starts empty");
    // Closed again: 9 failures do not trip (under the minimum of a fresh window).
    backend.set(Mode::Status(500));
    assert_eq!(send_n(&mut svc, 9).await, 0);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_longer_up_to_the_max() {
    let (mut svc, backend) = breaker(builder(), Mode::Status(200));
    trip(&mut svc, &backend).await;
    let handle = svc.handle();
    let mut waits = vec![handle.retry_in().unwrap()];
    for _ in 0..5 {
        advance(*waits.last().unwrap()).await;
        backend.set(Mode::Fail(FailureKind::ConnectRefused));
        let err = send(&mut svc).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<Failure>().unwrap().kind(),
            FailureKind::ConnectRefused,
            "the probe's own failure comes back"
        );
        assert_eq!(handle.state(), State::Open);
        waits.push(handle.retry_in().unwrap());
    }
    let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [10, 20, 40, 80, 80, 80]);
}

#[tokio::test(start_paused = true)]
async fn the_open_duration_shrinks_back_after_a_healthy_period() {
    let builder = builder().recovery_period(Duration::from_secs(60));
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    let handle = svc.handle();
    trip(&mut svc, &backend).await;
    // Two failed probes: the next wait is 40 s.
    for wait in [10, 20] {
        advance(Duration::from_secs(wait)).await;
        send(&mut svc).await.unwrap();
        assert_eq!(handle.state(), State::Open);
    }
    assert_eq!(handle.retry_in(), Some(Duration::from_secs(40)));
    advance(Duration::from_secs(40)).await;
    backend.set(Mode::Status(200));
    send_n(&mut svc, 2).await;
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.next_open_duration(), Duration::from_secs(40));

    // Tripping again at once: still 40 s (a flapping backend waits longer).
    // After one healthy period, one step less.
    advance(Duration::from_secs(60)).await;
    assert_eq!(handle.next_open_duration(), Duration::from_secs(20));
    advance(Duration::from_secs(60)).await;
    assert_eq!(handle.next_open_duration(), Duration::from_secs(10));
    advance(Duration::from_secs(600)).await;
    assert_eq!(handle.next_open_duration(), Duration::from_secs(10));
    trip(&mut svc, &backend).await;
    assert_eq!(handle.retry_in(), Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn a_quick_retrip_keeps_the_grown_wait() {
    let (mut svc, backend) = breaker(builder(), Mode::Status(200));
    let handle = svc.handle();
    trip(&mut svc, &backend).await;
    advance(Duration::from_secs(10)).await;
    send(&mut svc).await.unwrap(); // probe fails: 20 s
    advance(Duration::from_secs(20)).await;
    backend.set(Mode::Status(200));
    send_n(&mut svc, 2).await;
    assert_eq!(handle.state(), State::Closed);
    trip(&mut svc, &backend).await;
    assert_eq!(handle.retry_in(), Some(Duration::from_secs(20)));
}

#[tokio::test(start_paused = true)]
async fn at_most_k_probes_and_a_dropped_probe_gives_its_slot_back() {
    let builder = builder().half_open_max_probes(2);
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    let handle = svc.handle();
    trip(&mut svc, &backend).await;
    advance(Duration::from_secs(10)).await;
    backend.set(Mode::Hang);

    let calls = backend.calls();
    svc.ready().await.unwrap();
    let first = svc.call(request());
    svc.ready().await.unwrap();
    let second = svc.call(request());
    assert_eq!(handle.probes_in_flight(), 2);
    let err = send(&mut svc).await.unwrap_err();
    let open = assert_rejected(&err, State::HalfOpen);
    assert_eq!(open.retry_in(), None);
    assert_eq!(backend.calls(), calls + 2);

    drop(first);
    assert_eq!(handle.probes_in_flight(), 1, "the slot is back");
    backend.set(Mode::Status(200));
    send(&mut svc).await.unwrap();
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    drop(second);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_never_answers_is_reclaimed() {
    let builder = builder().probe_timeout(Duration::from_secs(30));
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    let handle = svc.handle();
    trip(&mut svc, &backend).await;
    advance(Duration::from_secs(10)).await;
    backend.set(Mode::Hang);
    svc.ready().await.unwrap();
    let stuck = tokio::spawn(svc.call(request()));
    tokio::task::yield_now().await;
    assert_eq!(handle.state(), State::HalfOpen);

    advance(Duration::from_secs(29)).await;
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::HalfOpen);
    advance(SECOND).await;
    // The next call finds the probe stuck for 30 s: a failed probe, so open for longer.
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::Open);
    assert_eq!(handle.retry_in(), Some(Duration::from_secs(20)));
    assert_eq!(handle.probes_in_flight(), 0);

    // The breaker recovers although the stuck probe is still running.
    advance(Duration::from_secs(20)).await;
    backend.set(Mode::Status(200));
    send_n(&mut svc, 2).await;
    assert_eq!(handle.state(), State::Closed);
    assert!(!stuck.is_finished());
    stuck.abort();
}

#[tokio::test(start_paused = true)]
async fn results_of_calls_from_an_older_generation_are_ignored() {
    let (mut svc, backend) = breaker(builder(), Mode::Status(200));
    let handle = svc.handle();
    // A slow call starts while closed and answers 200 after 15 s.
    backend.set(Mode::Slow(Duration::from_secs(15), 200));
    svc.ready().await.unwrap();
    let slow_success = tokio::spawn(svc.call(request()));
    backend.set(Mode::Slow(Duration::from_secs(25), 500));
    svc.ready().await.unwrap();
    let slow_failure = tokio::spawn(svc.call(request()));
    tokio::task::yield_now().await;

    trip(&mut svc, &backend).await;
    advance(Duration::from_secs(10)).await;
    // A probe hangs, holding the only slot: the breaker is half-open.
    backend.set(Mode::Hang);
    svc.ready().await.unwrap();
    let probe = svc.call(request());
    assert_eq!(handle.state(), State::HalfOpen);

    // The old success arrives: it is not a probe, it closes nothing.
    advance(Duration::from_secs(5)).await;
    assert_eq!(slow_success.await.unwrap().unwrap().status(), 200);
    assert_eq!(handle.state(), State::HalfOpen);
    assert_eq!(handle.probes_in_flight(), 1);
    // The old failure arrives: it reopens nothing either.
    advance(Duration::from_secs(10)).await;
    assert_eq!(slow_failure.await.unwrap().unwrap().status(), 500);
    assert_eq!(handle.state(), State::HalfOpen);
    drop(probe);
    assert_eq!(handle.probes_in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_after_opens_for_that_long_bounded() {
    let builder = builder().retry_after_open(Duration::from_secs(30));
    let (mut svc, backend) = breaker(builder, Mode::RetryAfter(503, "12"));
    let handle = svc.handle();
    assert_eq!(send(&mut svc).await.unwrap().status(), 503);
    assert_eq!(handle.state(), State::Open, "one response is enough");
    assert_eq!(handle.retry_in(), Some(Duration::from_secs(12)));

    advance(Duration::from_secs(12)).await;
    backend.set(Mode::RetryAfter(429, "3600"));
    send(&mut svc).await.unwrap();
    assert_eq!(handle.retry_in(), Some(Duration::from_secs(30)), "bounded");

    // Malformed, zero, or on another status: ignored.
    for mode in [
        Mode::RetryAfter(503, "soon"),
        Mode::RetryAfter(503, "0"),
        Mode::RetryAfter(502, "10"),
        Mode::RetryAfter(413, "10"),
    ] {
        let (mut svc, _) = breaker(
            crate::state_machine::builder().retry_after_open(Duration::from_secs(30)),
            mode.clone(),
        );
        send(&mut svc).await.unwrap();
        assert_eq!(svc.handle().state(), State::Closed, "{mode:?}");
    }
    // Off by default.
    let (mut svc, _) = breaker(crate::state_machine::builder(), Mode::RetryAfter(503, "12"));
    send(&mut svc).await.unwrap();
    assert_eq!(svc.handle().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_opens_for_that_long() {
    // The same parser as the retry layer's, whatever features are on.
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
    let date: &'static str = Box::leak(date.into_boxed_str());
    let builder = builder().retry_after_open(Duration::from_secs(30));
    let (mut svc, _) = breaker(builder, Mode::RetryAfter(503, date));
    send(&mut svc).await.unwrap();
    let handle = svc.handle();
    assert_eq!(handle.state(), State::Open);
    let retry_in = handle.retry_in().expect("open for the date's delay");
    assert!(
        retry_in > Duration::from_secs(18) && retry_in <= Duration::from_secs(20),
        "{retry_in:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn several_retry_after_fields_open_nothing_as_the_retry_layer_reads_them() {
    // urllib3 joins them ("30, 1"): malformed, so treated as absent, as the retry layer does.
    for (values, opens) in [(&["30", "1"][..], false), (&["30"], true)] {
        let layer = builder()
            .retry_after_open(Duration::from_secs(60))
            .build_generic()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(tower::service_fn(move |_: Request<()>| async move {
            let mut response = http::Response::builder().status(503);
            for value in values {
                response = response.header(http::header::RETRY_AFTER, *value);
            }
            Ok::<_, std::io::Error>(response.body(()).unwrap())
        }));
        let response = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(
            response.headers().get_all("retry-after").iter().count(),
            values.len()
        );
        assert_eq!(handle.state() == State::Open, opens, "{values:?}");
        let expected = opens.then_some(Duration::from_secs(30));
        assert_eq!(handle.retry_in(), expected, "{values:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn operator_states() {
    let (mut svc, backend) = breaker(builder(), Mode::Status(500));
    let handle: BreakerHandle = svc.handle();

    handle.force_open();
    assert_eq!(handle.state(), State::ForcedOpen);
    let err = send(&mut svc).await.unwrap_err();
    assert_eq!(assert_rejected(&err, State::ForcedOpen).retry_in(), None);
    advance(Duration::from_secs(3600)).await;
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::ForcedOpen);
    assert_eq!(backend.calls(), 0);

    // Disabled: always closed, still measuring.
    handle.disable();
    assert_eq!(send_n(&mut svc, 50).await, 0);
    assert_eq!(handle.state(), State::Disabled);
    assert_eq!(backend.calls(), 50);
    let figures = handle.figures();
    assert_eq!((figures.calls(), figures.failures()), (20, 20));

    handle.reset();
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.figures().calls(), 0);
    send_n(&mut svc, 10).await;
    assert_eq!(handle.state(), State::Open, "a reset breaker trips again");
    handle.reset();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn what_counts() {
    let rows: [(Mode, bool); 9] = [
        (Mode::Status(500), true),
        (Mode::Status(503), true),
        (Mode::Status(404), false),
        (Mode::Status(429), false),
        (Mode::Fail(FailureKind::ConnectRefused), true),
        (Mode::Fail(FailureKind::ReadTimeout), true),
        (Mode::Fail(FailureKind::TlsCertificate), true),
        (Mode::Fail(FailureKind::PoolTimeout), false),
        (Mode::Fail(FailureKind::CircuitOpen), false),
    ];
    for (mode, failure) in rows {
        let (mut svc, _) = breaker(builder(), mode.clone());
        let _ = send(&mut svc).await;
        let figures = svc.handle().figures();
        let ignored = matches!(
            mode,
            Mode::Fail(FailureKind::PoolTimeout | FailureKind::CircuitOpen)
        );
        assert_eq!(figures.calls(), u64::from(!ignored), "{mode:?}");
        assert_eq!(figures.failures(), u64::from(failure), "{mode:?}");
    }

    // A predicate changes what counts.
    let classifier = HttpStatus::failure_if(|class| class.status() == 429);
    let layer = builder().classifier(classifier).build_generic().unwrap();
    let backend = Backend::new(Mode::Status(429));
    let mut svc = layer.layer(backend.clone());
    send(&mut svc).await.unwrap();
    backend.set(Mode::Status(500));
    send(&mut svc).await.unwrap();
    assert_eq!(svc.handle().figures().failures(), 1);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_come_back_classified() {
    let inner = tower::service_fn(|_: Request<()>| async {
        Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    });
    let layer = builder().build_generic().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let err = svc.oneshot(request()).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<Failure>().unwrap().kind(),
        FailureKind::ConnectRefused
    );
    assert!(open_of(&err).is_none());
    assert_eq!(handle.figures().failures(), 1);
}
