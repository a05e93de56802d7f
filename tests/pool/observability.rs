//! Metrics through the `metrics` facade, and tracing events, as the module docs promise.

use crate::support::{get, slow, Backend};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_fortify::pool::PoolLimitLayer;

#[cfg(feature = "metrics")]
mod metrics_ {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tower_fortify::{
        pool::{PoolBody, PoolHandle, PoolLimit},
        BoxError,
    };

    use crate::recorded::{self, Labels};

    /// How often a layer's task publishes its in-use and utilisation gauges (calls do not).
    const REFRESH: Duration = Duration::from_secs(1);

    /// Lets the layer's refresher publish its gauges (time is paused: at once).
    async fn refreshed() {
        tokio::time::sleep(REFRESH).await;
    }

    /// Asserts that nothing published the in-use gauge since the last snapshot, which set
    /// it back to 0 (the recorder clears what it reports).
    #[track_caller]
    fn assert_unpublished(snapshotter: &metrics_util::debugging::Snapshotter) {
        let recorded = Recorded::take(snapshotter);
        assert_eq!(
            recorded.gauge("fortify_pool_in_use"),
            0.0,
            "a call published while the refresher runs"
        );
    }

    /// The in-use gauge after the refresher's next round.
    async fn in_use_after_a_round(snapshotter: &metrics_util::debugging::Snapshotter) -> f64 {
        refreshed_between_rounds().await;
        Recorded::take(snapshotter).gauge("fortify_pool_in_use")
    }

    /// [`refreshed`], ending between two of the refresher's rounds (half a round after
    /// one), not at the instant of one: a test that looks at the gauges then sees the
    /// round's values whichever task the runtime wakes first.
    async fn refreshed_between_rounds() {
        tokio::time::sleep(REFRESH + REFRESH / 2).await;
    }

    /// One snapshot of the recorder (it resets what it reports): name, labels, value.
    struct Recorded(Vec<(String, Labels, DebugValue)>);

    impl Recorded {
        fn take(snapshotter: &metrics_util::debugging::Snapshotter) -> Self {
            Recorded(recorded::snapshot(snapshotter))
        }

        fn get(&self, name: &str) -> &DebugValue {
            let (_, labels, value) = self
                .0
                .iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("{name} not recorded"));
            assert_eq!(labels, &[("name".to_owned(), "api".to_owned())], "{name}");
            value
        }

        fn counter(&self, name: &str) -> u64 {
            match self.get(name) {
                DebugValue::Counter(v) => *v,
                other => panic!("{name}: {other:?}"),
            }
        }

        fn gauge(&self, name: &str) -> f64 {
            match self.get(name) {
                DebugValue::Gauge(v) => v.into_inner(),
                other => panic!("{name}: {other:?}"),
            }
        }

        fn histogram(&self, name: &str) -> Vec<f64> {
            match self.get(name) {
                DebugValue::Histogram(v) => v.iter().map(|x| x.into_inner()).collect(),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    fn layer(recorder: &DebuggingRecorder) -> PoolLimitLayer {
        metrics::with_local_recorder(recorder, || {
            PoolLimitLayer::builder(4)
                .block(true)
                .pool_timeout(Some(Duration::from_secs(2)))
                .leak_threshold(Some(Duration::from_secs(60)))
                .per_host(false)
                .name("api")
                .build()
                .unwrap()
        })
    }

    /// A response of the pool limit around `Backend`: its body holds the permit.
    type Held = http::Response<PoolBody<Full<Bytes>>>;

    /// A layer's pool made full by four unread bodies, with a fifth call waiting.
    struct FullPool {
        svc: PoolLimit<Backend>,
        handle: PoolHandle,
        held: Vec<Held>,
        waiter: tokio::task::JoinHandle<Result<Held, BoxError>>,
    }

    async fn full(recorder: &DebuggingRecorder) -> FullPool {
        let layer = layer(recorder);
        let handle = layer.handle();
        let svc = layer.layer(slow(Duration::ZERO));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(svc.clone().oneshot(get("a")).await.unwrap());
        }
        let waiter = tokio::spawn(svc.clone().oneshot(get("a")));
        crate::support::waiting(&handle, 1).await;
        FullPool {
            svc,
            handle,
            held,
            waiter,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gauges_while_full() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // Bound, not `..`: the held bodies must live until the end.
        let FullPool {
            held: _held,
            waiter,
            ..
        } = full(&recorder).await;
        refreshed().await;
        let recorded = Recorded::take(&snapshotter);
        assert_eq!(recorded.gauge("fortify_pool_in_use"), 4.0);
        assert_eq!(recorded.gauge("fortify_pool_max"), 4.0);
        assert_eq!(recorded.gauge("fortify_pool_utilisation_ratio"), 1.0);
        assert_eq!(recorded.gauge("fortify_pool_waiting"), 1.0);
        waiter.abort();
    }

    /// Bodies held on a layer built outside a runtime: its first call starts the refresher,
    /// which publishes the exact count; a snapshot publishes it at once.
    #[test]
    fn a_layer_built_outside_a_runtime_is_refreshed_from_its_first_call() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let layer = layer_without_leaks(&recorder);
        let handle = layer.handle();
        let svc = layer.layer(slow(Duration::ZERO));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut held = Vec::new();
            for _ in 0..3 {
                held.push(svc.clone().oneshot(get("a")).await.unwrap());
            }
            held.pop();
            refreshed().await;
            let recorded = Recorded::take(&snapshotter);
            assert_eq!(recorded.gauge("fortify_pool_in_use"), 2.0);
            assert_eq!(recorded.gauge("fortify_pool_utilisation_ratio"), 0.5);
            // Between two rounds of the refresher, a snapshot publishes.
            held.pop();
            assert_eq!(handle.snapshot().total.in_use, 1);
            let recorded = Recorded::take(&snapshotter);
            assert_eq!(recorded.gauge("fortify_pool_in_use"), 1.0);
        });
    }

    /// On a runtime without time the refresher cannot sleep: every call publishes, as
    /// before it.
    #[test]
    fn without_a_timer_every_call_publishes() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let svc = layer_without_leaks(&recorder).layer(slow(Duration::ZERO));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let first = svc.clone().oneshot(get("a")).await.unwrap();
            // The refresher's task runs (and stops) while this one yields.
            tokio::task::yield_now().await;
            let mut held = vec![first];
            for _ in 0..2 {
                held.push(svc.clone().oneshot(get("a")).await.unwrap());
            }
            let recorded = Recorded::take(&snapshotter);
            assert_eq!(recorded.gauge("fortify_pool_in_use"), 3.0);
            held.pop();
            let recorded = Recorded::take(&snapshotter);
            assert_eq!(recorded.gauge("fortify_pool_in_use"), 2.0);
        });
    }

    /// The runtime of the layer's refresher shuts down: the next runtime's calls still
    /// bring the gauges to the exact count (they publish, or start a refresher there).
    #[test]
    fn the_gauges_outlive_the_refreshers_runtime() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let paused = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let first = paused();
        let layer = first.block_on(async { layer_without_leaks(&recorder) });
        let svc = layer.layer(slow(Duration::ZERO));
        first.block_on(async {
            drop(svc.clone().oneshot(get("a")).await.unwrap());
            refreshed().await;
        });
        drop(first);
        paused().block_on(async {
            let mut held = Vec::new();
            for _ in 0..3 {
                held.push(svc.clone().oneshot(get("a")).await.unwrap());
            }
            refreshed().await;
            let recorded = Recorded::take(&snapshotter);
            assert_eq!(recorded.gauge("fortify_pool_in_use"), 3.0);
            held.clear();
            refreshed().await;
            let recorded = Recorded::take(&snapshotter);
            assert_eq!(recorded.gauge("fortify_pool_in_use"), 0.0);
        });
    }

    /// While the refresher runs, a call publishes nothing: the gauges move at its next
    /// round (the module docs' promise, which keeps the recorder off every call's path).
    #[tokio::test(start_paused = true)]
    async fn calls_publish_nothing_while_the_refresher_runs() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let layer = layer_without_leaks(&recorder);
        let svc = layer.layer(slow(Duration::ZERO));
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(svc.clone().oneshot(get("a")).await.unwrap());
        }
        assert_eq!(in_use_after_a_round(&snapshotter).await, 2.0);
        held.push(svc.clone().oneshot(get("a")).await.unwrap());
        // A call that published would have set 3.
        assert_unpublished(&snapshotter);
        assert_eq!(in_use_after_a_round(&snapshotter).await, 3.0);
    }

    /// The pool's first call comes from a thread outside any runtime while the refresher
    /// runs (on the test's runtime): it finds the refresher running all the same, and
    /// publishes nothing.
    #[tokio::test(start_paused = true)]
    async fn a_call_from_outside_any_runtime_publishes_nothing_while_the_refresher_runs() {
        use std::{
            future::Future,
            task::{Context, Poll, Waker},
        };
        use tower::Service;
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // Kept until the end: the refresher stops with its layer.
        let layer = layer_without_leaks(&recorder);
        let mut svc = layer.layer(slow(Duration::ZERO));
        refreshed_between_rounds().await;
        // Cleared: the snapshot sets the gauges it reports back to 0.
        let _ = Recorded::take(&snapshotter);
        let held = std::thread::spawn(move || {
            assert!(
                tokio::runtime::Handle::try_current().is_err(),
                "in a runtime"
            );
            let mut cx = Context::from_waker(Waker::noop());
            assert!(svc.poll_ready(&mut cx).is_ready());
            let mut call = std::pin::pin!(svc.call(get("a")));
            let Poll::Ready(Ok(response)) = call.as_mut().poll(&mut cx) else {
                panic!("the backend answers at once");
            };
            response
        })
        .join()
        .unwrap();
        assert_unpublished(&snapshotter);
        assert_eq!(in_use_after_a_round(&snapshotter).await, 1.0);
        drop((held, layer));
    }

    fn layer_without_leaks(recorder: &DebuggingRecorder) -> PoolLimitLayer {
        metrics::with_local_recorder(recorder, || {
            PoolLimitLayer::builder(4)
                .per_host(false)
                .name("api")
                .build()
                .unwrap()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn counters_the_wait_histogram_and_gauges_at_rest() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let FullPool {
            svc,
            handle,
            mut held,
            waiter,
        } = full(&recorder).await;
        // The waiter waits 1 s and gets a permit; another call waits 2 s in vain.
        tokio::time::sleep(Duration::from_secs(1)).await;
        held.pop();
        held.push(waiter.await.unwrap().unwrap());
        svc.clone().oneshot(get("a")).await.unwrap_err();
        // Leaks: the four bodies are over a minute old.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(handle.snapshot().total.leaked, 4);
        drop(held);
        refreshed().await;

        // One snapshot: the debugging recorder resets what it reports.
        let recorded = Recorded::take(&snapshotter);
        assert_eq!(recorded.gauge("fortify_pool_in_use"), 0.0);
        assert_eq!(recorded.gauge("fortify_pool_utilisation_ratio"), 0.0);
        assert_eq!(recorded.gauge("fortify_pool_waiting"), 0.0);
        assert_eq!(recorded.histogram("fortify_pool_wait_seconds"), [1.0]);
        assert_eq!(recorded.counter("fortify_pool_timeouts_total"), 1);
        assert_eq!(recorded.counter("fortify_pool_leaks_total"), 4);
        assert_eq!(recorded.counter("fortify_pool_overflow_total"), 0);
        assert_eq!(recorded.counter("fortify_pool_rejected_total"), 0);
    }

    /// A leak in a pool that is not full is found by the next call, without a snapshot. The
    /// calls check at most every tenth of the threshold (6 s here): a permit that crosses
    /// the threshold just after a check is found by the first call once 6 s have passed.
    #[tokio::test(start_paused = true)]
    async fn a_leak_is_found_on_acquire() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let layer = layer(&recorder);
        let svc = layer.layer(slow(Duration::ZERO));
        let leaked = svc.clone().oneshot(get("a")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let late = svc.clone().oneshot(get("a")).await.unwrap();
        // At 61 s the first permit is over the threshold, the second (58 s) is not.
        tokio::time::sleep(Duration::from_secs(58)).await;
        drop(svc.clone().oneshot(get("a")).await.unwrap());
        // At 64 s the second is over it too, but a call 3 s after the check does not check.
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(svc.clone().oneshot(get("a")).await.unwrap());
        let recorded = Recorded::take(&snapshotter);
        assert_eq!(recorded.counter("fortify_pool_leaks_total"), 1);
        // At 68 s, 7 s after the check, a call checks again and finds the second leak.
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(svc.clone().oneshot(get("a")).await.unwrap());
        let recorded = Recorded::take(&snapshotter);
        assert_eq!(
            recorded.counter("fortify_pool_leaks_total"),
            1,
            "since the last snapshot"
        );
        assert_eq!(layer.handle().snapshot().total.leaked, 2);
        drop((leaked, late));
    }

    #[tokio::test(start_paused = true)]
    async fn overflow_rejections_and_per_host_totals() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let overflow = metrics::with_local_recorder(&recorder, || {
            PoolLimitLayer::builder(1).name("api").build().unwrap()
        });
        let svc = overflow.layer(slow(Duration::ZERO));
        let a1 = svc.clone().oneshot(get("a")).await.unwrap();
        let a2 = svc.clone().oneshot(get("a")).await.unwrap();
        let b1 = svc.clone().oneshot(get("b")).await.unwrap();
        refreshed().await;
        let recorded = Recorded::take(&snapshotter);
        // Two hosts: three calls in flight, two permits: over 1 while overflowing.
        assert_eq!(recorded.gauge("fortify_pool_in_use"), 3.0);
        assert_eq!(recorded.gauge("fortify_pool_max"), 2.0);
        assert_eq!(recorded.gauge("fortify_pool_utilisation_ratio"), 1.5);
        assert_eq!(recorded.counter("fortify_pool_overflow_total"), 1);
        drop((a1, a2, b1));
        refreshed().await;
        let recorded = Recorded::take(&snapshotter);
        assert_eq!(recorded.gauge("fortify_pool_in_use"), 0.0);

        // Made now: its refresher would publish its own gauges under the same name.
        let reject = metrics::with_local_recorder(&recorder, || {
            PoolLimitLayer::builder(1)
                .fail_fast()
                .name("api")
                .build()
                .unwrap()
        });
        let svc = reject.layer(slow(Duration::ZERO));
        let held = svc.clone().oneshot(get("a")).await.unwrap();
        svc.clone().oneshot(get("a")).await.unwrap_err();
        let recorded = Recorded::take(&snapshotter);
        assert_eq!(recorded.counter("fortify_pool_rejected_total"), 1);
        drop(held);
    }
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn overflow_timeout_and_leak_events() {
    use crate::capture::Capture;

    // A global subscriber (see `Capture::global`); other tests record there too, so this
    // test keeps the events of its own layers, named "traced-pool".
    let capture = Capture::global("tower_fortify::pool");
    let mine = || capture.matching("name", "traced-pool");
    let field = |i: usize, name: &str| crate::capture::field(mine().get(i)?, name);
    let message = |i: usize| field(i, "message").unwrap_or_default();

    // block=False: the extra call is "discarded" when it ends, in urllib3's words.
    let svc = PoolLimitLayer::builder(1)
        .name("traced-pool")
        .build()
        .unwrap()
        .layer(slow(Duration::ZERO));
    let a = svc.clone().oneshot(get("a")).await.unwrap();
    let b = svc.clone().oneshot(get("a")).await.unwrap();
    assert_eq!(mine().len(), 0);
    drop(b);
    assert_eq!(mine().len(), 1);
    assert_eq!(message(0), "Connection pool is full, discarding connection");
    assert_eq!(field(0, "name").as_deref(), Some("traced-pool"));
    assert_eq!(field(0, "pool").as_deref(), Some("http://a:80"));
    assert_eq!(field(0, "maxsize").as_deref(), Some("1"));
    drop(a);

    // A pool timeout and a leak.
    let layer = PoolLimitLayer::builder(1)
        .name("traced-pool")
        .block(true)
        .pool_timeout(Some(Duration::from_secs(1)))
        .leak_threshold(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let svc = layer.layer(slow(Duration::ZERO));
    let leaked = svc.clone().oneshot(get("a")).await.unwrap();
    svc.clone().oneshot(get("a")).await.unwrap_err();
    assert!(message(1).starts_with("pool timeout"), "{}", message(1));
    assert_eq!(field(1, "waited_ms").as_deref(), Some("1000.0"));
    tokio::time::sleep(Duration::from_secs(10)).await; // the permit is 11 s old
    layer.handle().snapshot();
    assert!(message(2).contains("leak_threshold"), "{}", message(2));
    assert_eq!(field(2, "held_ms").as_deref(), Some("11000.0"));
    layer.handle().snapshot();
    assert_eq!(mine().len(), 3, "a leak is reported once");
    drop(leaked);
    assert!(
        message(3).contains("leaked was given back"),
        "{}",
        message(3)
    );
}
