//! Every `Duration` setting of the retry layer, at its extremes: no `Instant + Duration`
//! overflows. A sleep or deadline too far to represent saturates to "never" (issue 16,
//! item 4).

use crate::conformance::{Ev, Script};
use http::{Method, Request, Response};
use proptest::prelude::*;
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::{Category, FailureKind},
    retry::{error::RetryError, Backoff, Jitter, RetryHistory, RetryLayer, RetryPolicy, Stop},
    BoxError,
};

const C: Ev = Ev::Fail(FailureKind::ConnectRefused);
const OK: Ev = Ev::Success;
/// More seconds than a `u64` holds: the parser saturates it to `u64::MAX` seconds.
const HUGE: &str = "99999999999999999999";

fn ra(status: u16, value: &str) -> Ev {
    Ev::Status(status, Some(value.to_owned()))
}

async fn run(policy: RetryPolicy, events: &[Ev]) -> (Result<Response<()>, BoxError>, Script) {
    let script = Script::new(events);
    (run_on(policy, script.clone()).await, script)
}

async fn run_on(policy: RetryPolicy, script: Script) -> Result<Response<()>, BoxError> {
    let svc = RetryLayer::builder()
        .policy(policy)
        .build()
        .unwrap()
        .layer(script.clone());
    let request = Request::builder()
        .method(Method::GET)
        .uri("http://127.0.0.1/")
        .body("payload".to_owned())
        .unwrap();
    svc.oneshot(request).await
}

/// Longer than any sleep the tests expect to end, far shorter than `Duration::MAX`.
const DECADE: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

#[tokio::test(start_paused = true)]
async fn an_unbounded_retry_after_max_with_a_huge_header_waits_without_panicking() {
    let policy = RetryPolicy::default().retry_after_max(Duration::MAX);
    let script = Script::new(&[ra(503, HUGE), OK]);
    let call = run_on(policy, script.clone());
    // The server asked for more than a decade: the retry waits, the call does not panic.
    assert!(tokio::time::timeout(DECADE, call).await.is_err());
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_past_the_deadline_is_not_waited_for() {
    let policy = RetryPolicy::default()
        .retry_after_max(Duration::MAX)
        .deadline(Some(Duration::from_secs(5)));
    let (result, script) = run(policy, &[ra(503, HUGE), OK]).await;
    // The wait would end past the deadline: the response comes back, saying why.
    let response = result.unwrap();
    assert_eq!(response.status(), 503);
    let history = response.extensions().get::<RetryHistory>().unwrap();
    assert_eq!(history.stop(), Some(Stop::Deadline));
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unbounded_deadline_never_fires() {
    let policy = RetryPolicy::default().deadline(Some(Duration::MAX));
    let (result, script) = run(policy, &[C, C, OK]).await;
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(script.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_unbounded_backoff_max_with_a_large_factor_saturates() {
    let policy = RetryPolicy::default()
        .backoff_factor(Duration::from_secs(u64::MAX / 2))
        .backoff_max(Duration::MAX);
    let script = Script::new(&[C, C, OK]);
    let call = run_on(policy, script.clone());
    // The first retry is immediate, the second waits (saturated) past any horizon.
    assert!(tokio::time::timeout(DECADE, call).await.is_err());
    assert_eq!(script.calls(), 2);
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..100_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn retry_after() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(HUGE.to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..1_000).prop_map(|n| n.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever each duration setting holds, a call through the layer ends (with paused
    /// time) without a panic: with a response, or a `RetryError` of the deadline.
    #[test]
    fn every_duration_setting_saturates(
        factor in duration(),
        max in duration(),
        jitter in duration(),
        retry_after_max in duration(),
        deadline in proptest::option::of(duration()),
        category in duration(),
        category_max in duration(),
        header in retry_after(),
    ) {
        let policy = RetryPolicy::default()
            .total(Some(4))
            .status_forcelist([500])
            .backoff_factor(factor)
            .backoff_max(max)
            .backoff_jitter(jitter)
            .jitter(Jitter::Additive)
            .backoff_for(Category::Read, Backoff::new(category).max(category_max).jitter(Jitter::Full))
            .retry_after_max(retry_after_max)
            .deadline(deadline.filter(|d| !d.is_zero()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let events = [C, Ev::Fail(FailureKind::ReadTimeout), ra(503, &header), Ev::Status(500, None), OK];
        let script = Script::new(&events);
        let result = rt.block_on(async {
            tokio::time::timeout(DECADE, run_on(policy, script.clone())).await
        });
        // No sleep between calls exceeds the caps that apply to it (tokio's timer rounds a
        // wake up to the next millisecond).
        let cap = max.max(category_max).max(retry_after_max).saturating_add(Duration::from_millis(1));
        for sleep in script.sleeps() {
            prop_assert!(sleep <= cap, "{:?} > {:?}", sleep, cap);
        }
        match result {
            // A wait past a decade: the call is still sleeping, without a panic.
            Err(_elapsed) => prop_assert!(script.calls() < 5),
            Ok(Ok(response)) => {
                // Done, or a wait refused at the deadline (the response says so).
                let done = response.status() == 200 && script.calls() == 5;
                let stopped = response
                    .extensions()
                    .get::<RetryHistory>()
                    .and_then(RetryHistory::stop)
                    == Some(Stop::Deadline);
                prop_assert!(done || stopped, "{:?}", response);
            }
            Ok(Err(err)) => {
                let err = err.downcast_ref::<RetryError>().expect("a RetryError");
                prop_assert_eq!(err.stop(), Some(Stop::Deadline));
            }
        }
    }
}
