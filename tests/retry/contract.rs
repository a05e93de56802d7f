//! The tower contract: readiness before every retry, nothing left behind on drop.

use http::{Request, Response};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::{Retry, RetryLayer, RetryPolicy},
};
use tower_test::mock;

type Mock = mock::Mock<Request<String>, Response<()>>;

/// A GET with body "x" through `svc`, on a task of its own.
fn spawn_get(
    svc: Retry<Mock>,
) -> tokio::task::JoinHandle<Result<Response<()>, tower_fortify::BoxError>> {
    tokio::spawn(
        svc.oneshot(
            Request::get("http://127.0.0.1/")
                .body("x".to_owned())
                .unwrap(),
        ),
    )
}

fn layer() -> RetryLayer {
    RetryLayer::builder()
        .policy(RetryPolicy::default().backoff_factor(Duration::from_secs(1)))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn readiness_is_awaited_before_every_retry() {
    let (service, mut handle): (Mock, _) = mock::pair();
    let svc = layer().layer(service);
    handle.allow(1);

    let fut = spawn_get(svc);
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.body(), "x");
    send.send_error(Failure::new(FailureKind::ConnectRefused, "refused"));

    // The retry is due at once, but the mock allows no more calls: the retry must wait.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        handle.poll_request().is_pending(),
        "called without readiness"
    );
    // A call without readiness panics in the mock, inside the call's task: that task would
    // be over.
    assert!(
        !fut.is_finished(),
        "the call ended while waiting for readiness (the mock panics when called unready)"
    );
    handle.allow(1);
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.body(), "x", "the retry sends the same body");
    send.send_response(Response::new(()));
    let response = fut.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn dropping_mid_sleep_leaves_nothing_behind() {
    let (service, mut handle): (Mock, _) = mock::pair();
    let layer = layer();
    let svc: Retry<Mock> = layer.layer(service);
    handle.allow(10);

    let call = spawn_get(svc);
    // First attempt fails, second attempt fails: the next sleep is 2 s (factor 1 s).
    for _ in 0..2 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error(Failure::new(FailureKind::ConnectRefused, "refused"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.abort();
    let _ = call.await;
    // Nothing calls the inner service after the drop, even once the sleep would be over:
    // the handle sees the service dropped, not a request.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(matches!(
        handle.poll_request(),
        std::task::Poll::Ready(None)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_retry_sends_the_same_head_and_body() {
    #[derive(Debug, Clone, PartialEq)]
    struct Marker(u32);

    let (service, mut handle): (Mock, _) = mock::pair();
    handle.allow(2);
    let mut request = Request::put("http://127.0.0.1/items/7?x=1")
        .version(http::Version::HTTP_2)
        .header("x-request-id", "abc")
        .header(http::header::ACCEPT, "application/json")
        .header("x-request-id", "def")
        .header("x-tenant", "t1")
        .body("x".to_owned())
        .unwrap();
    request.extensions_mut().insert(Marker(7));
    let call = tokio::spawn(layer().layer(service).oneshot(request));

    let (first, send) = handle.next_request().await.unwrap();
    send.send_error(Failure::new(FailureKind::ConnectRefused, "refused"));
    let (retry, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(()));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    // Every field, in the order the first attempt had them.
    let fields = |req: &Request<String>| -> Vec<(String, String)> {
        req.headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(fields(&first).len(), 4);
    assert_eq!(fields(&retry), fields(&first));
    for (name, req) in [("first", &first), ("retry", &retry)] {
        assert_eq!(req.method(), http::Method::PUT, "{name}");
        assert_eq!(req.uri(), "http://127.0.0.1/items/7?x=1", "{name}");
        assert_eq!(req.version(), http::Version::HTTP_2, "{name}");
        let ids: Vec<_> = req.headers().get_all("x-request-id").iter().collect();
        assert_eq!(ids, ["abc", "def"], "{name}");
        assert_eq!(req.extensions().get::<Marker>(), Some(&Marker(7)), "{name}");
        assert_eq!(req.body(), "x", "{name}");
    }
}

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RetryLayer>();
    send_sync::<
        Retry<tower::util::BoxCloneSyncService<Request<String>, Response<()>, std::io::Error>>,
    >();
    send_sync::<tower_fortify::retry::error::RetryError>();
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_wait_for_readiness_before_a_retry() {
    let (service, mut handle): (Mock, _) = mock::pair();
    let policy = RetryPolicy::default().deadline(Some(Duration::from_secs(5)));
    let svc = RetryLayer::builder()
        .policy(policy)
        .build()
        .unwrap()
        .layer(service);
    handle.allow(1);

    let started = tokio::time::Instant::now();
    let fut = spawn_get(svc);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Failure::new(FailureKind::ConnectRefused, "refused"));
    // The retry is due at once, but the service never becomes ready again.
    let err = fut.await.unwrap().unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let err = err
        .downcast_ref::<tower_fortify::retry::error::RetryError>()
        .unwrap();
    assert_eq!(err.stop(), Some(tower_fortify::retry::Stop::Deadline));
    assert_eq!(
        err.history().records().len(),
        1,
        "the retry it was waiting to make"
    );
}

/// A service that counts its clones and fails its first `fail` calls (shared by clones).
#[derive(Debug)]
struct Counted {
    clones: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    fail: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Counted {
            clones: self.clones.clone(),
            fail: self.fail.clone(),
        }
    }
}

impl tower::Service<Request<String>> for Counted {
    type Response = Response<()>;
    type Error = Failure;
    type Future = std::future::Ready<Result<Response<()>, Failure>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Failure>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        let failing = self
            .fail
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| n.checked_sub(1),
            )
            .is_ok();
        std::future::ready(if failing {
            Err(Failure::new(FailureKind::ConnectRefused, "refused"))
        } else {
            Ok(Response::new(()))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_inner_service_is_cloned_only_for_a_retry() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let clones = std::sync::Arc::new(AtomicUsize::new(0));
    let fail = std::sync::Arc::new(AtomicUsize::new(0));
    let inner = Counted {
        clones: clones.clone(),
        fail: fail.clone(),
    };
    let mut svc = layer().layer(inner);
    let get = || {
        Request::get("http://127.0.0.1/")
            .body("x".to_owned())
            .unwrap()
    };
    for _ in 0..3 {
        svc.ready().await.unwrap().call(get()).await.unwrap();
    }
    assert_eq!(
        clones.load(Ordering::Relaxed),
        1,
        "one clone, the template, for calls answered at once"
    );
    fail.store(1, Ordering::Relaxed);
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        clones.load(Ordering::Relaxed),
        2,
        "the retry is sent with one clone of the template"
    );
}

#[tokio::test]
async fn the_service_shows_its_policy_and_name_and_a_call_its_state() {
    let policy = RetryPolicy::default().total(Some(5));
    let mut svc = RetryLayer::builder()
        .policy(policy.clone())
        .name("search")
        .build()
        .unwrap()
        .layer(tower::service_fn(|_: Request<String>| async {
            Ok::<_, std::io::Error>(Response::new(()))
        }));
    assert_eq!(format!("{:?}", svc.policy()), format!("{policy:?}"));
    assert_ne!(
        format!("{:?}", svc.policy()),
        format!("{:?}", RetryPolicy::default()),
        "the test's policy is not the default"
    );
    assert_eq!(svc.name(), "search");
    let future = svc.ready().await.unwrap().call(
        Request::get("http://127.0.0.1/")
            .body(String::new())
            .unwrap(),
    );
    assert_eq!(
        format!("{future:?}"),
        "ResponseFuture { attempts: None, idempotent: Some(true), deadline_at: None, .. }"
    );
    assert_eq!(future.await.unwrap().status(), 200);
}
