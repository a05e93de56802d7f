//! A breaker around a hyper-util client, against a real server on 127.0.0.1 that goes down
//! (connections refused) and comes back.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerLayer, State},
    classify::{Failure, FailureKind},
    BoxError,
};

/// A server that answers 200 to every request, counting them.
async fn serve(addr: SocketAddr, hits: Arc<AtomicUsize>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind(addr).await.expect("bind 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hits = Arc::clone(&hits);
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, Infallible>(Response::new(String::from("ok"))) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

async fn get<S>(svc: &mut S, addr: SocketAddr) -> Result<Response<Incoming>, BoxError>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<Incoming>, Error = BoxError>,
{
    let request = Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    svc.ready().await?.call(request).await
}

#[tokio::test]
async fn a_server_that_goes_down_and_comes_back() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (addr, server) = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&hits)).await;

    // No idle connections: every request connects, so a stopped server refuses it.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let open_duration = Duration::from_millis(300);
    let layer = CircuitBreakerLayer::builder()
        .minimum_calls(5)
        .open_duration(open_duration)
        .open_duration_jitter(0.0)
        .half_open_successes(2)
        .build_generic()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(client);

    for _ in 0..5 {
        let response = get(&mut svc, addr).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 5);

    // The server goes down: connections are refused, and after 5 of them the breaker opens.
    server.abort();
    let _ = server.await;
    for _ in 0..5 {
        let err = get(&mut svc, addr).await.unwrap_err();
        let failure = err.downcast_ref::<Failure>().expect("a classified failure");
        #[cfg(feature = "hyper")]
        assert_eq!(failure.kind(), FailureKind::ConnectRefused, "{failure:#}");
        let _ = failure;
    }
    assert_eq!(handle.state(), State::Open);

    // Open: rejected at once, without a connection attempt.
    let started = Instant::now();
    let err = get(&mut svc, addr).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<Failure>().unwrap().kind(),
        FailureKind::CircuitOpen
    );
    assert!(started.elapsed() < Duration::from_millis(50));

    // The server comes back on the same port; after the open duration the probes close
    // the breaker.
    let (again, server) = serve(addr, Arc::clone(&hits)).await;
    assert_eq!(again, addr);
    tokio::time::sleep(handle.retry_in().unwrap_or_default()).await;
    for _ in 0..2 {
        let response = get(&mut svc, addr).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(hits.load(Ordering::SeqCst), 7);
    server.abort();
}
