//! Retry metrics through the `metrics` facade, and a tracing event per retry.

use crate::conformance::{Ev, Script};
use crate::recorded::{self, has_labels, Labels};
use http::Request;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    retry::{RetryBudget, RetryLayer, RetryPolicy},
};

/// A counter's name, labels and value.
type Counted = (String, Labels, u64);

fn counter(snapshot: &[Counted], name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(n, l, _)| n == name && has_labels(l, labels))
        .map(|(_, _, v)| *v)
        .sum()
}

#[tokio::test(start_paused = true)]
async fn retries_by_category_retry_rate_budget_and_stops() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
    let policy = RetryPolicy::default()
        .status_forcelist([503])
        .budget(budget);
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::builder()
            .policy(policy)
            .name("api")
            .build()
            .unwrap()
    });

    let c = Ev::Fail(FailureKind::ConnectRefused);
    let r = Ev::Fail(FailureKind::ReadTimeout);
    let s503 = Ev::Status(503, None);
    let bad_ra = Ev::Status(503, Some("soon".into()));
    // Each request earns half a retry (ratio 0.5), deposited when it starts.
    let scripts = [
        vec![Ev::Success],         // earned 0.5: no retry needed
        vec![c, Ev::Success],      // earned 1.0: the connect retry spends it
        vec![bad_ra, Ev::Success], // earned 0.5: the status retry is refused; bad header counted
        vec![r.clone(), s503, r], // earned 1.0: the read retry spends it, the status retry is refused
    ];
    for events in scripts {
        let svc = layer.layer(Script::new(&events));
        let request = Request::get("http://127.0.0.1/")
            .body(String::new())
            .unwrap();
        let _ = svc.oneshot(request).await;
    }

    let snapshot: Vec<Counted> = recorded::snapshot(&snapshotter)
        .into_iter()
        .filter_map(|(name, labels, value)| match value {
            DebugValue::Counter(v) => Some((name, labels, v)),
            _ => None,
        })
        .collect();
    assert_eq!(
        counter(
            &snapshot,
            "fortify_retry_requests_total",
            &[("name", "api")]
        ),
        4
    );
    assert_eq!(
        counter(
            &snapshot,
            "fortify_retry_retried_requests_total",
            &[("name", "api")]
        ),
        2
    );
    assert_eq!(
        counter(
            &snapshot,
            "fortify_retries_total",
            &[("category", "connect")]
        ),
        1
    );
    assert_eq!(
        counter(&snapshot, "fortify_retries_total", &[("category", "read")]),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            "fortify_retries_total",
            &[("category", "status")]
        ),
        0
    );
    assert_eq!(
        counter(
            &snapshot,
            "fortify_retry_stopped_total",
            &[("stop", "budget")]
        ),
        2
    );
    assert_eq!(
        counter(
            &snapshot,
            "fortify_retry_stopped_total",
            &[("stop", "exhausted")]
        ),
        0
    );
    assert_eq!(
        counter(
            &snapshot,
            "fortify_retry_after_invalid_total",
            &[("name", "api")]
        ),
        1
    );
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn each_retry_is_a_tracing_event() {
    let capture = crate::capture::Capture::global("tower_fortify::retry");
    let policy = RetryPolicy::default().backoff_factor(Duration::from_secs(1));
    let svc = RetryLayer::builder()
        .policy(policy)
        .name("traced")
        .build()
        .unwrap()
        .layer(Script::new(&[
            Ev::Fail(FailureKind::ConnectRefused),
            Ev::Fail(FailureKind::ConnectRefused),
            Ev::Success,
        ]));
    let request = Request::get("http://127.0.0.1/")
        .body(String::new())
        .unwrap();
    svc.oneshot(request).await.unwrap();

    // Other tests record here too: keep this layer's retry events.
    let events: Vec<_> = capture
        .matching("name", "traced")
        .into_iter()
        .filter(|event| event.iter().any(|(k, _)| k == "retry"))
        .collect();
    assert_eq!(events.len(), 2, "one event per retry: {events:?}");
    let field = |i: usize, name: &str| crate::capture::field(&events[i], name);
    assert_eq!(field(0, "retry").as_deref(), Some("1"));
    assert_eq!(field(1, "retry").as_deref(), Some("2"));
    assert_eq!(field(1, "category").as_deref(), Some("connect"));
    assert_eq!(field(1, "sleep_ms").as_deref(), Some("2000.0"));
    assert!(field(0, "cause").unwrap().contains("ConnectRefused"));
}
