//! Admission rules the other tests left open (mutation testing, MUTANTS.md).

use crate::support::{breaker, open_of, send, Mode};
use std::time::Duration;
use tokio::time::advance;
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State, Window};

/// A call rejected by an open breaker says how long until the next call may probe: the
/// open duration less the time already spent open, counting down.
#[tokio::test(start_paused = true)]
async fn a_rejection_while_open_counts_down_to_the_probe() {
    let builder = CircuitBreakerLayer::builder()
        .window(Window::Count(10))
        .minimum_calls(5)
        .failure_rate_threshold(0.5)
        .open_duration(Duration::from_secs(10))
        .open_duration_jitter(0.0);
    let (mut svc, backend) = breaker(builder, Mode::Status(500));
    let handle = svc.handle();
    while handle.state() == State::Closed {
        send(&mut svc).await.unwrap();
    }
    for (elapsed, left) in [(0, 10_000), (4_000, 6_000), (5_999, 1)] {
        advance(Duration::from_millis(elapsed)).await;
        let err = send(&mut svc).await.unwrap_err();
        let open = open_of(&err).expect("rejected as open");
        assert_eq!(open.state(), State::Open);
        assert_eq!(open.retry_in(), Some(Duration::from_millis(left)));
    }
    assert_eq!(backend.calls(), 5, "no rejected call reached the backend");
}
