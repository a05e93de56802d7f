//! `ErrorClassify` as a tower service: poll_ready, pass-through, metrics, tracing.

use fortify_test_support::text::assert_shows;
use std::io;
use tower::{Layer, ServiceExt};
use tower_fortify::classify::{ErrorClassify, ErrorClassifyLayer, Failure, FailureKind, Stage};
use tower_test::{assert_request_eq, mock};

fn kind(err: &tower_fortify::BoxError) -> FailureKind {
    err.downcast_ref::<Failure>().expect("a Failure").kind()
}

#[tokio::test]
async fn responses_pass_through_and_errors_are_classified() {
    let (mut svc, mut handle) = mock::spawn_layer::<&str, &str, _>(ErrorClassifyLayer::new());

    assert!(svc.poll_ready().is_ready());
    let ok = svc.call("hello");
    assert_request_eq!(handle, "hello").send_response("world");
    assert_eq!(ok.await.unwrap(), "world");

    assert!(svc.poll_ready().is_ready());
    let failed = svc.call("again");
    assert_request_eq!(handle, "again").send_error(io::Error::from(io::ErrorKind::ConnectionReset));
    let err = failed.await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::ConnectionClosed);
    // The original error is the Failure's source.
    let failure = err.downcast_ref::<Failure>().unwrap();
    assert_eq!(
        failure
            .get_ref()
            .downcast_ref::<io::Error>()
            .unwrap()
            .kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn readiness_is_the_inner_services() {
    let (mut svc, mut handle) = mock::spawn_layer::<(), (), _>(ErrorClassifyLayer::new());
    handle.allow(0);
    assert!(svc.poll_ready().is_pending());
    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
}

#[tokio::test]
async fn poll_ready_errors_are_classified_at_the_stage() {
    let (mut svc, mut handle) = mock::spawn_layer::<(), (), _>(ErrorClassifyLayer::connector());
    handle.send_error(tower::timeout::error::Elapsed::new());
    let err = match svc.poll_ready() {
        std::task::Poll::Ready(Err(err)) => err,
        other => panic!("expected a readiness error, got {other:?}"),
    };
    assert_eq!(kind(&err), FailureKind::ConnectTimeout);
}

#[tokio::test]
async fn an_inner_failure_is_not_wrapped_again() {
    let inner = tower::service_fn(|_: ()| async {
        Err::<(), _>(Failure::new(FailureKind::PoolFull, "full"))
    });
    let svc = ErrorClassifyLayer::tls_handshake().layer(ErrorClassify::new(inner));
    let err = svc.oneshot(()).await.unwrap_err();
    let failure = err.downcast_ref::<Failure>().unwrap();
    assert_eq!(failure.kind(), FailureKind::PoolFull);
    assert!(
        !failure.get_ref().is::<Failure>(),
        "wrapped twice: {failure:#}"
    );
}

#[test]
fn accessors_and_stage() {
    let mut svc = ErrorClassifyLayer::builder()
        .stage(Stage::Resolve)
        .name("dns")
        .build()
        .unwrap()
        .layer(7u8);
    assert_eq!(svc.stage(), Stage::Resolve);
    assert_eq!(*svc.get_ref(), 7);
    *svc.get_mut() = 8;
    assert_eq!(svc.clone().into_inner(), 8);
    assert_eq!(ErrorClassify::new(()).stage(), Stage::Request);
}

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ErrorClassifyLayer>();
    send_sync::<ErrorClassify<tower::util::BoxCloneSyncService<(), (), io::Error>>>();
    send_sync::<
        tower_fortify::classify::future::ResponseFuture<std::future::Ready<Result<(), io::Error>>>,
    >();
    send_sync::<Failure>();
}

#[cfg(all(feature = "metrics", feature = "hyper", feature = "rustls"))]
mod metrics {
    use super::*;
    use crate::{recorded, servers};
    use metrics_util::{
        debugging::{DebugValue, DebuggingRecorder, Snapshotter},
        CompositeKey, MetricKind,
    };
    use std::time::Duration;

    type Snapshot = Vec<(
        CompositeKey,
        Option<::metrics::Unit>,
        Option<::metrics::SharedString>,
        DebugValue,
    )>;

    /// Takes every value out of the recorder (a snapshot resets them).
    fn take(snapshotter: &Snapshotter) -> Snapshot {
        snapshotter.snapshot().into_vec()
    }

    fn find<'a>(
        snapshot: &'a Snapshot,
        kind: MetricKind,
        name: &str,
        want: &[(&str, &str)],
    ) -> Option<&'a DebugValue> {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let has_all = recorded::has_labels(&recorded::labels(key), want);
            if key.kind() == kind && key.key().name() == name && has_all {
                Some(value)
            } else {
                None
            }
        })
    }

    #[tokio::test]
    async fn errors_and_durations_are_recorded_by_kind() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // Handles are registered when the layer builds the service.
        let stack = ::metrics::with_local_recorder(&recorder, || servers::default_stack(&[]));

        let refused = servers::refused().await;
        let ok = servers::ok().await;
        for _ in 0..3 {
            let _ = servers::get(&stack, &format!("http://{refused}/"))
                .await
                .unwrap_err();
        }
        servers::get(&stack, &format!("http://{ok}/"))
            .await
            .expect("200");
        let snapshot = take(&snapshotter);

        // The request-level layer counted three refused connections...
        let errors = find(
            &snapshot,
            MetricKind::Counter,
            "fortify_errors_total",
            &[
                ("stage", "request"),
                ("name", "request"),
                ("kind", "connect_refused"),
                ("category", "connect"),
            ],
        );
        assert_eq!(errors, Some(&DebugValue::Counter(3)));
        // ...and the connector-level layer saw them where they happened.
        let errors = find(
            &snapshot,
            MetricKind::Counter,
            "fortify_errors_total",
            &[("stage", "connect"), ("kind", "connect_refused")],
        );
        assert_eq!(errors, Some(&DebugValue::Counter(3)));

        let failed = find(
            &snapshot,
            MetricKind::Histogram,
            "fortify_request_duration_seconds",
            &[("stage", "request"), ("outcome", "connect_refused")],
        );
        match failed {
            Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 3),
            other => panic!("no failure durations: {other:?}"),
        }
        let ok = find(
            &snapshot,
            MetricKind::Histogram,
            "fortify_request_duration_seconds",
            &[("stage", "request"), ("outcome", "ok")],
        );
        match ok {
            Some(DebugValue::Histogram(samples)) => {
                assert_eq!(samples.len(), 1);
                assert!(samples[0].into_inner() > 0.0);
            }
            other => panic!("no success duration: {other:?}"),
        }
        // The TLS-stage layer timed the connection it made (plain TCP here).
        let connect = find(
            &snapshot,
            MetricKind::Histogram,
            "fortify_request_duration_seconds",
            &[("stage", "tls_handshake"), ("outcome", "ok")],
        );
        assert!(
            matches!(connect, Some(DebugValue::Histogram(s)) if s.len() == 1),
            "{connect:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn durations_use_tokios_clock() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let svc = ::metrics::with_local_recorder(&recorder, || {
            ErrorClassifyLayer::builder()
                .name("slow")
                .build()
                .unwrap()
                .layer(tower::service_fn(|_: ()| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Err::<(), _>(tower::timeout::error::Elapsed::new())
                }))
        });
        let err = svc.oneshot(()).await.unwrap_err();
        assert_eq!(kind(&err), FailureKind::ReadTimeout);
        let snapshot = take(&snapshotter);
        let value = find(
            &snapshot,
            MetricKind::Histogram,
            "fortify_request_duration_seconds",
            &[("name", "slow"), ("outcome", "read_timeout")],
        );
        match value {
            Some(DebugValue::Histogram(samples)) => assert_eq!(samples[0].into_inner(), 2.0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_has_bounded_labels() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _svc =
            ::metrics::with_local_recorder(&recorder, || ErrorClassifyLayer::new().layer(()));
        let snapshot = snapshotter.snapshot().into_vec();
        // 14 duration series (ok + 13 kinds) and 13 error counters, registered once.
        let histograms = snapshot
            .iter()
            .filter(|(k, ..)| k.kind() == MetricKind::Histogram)
            .count();
        let counters = snapshot
            .iter()
            .filter(|(k, ..)| k.kind() == MetricKind::Counter)
            .count();
        assert_eq!((histograms, counters), (14, 13));
        for (key, ..) in &snapshot {
            assert!(key.key().name().starts_with("fortify_"));
            for label in key.key().labels() {
                assert!(["name", "stage", "outcome", "kind", "category"].contains(&label.key()));
            }
        }
    }
}

/// Error counts with a recorder that keeps counters but no histograms: a counters-only
/// backend, or a filter on the duration's name.
#[cfg(feature = "metrics")]
mod counters_only {
    use super::*;
    use ::metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use metrics_util::{
        debugging::{DebugValue, DebuggingRecorder},
        MetricKind,
    };

    /// A `DebuggingRecorder` whose histograms are no-ops.
    struct CountersOnly(DebuggingRecorder);

    impl Recorder for CountersOnly {
        fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
            self.0.describe_counter(key, unit, description);
        }
        fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
            self.0.describe_gauge(key, unit, description);
        }
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
            self.0.register_counter(key, metadata)
        }
        fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
            self.0.register_gauge(key, metadata)
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[tokio::test]
    async fn errors_are_counted_without_a_duration_histogram() {
        // No subscriber on this thread wants the failure events (another test of this binary
        // may install a global one), so only the counters can make a call reported.
        #[cfg(feature = "tracing")]
        let _no_events =
            tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());

        let recorder = CountersOnly(DebuggingRecorder::new());
        let snapshotter = recorder.0.snapshotter();
        let (mut svc, mut handle) = ::metrics::with_local_recorder(&recorder, || {
            mock::spawn_layer::<(), (), _>(
                ErrorClassifyLayer::builder()
                    .name("counters-only")
                    .build()
                    .unwrap(),
            )
        });

        // An error of the response future...
        assert!(svc.poll_ready().is_ready());
        let failed = svc.call(());
        assert_request_eq!(handle, ())
            .send_error(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            kind(&failed.await.unwrap_err()),
            FailureKind::ConnectRefused
        );
        // ...and one of poll_ready: both counted, as they were before calls were reported
        // only to a live histogram.
        handle.send_error(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(svc.poll_ready(), std::task::Poll::Ready(Err(_))));

        let snapshot = snapshotter.snapshot().into_vec();
        let errors = snapshot.iter().find_map(|(key, _, _, value)| {
            let labels: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
            (key.kind() == MetricKind::Counter
                && key.key().name() == "fortify_errors_total"
                && labels.contains(&("name", "counters-only"))
                && labels.contains(&("kind", "connect_refused")))
            .then_some(value)
        });
        assert_eq!(errors, Some(&DebugValue::Counter(2)));
        assert!(
            snapshot
                .iter()
                .all(|(key, ..)| key.kind() != MetricKind::Histogram),
            "the recorder keeps no histograms"
        );
    }
}

#[test]
fn a_service_says_its_name_and_stage() {
    let named = ErrorClassifyLayer::builder()
        .name("search")
        .build()
        .unwrap()
        .layer(());
    assert_eq!((named.name(), named.stage()), ("search", Stage::Request));
    let connector = ErrorClassifyLayer::connector().layer(());
    assert_eq!(
        (connector.name(), connector.stage()),
        ("connect", Stage::Connect)
    );
}

/// A call's future shows its stage and (with metrics, where every call records) the
/// layer's state it records to, named.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn a_calls_future_shows_its_stage_and_the_layer_it_records_to() {
    use tower::Service;
    let mut svc = ErrorClassify::new(tower::service_fn(|n: u32| {
        std::future::ready(Ok::<_, std::io::Error>(n))
    }));
    let future = svc.ready().await.unwrap().call(1);
    let text = format!("{future:?}");
    assert_shows(
        &text,
        &[
            "ResponseFuture",
            "stage: Request",
            "observer: Some(Observer { shared: SpareRef(Shared { stage: Request, name: \"request\"",
        ],
    );
    assert_eq!(future.await.unwrap(), 1);
}
