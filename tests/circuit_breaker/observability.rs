//! Breaker metrics through the `metrics` facade, and a tracing event per transition.

use crate::recorded::{self, has_labels, Labels};
use crate::support::{send, send_n, Backend, Mode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::time::Duration;
use tokio::time::advance;
use tower::{Layer, ServiceExt};
use tower_fortify::{circuit_breaker::CircuitBreakerLayer, classify::FailureKind};

/// A metric's name, labels and value (counters as `f64`; histograms left out).
type Recorded = (String, Labels, f64);

/// One snapshot (taking it resets counters), as a list to search.
fn snapshot(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<Recorded> {
    recorded::snapshot(snapshotter)
        .into_iter()
        .filter_map(|(name, labels, value)| {
            let value = match value {
                DebugValue::Counter(v) => v as f64,
                DebugValue::Gauge(v) => v.into_inner(),
                DebugValue::Histogram(_) => return None,
            };
            Some((name, labels, value))
        })
        .collect()
}

fn value(snapshot: &[Recorded], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = snapshot
        .iter()
        .filter(|(n, l, _)| n == name && has_labels(l, labels))
        .map(|(_, _, v)| *v)
        .collect();
    assert!(!found.is_empty(), "{name} {labels:?} not registered");
    found.iter().sum()
}

#[tokio::test(start_paused = true)]
async fn state_transitions_rejections_and_calls_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        CircuitBreakerLayer::builder()
            .name("api")
            .minimum_calls(5)
            .open_duration(Duration::from_secs(5))
            .open_duration_jitter(0.0)
            .half_open_successes(1)
            .build_generic()
            .unwrap()
    });
    let handle = layer.handle();
    let backend = Backend::new(Mode::Fail(FailureKind::PoolTimeout));
    let mut svc = layer.layer(backend.clone());

    let _ = send(&mut svc).await; // ignored
    backend.set(Mode::Status(503));
    send_n(&mut svc, 5).await; // 5 failures: open
    assert_eq!(send_n(&mut svc, 2).await, 2); // rejected
    advance(Duration::from_secs(5)).await;
    backend.set(Mode::Status(200));
    send(&mut svc).await.unwrap(); // the probe closes
    send_n(&mut svc, 3).await;
    let _ = handle.figures(); // pushes the thread's buffered successes

    let snapshot = snapshot(&snapshotter);
    let api = ("name", "api");
    for (state, expected) in [
        ("closed", 1.0),
        ("open", 0.0),
        ("half_open", 0.0),
        ("forced_open", 0.0),
        ("disabled", 0.0),
    ] {
        let v = value(&snapshot, "fortify_circuit_state", &[api, ("state", state)]);
        assert_eq!(v, expected, "state {state}");
    }
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ] {
        let v = value(
            &snapshot,
            "fortify_circuit_transitions_total",
            &[api, ("from", from), ("to", to)],
        );
        assert_eq!(v, 1.0, "{from} -> {to}");
    }
    assert_eq!(
        value(
            &snapshot,
            "fortify_circuit_transitions_total",
            &[("from", "half_open"), ("to", "open")]
        ),
        0.0
    );
    assert_eq!(
        value(&snapshot, "fortify_circuit_rejected_total", &[api]),
        2.0
    );
    for (outcome, expected) in [
        ("success", 4.0),
        ("failure", 5.0),
        ("ignored", 1.0),
        ("slow_success", 0.0),
        ("slow_failure", 0.0),
    ] {
        let v = value(
            &snapshot,
            "fortify_circuit_calls_total",
            &[api, ("outcome", outcome)],
        );
        assert_eq!(v, expected, "outcome {outcome}");
    }
    // No label holds anything but the bounded values.
    for (name, labels, _) in &snapshot {
        for (key, _) in labels {
            assert!(
                ["name", "state", "from", "to", "outcome"].contains(&key.as_str()),
                "{name} has label {key}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn keyed_breakers_count_states_keys_and_evictions_without_hosts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        CircuitBreakerLayer::builder()
            .name("hosts")
            .minimum_calls(1)
            .max_keys(2)
            .build()
            .unwrap()
    });
    let svc = layer.layer(tower::service_fn(|req: http::Request<()>| async move {
        let status = if req.uri().host() == Some("bad") {
            500
        } else {
            200
        };
        Ok::<_, std::io::Error>(crate::support::response(status))
    }));
    for host in ["bad", "a", "b"] {
        let _ = svc.clone().oneshot(crate::support::request_to(host)).await;
    }
    let snapshot = snapshot(&snapshotter);
    let hosts = ("name", "hosts");
    assert_eq!(value(&snapshot, "fortify_circuit_keys", &[hosts]), 2.0);
    assert_eq!(
        value(&snapshot, "fortify_circuit_evictions_total", &[hosts]),
        1.0
    );
    // "a" was evicted (closed, least recently used); "bad" is open, "b" closed.
    assert_eq!(
        value(
            &snapshot,
            "fortify_circuit_state",
            &[hosts, ("state", "open")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &snapshot,
            "fortify_circuit_state",
            &[hosts, ("state", "closed")]
        ),
        1.0
    );
    for (_, labels, _) in &snapshot {
        assert!(labels
            .iter()
            .all(|(_, v)| !["a", "b", "bad"].contains(&v.as_str())));
    }
    drop(svc);
    drop(layer);
    // Dropped breakers leave the state gauge. (A snapshot resets gauges too, so the next
    // one holds what changed since: one closed and one open breaker less.)
    let after = self::snapshot(&snapshotter);
    for state in ["closed", "open"] {
        let v = value(&after, "fortify_circuit_state", &[hosts, ("state", state)]);
        assert_eq!(v, -1.0, "{state}");
    }
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn each_transition_is_a_tracing_event() {
    let capture = crate::capture::Capture::global("tower_fortify::circuit_breaker");
    let layer = CircuitBreakerLayer::builder()
        .name("traced-api")
        .minimum_calls(5)
        .open_duration(Duration::from_secs(5))
        .open_duration_jitter(0.0)
        .half_open_successes(1)
        .build_generic()
        .unwrap();
    let backend = Backend::new(Mode::Status(503));
    let mut svc = layer.layer(backend.clone());
    send_n(&mut svc, 5).await;
    advance(Duration::from_secs(5)).await;
    send(&mut svc).await.unwrap(); // a failed probe

    // Other tests record here too: keep this layer's transitions.
    let events = capture.matching("name", "traced-api");
    assert_eq!(
        events.len(),
        3,
        "closed->open, open->half_open, half_open->open: {events:?}"
    );
    let field = |i: usize, name: &str| crate::capture::field(&events[i], name);
    assert_eq!(field(0, "from").as_deref(), Some("closed"));
    assert_eq!(field(0, "to").as_deref(), Some("open"));
    assert_eq!(field(0, "reason").as_deref(), Some("failure_rate"));
    assert_eq!(field(0, "calls").as_deref(), Some("5"));
    assert_eq!(field(0, "failure_rate").as_deref(), Some("1.0"));
    assert_eq!(field(0, "open_ms").as_deref(), Some("5000.0"));
    assert_eq!(field(1, "to").as_deref(), Some("half_open"));
    assert_eq!(field(2, "reason").as_deref(), Some("probe_failed"));
    assert_eq!(field(2, "open_ms").as_deref(), Some("10000.0"));
}
