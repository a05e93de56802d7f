use super::super::{service::Shared, Retry, RetryPolicy};
use crate::internal::ticker::Ticker;
use http::{Request, Response, StatusCode};
use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

/// A retry layer's service around `inner`, waiting on `ticker`.
fn retrying<S>(inner: S, policy: RetryPolicy, ticker: &Arc<Ticker>) -> Retry<S> {
    Retry::from_shared(
        inner,
        Arc::new(Shared::new(policy, "test", Arc::clone(ticker))),
    )
}

/// Answers 503 with `Retry-After: 2` first, then 200.
fn unavailable_once(
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
{
    let calls = Arc::new(AtomicUsize::new(0));
    tower::service_fn(move |_req: Request<String>| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let mut response = Response::new(String::new());
            if first {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, "2".parse().unwrap());
            }
            Ok(response)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_backoff_waits_in_the_layers_timer_exactly_and_gives_its_slot_back() {
    let ticker = Arc::new(Ticker::new());
    let svc = retrying(unavailable_once(), RetryPolicy::default(), &ticker);
    let started = Instant::now();
    let mut call = pin!(svc.oneshot(Request::new(String::new())));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(call.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ticker.waiting(), 1, "the backoff takes a slot");
    let response = call.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(ticker.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_while_it_waits_gives_its_slot_back() {
    let ticker = Arc::new(Ticker::new());
    // Sleeping before its retry.
    let svc = retrying(unavailable_once(), RetryPolicy::default(), &ticker);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    {
        let mut call = pin!(svc.oneshot(Request::new(String::new())));
        assert!(call.as_mut().poll(&mut cx).is_pending());
        assert_eq!(ticker.waiting(), 1);
    }
    assert_eq!(ticker.waiting(), 0, "dropped while sleeping");

    // Watching its deadline while the attempt is pending.
    let stalled = tower::service_fn(|_req: Request<String>| async {
        std::future::pending::<Result<Response<String>, Infallible>>().await
    });
    let policy = RetryPolicy::default().deadline(Some(Duration::from_secs(5)));
    let svc = retrying(stalled, policy, &ticker);
    {
        let mut call = pin!(svc.oneshot(Request::new(String::new())));
        assert!(call.as_mut().poll(&mut cx).is_pending());
        assert_eq!(ticker.waiting(), 1);
    }
    assert_eq!(ticker.waiting(), 0, "dropped while its attempt was pending");
}

/// The call begins at its first poll: its deposit is made and its deadline counted then,
/// not when the future is made.
#[tokio::test(start_paused = true)]
async fn a_call_deposits_and_starts_its_deadline_at_its_first_poll() {
    let ticker = Arc::new(Ticker::new());
    let stalled = tower::service_fn(|_req: Request<String>| async {
        std::future::pending::<Result<Response<String>, Infallible>>().await
    });
    let budget = super::super::RetryBudget::new(Duration::from_secs(10), 0, 1.0).unwrap();
    let policy = RetryPolicy::default()
        .budget(budget.clone())
        .deadline(Some(Duration::from_secs(5)));
    let mut svc = retrying(stalled, policy, &ticker);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let started = Instant::now();
    let mut call = pin!(svc.call(Request::new(String::new())));
    assert_eq!(
        budget.available(),
        0,
        "nothing deposited before the first poll"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(call.as_mut().poll(&mut cx).is_pending());
    assert_eq!(budget.available(), 1, "deposited at the first poll");
    assert!(call.await.is_err());
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(7),
        "5 s after the first poll"
    );
    assert_eq!(budget.available(), 1, "one deposit per call");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_fires_on_the_layers_timer_not_early() {
    let ticker = Arc::new(Ticker::new());
    let stalled = tower::service_fn(|_req: Request<String>| async {
        std::future::pending::<Result<Response<String>, Infallible>>().await
    });
    let policy = RetryPolicy::default().deadline(Some(Duration::from_secs(5)));
    let svc = retrying(stalled, policy, &ticker);
    let started = Instant::now();
    let mut call = pin!(svc.oneshot(Request::new(String::new())));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(call.as_mut().poll(&mut cx).is_pending());
    tokio::time::sleep(Duration::from_millis(4_999)).await;
    assert!(
        matches!(call.as_mut().poll(&mut cx), Poll::Pending),
        "fired early"
    );
    assert!(call.await.is_err());
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(ticker.waiting(), 0);
}
