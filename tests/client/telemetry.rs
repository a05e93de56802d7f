//! The connection-phase histogram and the connections-opened counter, recorded by the
//! one-call client against real servers.

use crate::recorded::{has_labels, snapshot, Labels};
use crate::servers;
use crate::support::{config, failure_kind, get, tls_server, After, Ca, ATTEMPT_TIMEOUT};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_fortify::classify::FailureKind;

const SETUP: &str = "fortify_connection_setup_seconds";
const OPENED: &str = "fortify_connections_opened_total";
const REQUESTS: &str = "fortify_request_duration_seconds";

/// Samples of the histogram `name` with every pair of `wanted` (0 when absent).
fn samples(
    recorded: &[(String, Labels, DebugValue)],
    name: &str,
    wanted: &[(&str, &str)],
) -> usize {
    recorded
        .iter()
        .filter(|(n, labels, _)| n == name && has_labels(labels, wanted))
        .map(|(_, _, value)| match value {
            DebugValue::Histogram(values) => values.len(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

/// The value of the counter `name` with every pair of `wanted` (0 when absent).
fn counted(recorded: &[(String, Labels, DebugValue)], name: &str, wanted: &[(&str, &str)]) -> u64 {
    recorded
        .iter()
        .filter(|(n, labels, _)| n == name && has_labels(labels, wanted))
        .map(|(_, _, value)| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn phases_of_a_reused_connection_and_connections_per_request() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let ca = Ca::new();
    let server = tls_server(&ca.leaf(&["localhost"]), After::Answers).await;
    let client = metrics::with_local_recorder(&recorder, || config(&ca).name("tls").https())
        .expect("valid config");
    let uri = format!("https://localhost:{}/", server.addr.port());
    for _ in 0..4 {
        assert_eq!(get(&client, &uri).await.expect("200"), 200);
    }

    let recorded = snapshot(&snapshotter);
    let name = ("name", "tls");
    for stage in ["resolve", "connect", "tls_handshake"] {
        assert_eq!(
            samples(
                &recorded,
                SETUP,
                &[name, ("stage", stage), ("outcome", "ok")]
            ),
            1,
            "{stage}: {recorded:?}"
        );
    }
    // One connection for four requests: the PromQL ratio's two terms.
    assert_eq!(counted(&recorded, OPENED, &[name]), 1);
    assert_eq!(
        samples(
            &recorded,
            REQUESTS,
            &[name, ("stage", "request"), ("outcome", "ok")]
        ),
        4
    );
    // Handshake durations are real: above zero, below the attempt's timeout (the
    // handshake's own may be overrun by a late wake-up on a busy machine).
    let handshake = recorded
        .iter()
        .find(|(n, labels, _)| {
            n == SETUP
                && has_labels(
                    labels,
                    &[name, ("stage", "tls_handshake"), ("outcome", "ok")],
                )
        })
        .expect("a handshake sample");
    let DebugValue::Histogram(values) = &handshake.2 else {
        panic!("not a histogram")
    };
    assert!(
        values
            .iter()
            .all(|v| v.0 > 0.0 && v.0 < ATTEMPT_TIMEOUT.as_secs_f64()),
        "{values:?}"
    );
}

#[tokio::test]
async fn failed_phases_are_recorded_by_kind_and_open_nothing() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let ca = Ca::new();
    let client = metrics::with_local_recorder(&recorder, || config(&ca).name("bad").https())
        .expect("valid config");
    let refused = servers::refused().await;
    let stalls = servers::tls_stalls().await;
    let (kind, _) = failure_kind(&client, &format!("https://127.0.0.1:{}/", refused.port())).await;
    assert_eq!(kind, FailureKind::ConnectRefused);
    let (kind, _) = failure_kind(&client, &format!("https://localhost:{}/", stalls.port())).await;
    assert_eq!(kind, FailureKind::TlsHandshake);

    let recorded = snapshot(&snapshotter);
    let name = ("name", "bad");
    // An IP address has no resolve phase; `localhost` resolved once.
    assert_eq!(samples(&recorded, SETUP, &[name, ("stage", "resolve")]), 1);
    assert_eq!(
        samples(
            &recorded,
            SETUP,
            &[name, ("stage", "connect"), ("outcome", "connect_refused")]
        ),
        1
    );
    assert_eq!(
        samples(
            &recorded,
            SETUP,
            &[name, ("stage", "connect"), ("outcome", "ok")]
        ),
        1
    );
    assert_eq!(
        samples(
            &recorded,
            SETUP,
            &[
                name,
                ("stage", "tls_handshake"),
                ("outcome", "tls_handshake")
            ]
        ),
        1
    );
    assert_eq!(counted(&recorded, OPENED, &[name]), 0);
}

#[tokio::test]
async fn plain_http_has_no_handshake_phase() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let ca = Ca::new();
    let client = metrics::with_local_recorder(&recorder, || config(&ca).name("plain").https())
        .expect("valid config");
    let addr = servers::ok().await;
    let status = get(&client, &format!("http://127.0.0.1:{}/", addr.port()))
        .await
        .expect("200");
    assert_eq!(status, 200);

    let recorded = snapshot(&snapshotter);
    let name = ("name", "plain");
    assert_eq!(samples(&recorded, SETUP, &[name, ("stage", "resolve")]), 0);
    assert_eq!(
        samples(
            &recorded,
            SETUP,
            &[name, ("stage", "connect"), ("outcome", "ok")]
        ),
        1
    );
    assert_eq!(
        samples(&recorded, SETUP, &[name, ("stage", "tls_handshake")]),
        0
    );
    assert_eq!(counted(&recorded, OPENED, &[name]), 1);
}
