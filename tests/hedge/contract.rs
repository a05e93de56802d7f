//! The tower contract, with `tower_test`'s mock (which panics on a call without
//! readiness): the hedge is sent only once the inner service is ready again, with the
//! service that was made ready.

use crate::support::{builder, get, ms};
use http::{Request, Response};
use tower::{Layer, ServiceExt};
use tower_test::mock;

#[tokio::test(start_paused = true)]
async fn a_hedge_waits_for_the_inner_service_to_be_ready() {
    let layer = builder().build().unwrap();
    let (inner, mut handle) = mock::pair::<Request<String>, Response<String>>();
    let svc = layer.layer(inner);

    // Five calls answered in 20 ms: the host's delay.
    for _ in 0..5 {
        handle.allow(1);
        let call = tokio::spawn(svc.clone().oneshot(get("a.test")));
        let (_, send) = handle.next_request().await.unwrap();
        tokio::time::sleep(ms(20)).await;
        send.send_response(Response::new(String::from("warm")));
        call.await.unwrap().unwrap();
    }

    // A slow call, and no readiness for its hedge: none is sent.
    handle.allow(1);
    let call = tokio::spawn(svc.clone().oneshot(get("a.test")));
    let (_, first) = handle.next_request().await.unwrap();
    assert!(tokio::time::timeout(ms(100), handle.next_request())
        .await
        .is_err());

    // Ready again: the hedge goes out, and its answer is taken.
    handle.allow(1);
    let (_, hedge) = handle.next_request().await.unwrap();
    hedge.send_response(Response::new(String::from("hedge")));
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.body(), "hedge");
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_is_the_inner_services() {
    use std::task::{Context, Poll, Waker};
    use tower::Service;

    let (inner, mut handle) = mock::pair::<Request<String>, Response<String>>();
    let mut svc = builder().build().unwrap().layer(inner);
    let mut cx = Context::from_waker(Waker::noop());
    handle.allow(0);
    assert!(svc.poll_ready(&mut cx).is_pending());
    handle.allow(1);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}
