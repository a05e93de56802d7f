//! The layer's name, and what a `RetryError` gives back (its failure, the sleeps of its
//! history, the deadline's own message), against real sockets on 127.0.0.1: what the other
//! tests left open (mutation testing, MUTANTS.md, group `rest_calls`).

use crate::servers;
use fortify_test_support::text::assert_shows;
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    retry::{
        error::{DeadlineElapsed, RetryError},
        RetryLayer, RetryPolicy, Stop,
    },
};

type Body = Empty<bytes::Bytes>;

/// A hyper-util client behind the retry layer with `policy`.
fn retrying(
    policy: RetryPolicy,
) -> tower_fortify::retry::Retry<Client<hyper_util::client::legacy::connect::HttpConnector, Body>> {
    RetryLayer::builder()
        .policy(policy)
        .build()
        .unwrap()
        .layer(crate::real_server::client())
}

fn get(addr: std::net::SocketAddr) -> Request<Body> {
    Request::get(format!("http://{addr}/"))
        .body(Body::new())
        .unwrap()
}

#[test]
fn the_layer_and_its_services_carry_its_name() {
    let layer = RetryLayer::builder().name("payments").build().unwrap();
    assert_eq!(layer.name(), "payments");
    let svc = layer.layer(());
    assert_eq!(svc.name(), "payments");
    // The service's `Debug` shows the layer's state its calls share, policy and name.
    let text = format!("{svc:?}");
    assert_shows(
        &text,
        &[
            "shared: Template(Calls { retry: Shared { policy: RetryPolicy { total: Some(3)",
            "name: \"payments\"",
        ],
    );
}

/// Retries of a refused connection run out: the error gives back the last failure, and its
/// history's sleeps are the backoff between the attempts, in order.
#[tokio::test]
async fn exhausted_retries_give_back_the_failure_and_their_sleeps() {
    let addr = servers::refused().await;
    let policy = RetryPolicy::default()
        .total(Some(3))
        .backoff_factor(Duration::from_millis(10));
    let svc = retrying(policy);
    let err = svc.oneshot(get(addr)).await.unwrap_err();
    let err = *err.downcast::<RetryError>().expect("a RetryError");
    assert_eq!(err.stop(), Some(Stop::Exhausted));
    let sleeps: Vec<Duration> = err.history().sleeps().collect();
    let recorded: Vec<Duration> = err.history().records().iter().map(|r| r.sleep()).collect();
    assert_eq!(recorded.len(), 3, "three retries");
    assert_eq!(sleeps, recorded);
    // urllib3's backoff: the first retry at once, then 20 ms and 40 ms.
    assert_eq!(sleeps, [0, 20, 40].map(Duration::from_millis));

    let failure = err.into_failure().expect("the last attempt failed");
    assert_eq!(failure.kind(), FailureKind::ConnectRefused);
}

/// A server that never answers keeps the attempt pending past the call's deadline: the
/// error's failure is a read timeout whose source says so in its own words.
#[tokio::test]
async fn the_deadline_says_it_elapsed_during_an_attempt() {
    let addr = servers::never_answers().await;
    let policy = RetryPolicy::default().deadline(Some(Duration::from_millis(200)));
    let svc = retrying(policy);
    let err = svc.oneshot(get(addr)).await.unwrap_err();
    let err = err.downcast::<RetryError>().expect("a RetryError");
    assert_eq!(err.stop(), Some(Stop::Deadline));
    let failure = err.failure().expect("the attempt in flight");
    assert_eq!(failure.kind(), FailureKind::ReadTimeout);
    let elapsed = failure
        .get_ref()
        .downcast_ref::<DeadlineElapsed>()
        .expect("the deadline as the failure's source");
    assert_eq!(
        elapsed.to_string(),
        "retry deadline elapsed during an attempt"
    );
}
