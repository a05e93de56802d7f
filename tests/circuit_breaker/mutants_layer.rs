//! The layers' accessors, the breaker service's readiness and the `Debug` forms that the
//! other tests left open (mutation testing, MUTANTS.md, group `rest_layers`).

use fortify_test_support::text::assert_shows;
use std::time::Duration;
use tower::{Layer, Service};
use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Classify, Outcome};
use tower_fortify::classify::{Failure, Stage};

#[test]
fn the_layers_say_how_they_were_built() {
    let keyed = CircuitBreakerLayer::builder()
        .name("inventory")
        .open_duration(Duration::from_secs(7))
        .build()
        .unwrap();
    assert!(keyed.per_host());
    assert_eq!(keyed.name(), "inventory");
    assert_eq!(keyed.open_duration(0), Duration::from_secs(7));

    let single = CircuitBreakerLayer::builder()
        .per_host(false)
        .name("payments")
        .build()
        .unwrap();
    assert!(!single.per_host());
    assert_eq!(single.name(), "payments");

    let generic = CircuitBreakerLayer::builder()
        .name("search")
        .build_generic()
        .unwrap();
    assert_eq!(generic.name(), "search");
}

/// The breaker is ready exactly when its inner service is, and an inner readiness error
/// comes back classified, at the request stage.
#[test]
fn the_breaker_is_ready_when_its_inner_service_is() {
    let (mock, mut handle) = tower_test::mock::pair::<http::Request<()>, http::Response<()>>();
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    let mut svc = tower_test::mock::Spawn::new(layer.layer(mock));
    handle.allow(0);
    assert!(
        svc.poll_ready().is_pending(),
        "ready before its inner service"
    );
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), std::task::Poll::Ready(Ok(()))));

    handle.send_error(std::io::Error::other("no connection"));
    let std::task::Poll::Ready(Err(err)) = svc.poll_ready() else {
        panic!("the inner service's readiness error is not the caller's");
    };
    let failure = err.downcast_ref::<Failure>().expect("a classified failure");
    assert_eq!(failure.stage(), Stage::Request);
    assert!(failure.to_string().contains("no connection"), "{failure}");
}

/// A call's future says whether the breaker rejected it and what ticket it holds.
#[tokio::test]
async fn a_calls_future_says_whether_it_was_rejected() {
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    let mut svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, std::io::Error>(http::Response::new(()))
    }));
    let future = svc.call(http::Request::get("http://a.test/").body(()).unwrap());
    let text = format!("{future:?}");
    assert_shows(&text, &["ResponseFuture", "rejected: false", "ticket:"]);
}

/// A classifier that does not read `Retry-After` gives none, even on a response that has
/// one: the breaker then opens for its own duration.
#[test]
fn a_classifier_reads_no_retry_after_unless_it_says_so() {
    #[derive(Clone)]
    struct ByStatus;
    impl Classify<http::Response<()>> for ByStatus {
        fn classify_response(&self, response: &http::Response<()>) -> Outcome {
            if response.status().is_server_error() {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
    }
    let response = http::Response::builder()
        .status(503)
        .header("retry-after", "30")
        .body(())
        .unwrap();
    assert_eq!(ByStatus.classify_response(&response), Outcome::Failure);
    assert_eq!(ByStatus.retry_after(&response), None);
}
