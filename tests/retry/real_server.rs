//! The retry layer around a hyper-util client, against real servers on 127.0.0.1.

use bytes::Bytes;
use fortify_test_support::bodies::{pattern, Chunked};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::{error::RetryError, ReplayBody, RetryHistory, RetryLayer, Stop},
    BoxError,
};

/// What the server does with the n-th request (0-based).
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Read the whole body, then close the connection without answering.
    Drop,
    /// Answer with this status, and `Retry-After: 1` when asked.
    Status(u16, bool),
}

/// A hyper server that records every request body it read, and acts by script.
struct Server {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Bytes>>>,
    requests: Arc<AtomicUsize>,
}

async fn server(script: Vec<Act>) -> Server {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let (b, r) = (bodies.clone(), requests.clone());
    let addr = crate::servers::serve_http(service_fn(move |req: Request<Incoming>| {
        handle(req, b.clone(), r.clone(), script.clone())
    }))
    .await;
    Server {
        addr,
        bodies,
        requests,
    }
}

async fn handle(
    req: Request<Incoming>,
    bodies: Arc<Mutex<Vec<Bytes>>>,
    requests: Arc<AtomicUsize>,
    script: Arc<Vec<Act>>,
) -> Result<Response<String>, std::io::Error> {
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return Err(std::io::Error::other(err)),
    };
    bodies.lock().unwrap().push(body);
    match script.get(n).copied().unwrap_or(Act::Status(200, false)) {
        Act::Drop => Err(std::io::Error::other("drop the connection")),
        Act::Status(status, retry_after) => {
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            if retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", "1".parse().unwrap());
            }
            Ok(response)
        }
    }
}

fn chunks(total: usize) -> (Chunked, Bytes) {
    let (data, body) = pattern(total, 4096);
    (body, Bytes::from(data))
}

pub(crate) fn client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

#[tokio::test(start_paused = true)]
async fn status_503_with_retry_after_then_200() {
    let server = server(vec![Act::Status(503, true), Act::Status(200, false)]).await;
    let svc = RetryLayer::builder()
        .build()
        .unwrap()
        .layer(client::<String>());
    let started = tokio::time::Instant::now();
    let request = Request::get(format!("http://{}/", server.addr))
        .body(String::new())
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let history = response.extensions().get::<RetryHistory>().unwrap();
    assert_eq!(
        history.records()[0].cause().status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
}

#[tokio::test]
async fn post_dropped_after_the_request_was_read_is_sent_once() {
    let server = server(vec![Act::Drop, Act::Status(200, false)]).await;
    let svc = RetryLayer::builder()
        .build()
        .unwrap()
        .layer(client::<String>());
    let request = Request::post(format!("http://{}/orders", server.addr))
        .body("order #1".to_owned())
        .unwrap();
    let err = svc.oneshot(request).await.unwrap_err();
    // The failure itself, not a RetryError: a POST is not retried after it was sent.
    let failure = err
        .downcast_ref::<Failure>()
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(failure.kind(), FailureKind::ConnectionClosed);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(server.bodies.lock().unwrap()[0], "order #1");
}

#[tokio::test]
async fn post_to_a_refused_port_is_retried() {
    let addr = crate::servers::refused().await;
    let svc = RetryLayer::builder()
        .build()
        .unwrap()
        .layer(client::<String>());
    let request = Request::post(format!("http://{addr}/"))
        .body("x".to_owned())
        .unwrap();
    let err = svc.oneshot(request).await.unwrap_err();
    let err = err
        .downcast_ref::<RetryError>()
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        err.failure().map(Failure::kind),
        Some(FailureKind::ConnectRefused)
    );
    assert_eq!(err.history().records().len(), 3, "total 3: four attempts");
}

#[tokio::test]
async fn streamed_body_under_the_limit_arrives_intact_on_every_attempt() {
    let server = server(vec![Act::Drop, Act::Drop, Act::Status(200, false)]).await;
    let svc = RetryLayer::builder()
        .build()
        .unwrap()
        .layer(client::<ReplayBody<Chunked>>());
    let (body, data) = chunks(32 * 1024);
    let request = Request::put(format!("http://{}/blob", server.addr))
        .body(ReplayBody::new(body))
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bodies = server.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(body, &data, "attempt {i}");
    }
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_sent_exactly_once() {
    let server = server(vec![Act::Drop, Act::Status(200, false)]).await;
    let svc = RetryLayer::builder()
        .build()
        .unwrap()
        .layer(client::<ReplayBody<Chunked>>());
    let (body, data) = chunks(200 * 1024);
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("http://{}/blob", server.addr))
        .body(ReplayBody::new(body))
        .unwrap();
    let err = svc.oneshot(request).await.unwrap_err();
    let err = err
        .downcast_ref::<RetryError>()
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(err.stop(), Some(Stop::NotReplayable));
    assert_eq!(
        err.failure().map(Failure::kind),
        Some(FailureKind::ConnectionClosed)
    );
    let bodies = server.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1, "sent exactly once");
    assert_eq!(bodies[0], data, "and completely");
}

#[tokio::test]
async fn post_refused_then_dropped_comes_back_with_the_refusal_in_its_history() {
    // First attempt to a port nobody listens on (refused: nothing was sent, so even a POST
    // is retried), the retry to a server that reads the request and drops the connection
    // (a POST is not retried after it was sent): the drop comes back as it is, and the
    // refusal before it is in the failure's history.
    let refused = crate::servers::refused().await;
    let server = server(vec![Act::Drop]).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let http = client::<String>();
    let routed = tower::service_fn(move |mut request: Request<String>| {
        let addr = match seen.fetch_add(1, Ordering::SeqCst) {
            0 => refused,
            _ => server.addr,
        };
        *request.uri_mut() = format!("http://{addr}/orders").parse().unwrap();
        http.clone().oneshot(request)
    });
    let svc = RetryLayer::builder().build().unwrap().layer(routed);
    let request = Request::post("http://orders.invalid/orders")
        .body("order #2".to_owned())
        .unwrap();
    let err = svc.oneshot(request).await.unwrap_err();
    // The read failure is not retried (a POST), after one retry: a RetryError with no stop.
    let err = err
        .downcast_ref::<RetryError>()
        .unwrap_or_else(|| panic!("a RetryError holding the failure and the history: {err}"));
    assert_eq!(
        err.failure().map(Failure::kind),
        Some(FailureKind::ConnectionClosed)
    );
    let history = err.history();
    assert_eq!(history.records().len(), 1);
    assert_eq!(
        history.records()[0].cause().failure_kind(),
        Some(FailureKind::ConnectRefused)
    );
    assert_eq!(history.stop(), None);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}
