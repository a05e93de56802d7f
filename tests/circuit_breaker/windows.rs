//! The windows forget: a long healthy history does not delay a trip. Slow calls trip too.

use crate::support::{breaker, send, Mode};
use std::time::Duration;
use tokio::time::{advance, Instant};
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State, Window};

#[tokio::test(start_paused = true)]
async fn count_window_after_10_000_successes_opens_within_100_failures() {
    let builder = CircuitBreakerLayer::builder()
        .window(Window::Count(100))
        .minimum_calls(10)
        .failure_rate_threshold(0.5);
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    let handle = svc.handle();
    for _ in 0..10_000 {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(handle.figures().calls(), 100);

    backend.set(Mode::Status(503));
    let mut failures = 0;
    while handle.state() == State::Closed {
        send(&mut svc).await.unwrap();
        failures += 1;
        assert!(failures <= 100, "still closed after {failures} failures");
    }
    // Exactly when the failures are half of the last 100 calls.
    assert_eq!(failures, 50);
}

#[tokio::test(start_paused = true)]
async fn time_window_after_10_000_successes_opens_within_one_window() {
    let window = Duration::from_secs(10);
    let builder = CircuitBreakerLayer::builder()
        .window(Window::Time(window))
        .minimum_calls(10)
        .failure_rate_threshold(0.5);
    let (mut svc, backend) = breaker(builder, Mode::Status(200));
    let handle = svc.handle();
    // 10 000 successes over one window: one per millisecond.
    for _ in 0..10_000 {
        send(&mut svc).await.unwrap();
        advance(Duration::from_millis(1)).await;
    }
    let calls = handle.figures().calls();
    assert!(
        (9_000..=10_000).contains(&calls),
        "{calls} calls in the window"
    );

    // Then only failures, one every 10 ms.
    backend.set(Mode::Status(503));
    let start = Instant::now();
    while handle.state() == State::Closed {
        send(&mut svc).await.unwrap();
        advance(Duration::from_millis(10)).await;
        assert!(
            start.elapsed() <= window,
            "still closed after {:?}",
            start.elapsed()
        );
    }
    // 100 failures a second against successes leaving a second at a time: about 9.1 s.
    assert!(
        start.elapsed() >= Duration::from_secs(9),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_while_every_call_succeeds() {
    for window in [Window::Count(20), Window::Time(Duration::from_secs(600))] {
        let builder = CircuitBreakerLayer::builder()
            .window(window)
            .minimum_calls(10)
            .slow_call_duration(Duration::from_secs(1))
            .slow_call_rate_threshold(0.5);
        let (mut svc, backend) = breaker(builder, Mode::Slow(Duration::from_millis(999), 200));
        let handle = svc.handle();
        for _ in 0..10 {
            assert_eq!(send(&mut svc).await.unwrap().status(), 200);
        }
        assert_eq!(handle.figures().slow_calls(), 0, "999 ms is not slow");

        backend.set(Mode::Slow(Duration::from_secs(2), 200));
        let mut slow = 0;
        while handle.state() == State::Closed {
            assert_eq!(send(&mut svc).await.unwrap().status(), 200);
            slow += 1;
        }
        let figures = handle.figures();
        assert_eq!(figures.failures(), 0, "{window:?}");
        assert_eq!(figures.slow_calls(), slow, "{window:?}");
        assert_eq!(slow, 10, "{window:?}: 10 slow of 20");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_calls_are_not_counted_without_a_slow_call_duration() {
    let builder = CircuitBreakerLayer::builder().minimum_calls(5);
    let (mut svc, _) = breaker(builder, Mode::Slow(Duration::from_secs(100), 200));
    let handle = svc.handle();
    for _ in 0..10 {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.figures().slow_calls(), 0);
}
