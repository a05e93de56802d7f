//! Hedge metrics through the `metrics` facade, and its tracing events.

use crate::support::{builder, get, ms, warm, Backend, Step, DELAY};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_fortify::retry::RetryBudget;

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn hedges_sent_and_won_are_counted() {
    use fortify_test_support::recorded::{self, has_labels};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || builder().name("api").build().unwrap());
    let backend = Backend::new();
    let svc = layer.layer(backend.clone());
    warm(&svc, &backend, "a.test").await;

    // A hedge that wins, a hedge that loses, a call not hedged.
    backend.script([Step::Ok(Duration::from_secs(1)), Step::Ok(ms(20))]);
    backend.script([Step::Ok(ms(30)), Step::Ok(Duration::from_secs(1))]);
    backend.script([Step::Ok(ms(10))]);
    for _ in 0..3 {
        svc.clone().oneshot(get("a.test")).await.unwrap();
    }

    // Taking a snapshot resets the counters: one for both.
    let snapshot = recorded::snapshot(&snapshotter);
    let counter = |name: &str| -> u64 {
        snapshot
            .iter()
            .filter(|(n, l, _)| n == name && has_labels(l, &[("name", "api")]))
            .map(|(_, _, v)| match v {
                DebugValue::Counter(v) => *v,
                other => panic!("{name}: {other:?}"),
            })
            .sum()
    };
    assert_eq!(counter("fortify_hedges_sent_total"), 2);
    assert_eq!(counter("fortify_hedges_won_total"), 1);
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn events_for_sent_won_and_refused_hedges() {
    use fortify_test_support::capture::{field, Capture};

    let capture = Capture::global("tower_fortify::hedge");
    // A reserve of one hedge.
    let budget = RetryBudget::new(Duration::from_secs(1), 1, 0.0).unwrap();
    let backend = Backend::new();
    let layer = builder().name("traced").budget(budget).build().unwrap();
    let svc = layer.layer(backend.clone());
    assert_eq!((layer.name(), svc.name()), ("traced", "traced"));
    warm(&svc, &backend, "a.test").await;

    backend.script([Step::Ok(Duration::from_secs(1)), Step::Ok(ms(20))]);
    backend.script([Step::Ok(Duration::from_secs(1))]);
    for _ in 0..2 {
        svc.clone().oneshot(get("a.test")).await.unwrap();
    }

    let events = capture.matching("name", "traced");
    let messages: Vec<_> = events
        .iter()
        .map(|e| field(e, "message").unwrap())
        .collect();
    assert_eq!(messages, ["hedging", "hedge won", "hedge not sent"]);
    assert_eq!(
        field(&events[0], "key").as_deref(),
        Some("http://a.test:80")
    );
    assert_eq!(field(&events[2], "reason").as_deref(), Some("budget"));
    // The host's delay in milliseconds, in both events: 20 ms's bucket (`DELAY`).
    for event in [&events[0], &events[2]] {
        let delay_ms: f64 = field(event, "delay_ms").unwrap().parse().unwrap();
        assert!(
            (delay_ms - DELAY.as_secs_f64() * 1e3).abs() < 1e-6,
            "{delay_ms} ms"
        );
    }
}
