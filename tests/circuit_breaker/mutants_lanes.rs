//! The successes a lane holds back, which the other tests left open (mutation testing,
//! MUTANTS.md).

use crate::support::{breaker, send_n, Mode};
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};

/// The successes a thread's lane holds back (fewer than a batch) are tagged with the
/// breaker's generation and count in that generation's window: after a reset moved the
/// breaker to generation 1, three successes show in its figures.
#[tokio::test]
async fn successes_held_in_a_lane_count_after_a_reset() {
    let builder = CircuitBreakerLayer::builder().window(Window::Count(10_000));
    let (mut svc, _backend) = breaker(builder, Mode::Status(200));
    let handle = svc.handle();
    assert_eq!(send_n(&mut svc, 2).await, 0);
    assert_eq!(handle.figures().calls(), 2);
    handle.reset();
    assert_eq!(handle.figures().calls(), 0);
    assert_eq!(send_n(&mut svc, 3).await, 0);
    assert_eq!(
        handle.figures().calls(),
        3,
        "successes of the new generation were lost"
    );
}
