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

/// A call whose result is recorded while its thread exits (its future polled to the end in
/// a thread-local's destructor, after the breaker's own thread data is gone) is counted, in
/// the breaker's shared lane.
#[test]
fn a_result_recorded_as_its_thread_exits_counts() {
    type Call =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<()>, BoxError>>>>;
    struct FinishOnExit(std::cell::RefCell<Option<Call>>);
    impl Drop for FinishOnExit {
        fn drop(&mut self) {
            if let Some(mut call) = self.0.borrow_mut().take() {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                assert!(call.as_mut().poll(&mut cx).is_ready());
            }
        }
    }
    thread_local! {
        static ON_EXIT: FinishOnExit = const { FinishOnExit(std::cell::RefCell::new(None)) };
    }

    let layer = GenericCircuitBreakerLayer::new();
    let breaker = layer.handle();
    let svc = layer.layer(tower::service_fn(|_: Request<()>| async {
        Err::<Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    }));
    std::thread::spawn(move || {
        // Touched first, so that its destructor runs after the breaker's thread data's
        // (thread-locals are destroyed in the reverse order of their first use).
        ON_EXIT.with(|_| ());
        let mut svc = svc;
        let call: Call = Box::pin(svc.call(request()));
        ON_EXIT.with(|on_exit| *on_exit.0.borrow_mut() = Some(call));
    })
    .join()
    .expect("the result was recorded without a panic");
    let figures = breaker.figures();
    assert_eq!((figures.calls(), figures.failures()), (1, 1));
}

/// The results of calls admitted before the breaker changed state are not counted in the
/// window (a success, a failure), and leave uncounted none of the successes the thread has
/// buffered since.
#[tokio::test]
async fn results_from_an_earlier_generation_leave_the_buffered_ones_counted() {
    let (service, mut handle) = mock::pair::<Request<()>, Response<()>>();
    let layer = GenericCircuitBreakerLayer::new();
    let breaker = layer.handle();
    let mut svc: GenericCircuitBreaker<Mock> = layer.layer(service);
    handle.allow(5);
    let early = tokio::spawn(svc.ready().await.unwrap().call(request()));
    let (_, early_response) = handle.next_request().await.unwrap();
    let failing = tokio::spawn(svc.ready().await.unwrap().call(request()));
    let (_, failing_response) = handle.next_request().await.unwrap();
    // A new generation: forced open, then closed again.
    breaker.force_open();
    breaker.reset();
    for _ in 0..3 {
        let call = svc.ready().await.unwrap().call(request());
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(Response::new(()));
        call.await.unwrap();
    }
    // Their results are recorded on this thread too (a current-thread runtime).
    early_response.send_response(Response::new(()));
    early.await.unwrap().unwrap();
    failing_response.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    failing.await.unwrap().unwrap_err();
    let figures = breaker.figures();
    assert_eq!((figures.calls(), figures.failures()), (3, 0));
}
