//! The tower contract: readiness is the inner service's, rejections happen in `call`,
//! `Buffer` keeps working while open; auto traits.

use crate::support::{assert_rejected, request};
use http::{Request, Response};
use std::{task::Poll, time::Duration};
use tower::{buffer::Buffer, Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{
        future::ResponseFuture, BreakerHandle, CircuitBreaker, CircuitBreakerBuilder,
        CircuitBreakerHandle, CircuitBreakerLayer, ErrorsOnly, GenericCircuitBreaker,
        GenericCircuitBreakerLayer, HttpStatus, State,
    },
    BoxError,
};
use tower_test::mock;

type Mock = mock::Mock<Request<()>, Response<()>>;

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services_in_every_state() {
    let (service, mut handle) = mock::pair::<Request<()>, Response<()>>();
    let layer = GenericCircuitBreakerLayer::new();
    let breaker = layer.handle();
    let mut svc: GenericCircuitBreaker<Mock> = layer.layer(service);

    handle.allow(0);
    for state in [State::Closed, State::ForcedOpen] {
        if state == State::ForcedOpen {
            breaker.force_open();
        }
        let poll = poll_once(&mut svc).await;
        assert!(poll.is_pending(), "{state:?}");
    }

    // Ready again: a forced-open breaker rejects in `call`, without calling the mock.
    handle.allow(1);
    assert!(matches!(poll_once(&mut svc).await, Poll::Ready(Ok(()))));
    let err = svc.call(request()).await.unwrap_err();
    assert_rejected(&err, State::ForcedOpen);
    assert!(handle.poll_request().is_pending(), "the mock was called");

    // Closed: the reserved readiness serves the next call.
    breaker.reset();
    let call = tokio::spawn(svc.call(request()));
    let (req, send) = handle
        .next_request()
        .await
        .expect("the call reaches the mock");
    assert_eq!(req.uri(), request().uri());
    send.send_response(Response::new(()));
    call.await.unwrap().unwrap();

    // An error from the inner poll_ready comes back classified.
    handle.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let err = std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .unwrap_err();
    assert!(err.is::<tower_fortify::classify::Failure>(), "{err}");
}

async fn poll_once(svc: &mut GenericCircuitBreaker<Mock>) -> Poll<Result<(), BoxError>> {
    std::future::poll_fn(|cx| Poll::Ready(svc.poll_ready(cx))).await
}

#[tokio::test(start_paused = true)]
async fn buffer_keeps_failing_fast_while_open() {
    let layer = CircuitBreakerLayer::builder()
        .minimum_calls(1)
        .open_duration(Duration::from_secs(60))
        .build_generic()
        .unwrap();
    let breaker = layer.handle();
    let inner = layer.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, std::io::Error>(crate::support::response(500))
    }));
    let buffered = Buffer::new(inner, 8);
    assert_eq!(
        buffered.clone().oneshot(request()).await.unwrap().status(),
        500
    );
    assert_eq!(breaker.state(), State::Open);
    // Every call fails fast with the breaker's error, and the buffer stays usable.
    for _ in 0..20 {
        let err = buffered.clone().oneshot(request()).await.unwrap_err();
        assert_rejected(&err, State::Open);
    }
    breaker.reset();
    assert_eq!(
        buffered.clone().oneshot(request()).await.unwrap().status(),
        500
    );
}

#[tokio::test]
async fn any_request_type_with_errors_only() {
    let layer = CircuitBreakerLayer::builder()
        .classifier(ErrorsOnly)
        .minimum_calls(2)
        .build_generic()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|n: u32| async move {
        if n.is_multiple_of(2) {
            Ok(n)
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
        }
    }));
    assert_eq!(svc.clone().oneshot(2).await.unwrap(), 2);
    assert!(svc.clone().oneshot(3).await.is_err());
    assert_eq!(handle.state(), State::Open);
    let err = svc.oneshot(4).await.unwrap_err();
    assert_rejected(&err, State::Open);
}

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    type Inner = tower::util::BoxCloneSyncService<Request<()>, Response<()>, std::io::Error>;
    send_sync::<CircuitBreakerLayer>();
    send_sync::<CircuitBreakerBuilder>();
    send_sync::<CircuitBreakerLayer>();
    send_sync::<GenericCircuitBreaker<Inner>>();
    send_sync::<CircuitBreaker<Inner>>();
    send_sync::<BreakerHandle>();
    send_sync::<CircuitBreakerHandle>();
    send_sync::<tower_fortify::circuit_breaker::error::Open>();
    send::<ResponseFuture<<Inner as Service<Request<()>>>::Future, HttpStatus>>();
    send_sync::<ResponseFuture<std::future::Ready<Result<Response<()>, BoxError>>, HttpStatus>>();
    fn unpin<T: Unpin>() {}
    unpin::<ResponseFuture<std::future::Ready<Result<Response<()>, BoxError>>, HttpStatus>>();
}
