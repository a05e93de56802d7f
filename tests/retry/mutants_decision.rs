//! Decision rules the other tests left open (mutation testing, MUTANTS.md).

use crate::conformance::{check, run, Ev, Outcome, Row};
use http::Method;
use std::time::Duration;
use tower_fortify::retry::{RetryAfterOverMax, RetryPolicy};

fn get(policy: RetryPolicy, events: Vec<Ev>, calls: usize, outcome: Outcome) -> Row {
    Row {
        id: "row",
        policy,
        method: Method::GET,
        events,
        calls,
        sleeps: vec![],
        outcome,
    }
}

#[tokio::test(start_paused = true)]
async fn a_forcelisted_300_is_retried() {
    // 300 is the lowest status the forcelist accepts: the fast path for responses no rule
    // retries must not swallow it.
    let policy = RetryPolicy::default().status_forcelist([300]);
    let row = get(
        policy,
        vec![Ev::Status(300, None), Ev::Success],
        2,
        Outcome::Response(200),
    );
    let (calls, outcome) = (row.calls, row.outcome.clone());
    let (result, script) = run(row).await;
    check("300", &result, &outcome);
    assert_eq!(script.calls(), calls);
    assert_eq!(script.sleeps(), [Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_exactly_the_maximum_is_honoured() {
    // `retry_after_max` is the longest wait honoured: a header asking for exactly that long
    // is waited for, even when a longer one would stop the call.
    for over in [RetryAfterOverMax::Stop, RetryAfterOverMax::Ignore] {
        let policy = RetryPolicy::default()
            .retry_after_max(Duration::from_secs(10))
            .retry_after_over_max(over);
        let row = get(
            policy,
            vec![Ev::Status(503, Some("10".into())), Ev::Success],
            2,
            Outcome::Response(200),
        );
        let (result, script) = run(row).await;
        check("10 s", &result, &Outcome::Response(200));
        assert_eq!(script.sleeps(), [Duration::from_secs(10)], "{over:?}");
    }
}
