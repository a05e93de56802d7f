//! Leased pools under stress, through the public API: a layer's only fixed pool
//! (`per_host(false)` or `build_generic()`, no adaptive limit, leak tracking or live gauges)
//! parks its free permits in per-thread slots, and these tests drive one on a runtime of
//! eight workers (more threads than the pool has slots on a small machine, so some share
//! one) with 48 tasks calling a pool of three, calls dropped while they wait or run, bodies
//! dropped before their end. Counted at the inner service (from its `call` until its body
//! ends or is dropped): never more than `maxsize` calls in flight. Afterwards: every permit
//! free (the snapshot, and `maxsize` calls at once, not one more), nobody left waiting,
//! every call that was not dropped answered; and waiters served in the order they came.

use crate::support::{get, kind, poll_ready_now, Req, Rng};
use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::{pin, Pin},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    pool::{PoolBody, PoolHandle, PoolLimitBuilder, PoolLimitLayer},
    BoxError,
};

const TASKS: u64 = 48;
const CALLS: u64 = 150;
const MAXSIZE: usize = 3;
/// Every test's calls must be done by then (a waiter nobody serves hangs).
const HANG: Duration = Duration::from_secs(30);

/// Calls in flight now, and the most there ever were.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(self: &Arc<Self>) -> InFlight {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// One call counted in its gauge until dropped.
#[derive(Debug)]
struct InFlight(Arc<Gauge>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A body of two frames that counts its call in flight until it ends (before it says so)
/// or is dropped: the pool gives the permit back only after either.
#[derive(Debug)]
struct Counted {
    frames: u8,
    in_flight: Option<InFlight>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.frames == 0 {
            self.in_flight = None;
            return Poll::Ready(None);
        }
        self.frames -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
    }
}

type Res = Response<PoolBody<Counted>>;

/// The inner service: counts its calls in flight in `gauge` from `call` on; a call yields
/// or sleeps a little, as its request's number says. With `in_body`, the count ends with
/// the response body (HTTP: the permit rides with the body), else when the call's future
/// completes (generic: the permit comes back with the response).
fn counted(
    gauge: Arc<Gauge>,
    in_body: bool,
) -> impl Service<Req, Response = Response<Counted>, Error = io::Error, Future: Send> + Clone + Send
{
    tower::service_fn(move |req: Req| {
        let in_flight = gauge.enter();
        let n = req.extensions().get::<u64>().copied().unwrap_or(0);
        async move {
            for _ in 0..n % 4 {
                tokio::task::yield_now().await;
            }
            if n % 7 == 0 {
                tokio::time::sleep(Duration::from_micros(100 + n % 400)).await;
            }
            let in_flight = if in_body {
                Some(in_flight)
            } else {
                drop(in_flight);
                None
            };
            Ok(Response::new(Counted {
                frames: 2,
                in_flight,
            }))
        }
    })
}

/// Waits until `cond` holds, at most ten seconds (the other tests' eight workers share
/// the machine's cores: a count of yields is not enough), so a broken condition fails.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

/// Waits until `n` calls wait for the pool.
async fn waiting(handle: &PoolHandle, n: usize) {
    eventually(&format!("{n} waiting"), || {
        handle.snapshot().total.waiting == n
    })
    .await;
}

/// What became of the calls.
#[derive(Default)]
struct Outcomes {
    /// Answered (a response, or for the generic layer its call completed).
    served: AtomicU64,
    /// Failed with `PoolTimeout` (waited `pool_timeout` in vain).
    timed_out: AtomicU64,
    /// Failed with `PoolFull` (fail fast).
    rejected: AtomicU64,
    /// Dropped by the test while waiting or running.
    dropped: AtomicU64,
}

impl Outcomes {
    fn count(&self, result: Result<(), BoxError>) {
        let counter = match result {
            Ok(()) => &self.served,
            Err(err) => match kind(&err) {
                FailureKind::PoolTimeout => &self.timed_out,
                FailureKind::PoolFull => &self.rejected,
                other => panic!("a call failed with {other:?}: {err}"),
            },
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> [u64; 4] {
        [&self.served, &self.timed_out, &self.rejected, &self.dropped]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

/// One call, driven and dropped as `rng` says: awaited, dropped after a few polls (while
/// it waits for a permit, or runs), or dropped by a timeout wherever it is; a response's
/// body then read to its end (two frames and the end), dropped after one frame, or
/// dropped unread. A body that holds a permit is counted in `holders` for a moment
/// (inside the permit's hold: before the body is read or dropped).
async fn one_call<S, F>(svc: &S, rng: &mut Rng, holders: &Arc<Gauge>, outcomes: &Outcomes)
where
    S: Service<Req, Response = Response<F>, Error = BoxError> + Clone,
    F: Body<Data = Bytes> + Holds + Unpin,
    F::Error: std::fmt::Debug,
{
    let mut request = get("a");
    request.extensions_mut().insert(rng.next());
    let call = svc.clone().oneshot(request);
    let done = match rng.below(4) {
        0 | 1 => Some(call.await),
        2 => {
            let mut call = pin!(call);
            let mut polls = rng.below(6);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(result) = call.as_mut().poll(cx) {
                    return Poll::Ready(Some(result));
                }
                if polls == 0 {
                    return Poll::Ready(None);
                }
                polls -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await
        }
        _ => tokio::time::timeout(Duration::from_micros(rng.below(400)), call)
            .await
            .ok(),
    };
    let response = match done {
        None => {
            outcomes.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Some(Err(err)) => return outcomes.count(Err(err)),
        Some(Ok(response)) => response,
    };
    outcomes.count(Ok(()));
    let mut body = response.into_body();
    if body.holds() {
        let _holder = holders.enter();
        tokio::task::yield_now().await;
    }
    for _ in 0..rng.below(4) {
        if body.frame().await.is_none() {
            break;
        }
    }
}

/// Whether a response body holds its call's permit.
trait Holds {
    fn holds(&self) -> bool;
}

/// A body holds a permit of the pool's unless its call overflowed the pool (it then
/// holds one to count the overflow; its `Debug` says which).
impl Holds for PoolBody<Counted> {
    fn holds(&self) -> bool {
        self.holds_permit() && format!("{self:?}").contains("overflow: false")
    }
}

/// The generic layer's responses carry no permit.
impl Holds for Counted {
    fn holds(&self) -> bool {
        false
    }
}

/// `TASKS` tasks of `CALLS` calls each: none may panic, and all must end within `HANG`.
async fn hammer<S, F>(svc: &S, seed: u64) -> (Arc<Gauge>, Arc<Outcomes>)
where
    S: Service<Req, Response = Response<F>, Error = BoxError> + Clone + Send + Sync + 'static,
    S::Future: Send,
    F: Body<Data = Bytes> + Holds + Unpin + Send + 'static,
    F::Error: std::fmt::Debug,
{
    let holders = Arc::new(Gauge::default());
    let outcomes = Arc::new(Outcomes::default());
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (svc, holders, outcomes) =
                (svc.clone(), Arc::clone(&holders), Arc::clone(&outcomes));
            tokio::spawn(async move {
                let mut rng = Rng(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                for _ in 0..CALLS {
                    one_call(&svc, &mut rng, &holders, &outcomes).await;
                }
            })
        })
        .collect();
    let all = async {
        for task in tasks {
            task.await.expect("a task panicked");
        }
    };
    tokio::time::timeout(HANG, all)
        .await
        .expect("a waiter was never served");
    let [served, timed_out, rejected, dropped] = outcomes.get();
    assert_eq!(
        served + timed_out + rejected + dropped,
        TASKS * CALLS,
        "every call has an outcome"
    );
    (holders, outcomes)
}

/// After the stress: nothing in use, nobody waiting, and `maxsize` calls at once each get
/// a permit of their own (none lost); what the next one gets is the mode's to check.
async fn all_free<S>(svc: &S, handle: &PoolHandle) -> Vec<Res>
where
    S: Service<Req, Response = Res, Error = BoxError> + Clone,
{
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.total.in_use, 0, "a permit was lost: {snapshot:?}");
    assert_eq!(snapshot.total.waiting, 0, "{snapshot:?}");
    assert_eq!(snapshot.total.overflowing, 0, "{snapshot:?}");
    let mut held = Vec::new();
    for _ in 0..MAXSIZE {
        let response = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(get("a")))
            .await
            .expect("a permit was lost")
            .expect("a free permit");
        assert!(
            response.body().holds(),
            "a permit was lost: the call overflowed"
        );
        held.push(response);
    }
    assert_eq!(handle.snapshot().total.in_use, MAXSIZE);
    held
}

/// A layer's only pool of `MAXSIZE` (leased), stressed with the inner service counting.
async fn stress(
    builder: PoolLimitBuilder,
) -> (
    impl Service<Req, Response = Res, Error = BoxError> + Clone,
    PoolHandle,
    Arc<Gauge>,
    Arc<Gauge>,
    Arc<Outcomes>,
) {
    let layer = builder.per_host(false).build().unwrap();
    let handle = layer.handle();
    let in_flight = Arc::new(Gauge::default());
    let svc = layer.layer(counted(Arc::clone(&in_flight), true));
    let (holders, outcomes) = hammer(&svc, 0x5EED_1EA5).await;
    (svc, handle, in_flight, holders, outcomes)
}

/// `block=True` with a `pool_timeout`: never more than `maxsize` in flight, some calls time
/// out, every other call not dropped is answered, and the pool is whole afterwards: the
/// call after `maxsize` held ones times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn blocking_with_a_pool_timeout() {
    let (svc, handle, in_flight, holders, outcomes) = stress(
        PoolLimitLayer::builder(MAXSIZE)
            .block(true)
            .pool_timeout(Some(Duration::from_millis(2))),
    )
    .await;
    assert_eq!(in_flight.max(), MAXSIZE, "in flight at the inner service");
    assert!(holders.max() <= MAXSIZE);
    let [served, timed_out, rejected, _] = outcomes.get();
    assert!(served > 0 && timed_out > 0, "calls served and timed out");
    assert_eq!(rejected, 0);
    assert_eq!(handle.snapshot().total.timed_out, timed_out);

    let held = all_free(&svc, &handle).await;
    let extra = svc.clone().oneshot(get("a")).await;
    assert_eq!(
        kind(&extra.unwrap_err()),
        FailureKind::PoolTimeout,
        "a permit was doubled"
    );
    drop(held);
    assert_eq!(handle.snapshot().total.in_use, 0);
}

/// `block=True` without a timeout: every call not dropped is answered, never more than
/// `maxsize` in flight, and afterwards the call after `maxsize` held ones waits until one
/// is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn blocking_forever() {
    let (svc, handle, in_flight, holders, outcomes) =
        stress(PoolLimitLayer::builder(MAXSIZE).block(true)).await;
    assert_eq!(in_flight.max(), MAXSIZE, "in flight at the inner service");
    assert!(holders.max() <= MAXSIZE);
    let [served, timed_out, rejected, dropped] = outcomes.get();
    assert!(served > 0 && dropped > 0);
    assert_eq!((timed_out, rejected), (0, 0));

    let mut held = all_free(&svc, &handle).await;
    let mut extra = pin!(svc.clone().oneshot(get("a")));
    assert!(
        tokio::time::timeout(Duration::from_millis(20), extra.as_mut())
            .await
            .is_err(),
        "a permit was doubled"
    );
    waiting(&handle, 1).await;
    drop(held.pop());
    let response = tokio::time::timeout(Duration::from_secs(5), extra)
        .await
        .expect("the waiter is served once a permit is back")
        .unwrap();
    assert!(response.body().holds_permit());
}

/// Fail fast: never more than `maxsize` in flight, calls rejected, none waits, and the
/// call after `maxsize` held ones is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn failing_fast() {
    let (svc, handle, in_flight, holders, outcomes) =
        stress(PoolLimitLayer::builder(MAXSIZE).fail_fast()).await;
    assert_eq!(in_flight.max(), MAXSIZE, "in flight at the inner service");
    assert!(holders.max() <= MAXSIZE);
    let [served, timed_out, rejected, _] = outcomes.get();
    assert!(served > 0 && rejected > 0);
    assert_eq!(timed_out, 0);
    assert_eq!(handle.snapshot().total.rejected, rejected);

    let _held = all_free(&svc, &handle).await;
    let extra = svc.clone().oneshot(get("a")).await;
    assert_eq!(
        kind(&extra.unwrap_err()),
        FailureKind::PoolFull,
        "a permit was doubled"
    );
}

/// `block=False` (urllib3's default): calls over `maxsize` go through without a permit
/// (overflow), so the inner service sees more; but never more than `maxsize` response
/// bodies hold a permit at once, and afterwards `maxsize` calls at once take a permit each
/// and the next one overflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn overflowing() {
    let (svc, handle, in_flight, holders, outcomes) =
        stress(PoolLimitLayer::builder(MAXSIZE)).await;
    assert!(in_flight.max() > MAXSIZE, "calls overflowed");
    assert!(
        holders.max() <= MAXSIZE,
        "{} bodies held a permit at once",
        holders.max()
    );
    let [served, timed_out, rejected, _] = outcomes.get();
    assert!(served > 0);
    assert_eq!((timed_out, rejected), (0, 0));
    let overflowed = handle.snapshot().total.overflowed;
    assert!(overflowed > 0);

    let _held = all_free(&svc, &handle).await;
    assert_eq!(
        handle.snapshot().total.overflowed,
        overflowed,
        "a permit was lost: a call overflowed"
    );
    let extra = svc.clone().oneshot(get("a")).await.unwrap();
    assert!(
        !extra.body().holds(),
        "a permit was doubled: the call did not overflow"
    );
    assert_eq!(handle.snapshot().total.overflowed, overflowed + 1);
}

/// The generic layer (`build_generic`, the permit given back when the call completes),
/// blocking with a `pool_timeout`: never more than `maxsize` calls in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn generic_blocking_with_a_pool_timeout() {
    let layer = PoolLimitLayer::builder(MAXSIZE)
        .block(true)
        .pool_timeout(Some(Duration::from_millis(2)))
        .build_generic()
        .unwrap();
    let handle = layer.handle();
    let in_flight = Arc::new(Gauge::default());
    let svc = layer.layer(counted(Arc::clone(&in_flight), false));
    let (_, outcomes) = hammer(&svc, 0x6E4E_71C5).await;
    assert_eq!(in_flight.max(), MAXSIZE, "in flight at the inner service");
    let [served, timed_out, _, _] = outcomes.get();
    assert!(served > 0 && timed_out > 0);
    let snapshot = handle.snapshot().total;
    assert_eq!((snapshot.in_use, snapshot.waiting), (0, 0), "{snapshot:?}");

    // `maxsize` ready services hold a permit each (`poll_ready` reserves it); the next
    // call times out.
    let mut ready = Vec::new();
    for _ in 0..MAXSIZE {
        let mut svc = svc.clone();
        svc.ready().await.unwrap();
        ready.push(svc);
    }
    assert_eq!(handle.snapshot().total.in_use, MAXSIZE, "a permit was lost");
    let extra = svc.clone().oneshot(get("a")).await;
    assert_eq!(
        kind(&extra.expect_err("a permit was doubled")),
        FailureKind::PoolTimeout
    );
}

/// FIFO, with permits given back from every worker while the waiters' slots may hold
/// parked permits: `maxsize` permits held, 24 callers queued one after another, a few of
/// them dropped while they wait; then one permit at a time is given back (first by the
/// holders, then by the waiters served, each on its own task). Each release serves
/// exactly the next caller still waiting, in the order they came, and a newcomer polled
/// meanwhile does not get ready ahead of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn waiters_are_served_in_order() {
    tokio::time::timeout(HANG, served_in_order())
        .await
        .expect("a waiter was never served");
}

async fn served_in_order() {
    const WAITERS: usize = 24;
    let layer = PoolLimitLayer::builder(MAXSIZE)
        .block(true)
        .per_host(false)
        .build()
        .unwrap();
    let handle = layer.handle();
    let in_flight = Arc::new(Gauge::default());
    let svc = layer.layer(counted(Arc::clone(&in_flight), true));

    // Warm every worker's slot: calls on all of them, their permits parked where they end.
    let warm: Vec<_> = (0..32)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let response = svc.oneshot(get("a")).await.unwrap();
                response.into_body().collect().await.unwrap();
            })
        })
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..MAXSIZE {
        held.push(svc.clone().oneshot(get("a")).await.unwrap());
    }

    let served = Arc::new(Mutex::new(Vec::new()));
    let mut gates = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let (gate, opened) = tokio::sync::oneshot::channel::<()>();
        let (mut svc, served) = (svc.clone(), Arc::clone(&served));
        tasks.push(tokio::spawn(async move {
            svc.ready().await.unwrap();
            served.lock().unwrap().push(i);
            let response = svc.call(get("a")).await.unwrap();
            let _ = opened.await;
            drop(response);
        }));
        gates.push(Some(gate));
        waiting(&handle, i + 1).await;
    }
    // Callers 2, 9 and 17 leave the queue.
    let left = [2, 9, 17];
    for &i in &left {
        tasks[i].abort();
        gates[i] = None;
    }
    waiting(&handle, WAITERS - left.len()).await;
    let order: Vec<usize> = (0..WAITERS).filter(|i| !left.contains(i)).collect();

    let release_held = |response: Res| {
        tokio::spawn(async move { drop(response) });
    };
    for (k, &next) in order.iter().enumerate() {
        // A newcomer polled once while callers wait is not ready (it queued behind them).
        let mut newcomer = svc.clone();
        assert!(
            poll_ready_now(&mut newcomer).is_pending(),
            "a newcomer overtook the queue"
        );
        drop(newcomer);
        // Give back one permit: a held one first, then the earliest served caller's.
        if let Some(response) = held.pop() {
            release_held(response);
        } else {
            let gate = gates[order[k - MAXSIZE]].take().unwrap();
            gate.send(()).unwrap();
        }
        eventually("the next caller served", || {
            served.lock().unwrap().len() == k + 1
        })
        .await;
        assert_eq!(
            served.lock().unwrap()[k],
            next,
            "served out of order: {:?}",
            served.lock().unwrap()
        );
        assert_eq!(handle.snapshot().total.waiting, order.len() - k - 1);
    }
    assert!(in_flight.max() <= MAXSIZE);
    for gate in gates.into_iter().flatten() {
        let _ = gate.send(());
    }
    for (i, task) in tasks.into_iter().enumerate() {
        if !left.contains(&i) {
            task.await.unwrap();
        }
    }
    let snapshot = handle.snapshot().total;
    assert_eq!((snapshot.in_use, snapshot.waiting), (0, 0), "{snapshot:?}");
}
