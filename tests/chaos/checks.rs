//! What every scenario counts and checks: tallies of the outcomes, the injected fault rate,
//! waiting for a condition, and every permit and probe given back.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    calls::{End, Outcome},
    harness::Harness,
};
use fortify_test_support::flaky::BackendStats;

/// Calls per label, for assertion messages.
pub fn tally(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for outcome in outcomes {
        *tally.entry(outcome.label()).or_default() += 1;
    }
    tally
}

/// The first error messages of failed calls, for assertion messages.
pub fn some_errors(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.end {
            End::Failed { message, .. } => Some(format!("{:?} #{}: {message}", o.op, o.id)),
            _ => None,
        })
        .take(5)
        .collect()
}

pub fn count(outcomes: &[Outcome], f: impl Fn(&Outcome) -> bool) -> usize {
    outcomes.iter().filter(|o| f(o)).count()
}

/// The share of connection attempts (accepted or refused) that failed.
pub fn injected_rate(stats: &BackendStats) -> f64 {
    let attempts = stats.connections + stats.refused;
    (stats.refused + stats.resets) as f64 / attempts.max(1) as f64
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `deadline`.
pub async fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "gave up after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The key of the backend's breaker (and pool): `http://backend.test:80`.
pub fn host_key() -> tower_fortify::key::HostKey {
    let uri = format!("http://{}/", fortify_test_support::flaky::HOST);
    tower_fortify::key::HostKey::from_uri(&uri.parse().unwrap())
}

/// Scenario 5: every pool permit and every breaker probe slot is back.
pub fn assert_everything_returned(harness: &Harness, label: &str) {
    let snapshot = harness.layer.pool_handle().snapshot();
    assert_eq!(
        (snapshot.total.in_use, snapshot.total.waiting),
        (0, 0),
        "{label}: pool permits still in use or callers still waiting after every call \
         ended: {snapshot:?}"
    );
    let breakers = harness.layer.breaker_handle().breakers();
    assert!(!breakers.is_empty(), "{label}: no breaker was created");
    for breaker in breakers {
        let (key, state) = (breaker.key().unwrap_or("-"), breaker.state());
        let probes = breaker.probes_in_flight();
        assert_eq!(
            probes, 0,
            "{label}: breaker {key} ({state}) still counts {probes} probes in flight"
        );
    }
}
