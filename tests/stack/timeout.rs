//! The preset's attempt timeout over a real stalled socket on 127.0.0.1: a server that
//! reads each request and never answers, behind the whole stack over hyper-util's client.
//! The layer's pending attempts share one timer: each must time out at its own attempt
//! timeout, never before it, and not much after it (the bound allows for a loaded machine).

use bytes::Bytes;
use fortify_test_support::servers;
use http::Request;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::RetryPolicy,
    stack::ClientConfig,
};

const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);
/// How late a timeout may fire on a loaded machine (the timer itself: 1 ms).
const SLACK: Duration = Duration::from_secs(2);

/// GETs to `addr` through a preset with `ATTEMPT_TIMEOUT` and `read` retries at once; each
/// call's failure kind and how long it took, for calls started `stagger` apart.
async fn stalled_calls(
    addr: SocketAddr,
    read: u32,
    calls: usize,
    stagger: Duration,
) -> Vec<(FailureKind, Duration)> {
    let layer = ClientConfig::default()
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .retry(
            RetryPolicy::production()
                .read(Some(read))
                .backoff_factor(Duration::ZERO),
        )
        .build()
        .unwrap();
    let client = layer.layer(Client::builder(TokioExecutor::new()).build_http());
    let mut tasks = Vec::new();
    for _ in 0..calls {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let request = Request::get(format!("http://{addr}/"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let start = Instant::now();
            let err = tokio::time::timeout(Duration::from_secs(30), client.oneshot(request))
                .await
                .expect("the attempt timeout never fired")
                .unwrap_err();
            let kind = err.downcast_ref::<Failure>().unwrap().kind();
            (kind, start.elapsed())
        }));
        tokio::time::sleep(stagger).await;
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn stalled_attempts_time_out_at_their_timeout_each() {
    let addr = servers::never_answers().await;
    // Four calls started 50 ms apart: four deadlines in the shared timer, one after the
    // other.
    for (kind, elapsed) in stalled_calls(addr, 0, 4, Duration::from_millis(50)).await {
        assert_eq!(kind, FailureKind::ReadTimeout);
        assert!(elapsed >= ATTEMPT_TIMEOUT, "early: {elapsed:?}");
        assert!(elapsed < ATTEMPT_TIMEOUT + SLACK, "late: {elapsed:?}");
    }
}

#[tokio::test]
async fn each_retried_attempt_gets_its_own_timeout() {
    let addr = servers::never_answers().await;
    // Three attempts (two read retries, no backoff), each ended by its timeout.
    let results = stalled_calls(addr, 2, 1, Duration::ZERO).await;
    let (kind, elapsed) = results[0];
    assert_eq!(kind, FailureKind::ReadTimeout);
    assert!(elapsed >= 3 * ATTEMPT_TIMEOUT, "early: {elapsed:?}");
    assert!(elapsed < 3 * ATTEMPT_TIMEOUT + SLACK, "late: {elapsed:?}");
}
