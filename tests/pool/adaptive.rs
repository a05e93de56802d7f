//! The adaptive limit: it falls when the backend's latency rises with its concurrency or
//! its calls fail, recovers when the backend heals, and stays between its floor and
//! `maxsize` all along; on paused time, and on real sockets.

use crate::support::{get, kind};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use std::{
    convert::Infallible,
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{task::JoinSet, time::Instant};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    pool::{AdaptiveLimit, PoolBody, PoolHandle, PoolLimitLayer},
    BoxError,
};

// ===== a backend whose latency rises with its concurrency =====

/// A backend with `capacity` workers: a call takes `base` while at most `capacity` calls
/// are in flight, and `base * in_flight / capacity` beyond (its throughput is capped, so
/// the extra calls queue). It counts its calls in flight and their peak.
#[derive(Clone)]
struct Congested(Arc<State>);

struct State {
    base: Duration,
    capacity: AtomicUsize,
    status: AtomicU16,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl Congested {
    fn new(capacity: usize, base: Duration) -> Self {
        Congested(Arc::new(State {
            base,
            capacity: AtomicUsize::new(capacity),
            status: AtomicU16::new(200),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }

    /// The backend heals: as many workers as anyone needs.
    fn heal(&self) {
        self.0.capacity.store(usize::MAX / 2, Ordering::SeqCst);
    }

    /// The highest concurrency seen since the last call.
    fn take_peak(&self) -> usize {
        self.0.peak.swap(0, Ordering::SeqCst)
    }

    fn answer(&self) -> impl Future<Output = Response<Full<Bytes>>> + Send + 'static {
        let state = Arc::clone(&self.0);
        async move {
            let in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.peak.fetch_max(in_flight, Ordering::SeqCst);
            let capacity = state.capacity.load(Ordering::SeqCst);
            let delay = if in_flight <= capacity {
                state.base
            } else {
                state.base * in_flight as u32 / capacity as u32
            };
            tokio::time::sleep(delay).await;
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            let status = StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap();
            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
            *response.status_mut() = status;
            response
        }
    }

    /// As an in-process tower service.
    fn service(
        &self,
    ) -> impl Service<
        Request<()>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone
           + Send
           + 'static {
        let backend = self.clone();
        tower::service_fn(move |_req: Request<()>| {
            let answer = backend.answer();
            async move { Ok::<_, Infallible>(answer.await) }
        })
    }
}

// ===== clients and observation =====

/// `n` callers that each call `svc` in a loop (reading every body to its end) until
/// dropped. Errors (pool timeouts, 5xx) are part of the load: they are counted, not fatal.
struct Callers {
    tasks: JoinSet<()>,
    stop: Arc<AtomicBool>,
}

impl Callers {
    fn start<S, F>(n: usize, svc: S, request: F) -> Self
    where
        S: Service<F::Request, Response = Response<PoolBody<F::Body>>, Error = BoxError>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        F: MakeRequest,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            let (svc, stop, request) = (svc.clone(), Arc::clone(&stop), request.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match svc.clone().oneshot(request.make()).await {
                        Ok(response) => {
                            let _ = response.into_body().collect().await;
                        }
                        // A failed call comes back at once: let the others run.
                        Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            });
        }
        Callers { tasks, stop }
    }

    async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Makes the callers' requests.
trait MakeRequest: Clone + Send + 'static {
    type Request: Send;
    type Body: http_body::Body<Data = Bytes, Error: Send> + Send + 'static;
    fn make(&self) -> Self::Request;
}

/// `GET http://backend/` for the in-process backend.
#[derive(Clone)]
struct InProcess;

impl MakeRequest for InProcess {
    type Request = Request<()>;
    type Body = Full<Bytes>;
    fn make(&self) -> Request<()> {
        get("backend")
    }
}

/// `GET http://{host}/` for the in-process backend.
#[derive(Clone)]
struct To(&'static str);

impl MakeRequest for To {
    type Request = Request<()>;
    type Body = Full<Bytes>;
    fn make(&self) -> Request<()> {
        get(self.0)
    }
}

/// The limit of the layer's only host pool (`maxsize` until its first call).
fn limit(handle: &PoolHandle) -> Option<usize> {
    handle.snapshot().pools.first().map(|pool| pool.limit)
}

/// Watches the limit every 10 ms for `duration`, asserting it stays within `floor..=max`;
/// returns the last value.
async fn watch(handle: &PoolHandle, duration: Duration, floor: usize, max: usize) -> usize {
    let end = Instant::now() + duration;
    let mut last = max;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Some(limit) = limit(handle) {
            assert!(
                (floor..=max).contains(&limit),
                "limit {limit} out of {floor}..={max}"
            );
            last = limit;
        }
    }
    last
}

/// Watches the limit (as `watch`) until `done` holds for it, at most `timeout`; returns it.
async fn until(
    handle: &PoolHandle,
    timeout: Duration,
    floor: usize,
    max: usize,
    done: impl Fn(usize) -> bool,
) -> usize {
    let end = Instant::now() + timeout;
    loop {
        let limit = watch(handle, Duration::from_millis(50), floor, max).await;
        if done(limit) {
            return limit;
        }
        assert!(
            Instant::now() < end,
            "limit still {limit} after {timeout:?}: {:?}",
            handle.snapshot().total
        );
    }
}

// ===== paused time =====

#[tokio::test(start_paused = true)]
async fn the_limit_falls_when_latency_rises_with_concurrency_and_recovers_when_it_heals() {
    let backend = Congested::new(8, Duration::from_millis(10));
    let layer = PoolLimitLayer::builder(40)
        .block(true)
        .adaptive(AdaptiveLimit::gradient().min_limit(2))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend.service());

    // Light load: the latency is the backend's base; the limit stays at maxsize.
    let light = Callers::start(4, svc.clone(), InProcess);
    assert_eq!(watch(&handle, Duration::from_secs(2), 2, 40).await, 40);
    assert_eq!(backend.take_peak(), 4);

    // Forty callers: a fixed pool of 40 would keep 40 calls at the backend, each five
    // times slower. The limit falls to about where the latency is 1.5 times the base
    // (12 calls for 8 workers).
    let heavy = Callers::start(36, svc.clone(), InProcess);
    let fallen = watch(&handle, Duration::from_secs(3), 2, 40).await;
    assert!(fallen <= 16, "limit {fallen}");
    backend.take_peak();
    let settled = watch(&handle, Duration::from_secs(2), 2, 40).await;
    assert!((8..=16).contains(&settled), "limit {settled}");
    let peak = backend.take_peak();
    assert!(peak <= 18, "the backend saw {peak} calls at once");
    assert!(
        handle.snapshot().total.waiting > 0,
        "the callers over the limit wait"
    );

    // Healed: the latency is back to its base and the limit climbs back, one per window.
    backend.heal();
    let recovered = watch(&handle, Duration::from_secs(5), 2, 40).await;
    assert_eq!(recovered, 40);
    assert_eq!(backend.take_peak(), 40);
    heavy.stop().await;
    light.stop().await;
}

#[tokio::test(start_paused = true)]
async fn five_hundreds_bring_the_limit_down_to_its_floor_and_no_further() {
    let backend = Congested::new(usize::MAX / 2, Duration::from_millis(10));
    backend.0.status.store(503, Ordering::SeqCst);
    let layer = PoolLimitLayer::builder(20)
        .block(true)
        .adaptive(AdaptiveLimit::gradient().min_limit(3))
        .build()
        .unwrap();
    let handle = layer.handle();
    let callers = Callers::start(20, layer.layer(backend.service()), InProcess);
    // 20 * 0.9^n reaches 3 after 19 windows of 100 ms.
    let floor = watch(&handle, Duration::from_secs(3), 3, 20).await;
    assert_eq!(floor, 3);
    backend.take_peak();
    assert_eq!(watch(&handle, Duration::from_secs(1), 3, 20).await, 3);
    assert_eq!(
        backend.take_peak(),
        3,
        "three calls at the backend, no more"
    );
    // Answers again: the limit grows back.
    backend.0.status.store(200, Ordering::SeqCst);
    until(&handle, Duration::from_secs(5), 3, 20, |limit| limit == 20).await;
    callers.stop().await;
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_pool_timeouts_lower_the_limit() {
    // A backend that takes 1 s, behind a 50 ms timeout: every call times out.
    let backend = Congested::new(usize::MAX / 2, Duration::from_secs(1));
    let layer = PoolLimitLayer::builder(10)
        .block(true)
        .adaptive(AdaptiveLimit::gradient())
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_millis(50))
        .service(backend.service());
    let err = svc.clone().oneshot(get("backend")).await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::ReadTimeout);
    let callers = Callers::start(10, svc, InProcess);
    until(&handle, Duration::from_secs(3), 1, 10, |limit| limit <= 5).await;
    callers.stop().await;

    // A backend that answers in 1 s, and callers that wait at most 20 ms for a permit: the
    // pool timeouts lower the limit too.
    let layer = PoolLimitLayer::builder(10)
        .block(true)
        .pool_timeout(Some(Duration::from_millis(20)))
        .adaptive(AdaptiveLimit::gradient())
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend.service());
    let callers = Callers::start(30, svc, InProcess);
    until(&handle, Duration::from_secs(10), 1, 10, |limit| limit <= 5).await;
    assert!(handle.snapshot().total.timed_out > 0);
    callers.stop().await;
}

#[tokio::test(start_paused = true)]
async fn each_host_has_its_own_limit() {
    let sick = Congested::new(usize::MAX / 2, Duration::from_millis(10));
    sick.0.status.store(502, Ordering::SeqCst);
    let healthy = Congested::new(usize::MAX / 2, Duration::from_millis(10));
    let layer = PoolLimitLayer::builder(8)
        .fail_fast()
        .adaptive(AdaptiveLimit::gradient().min_limit(2))
        .build()
        .unwrap();
    let handle = layer.handle();
    // Requests to "sick" go to the failing backend, the others to the healthy one.
    let (sick_svc, healthy_svc) = (sick.service(), healthy.service());
    let svc = layer.layer(tower::service_fn(move |req: Request<()>| {
        let to_sick = req.uri().host() == Some("sick");
        let (mut sick, mut healthy) = (sick_svc.clone(), healthy_svc.clone());
        async move {
            if to_sick {
                sick.call(req).await
            } else {
                healthy.call(req).await
            }
        }
    }));
    let a = Callers::start(8, svc.clone(), To("sick"));
    let b = Callers::start(8, svc.clone(), To("healthy"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let snapshot = handle.snapshot();
    let limit_of = |host: &str| {
        let key = format!("http://{host}:80");
        snapshot
            .pools
            .iter()
            .find(|pool| pool.key.as_deref() == Some(&key))
            .unwrap_or_else(|| panic!("no pool {key} in {:?}", snapshot.pools))
            .limit
    };
    assert_eq!(limit_of("sick"), 2);
    assert_eq!(limit_of("healthy"), 8);
    assert_eq!(snapshot.total.limit, 10);
    assert_eq!(snapshot.total.max, 16);
    assert!(
        snapshot.total.rejected > 0,
        "fail fast over the lowered limit"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_generic_pool_adapts_to_connection_failures() {
    let layer = PoolLimitLayer::builder(10)
        .fail_fast()
        .adaptive(AdaptiveLimit::gradient().min_limit(2))
        .build_generic()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|refuse: bool| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if refuse {
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
        } else {
            Ok(())
        }
    }));
    let mut calls = JoinSet::new();
    for i in 0..400u64 {
        let svc = svc.clone();
        calls.spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            svc.oneshot(true).await
        });
    }
    while let Some(result) = calls.join_next().await {
        let err = result.unwrap().unwrap_err();
        assert!(matches!(
            kind(&err),
            FailureKind::ConnectRefused | FailureKind::ConnectionClosed | FailureKind::PoolFull
        ));
    }
    assert_eq!(handle.snapshot().total.limit, 2);
    // A fixed pool's limit is its maxsize.
    let fixed = PoolLimitLayer::builder(10).build_generic().unwrap();
    assert_eq!(fixed.handle().snapshot().total.limit, 10);
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn the_limit_gauge_is_the_sum_of_the_pools_limits() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        PoolLimitLayer::builder(10)
            .block(true)
            .adaptive(AdaptiveLimit::gradient().min_limit(2))
            .name("api")
            .build()
            .unwrap()
    });
    let handle = layer.handle();
    let gauge = || {
        let recorded = crate::recorded::snapshot(&snapshotter);
        let (_, labels, value) = recorded
            .iter()
            .find(|(name, _, _)| name == "fortify_pool_limit")
            .expect("fortify_pool_limit recorded");
        assert_eq!(labels, &[("name".to_owned(), "api".to_owned())]);
        match value {
            DebugValue::Gauge(v) => v.into_inner(),
            other => panic!("{other:?}"),
        }
    };
    let backend = Congested::new(usize::MAX / 2, Duration::from_millis(10));
    backend.0.status.store(503, Ordering::SeqCst);
    let svc = layer.layer(backend.service());
    let a = Callers::start(5, svc.clone(), To("a"));
    let b = Callers::start(5, svc.clone(), To("b"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.stop().await;
    b.stop().await;
    let total = handle.snapshot().total;
    assert_eq!(total.max, 20);
    assert!(total.limit < 20, "{total:?}");
    assert_eq!(gauge(), total.limit as f64);
}

// ===== real sockets =====

/// The request of the real-socket callers.
#[derive(Clone)]
struct Loopback(std::net::SocketAddr);

impl MakeRequest for Loopback {
    type Request = Request<Empty<Bytes>>;
    type Body = hyper::body::Incoming;
    fn make(&self) -> Request<Empty<Bytes>> {
        Request::get(format!("http://{}/", self.0))
            .body(Empty::new())
            .unwrap()
    }
}

/// Real time, a hyper server on 127.0.0.1 and hyper-util's client: 24 callers against 2
/// workers (twelve times the base latency at 24 calls); the limit falls, the server sees fewer calls at once, and the limit recovers
/// when the server heals. Generous timeouts: only the direction is asserted, not the speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_real_sockets_the_limit_follows_the_servers_congestion() {
    let backend = Congested::new(2, Duration::from_millis(20));
    let server = backend.clone();
    let addr = crate::servers::serve_http(hyper::service::service_fn(move |_req| {
        let answer = server.answer();
        async move { Ok::<_, Infallible>(answer.await) }
    }))
    .await;
    let layer = PoolLimitLayer::builder(24)
        .block(true)
        .adaptive(
            AdaptiveLimit::gradient()
                .min_limit(2)
                .window(Duration::from_millis(50)),
        )
        .build()
        .unwrap();
    let handle = layer.handle();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let svc = layer.layer(client);

    let light = Callers::start(2, svc.clone(), Loopback(addr));
    watch(&handle, Duration::from_secs(2), 2, 24).await;
    let heavy = Callers::start(22, svc.clone(), Loopback(addr));
    until(&handle, Duration::from_secs(20), 2, 24, |limit| limit <= 12).await;
    // Settled: the server sees about the limit, well under the 24 callers.
    backend.take_peak();
    watch(&handle, Duration::from_millis(500), 2, 24).await;
    let peak = backend.take_peak();
    assert!(peak <= 16, "the server saw {peak} calls at once");

    backend.heal();
    until(&handle, Duration::from_secs(20), 2, 24, |limit| limit >= 20).await;
    heavy.stop().await;
    light.stop().await;
}
