//! Tests that kill mutants of `src/pool/permit.rs` and `src/pool/semaphore.rs` (MUTANTS.md,
//! "Pool: semaphore.rs and permit.rs"): the largest `maxsize`, a `pool_timeout` of years,
//! the `Debug` output of a layer and of a body's permit, how often the leak check runs,
//! what a waiting call does with its waker, and an adaptive pool's permits; and of the
//! layer's own code (`service.rs`, `future.rs`, `body.rs`, `keyed.rs`, `reserve.rs`: MUTANTS.md,
//! "The layers' own code"): what its services and calls show, a body's end.

use crate::support::{get, kind, slow, Backend};
use fortify_test_support::text::assert_shows;
use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::atomic::{AtomicUsize, Ordering},
    task::Context,
    time::Duration,
};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    pool::{GenericPoolLimit, PoolHandle, PoolLimit, PoolLimitLayer},
};

/// `maxsize` is at most `usize::MAX >> 2` (the semaphore's limit):
/// one more is refused at build time, the largest works.
#[tokio::test]
async fn the_largest_maxsize_builds_and_one_more_is_refused() {
    let err = PoolLimitLayer::builder((usize::MAX >> 2) + 1)
        .build()
        .expect_err("too many permits");
    assert!(err.to_string().contains("maxsize"), "{err}");
    let layer = PoolLimitLayer::builder(usize::MAX >> 2)
        .per_host(false)
        .block(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let response = layer
        .layer(slow(Duration::ZERO))
        .oneshot(get("a"))
        .await
        .unwrap();
    assert_eq!(handle.snapshot().total.in_use, 1);
    assert_eq!(handle.snapshot().total.max, usize::MAX >> 2);
    drop(response);
    assert_eq!(handle.snapshot().total.in_use, 0);
}

/// A `pool_timeout` of years is kept, up to the far-future bound of decades past which it
/// means "no timeout": after two years (tokio's timer reaches about as far), the call
/// times out, not before.
#[tokio::test(start_paused = true)]
async fn a_pool_timeout_of_two_years_times_out_after_two_years() {
    const DAY: Duration = Duration::from_secs(86_400);
    for per_host in [false, true] {
        let layer = PoolLimitLayer::builder(1)
            .block(true)
            .pool_timeout(Some(DAY * 730))
            .per_host(per_host)
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(slow(Duration::ZERO));
        let held = svc.clone().oneshot(get("a")).await.unwrap();
        let mut second = Box::pin(svc.oneshot(get("a")));
        let early = tokio::time::timeout(DAY * 729, &mut second).await;
        assert!(
            early.is_err(),
            "per_host {per_host}: ended before two years"
        );
        let err = tokio::time::timeout(DAY * 2, &mut second)
            .await
            .expect("timed out after two years")
            .expect_err("the permit is still held");
        assert_eq!(kind(&err), FailureKind::PoolTimeout, "per_host {per_host}");
        assert_eq!(handle.snapshot().total.timed_out, 1);
        drop(held);
    }
}

/// A layer's `Debug` shows its settings and its pool's figures.
#[tokio::test]
async fn a_layers_debug_shows_its_settings_and_its_pool() {
    let layer = PoolLimitLayer::builder(3)
        .block(true)
        .per_host(false)
        .name("api")
        .build()
        .unwrap();
    let held = layer
        .layer(slow(Duration::ZERO))
        .oneshot(get("a"))
        .await
        .unwrap();
    let debug = format!("{layer:?}");
    assert_shows(
        &debug,
        &[
            "name: \"api\"",
            "maxsize: 3",
            "mode: Block(None)",
            "in_use: 1",
            "max: 3",
            "waiting: 0",
        ],
    );
    // The handle reads the pools only when asked: its `Debug` names it and nothing more.
    assert_eq!(format!("{:?}", layer.handle()), "PoolHandle { .. }");
    drop(held);
}

/// A body's `Debug` says whether its call overflowed the pool.
#[tokio::test]
async fn a_bodys_debug_says_whether_its_call_overflowed() {
    let layer = PoolLimitLayer::builder(1).per_host(false).build().unwrap();
    let svc = layer.layer(slow(Duration::ZERO));
    let first = svc.clone().oneshot(get("a")).await.unwrap();
    let second = svc.oneshot(get("a")).await.unwrap();
    assert_eq!(layer.handle().snapshot().total.overflowing, 1);
    let first = format!("{:?}", first.body());
    let second = format!("{:?}", second.body());
    assert!(
        first.contains("Permit {") && first.contains("overflow: false"),
        "{first}"
    );
    assert!(
        second.contains("Permit {") && second.contains("overflow: true"),
        "{second}"
    );
    let none = format!(
        "{:?}",
        tower_fortify::pool::PoolBody::new(http_body_util::Empty::<bytes::Bytes>::new())
    );
    assert!(none.contains("Permit(None)"), "{none}");
}

#[cfg(feature = "metrics")]
mod leak_checks {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    const THRESHOLD: Duration = Duration::from_millis(100);

    /// Leaks counted since the last reading (a snapshot resets the counters). Read from
    /// the metrics, not a `PoolHandle` snapshot, which runs a check of its own.
    fn leaks(snapshotter: &Snapshotter) -> u64 {
        crate::recorded::snapshot(snapshotter)
            .into_iter()
            .find(|(name, _, _)| name == "fortify_pool_leaks_total")
            .map_or(0, |(_, _, value)| match value {
                DebugValue::Counter(n) => n,
                other => panic!("{other:?}"),
            })
    }

    fn layer(recorder: &DebuggingRecorder, maxsize: usize) -> PoolLimitLayer {
        metrics::with_local_recorder(recorder, || {
            PoolLimitLayer::builder(maxsize)
                .fail_fast()
                .leak_threshold(Some(THRESHOLD))
                .per_host(false)
                .build()
                .unwrap()
        })
    }

    async fn advance_ms(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    async fn call(svc: &PoolLimit<Backend>) -> Result<impl Sized, tower_fortify::BoxError> {
        svc.clone().ready().await?.call(get("a")).await
    }

    /// A call that gets a permit runs the leak check, at most every `leak_threshold / 10`
    /// (10 ms here): a permit that crosses the threshold between two checks is reported by
    /// the first call after the interval, not before.
    #[tokio::test(start_paused = true)]
    async fn a_granted_call_checks_for_leaks_every_tenth_of_the_threshold() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let svc = layer(&recorder, 8).layer(slow(Duration::ZERO));
        let mut held = vec![call(&svc).await.unwrap()]; // t = 0: checked, next at 10 ms
        advance_ms(3).await;
        held.push(call(&svc).await.unwrap()); // t = 3: not due
        advance_ms(98).await;
        held.push(call(&svc).await.unwrap()); // t = 101: due; the first is 101 ms old
        assert_eq!(leaks(&snapshotter), 1, "the check at 101 ms");
        advance_ms(4).await;
        held.push(call(&svc).await.unwrap()); // t = 105: the second is 102 ms old, not due
        assert_eq!(leaks(&snapshotter), 0, "no check 4 ms after the last one");
        advance_ms(10).await;
        held.push(call(&svc).await.unwrap()); // t = 115: due again
        assert_eq!(leaks(&snapshotter), 1, "the check at 115 ms");
        drop(held);
    }

    /// A call that finds the pool full runs the leak check too, at the same interval.
    #[tokio::test(start_paused = true)]
    async fn a_call_that_finds_the_pool_full_checks_every_tenth_of_the_threshold() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let svc = layer(&recorder, 2).layer(slow(Duration::ZERO));
        let first = call(&svc).await.unwrap(); // t = 0: checked, next at 10 ms
        advance_ms(3).await;
        let second = call(&svc).await.unwrap(); // t = 3: not due; the pool is full
        advance_ms(98).await;
        assert!(call(&svc).await.is_err()); // t = 101: due; the first is 101 ms old
        assert_eq!(leaks(&snapshotter), 1, "the check at 101 ms");
        advance_ms(4).await;
        assert!(call(&svc).await.is_err()); // t = 105: the second is 102 ms old, not due
        assert_eq!(leaks(&snapshotter), 0, "no check 4 ms after the last one");
        advance_ms(10).await;
        assert!(call(&svc).await.is_err()); // t = 115: due again
        assert_eq!(leaks(&snapshotter), 1, "the check at 115 ms");
        drop((first, second));
    }
}

/// Wakers built by hand, to see what the pool does with the waker of a waiting call: one
/// that counts its clones, one whose clone panics. Neither wakes anything: the tests poll by
/// hand.
mod wakers {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        task::{RawWaker, RawWakerVTable, Waker},
    };

    static COUNTING: RawWakerVTable = RawWakerVTable::new(counting_clone, noop, noop, noop);
    static PANICKING: RawWakerVTable = RawWakerVTable::new(panicking_clone, noop, noop, noop);

    unsafe fn counting_clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` is the `&'static AtomicUsize` given to `counting`.
        let clones = unsafe { &*data.cast::<AtomicUsize>() };
        clones.fetch_add(1, Ordering::SeqCst);
        RawWaker::new(data, &COUNTING)
    }

    unsafe fn panicking_clone(_: *const ()) -> RawWaker {
        panic!("a waker whose clone panics");
    }

    unsafe fn noop(_: *const ()) {}

    /// A waker that counts its clones in `clones`.
    pub fn counting(clones: &'static AtomicUsize) -> Waker {
        let raw = RawWaker::new(std::ptr::from_ref(clones).cast(), &COUNTING);
        // SAFETY: the vtable's functions only read the `'static` counter behind the pointer.
        unsafe { Waker::from_raw(raw) }
    }

    /// A waker whose clone panics.
    pub fn panicking() -> Waker {
        // SAFETY: the vtable's functions never read the pointer.
        unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &PANICKING)) }
    }
}

/// A blocking pool of one permit, its handle, and a response whose body holds the permit.
async fn one_held_permit() -> (PoolLimit<Backend>, PoolHandle, impl Sized) {
    let layer = PoolLimitLayer::builder(1)
        .block(true)
        .per_host(false)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));
    let held = svc.clone().oneshot(get("a")).await.unwrap();
    (svc, handle, held)
}

/// A waiting call keeps the waker it was queued with while its task polls it again (the
/// semaphore compares with `will_wake` instead of cloning on every poll).
#[tokio::test]
async fn a_waiting_call_polled_again_by_its_task_does_not_clone_the_waker_again() {
    static CLONES: AtomicUsize = AtomicUsize::new(0);
    let (mut svc, handle, held) = one_held_permit().await;
    let waker = wakers::counting(&CLONES);
    let mut cx = Context::from_waker(&waker);
    for _ in 0..3 {
        assert!(svc.poll_ready(&mut cx).is_pending());
    }
    assert_eq!(handle.snapshot().total.waiting, 1);
    assert_eq!(CLONES.load(Ordering::SeqCst), 1, "cloned when queued only");
    drop(held);
    assert!(
        svc.poll_ready(&mut cx).is_ready(),
        "the permit was handed over"
    );
}

/// A waker's clone runs under the semaphore's lock, after the flag that says callers wait
/// was set: if it panics, the call is not queued, and the flag stands over an empty queue.
/// The permit given back next finds nobody to hand it to: it is free again, for anyone.
#[tokio::test]
async fn a_waker_whose_clone_panics_loses_no_permit() {
    let (svc, handle, held) = one_held_permit().await;
    let mut waiting = svc.clone();
    let waker = wakers::panicking();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        waiting
            .poll_ready(&mut Context::from_waker(&waker))
            .is_ready()
    }));
    assert!(polled.is_err(), "the clone panicked");
    drop(waiting);
    assert_eq!(handle.snapshot().total.waiting, 0);
    drop(held);
    let total = handle.snapshot().total;
    assert_eq!(total.in_use, 0, "the permit is back: {total:?}");
    let mut next = svc.clone();
    assert!(crate::support::poll_ready_now(&mut next).is_ready());
    assert_eq!(handle.snapshot().total.in_use, 1);
}

mod adaptive_permits {
    use super::*;
    use fortify_test_support::scripted::Answer;
    use tower_fortify::pool::AdaptiveLimit;

    /// The outcome of an adaptive pool's call is recorded at its response head; its
    /// permit keeps its leak-tracking slot until the body goes, so the permit ages stay
    /// right: the oldest in use is the oldest call, and none is left once all are back.
    #[tokio::test(start_paused = true)]
    async fn a_recorded_permit_keeps_its_leak_slot() {
        let layer = PoolLimitLayer::builder(4)
            .block(true)
            .per_host(false)
            .leak_threshold(Some(Duration::from_secs(60)))
            .adaptive(AdaptiveLimit::gradient())
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(slow(Duration::ZERO));
        let first = svc.clone().oneshot(get("a")).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = svc.clone().oneshot(get("a")).await.unwrap();
        drop(second);
        tokio::time::advance(Duration::from_secs(1)).await;
        let total = handle.snapshot().total;
        assert_eq!(total.in_use, 1);
        assert_eq!(
            total.oldest_in_use,
            Some(Duration::from_secs(2)),
            "the first call's"
        );
        drop(first);
        assert_eq!(handle.snapshot().total.oldest_in_use, None);
    }

    /// Permits an adaptive limit holds back (parked) are not in use: with the limit at its
    /// floor, an idle pool has none in use, and a held call counts one.
    #[tokio::test(start_paused = true)]
    async fn parked_permits_are_not_in_use() {
        let layer = PoolLimitLayer::builder(20)
            .block(true)
            .per_host(false)
            .adaptive(AdaptiveLimit::gradient().min_limit(3))
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(Backend::new(Answer::Slow(Duration::from_millis(10), 503)));
        for _ in 0..1_000 {
            drop(svc.clone().oneshot(get("a")).await.unwrap());
            if handle.snapshot().total.limit == 3 {
                break;
            }
        }
        let total = handle.snapshot().total;
        assert_eq!(total.limit, 3, "503s bring the limit to its floor");
        assert_eq!(total.in_use, 0, "{total:?}");
        let held = svc.clone().oneshot(get("a")).await.unwrap();
        assert_eq!(handle.snapshot().total.in_use, 1);
        drop(held);
    }
}

mod adaptive_timeouts {
    use super::*;
    use fortify_test_support::scripted::Answer;
    use tower_fortify::pool::AdaptiveLimit;

    /// A pool timeout that closes the adaptive limit's window counts the calls busy as
    /// those holding a permit plus those waiting: here one holds the only permit and three
    /// wait when they time out together (the first one closes the window: eight calls
    /// counted, and more than the 100 ms window gone), and each fails with `PoolTimeout`.
    /// The eight are `503`s: every failure is counted, where a success counts only when
    /// its call is one of those timed (one in eight, drawn at random per thread).
    #[tokio::test(start_paused = true)]
    async fn waiting_calls_that_time_out_together_close_the_window() {
        let layer = PoolLimitLayer::builder(1)
            .block(true)
            .per_host(false)
            .pool_timeout(Some(Duration::from_millis(50)))
            .adaptive(AdaptiveLimit::gradient())
            .build()
            .unwrap();
        let handle = layer.handle();
        let unavailable = layer.layer(Backend::new(Answer::Status(503, None)));
        for _ in 0..8 {
            drop(unavailable.clone().oneshot(get("a")).await.unwrap());
        }
        let svc = layer.layer(slow(Duration::ZERO));
        tokio::time::advance(Duration::from_millis(200)).await;
        let held = svc.clone().oneshot(get("a")).await.unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| tokio::spawn(svc.clone().oneshot(get("a"))))
            .collect();
        crate::support::waiting(&handle, 3).await;
        for waiter in waiters {
            let err = waiter
                .await
                .expect("the waiting call did not panic")
                .expect_err("the permit is held");
            assert_eq!(kind(&err), FailureKind::PoolTimeout);
        }
        assert_eq!(handle.snapshot().total.timed_out, 3);
        drop(held);
    }
}

/// The services', futures' and waits' `Debug` (MUTANTS.md, "the layers' own code"): a
/// per-host service shows its map of pools and its reservation, a call its state (called,
/// then waiting for a full pool), the one-pool service and its call their permit.
#[tokio::test(start_paused = true)]
async fn services_and_calls_say_what_they_hold() {
    let layer = PoolLimitLayer::builder(1).block(true).build().unwrap();
    let svc = layer.layer(slow(Duration::ZERO));
    let text = format!("{svc:?}");
    assert_shows(&text, &["PoolLimit", "Keyed", "Reserver", "idle"]);
    let mut first = svc.clone();
    let call = first.ready().await.unwrap().call(get("a"));
    assert_eq!(
        format!("{call:?}"),
        "ResponseFuture { state: \"called\", .. }"
    );
    let held = call.await.unwrap();
    let mut second = svc.clone();
    let call = second.ready().await.unwrap().call(get("a"));
    assert_eq!(
        format!("{call:?}"),
        "ResponseFuture { state: \"waiting\", .. }"
    );
    drop(held);
    drop(call.await.unwrap());

    let generic = GenericPoolLimit::new(
        tower::service_fn(|()| async { Ok::<_, std::io::Error>(()) }),
        1,
    )
    .unwrap();
    let text = format!("{generic:?}");
    assert_shows(&text, &["GenericPoolLimit", "pool", "Reserver"]);
    let mut generic = generic;
    let call = generic.ready().await.unwrap().call(());
    let text = format!("{call:?}");
    assert!(
        text.starts_with("GenericResponseFuture { permit: Permit {"),
        "{text}"
    );
    call.await.unwrap();
}

/// A body with data left is not at its end; an empty one is, whatever its permit.
#[test]
fn a_pool_bodys_end_is_its_inner_bodys() {
    use bytes::Bytes;
    use http_body::Body;
    use http_body_util::Full;
    use tower_fortify::pool::PoolBody;
    assert!(!PoolBody::new(Full::new(Bytes::from_static(b"hi"))).is_end_stream());
    assert!(PoolBody::new(Full::new(Bytes::new())).is_end_stream());
}

/// A generic layer says its permits and its name; a builder shows its settings.
#[test]
fn a_generic_layer_and_a_builder_say_their_settings() {
    let builder = PoolLimitLayer::builder(7).name("db").max_pools(3);
    let text = format!("{builder:?}");
    assert_shows(
        &text,
        &[
            "PoolLimitBuilder",
            "maxsize: 7",
            "max_pools: Some(3)",
            "name: \"db\"",
        ],
    );
    let layer = PoolLimitLayer::builder(7)
        .name("db")
        .build_generic()
        .unwrap();
    assert_eq!((layer.maxsize(), layer.name()), (7, "db"));
    let text = format!("{layer:?}");
    assert_shows(
        &text,
        &["GenericPoolLimitLayer", "maxsize: 7", "name: \"db\""],
    );
    let per_host = PoolLimitLayer::builder(7).name("api").build().unwrap();
    assert_eq!((per_host.maxsize(), per_host.name()), (7, "api"));
}

/// Leak detection tracks pools of at most 65,536 permits: that many build, one more is
/// refused with the field named.
#[test]
fn leak_detection_takes_pools_of_65536_permits_and_no_more() {
    let build = |maxsize| {
        PoolLimitLayer::builder(maxsize)
            .leak_threshold(Some(Duration::from_secs(60)))
            .build()
    };
    assert!(build(1 << 16).is_ok());
    let err = build((1 << 16) + 1).expect_err("too many permits to track");
    assert!(err.to_string().contains("leak_threshold"), "{err}");
}

/// A `pool_timeout` of 30 years or more means "no timeout": the layer waits as long as it
/// takes (its mode shows no timeout); just under it, the timeout is kept.
#[test]
fn a_pool_timeout_of_thirty_years_means_none() {
    const THIRTY_YEARS: Duration = Duration::from_secs(86_400 * 365 * 30);
    let mode = |timeout| {
        let layer = PoolLimitLayer::builder(1)
            .block(true)
            .pool_timeout(Some(timeout))
            .build()
            .unwrap();
        let text = format!("{layer:?}");
        let start = text.find("mode: ").expect("a mode");
        text[start..].split(',').next().unwrap().to_owned()
    };
    assert_eq!(mode(THIRTY_YEARS), "mode: Block(None)");
    assert_eq!(
        mode(THIRTY_YEARS - Duration::from_secs(1)),
        format!(
            "mode: Block(Some({:?}))",
            THIRTY_YEARS - Duration::from_secs(1)
        )
    );
}

/// A call the full pool rejects (fail-fast) is ready at once: it never reaches the inner
/// service, so it does not wait for that service's readiness.
#[tokio::test(start_paused = true)]
async fn a_call_the_pool_rejects_does_not_wait_for_the_inner_service() {
    let (mock, mut inner) = tower_test::mock::pair::<u32, u32>();
    let layer = PoolLimitLayer::builder(1)
        .fail_fast()
        .build_generic()
        .unwrap();
    let mut svc = layer.layer(mock);
    inner.allow(1);
    let first = svc.ready().await.unwrap().call(1);
    // The inner service is not ready again; the pool's one permit is the first call's.
    let mut second = svc.clone();
    let ready = tokio::time::timeout(Duration::from_secs(1), second.ready())
        .await
        .expect("ready at once, not after the inner service");
    let err = ready.unwrap().call(2).await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::PoolFull);
    let (request, respond) = inner.next_request().await.unwrap();
    respond.send_response(request * 10);
    assert_eq!(first.await.unwrap(), 10);
}

/// The pool's errors name its `maxsize` and say what happened, in one line each.
#[tokio::test(start_paused = true)]
async fn the_pools_errors_name_its_size() {
    use tower_fortify::pool::error::{EmptyPool, PoolFull};
    let builder = PoolLimitLayer::builder(2)
        .block(true)
        .pool_timeout(Some(Duration::from_millis(1500)));
    let err = third_call_fails(builder).await;
    let empty = err.downcast_ref::<EmptyPool>().expect("EmptyPool");
    assert_eq!(empty.maxsize(), 2);
    assert_eq!(
        empty.to_string(),
        "pool of 2 exhausted: no permit within 1.5s"
    );

    let err = third_call_fails(PoolLimitLayer::builder(2).fail_fast()).await;
    let full = err.downcast_ref::<PoolFull>().expect("PoolFull");
    assert_eq!(full.maxsize(), 2);
    assert_eq!(full.to_string(), "pool of 2 full");
}

/// The source of the failure of a third call to a generic pool of 2 built by `builder`,
/// while two calls that never answer hold its permits.
async fn third_call_fails(
    builder: tower_fortify::pool::PoolLimitBuilder,
) -> tower_fortify::BoxError {
    let pending = tower::service_fn(|()| std::future::pending::<Result<(), std::io::Error>>());
    let mut svc = builder.build_generic().unwrap().layer(pending);
    let _busy = [
        svc.ready().await.unwrap().call(()),
        svc.ready().await.unwrap().call(()),
    ];
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    err.downcast::<tower_fortify::classify::Failure>()
        .expect("classified")
        .into_inner()
}
