//! Policy settings the other tests left open (mutation testing, MUTANTS.md).

use crate::conformance::{check, run, Ev, Outcome, Row};
use http::Method;
use std::time::Duration;
use tower_fortify::{
    classify::FailureKind,
    retry::{RetryBudget, RetryPolicy},
};

const R: Ev = Ev::Fail(FailureKind::ReadTimeout);

/// Runs `method` through `policy` against `events`: checks the calls, the waits between
/// them and the outcome.
async fn expect(
    id: &'static str,
    policy: RetryPolicy,
    method: Method,
    events: Vec<Ev>,
    sleeps: Vec<Duration>,
    outcome: Outcome,
) {
    let row = Row {
        id,
        policy,
        method,
        events,
        calls: sleeps.len() + 1,
        sleeps: sleeps.clone(),
        outcome: outcome.clone(),
    };
    let calls = row.calls;
    let (result, script) = run(row).await;
    check(id, &result, &outcome);
    assert_eq!(script.calls(), calls, "{id}: calls");
    assert_eq!(script.sleeps(), sleeps, "{id}: sleeps");
}

#[tokio::test(start_paused = true)]
async fn a_method_listed_twice_is_still_allowed() {
    let policy = RetryPolicy::default().allowed_methods([Method::PUT, Method::PUT]);
    expect(
        "PUT twice",
        policy.clone(),
        Method::PUT,
        vec![R, Ev::Success],
        vec![Duration::ZERO],
        Outcome::Response(200),
    )
    .await;
    // The list replaced the default one: GET is no longer allowed.
    expect(
        "GET",
        policy,
        Method::GET,
        vec![R],
        vec![],
        Outcome::Failure(FailureKind::ReadTimeout),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn every_default_method_is_allowed_and_post_is_not() {
    use Method as M;
    let retried = [M::HEAD, M::GET, M::PUT, M::DELETE, M::OPTIONS, M::TRACE].map(|m| (m, true));
    let not_retried = [M::POST, M::PATCH, M::CONNECT].map(|m| (m, false));
    for (method, allowed) in retried.into_iter().chain(not_retried) {
        let (events, sleeps, outcome) = if allowed {
            (
                vec![R, Ev::Success],
                vec![Duration::ZERO],
                Outcome::Response(200),
            )
        } else {
            (vec![R], vec![], Outcome::Failure(FailureKind::ReadTimeout))
        };
        expect(
            "method",
            RetryPolicy::default(),
            method,
            events,
            sleeps,
            outcome,
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn no_budget_keeps_the_other_settings() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.0).unwrap();
    let policy = RetryPolicy::default()
        .total(Some(1))
        .status_forcelist([500])
        .budget(budget)
        .no_budget();
    // The empty budget is gone (a retry is made), the forcelist and total stay.
    expect(
        "no_budget",
        policy,
        Method::GET,
        vec![Ev::Status(500, None), Ev::Status(500, None)],
        vec![Duration::ZERO],
        Outcome::RetryStatus(500),
    )
    .await;
}
