//! The preset's deadline with attempts its attempt timeout bounds: an attempt that must end
//! before the deadline is watched by its own timer alone, and the deadline still cuts one
//! that could outlast it.

use super::ClientConfig;
use crate::{
    classify::{Failure, FailureKind},
    retry::{error::RetryError, RetryPolicy},
};
use std::{
    convert::Infallible,
    future::Future,
    sync::Arc,
    task::{Context, Waker},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_layer::Layer;

async fn stalled_call(attempt_timeout: u64, deadline: u64) -> (Duration, crate::BoxError) {
    let layer = ClientConfig::default()
        .attempt_timeout(Duration::from_secs(attempt_timeout))
        .retry(
            RetryPolicy::production()
                .deadline(Some(Duration::from_secs(deadline)))
                .backoff_factor(Duration::ZERO),
        )
        .build()
        .unwrap();
    let stalled = tower::service_fn(|_: http::Request<String>| {
        std::future::pending::<Result<http::Response<String>, Infallible>>()
    });
    let start = Instant::now();
    let request = http::Request::get("http://a.example/")
        .body(String::new())
        .unwrap();
    let err = layer.layer(stalled).oneshot(request).await.unwrap_err();
    (start.elapsed(), err)
}

fn retries(err: &crate::BoxError) -> &RetryError {
    let failure = err.downcast_ref::<Failure>().unwrap();
    assert_eq!(failure.kind(), FailureKind::ReadTimeout);
    failure.get_ref().downcast_ref::<RetryError>().unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_an_attempt_that_could_outlast_it() {
    // Attempts at 0 s (ends by its timeout at 10 s, before the deadline: no timer for the
    // deadline) and 10 s (could last to 20 s): the deadline ends the call at 15 s.
    let (elapsed, err) = stalled_call(10, 15).await;
    assert_eq!(elapsed, Duration::from_secs(15));
    // The history holds the attempts retried: the first.
    assert_eq!(retries(&err).history().records().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_that_end_in_time_are_cut_by_their_own_timeout() {
    // Attempts at 0, 10 and 20 s, each ended by its timeout; the third ends at the deadline.
    let (elapsed, err) = stalled_call(10, 30).await;
    assert_eq!(elapsed, Duration::from_secs(30));
    assert_eq!(retries(&err).history().records().len(), 2);
}

#[test]
fn an_attempt_is_bounded_by_the_pool_wait_and_its_timeout() {
    let config = ClientConfig::default().attempt_timeout(Duration::from_secs(10));
    assert_eq!(
        config.attempt_bound(Some(Duration::from_secs(5))),
        Some(Duration::from_secs(15))
    );
    // A pool that never blocks adds no wait; one that blocks without a timeout, no bound.
    assert_eq!(
        config.clone().pool_block(false).attempt_bound(None),
        Some(Duration::from_secs(10))
    );
    assert_eq!(config.attempt_bound(None), None);
}

#[cfg(feature = "hedge")]
#[test]
fn a_hedged_stack_keeps_its_deadline_timer() {
    // A hedge starts a second attempt after a measured delay: no fixed bound, so the retry
    // layer must keep watching the deadline with its timer.
    let config = ClientConfig::default()
        .attempt_timeout(Duration::from_secs(10))
        .hedge(crate::hedge::HedgeLayer::builder());
    assert_eq!(config.attempt_bound(Some(Duration::from_secs(5))), None);
}

#[tokio::test(start_paused = true)]
async fn a_covered_attempt_stays_covered_when_polled_again() {
    // An attempt of at most 10 s (no pool wait) that starts at 0 s ends before the 12 s
    // deadline: only its own timer runs. Polled again at 3 s (a spurious wake), after
    // another call began on the thread (and read the clock), it is not asked again whether
    // it ends in time: from 3 s, 10 s more would pass the deadline, and the deadline would
    // take a slot.
    let layer = ClientConfig::default()
        .attempt_timeout(Duration::from_secs(10))
        .pool_block(false)
        .retry(RetryPolicy::production().deadline(Some(Duration::from_secs(12))))
        .build()
        .unwrap();
    let ticker = Arc::clone(&layer.ticker);
    let stalled = tower::service_fn(|_: http::Request<String>| {
        std::future::pending::<Result<http::Response<String>, Infallible>>()
    });
    let mut svc = layer.layer(stalled);
    let request = http::Request::get("http://a.example/")
        .body(String::new())
        .unwrap();
    let mut call = Box::pin(svc.ready().await.unwrap().call(request.clone()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(call.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ticker.waiting(), 1, "the attempt's timeout alone");
    tokio::time::advance(Duration::from_secs(3)).await;
    let mut other = Box::pin(svc.ready().await.unwrap().call(request));
    assert!(other.as_mut().poll(&mut cx).is_pending());
    assert!(call.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ticker.waiting(), 2, "each call's attempt timeout alone");
}

/// The layer gives back the retry policy it was built with (as its retry layer holds it),
/// and the stack's `Debug` shows its layers.
#[test]
fn the_layer_says_its_policy_and_the_stack_shows_its_layers() {
    let layer = ClientConfig::default()
        .retry(RetryPolicy::production().total(Some(2)))
        .build()
        .unwrap();
    assert_eq!(layer.retry().total, Some(2));
    assert_eq!(
        layer.retry().status_forcelist,
        RetryPolicy::production().status_forcelist
    );
    let stack = layer.layer(tower::service_fn(|_: http::Request<String>| async {
        Ok::<_, Infallible>(http::Response::new(String::new()))
    }));
    let text = format!("{stack:?}");
    for word in ["ClientStack", "Retry", "HostGate"] {
        assert!(text.contains(word), "{word} not in {text}");
    }
}

/// A response whose body has ended already (empty) gives its pool permit back when it is
/// returned; one with a body to read holds it until the body ends.
#[tokio::test]
async fn an_empty_response_body_gives_its_permit_back_at_once() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let layer = ClientConfig::default().build().unwrap();
    let pools = layer.pool_handle();
    let svc = layer.layer(tower::service_fn(
        |request: http::Request<String>| async move {
            let body = Bytes::from(request.into_body());
            Ok::<_, Infallible>(http::Response::new(Full::new(body)))
        },
    ));
    let request = |body: &str| {
        http::Request::get("http://a.example/")
            .body(body.to_owned())
            .unwrap()
    };
    let empty = svc.clone().oneshot(request("")).await.unwrap();
    assert_eq!(pools.snapshot().total.in_use, 0, "given back at once");
    drop(empty);
    let full = svc.clone().oneshot(request("data")).await.unwrap();
    assert_eq!(pools.snapshot().total.in_use, 1, "held by the body");
    full.into_body().collect().await.unwrap();
    assert_eq!(pools.snapshot().total.in_use, 0, "given back at its end");
}
