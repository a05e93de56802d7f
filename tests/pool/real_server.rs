//! A hyper server on 127.0.0.1 that streams its response bodies as the test says, and a
//! hyper-util client behind the pool limit: the permit follows the connection.

use bytes::Bytes;
use fortify_test_support::bodies::Chunked;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::FailureKind,
    pool::{PoolHandle, PoolLimit, PoolLimitLayer},
};

/// The senders of the bodies being streamed, in request order.
type Feeds = Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>;

/// Answers every request at once with a head and a first chunk, then streams the rest of
/// the body as the test feeds it.
async fn streaming_server() -> (SocketAddr, Feeds) {
    let feeds = Feeds::default();
    let server_feeds = feeds.clone();
    let addr = crate::servers::serve_http(service_fn(move |_req: Request<Incoming>| {
        // A response body fed by the test, chunk by chunk; it ends when its sender is dropped.
        let (tx, body) = Chunked::fed(8);
        tx.try_send(Bytes::from_static(b"first ")).unwrap();
        server_feeds.lock().unwrap().push(tx);
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }))
    .await;
    (addr, feeds)
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn layer() -> PoolLimitLayer {
    // urllib3: PoolManager(maxsize=1, block=True), pool_timeout=5; and leak detection.
    PoolLimitLayer::builder(1)
        .block(true)
        .pool_timeout(Some(Duration::from_secs(5)))
        .leak_threshold(Some(Duration::from_secs(30)))
        .build()
        .unwrap()
}

fn get(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap()
}

fn in_use(handle: &PoolHandle) -> usize {
    handle.snapshot().total.in_use
}

fn feed(feeds: &Feeds, index: usize) -> mpsc::Sender<Bytes> {
    feeds.lock().unwrap()[index].clone()
}

#[tokio::test]
async fn the_permit_is_held_until_the_body_is_read() {
    let (addr, feeds) = streaming_server().await;
    let layer = layer();
    let handle = layer.handle();
    let svc: PoolLimit<HttpClient> = layer.layer(client());

    let response = svc.clone().oneshot(get(addr)).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first ");
    assert_eq!(
        in_use(&handle),
        1,
        "the body is still streaming: the connection is busy"
    );

    // A second request to the same host waits for the connection.
    let second = tokio::spawn(svc.clone().oneshot(get(addr)));
    crate::support::waiting(&handle, 1).await;

    let tx = feed(&feeds, 0);
    tx.send(Bytes::from_static(b"rest")).await.unwrap();
    drop(tx);
    feeds.lock().unwrap().clear();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "rest");

    // The body ended: its permit went to the waiting request.
    let second = second.await.unwrap().unwrap();
    assert_eq!(in_use(&handle), 1);
    assert_eq!(handle.snapshot().total.waiting, 0);
    drop(second);
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
async fn a_body_dropped_unread_frees_its_permit() {
    let (addr, _feeds) = streaming_server().await;
    let layer = layer();
    let handle = layer.handle();
    let svc = layer.layer(client());

    let response = svc.clone().oneshot(get(addr)).await.unwrap();
    assert_eq!(in_use(&handle), 1);
    drop(response);
    assert_eq!(in_use(&handle), 0);

    // The next request does not wait.
    let start = std::time::Instant::now();
    let response = svc.oneshot(get(addr)).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(response);
    assert_eq!(in_use(&handle), 0);
}

#[tokio::test]
async fn a_body_never_read_shows_up_as_a_leak() {
    let (addr, _feeds) = streaming_server().await;
    let layer = layer();
    let handle = layer.handle();
    let svc = layer.layer(client());

    let forgotten = svc.clone().oneshot(get(addr)).await.unwrap();
    assert_eq!(handle.snapshot().total.leaked, 0);

    // Past the leak threshold (on tokio's clock: nothing here needs the network).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.total.leaked, 1, "reported");
    assert!(snapshot.total.oldest_in_use >= Some(Duration::from_secs(31)));
    assert_eq!(
        snapshot.pools[0].key.as_deref(),
        Some(&*format!("http://{addr}"))
    );
    assert_eq!(handle.snapshot().total.leaked, 1, "reported once");

    // What the leak does: every later request to that host waits pool_timeout in vain.
    let err = svc.clone().oneshot(get(addr)).await.unwrap_err();
    assert_eq!(crate::support::kind(&err), FailureKind::PoolTimeout);
    tokio::time::resume();

    drop(forgotten);
    let snapshot = handle.snapshot();
    assert_eq!(
        (snapshot.total.in_use, snapshot.total.oldest_in_use),
        (0, None)
    );
    assert_eq!(snapshot.total.leaked, 1);
}

/// Issue 16: `PoolLimitLayer::builder(2).fail_fast()` in front of an axum router on
/// 127.0.0.1, 50 concurrent requests each with its own `Host` header: at most 2 run, the
/// other 48 are shed (a client must not split the limit into one pool per `Host` value).
#[tokio::test]
async fn a_server_sheds_load_whatever_the_host_headers() {
    use axum::{error_handling::HandleErrorLayer, http::StatusCode, routing::get as route};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::watch;
    use tower::ServiceBuilder;

    const CALLS: usize = 50;
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (release, released) = watch::channel(false);
    let handler = {
        let (running, most) = (running.clone(), most.clone());
        move || async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let mut released = released.clone();
            let _ = released.wait_for(|released| *released).await;
            running.fetch_sub(1, Ordering::SeqCst);
            "done"
        }
    };
    let pool = PoolLimitLayer::builder(2).fail_fast().build().unwrap();
    let handle = pool.handle();
    let app = axum::Router::new().route("/", route(handler)).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower_fortify::BoxError| async {
                StatusCode::SERVICE_UNAVAILABLE
            }))
            .layer(pool),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = client();
    let (done, mut statuses) = mpsc::unbounded_channel();
    for i in 0..CALLS {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let request = Request::get(format!("http://{addr}/"))
                .header("host", format!("tenant-{i}.example"))
                .body(Empty::new())
                .unwrap();
            let response = client.request(request).await.expect("a response");
            let status = response.status();
            let _ = response.into_body().collect().await;
            let _ = done.send(status);
        });
    }
    // Every call is accounted for once it either runs or was shed.
    let mut shed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while shed + running.load(Ordering::SeqCst) < CALLS {
        let status = tokio::time::timeout_at(deadline, statuses.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} running, {shed} shed: the calls are neither running nor shed",
                    running.load(Ordering::SeqCst)
                )
            })
            .unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        shed += 1;
    }
    assert_eq!(most.load(Ordering::SeqCst), 2, "at most maxsize run");
    assert_eq!(shed, CALLS - 2);
    assert_eq!(handle.snapshot().pools.len(), 1, "one pool for every Host");
    assert_eq!(handle.snapshot().total.rejected, (CALLS - 2) as u64);

    release.send(true).unwrap();
    for _ in 0..2 {
        assert_eq!(statuses.recv().await.unwrap(), StatusCode::OK);
    }
    assert_eq!(most.load(Ordering::SeqCst), 2);
}
