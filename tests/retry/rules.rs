//! Rows of our own: the rules and deviations the conformance table does not cover.

use crate::conformance::{check, run, Ev, Outcome, Row, Script};
use http::{Method, Request, Response};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    classify::{Category, Failure, FailureKind},
    retry::{
        error::RetryError, Backoff, Idempotent, Jitter, NoRetry, RetryAfterOverMax, RetryBudget,
        RetryCause, RetryHistory, RetryLayer, RetryPolicy, Stop,
    },
};

const C: Ev = Ev::Fail(FailureKind::ConnectRefused);
const R: Ev = Ev::Fail(FailureKind::ReadTimeout);
const OK: Ev = Ev::Success;

fn ra(status: u16, value: &str) -> Ev {
    Ev::Status(status, Some(value.to_owned()))
}

fn get(policy: RetryPolicy, events: Vec<Ev>) -> Row {
    Row {
        id: "row",
        policy,
        method: Method::GET,
        events,
        calls: 0,
        sleeps: vec![],
        outcome: Outcome::Response(200),
    }
}

async fn call(
    svc: impl Service<Request<String>, Response = Response<()>, Error = tower_fortify::BoxError>,
    request: Request<String>,
) -> Result<Response<()>, tower_fortify::BoxError> {
    svc.oneshot(request).await
}

fn request(method: Method) -> Request<String> {
    Request::builder()
        .method(method)
        .uri("http://127.0.0.1/")
        .body("payload".to_owned())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn idempotent_marker_retries_a_post_read_failure() {
    let script = Script::new(&[R, OK]);
    let svc = RetryLayer::builder().build().unwrap().layer(script.clone());
    let mut req = request(Method::POST);
    req.extensions_mut().insert(Idempotent);
    let response = call(svc, req).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn no_retry_marker_sends_once() {
    let script = Script::new(&[C, OK]);
    let svc = RetryLayer::builder().build().unwrap().layer(script.clone());
    let mut req = request(Method::GET);
    req.extensions_mut().insert(NoRetry);
    let err = call(svc, req).await.unwrap_err();
    check(
        "no-retry",
        &Err(err),
        &Outcome::Failure(FailureKind::ConnectRefused),
    );
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_returned_after_retries_carries_their_history() {
    // GET: a 503 is retried, then an open breaker is not retried: a RetryError that holds it
    // and the two retries, with no stop.
    let (result, script) = run(get(
        RetryPolicy::default().status_forcelist([503]),
        vec![Ev::Status(503, None), C, Ev::Fail(FailureKind::CircuitOpen)],
    ))
    .await;
    let err = result.unwrap_err();
    let err = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(
        err.failure().map(Failure::kind),
        Some(FailureKind::CircuitOpen)
    );
    assert_eq!(err.stop(), None);
    assert_eq!(
        err.to_string(),
        "last failure not retryable: 3 attempts; last: circuit open: scripted"
    );
    let history = err.history();
    let causes: Vec<_> = history.records().iter().map(|r| r.cause()).collect();
    assert_eq!(
        causes,
        [
            RetryCause::Status(http::StatusCode::SERVICE_UNAVAILABLE),
            RetryCause::Failure(FailureKind::ConnectRefused)
        ]
    );
    assert_eq!(script.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn never_retried_kinds_come_back_unchanged() {
    for kind in [
        FailureKind::TlsCertificate,
        FailureKind::PoolTimeout,
        FailureKind::PoolFull,
        FailureKind::CircuitOpen,
    ] {
        let (result, script) = run(get(
            RetryPolicy::default().total(None),
            vec![Ev::Fail(kind)],
        ))
        .await;
        check("never", &result, &Outcome::Failure(kind));
        assert_eq!(script.calls(), 1, "{kind:?}");
        let err = result.unwrap_err();
        // Not retried: the failure itself, so no history anywhere.
        assert!(err.is::<Failure>(), "not retried: no history");
    }
}

#[tokio::test(start_paused = true)]
async fn budget_refusal_is_distinguishable() {
    // A reserve of one retry, nothing earned by requests.
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap();
    let policy = RetryPolicy::default().budget(budget.clone());
    let layer = RetryLayer::builder().policy(policy).build().unwrap();

    // Zero reserve: the very first retry is refused.
    let script = Script::new(&[C, OK]);
    let err = call(layer.layer(script.clone()), request(Method::GET))
        .await
        .unwrap_err();
    let err = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(err.stop(), Some(Stop::Budget));
    assert_eq!(
        err.failure().map(Failure::kind),
        Some(FailureKind::ConnectRefused)
    );
    assert!(
        err.history().records().is_empty(),
        "the refused retry is not in the history"
    );
    assert_eq!(
        err.to_string(),
        "retry budget exhausted: 1 attempt; last: connect refused: scripted"
    );
    assert_eq!(script.calls(), 1);

    // A retryable response refused by the budget comes back as it is, with the history
    // saying why.
    let script = Script::new(&[ra(503, "1"), OK]);
    let response = call(layer.layer(script.clone()), request(Method::GET))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let history = response
        .extensions()
        .get::<RetryHistory>()
        .expect("history");
    assert_eq!(history.stop(), Some(Stop::Budget));
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn budget_allows_the_reserve_then_refuses() {
    let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.0).unwrap(); // 10 retries
    let layer = RetryLayer::builder()
        .policy(RetryPolicy::default().total(None).budget(budget))
        .build()
        .unwrap();
    let script = Script::new(&vec![C; 20]);
    let err = call(layer.layer(script.clone()), request(Method::GET))
        .await
        .unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert_eq!(err.stop(), Some(Stop::Budget));
    assert_eq!(err.history().records().len(), 10);
    assert_eq!(script.calls(), 11);
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_a_retry_whose_sleep_would_cross_it() {
    let policy = RetryPolicy::default()
        .total(Some(10))
        .backoff_factor(Duration::from_secs(1))
        .deadline(Some(Duration::from_secs(5)));
    // Sleeps 0, 2 s, 4 s: the third retry would end at 6 s.
    let (result, script) = run(get(policy, vec![C, C, C, C, OK])).await;
    let err = result.unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert_eq!(err.stop(), Some(Stop::Deadline));
    assert_eq!(script.calls(), 3);
    assert_eq!(
        script.sleeps(),
        vec![Duration::ZERO, Duration::from_secs(2)]
    );
}

/// Calls `inner` through a layer with a 5 s deadline: the call must stop at it, exactly.
async fn stops_at_a_5s_deadline<S>(inner: S) -> RetryError
where
    S: Service<Request<String>, Response = Response<()>> + Clone,
    S::Error: Into<tower_fortify::BoxError>,
{
    let policy = RetryPolicy::default().deadline(Some(Duration::from_secs(5)));
    let svc = RetryLayer::builder()
        .policy(policy)
        .build()
        .unwrap()
        .layer(inner);
    let started = tokio::time::Instant::now();
    let err = call(svc, request(Method::GET)).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let err = *err.downcast::<RetryError>().unwrap();
    assert_eq!(err.stop(), Some(Stop::Deadline));
    err
}

/// A call on `script` through a layer with a 5 s deadline, made but not yet polled.
fn call_with_a_5s_deadline(
    script: &Script,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<()>, tower_fortify::BoxError>>>,
> {
    let policy = RetryPolicy::default().deadline(Some(Duration::from_secs(5)));
    let mut svc = RetryLayer::builder()
        .policy(policy)
        .build()
        .unwrap()
        .layer(script.clone());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    Box::pin(svc.call(request(Method::GET)))
}

#[tokio::test(start_paused = true)]
async fn deadline_drops_an_attempt_still_running() {
    let inner = tower::service_fn(|_req: Request<String>| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, std::io::Error>(Response::new(()))
    });
    stops_at_a_5s_deadline(inner).await;
}

#[tokio::test(start_paused = true)]
async fn deadline_drops_an_attempt_still_running_after_a_sleep() {
    // The first attempt asks to come back in 2 s; the second hangs. The call stops at the
    // deadline (5 s), not when the sleep's timer fired (2 s).
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let inner = tower::service_fn(move |_req: Request<String>| {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if n > 0 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            let status = if n == 0 { 503 } else { 200 };
            Ok::<_, std::io::Error>(
                Response::builder()
                    .status(status)
                    .header("retry-after", "2")
                    .body(())
                    .unwrap(),
            )
        }
    });
    let err = stops_at_a_5s_deadline(inner).await;
    assert_eq!(err.history().records().len(), 1);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_a_retry_whose_task_is_polled_late() {
    use std::task::{Context, Poll, Waker};
    // The sleep before the retry ends in time (2 s), but the task is next polled at 6 s,
    // past the deadline (5 s): the retry is not sent.
    let script = Script::new(&[ra(503, "2"), OK]);
    let mut fut = call_with_a_5s_deadline(&script);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        fut.as_mut().poll(&mut cx).is_pending(),
        "sleeping before the retry"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    let Poll::Ready(Err(err)) = fut.as_mut().poll(&mut cx) else {
        panic!("the call should stop at its deadline");
    };
    assert_eq!(
        err.downcast_ref::<RetryError>().unwrap().stop(),
        Some(Stop::Deadline)
    );
    assert_eq!(script.calls(), 1, "no retry sent past the deadline");
}

#[tokio::test(start_paused = true)]
async fn an_answer_ready_at_the_deadline_is_taken() {
    use std::task::{Context, Poll, Waker};
    // Polled for the first time after the deadline, the call still has its answer: the
    // deadline only drops what is still pending (as tower's `Timeout` does).
    let script = Script::new(&[OK]);
    let mut fut = call_with_a_5s_deadline(&script);
    let mut cx = Context::from_waker(Waker::noop());
    tokio::time::advance(Duration::from_secs(6)).await;
    let Poll::Ready(Ok(response)) = fut.as_mut().poll(&mut cx) else {
        panic!("the ready answer should be taken");
    };
    assert_eq!(response.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_retry_resends_a_header_with_many_values() {
    // 30,000 values of one name: a valid map (values beyond the first are not capped), whose
    // copy must be rebuilt for the retry without reserving a slot per value.
    let script = Script::new(&[C, OK]);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let inner = tower::service_fn(move |req: Request<String>| {
        log.lock()
            .unwrap()
            .push(req.headers().get_all("x-tag").iter().count());
        script.clone().oneshot(req)
    });
    let mut req = request(Method::GET);
    for _ in 0..30_000 {
        req.headers_mut()
            .append("x-tag", http::HeaderValue::from_static("v"));
    }
    let svc = RetryLayer::builder().build().unwrap().layer(inner);
    assert_eq!(call(svc, req).await.unwrap().status(), 200);
    assert_eq!(*seen.lock().unwrap(), [30_000, 30_000]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_over_the_max() {
    let base = || {
        RetryPolicy::default()
            .retry_after_max(Duration::from_secs(10))
            .backoff_factor(Duration::from_secs(1))
    };
    // Cap (default): wait the max.
    let (result, script) = run(get(base(), vec![ra(503, "3600"), OK])).await;
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(script.sleeps(), vec![Duration::from_secs(10)]);

    // Ignore: the backoff (0 for the first retry).
    let (result, script) = run(get(
        base().retry_after_over_max(RetryAfterOverMax::Ignore),
        vec![ra(503, "3600"), OK],
    ))
    .await;
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(script.sleeps(), vec![Duration::ZERO]);

    // Stop: a RetryError carrying the delay the server asked for.
    let (result, script) = run(get(
        base().retry_after_over_max(RetryAfterOverMax::Stop),
        vec![ra(503, "3600"), OK],
    ))
    .await;
    let err = result.unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert_eq!(
        err.stop(),
        Some(Stop::RetryAfterTooLong(Duration::from_secs(3600)))
    );
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(script.calls(), 1);
}

/// Several `Retry-After` fields: urllib3 joins them (`"5, 1"`), which is malformed, so
/// (deviation D1) the retry backs off as if there were none, whatever order they come in.
#[tokio::test(start_paused = true)]
async fn several_retry_after_fields_are_malformed_and_back_off() {
    for (values, status) in [(["5", "1"], 503), (["1", "5"], 503), (["", "2"], 429)] {
        let script = Script::new(&[OK]);
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        let inner = tower::service_fn(move |req: Request<String>| {
            let script = script.clone();
            let first = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            async move {
                if !first {
                    return script.oneshot(req).await;
                }
                let mut response = Response::new(());
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                for value in values {
                    response
                        .headers_mut()
                        .append(http::header::RETRY_AFTER, value.parse().unwrap());
                }
                Ok(response)
            }
        });
        let policy = RetryPolicy::default().backoff_factor(Duration::from_secs(1));
        let svc = RetryLayer::builder()
            .policy(policy)
            .build()
            .unwrap()
            .layer(inner);
        let started = tokio::time::Instant::now();
        let response = call(svc, request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), 200, "{values:?}");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        // The first retry's backoff is zero: neither value was waited for.
        assert_eq!(started.elapsed(), Duration::ZERO, "{values:?}");
        let history = response.extensions().get::<RetryHistory>().unwrap();
        assert_eq!(history.sleeps().collect::<Vec<_>>(), [Duration::ZERO]);
    }
}

#[tokio::test(start_paused = true)]
async fn hostile_retry_after_values_never_wait_past_the_cap() {
    for value in [
        "99999999999999999999999999999",
        "18446744073709551615",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "-5",
        "1e9",
    ] {
        let policy = RetryPolicy::default().retry_after_max(Duration::from_secs(60));
        let (result, script) = run(get(policy, vec![ra(503, value), OK])).await;
        assert_eq!(result.unwrap().status(), 200, "{value:?}");
        assert!(
            script.sleeps()[0] <= Duration::from_secs(60),
            "{value:?}: {:?}",
            script.sleeps()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn per_category_backoff_preset() {
    // Connect failures at once; statuses exponential with full jitter below a 4 s cap.
    let policy = RetryPolicy::default()
        .total(Some(10))
        .status_forcelist([503])
        .backoff_for(Category::Connect, Backoff::none())
        .backoff_for(
            Category::Status,
            Backoff::new(Duration::from_secs(1))
                .max(Duration::from_secs(4))
                .jitter(Jitter::Full),
        );
    let s503 = Ev::Status(503, None);
    let (result, script) = run(get(
        policy,
        vec![C, C, s503.clone(), s503.clone(), s503, OK],
    ))
    .await;
    assert_eq!(result.unwrap().status(), 200);
    let sleeps = script.sleeps();
    assert_eq!(&sleeps[..2], &[Duration::ZERO, Duration::ZERO]);
    // Retries 3, 4, 5 of the call: full jitter of min(4 s, 1 s * 2^(k-1)) = 4 s.
    for sleep in &sleeps[2..] {
        assert!(*sleep < Duration::from_secs(4), "{sleeps:?}");
    }
    // Each drawn: three sleeps of `u * 4 s` (whole nanoseconds) all zero, or all equal,
    // come of random draws with odds under 1 in 10^18.
    assert!(sleeps[2..].iter().any(|s| !s.is_zero()), "{sleeps:?}");
    assert!(sleeps[2..].windows(2).any(|w| w[0] != w[1]), "{sleeps:?}");
}

#[tokio::test(start_paused = true)]
async fn production_preset_retries_gateway_errors_and_connects() {
    let s502 = Ev::Status(502, None);
    let (result, script) = run(get(RetryPolicy::production(), vec![C, s502, OK])).await;
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(script.calls(), 3);
    assert_eq!(
        script.sleeps()[0],
        Duration::ZERO,
        "connect failures retry at once"
    );
}

#[test]
fn invalid_settings_are_rejected_with_the_field() {
    let cases = [
        (
            RetryPolicy::default().status_forcelist([200]),
            "status_forcelist",
        ),
        (
            RetryPolicy::default().status_forcelist([1000]),
            "status_forcelist",
        ),
        (
            RetryPolicy::default().status_forcelist([42]),
            "status_forcelist",
        ),
        (
            RetryPolicy::default()
                .backoff_jitter(Duration::from_secs(1))
                .jitter(Jitter::Full),
            "backoff_jitter",
        ),
        (
            RetryPolicy::default().deadline(Some(Duration::ZERO)),
            "deadline",
        ),
    ];
    for (policy, field) in cases {
        let err = RetryLayer::builder().policy(policy).build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
    assert!(RetryLayer::builder()
        .policy(RetryPolicy::production())
        .build()
        .is_ok());
}
