//! The tower contract (reserve in `poll_ready`, take in `call`, `Clone` drops the
//! reservation, nothing lost on drop) and the permit's lifetime.

use crate::support::{get, kind, poll_ready_now, slow, waiting, Req};
use bytes::Bytes;
use fortify_test_support::bodies::Chunked;
use http::Response;
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use std::{convert::Infallible, io, time::Duration};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    pool::{
        GenericPoolLimit, GenericPoolLimitLayer, PoolBody, PoolHandle, PoolLimit, PoolLimitLayer,
    },
    BoxError,
};
use tower_test::mock;

type Mock = mock::Mock<Req, Response<Full<Bytes>>>;
type MockHandle = mock::Handle<Req, Response<Full<Bytes>>>;

fn one_pool(maxsize: usize) -> PoolLimitLayer {
    PoolLimitLayer::builder(maxsize)
        .block(true)
        .per_host(false)
        .build()
        .unwrap()
}

fn in_use(handle: &PoolHandle) -> usize {
    handle.snapshot().total.in_use
}

/// A one-pool service of one permit over a mock: the service, the mock, the pool's handle.
fn mocked() -> (PoolLimit<Mock>, MockHandle, PoolHandle) {
    let layer = one_pool(1);
    let (service, mock) = mock::pair::<Req, Response<Full<Bytes>>>();
    (layer.layer(service), mock, layer.handle())
}

/// Answers the mock's next request, which must be the GET to `a`, with `body`.
async fn answer(mock: &mut MockHandle, body: &'static [u8]) {
    let (request, send) = mock.next_request().await.unwrap();
    assert_eq!(request.uri(), "http://a/");
    send.send_response(Response::new(Full::new(Bytes::from_static(body))));
}

#[tokio::test]
async fn poll_ready_reserves_and_call_takes() {
    let (mut svc, mut mock, handle) = mocked();
    let mut other = svc.clone();

    mock.allow(1);
    assert!(poll_ready_now(&mut svc).is_ready());
    assert_eq!(in_use(&handle), 1, "the permit is reserved by poll_ready");
    assert!(poll_ready_now(&mut other).is_pending(), "no second permit");
    drop(other); // leaves the queue
                 // Repeated poll_ready keeps the one reservation.
    assert!(poll_ready_now(&mut svc).is_ready());
    assert_eq!(in_use(&handle), 1);

    let response = svc.call(get("a"));
    answer(&mut mock, b"ok").await;
    let response = response.await.unwrap();
    assert_eq!(in_use(&handle), 1, "the permit rides in the body");
    drop(response);
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
async fn the_permit_is_held_while_the_inner_service_is_not_ready() {
    let (mut svc, mut mock, handle) = mocked();

    mock.allow(0);
    assert!(poll_ready_now(&mut svc).is_pending(), "inner not ready");
    assert_eq!(in_use(&handle), 1, "reserved, as ConcurrencyLimit does");
    mock.allow(1);
    svc.ready().await.unwrap();
    let fut = svc.call(get("a"));
    answer(&mut mock, b"").await;
    drop(fut.await.unwrap());
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
async fn clone_drops_the_reservation() {
    let (mut svc, mut mock, handle) = mocked();
    mock.allow(10);

    svc.ready().await.unwrap();
    let mut clone = svc.clone();
    assert_eq!(in_use(&handle), 1, "a clone does not copy the reservation");
    assert!(poll_ready_now(&mut clone).is_pending());
    drop(svc);
    assert_eq!(
        in_use(&handle),
        1,
        "the clone, queued, got the dropped reservation"
    );
    // The clone was queued: the permit was handed to it.
    clone.ready().await.unwrap();
    let fut = clone.call(get("a"));
    answer(&mut mock, b"").await;
    drop(fut.await.unwrap());
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
#[should_panic(expected = "poll_ready must be called first")]
async fn call_without_poll_ready_panics() {
    let (mut svc, _mock, _handle) = mocked();
    drop(svc.call(get("a")));
}

#[tokio::test]
#[should_panic(expected = "poll_ready must be called first")]
async fn generic_call_without_poll_ready_panics() {
    let mut svc =
        GenericPoolLimit::new(tower::service_fn(|()| async { Ok::<_, io::Error>(()) }), 1).unwrap();
    drop(svc.call(()));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_service_loses_no_permit() {
    let layer = one_pool(1);
    let handle = layer.handle();
    let svc = layer.layer(slow(Duration::ZERO));
    let held = svc.clone().oneshot(get("a")).await.unwrap();

    let mut waiter = svc.clone();
    assert!(poll_ready_now(&mut waiter).is_pending());
    assert_eq!(handle.snapshot().total.waiting, 1);
    drop(waiter);
    assert_eq!(handle.snapshot().total.waiting, 0);

    // A permit handed to a waiter that is dropped before it polls again goes on.
    let mut first = svc.clone();
    let mut second = svc.clone();
    assert!(poll_ready_now(&mut first).is_pending());
    assert!(poll_ready_now(&mut second).is_pending());
    drop(held); // handed to `first`
    drop(first); // which leaves with it: `second` gets it
    let mut second = tokio::time::timeout(Duration::from_secs(1), async move {
        second.ready().await.unwrap();
        second
    })
    .await
    .expect("the permit was passed on");
    drop(second.call(get("a")).await.unwrap());
    assert_eq!(in_use(&handle), 0);
    assert_eq!(handle.snapshot().total.waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_while_it_waits_or_runs_loses_no_permit() {
    for per_host in [false, true] {
        let layer = PoolLimitLayer::builder(1)
            .block(true)
            .per_host(per_host)
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(slow(Duration::from_secs(5)));

        // Running: dropped while the inner future is pending.
        let running = tokio::spawn(svc.clone().oneshot(get("a")));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(in_use(&handle), 1);
        // Waiting: dropped in the queue.
        let queued = tokio::spawn(svc.clone().oneshot(get("a")));
        waiting(&handle, 1).await;
        queued.abort();
        let _ = queued.await;
        assert_eq!(handle.snapshot().total.waiting, 0, "per_host {per_host}");
        running.abort();
        let _ = running.await;
        assert_eq!(in_use(&handle), 0, "per_host {per_host}");
        drop(svc.oneshot(get("a")).await.unwrap());
    }
}

// ===== permit lifetime =====

/// A backend answering a body of `left` one-byte frames with an exact size hint, whose last
/// frame is an error when `fail`.
fn frames(
    left: usize,
    fail: bool,
) -> impl Service<
    Req,
    Response = Response<Chunked>,
    Error = io::Error,
    Future = std::future::Ready<Result<Response<Chunked>, io::Error>>,
> + Clone {
    tower::service_fn(move |_: Req| {
        let body = Chunked::bytes(left).exact();
        let body = if fail {
            body.then_error(io::ErrorKind::ConnectionReset)
        } else {
            body
        };
        std::future::ready(Ok(Response::new(body)))
    })
}

#[tokio::test]
async fn the_permit_is_given_back_when_the_body_ends() {
    let layer = one_pool(1);
    let handle = layer.handle();
    let svc = layer.layer(frames(3, false));
    let mut body = svc.oneshot(get("a")).await.unwrap().into_body();
    assert_eq!(
        body.size_hint().exact(),
        Some(3),
        "size_hint passes through"
    );
    for _ in 0..2 {
        body.frame().await.unwrap().unwrap();
        assert!(body.holds_permit(), "mid-body");
        assert_eq!(in_use(&handle), 1);
    }
    // The last frame: is_end_stream turns true with it, before any None.
    body.frame().await.unwrap().unwrap();
    assert!(!body.holds_permit());
    assert!(body.is_end_stream());
    assert_eq!(in_use(&handle), 0);
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn the_permit_is_given_back_when_the_body_fails_or_is_dropped() {
    let layer = one_pool(1);
    let handle = layer.handle();
    let svc = layer.layer(frames(2, true));
    let mut body = svc.clone().oneshot(get("a")).await.unwrap().into_body();
    body.frame().await.unwrap().unwrap();
    assert!(body.frame().await.unwrap().is_err());
    assert!(!body.holds_permit(), "a failed body frees its connection");
    assert_eq!(in_use(&handle), 0);

    let response = svc.oneshot(get("a")).await.unwrap();
    assert_eq!(in_use(&handle), 1);
    drop(response);
    assert_eq!(in_use(&handle), 0, "dropped unread");
}

#[tokio::test]
async fn an_empty_body_is_done_with_the_head() {
    let layer = one_pool(1);
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|_: Req| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));
    let response = svc.oneshot(get("a")).await.unwrap();
    assert!(!response.body().holds_permit());
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
async fn release_on_body_end_false_gives_the_permit_back_with_the_head() {
    let layer = PoolLimitLayer::builder(1)
        .per_host(false)
        .block(true)
        .release_on_body_end(false)
        .build()
        .unwrap();
    let handle = layer.handle();
    let response = layer
        .layer(frames(3, false))
        .oneshot(get("a"))
        .await
        .unwrap();
    assert!(!response.body().holds_permit());
    assert_eq!(in_use(&handle), 0);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, "xxx", "frames pass through");
}

#[tokio::test]
async fn an_inner_error_gives_the_permit_back_classified() {
    let layer = one_pool(1);
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|_: Req| async {
        Err::<Response<Empty<Bytes>>, _>(io::Error::from(io::ErrorKind::ConnectionRefused))
    }));
    let err = svc.oneshot(get("a")).await.unwrap_err();
    assert_eq!(kind(&err), FailureKind::ConnectRefused);
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
async fn an_inner_poll_ready_error_ends_the_reservation() {
    let (mut svc, mut mock, handle) = mocked();
    mock.allow(0);
    assert!(poll_ready_now(&mut svc).is_pending());
    assert_eq!(in_use(&handle), 1);
    mock.send_error(io::Error::from(io::ErrorKind::BrokenPipe));
    let err = svc.ready().await.unwrap_err();
    assert_eq!(
        kind(&err),
        FailureKind::ConnectionClosed,
        "classified: {err}"
    );
    assert_eq!(in_use(&handle), 0, "a failed service keeps no permit");
}

#[tokio::test(start_paused = true)]
async fn generic_services_give_the_permit_back_with_the_response() {
    let layer = PoolLimitLayer::builder(1)
        .block(true)
        .build_generic()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(tower::service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, io::Error>(ms)
    }));
    svc.ready().await.unwrap();
    let fut = svc.call(100);
    assert_eq!(in_use(&handle), 1);
    let mut other = svc.clone();
    assert!(poll_ready_now(&mut other).is_pending());
    assert_eq!(fut.await.unwrap(), 100);
    assert_eq!(
        in_use(&handle),
        1,
        "given back when the future completed: to the waiter"
    );
    assert_eq!(other.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
async fn pool_body_wraps_without_a_permit() {
    let mut body = PoolBody::new(Full::new(Bytes::from_static(b"hi")));
    assert!(!body.holds_permit());
    assert_eq!(body.get_ref().size_hint().exact(), Some(2));
    *body.get_mut() = Full::new(Bytes::from_static(b"hey"));
    assert_eq!(body.get_ref().size_hint().exact(), Some(3));
    assert_eq!(body.collect().await.unwrap().to_bytes(), "hey");
}

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    type Inner = tower::util::BoxCloneSyncService<Req, Response<Full<Bytes>>, BoxError>;
    send_sync::<PoolLimitLayer>();
    send_sync::<GenericPoolLimitLayer>();
    send_sync::<PoolHandle>();
    send_sync::<PoolLimit<Inner>>();
    send_sync::<GenericPoolLimit<Inner>>();
    send_sync::<PoolBody<Full<Bytes>>>();
    send::<tower_fortify::pool::future::ResponseFuture<Inner, ()>>();
    send::<<PoolLimit<Inner> as Service<Req>>::Future>();
    send::<<GenericPoolLimit<Inner> as Service<Req>>::Future>();
    send_sync::<tower_fortify::pool::error::EmptyPool>();
    send_sync::<tower_fortify::pool::error::PoolFull>();
    fn unpin<T: Unpin>() {}
    unpin::<PoolLimit<Inner>>();
    unpin::<PoolBody<Full<Bytes>>>();
}
