//! `ReplayBody` over real hyper connections, and property tests of what every copy yields.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use proptest::prelude::*;
use tower_fortify::{
    retry::{error::BodyNotReplayable, ReplayBody, TryCloneBody},
    BoxError,
};

use fortify_test_support::{
    bodies::{pattern, Chunked},
    servers,
};

/// A server on 127.0.0.1 that records every request body it receives.
async fn recording_server() -> (SocketAddr, Arc<Mutex<Vec<Bytes>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&received);
    let addr = servers::serve_http(service_fn(move |req: http::Request<Incoming>| {
        let record = Arc::clone(&record);
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            record.lock().unwrap().push(body);
            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
        }
    }))
    .await;
    (addr, received)
}

type ReplayClient = Client<HttpConnector, ReplayBody<Chunked>>;

async fn send(client: &ReplayClient, addr: SocketAddr, body: ReplayBody<Chunked>) {
    let req = http::Request::post(format!("http://{addr}/upload"))
        .body(body)
        .expect("request");
    let res = client.request(req).await.expect("response");
    assert_eq!(res.status(), http::StatusCode::OK);
    res.into_body().collect().await.expect("response body");
}

#[tokio::test]
async fn a_copy_sends_the_same_bytes_over_hyper() {
    let (addr, received) = recording_server().await;
    let client: ReplayClient = Client::builder(TokioExecutor::new()).build_http();

    let (data, chunks) = pattern(32 * 1024, 1000);
    let original = ReplayBody::new(chunks);
    // As the retry layer does: a copy kept aside before the first attempt ...
    let template = original.try_clone_body().expect("fresh body");

    send(&client, addr, original).await;
    // ... and each retry sends a copy of it.
    let retry = template
        .try_clone_body()
        .expect("32 KiB is under the limit");
    send(&client, addr, retry).await;
    send(&client, addr, template).await;

    let received = received.lock().unwrap();
    assert_eq!(received.len(), 3);
    for body in received.iter() {
        assert_eq!(body.as_ref(), data.as_slice());
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_sent_once_intact() {
    let (addr, received) = recording_server().await;
    let client: ReplayClient = Client::builder(TokioExecutor::new()).build_http();

    let (data, chunks) = pattern(200 * 1024, 4096);
    let original = ReplayBody::new(chunks);
    let template = original.try_clone_body().expect("fresh body");

    send(&client, addr, original).await;
    assert!(template.is_capped());
    assert!(template.try_clone_body().is_none());

    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].as_ref(), data.as_slice());
}

#[tokio::test]
async fn a_stale_copy_of_a_capped_body_fails_instead_of_sending_wrong_bytes() {
    let (data, chunks) = pattern(100, 10);
    let original = ReplayBody::with_limit(chunks, 50);
    let stale = original.try_clone_body().unwrap();

    assert_eq!(original.collect().await.unwrap().to_bytes(), data);
    let err = stale.collect().await.unwrap_err();
    assert!(err.is::<BodyNotReplayable>(), "{err}");
}

/// Reads a body that is always ready to its end.
fn read_all<B>(body: &mut B) -> Result<Vec<u8>, BoxError>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Ready(Some(frame)) => {
                if let Ok(data) = frame?.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(None) => return Ok(out),
            Poll::Pending => panic!("the test body is never pending"),
        }
    }
}

proptest! {
    #[test]
    fn every_copy_yields_exactly_the_input(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=4096), 0..=8),
        limit in 0usize..=20 * 1024,
        // How many frames the original yields before it is dropped and a copy goes on.
        stop_after in 0usize..=9,
    ) {
        let input = chunks.concat();
        let total = input.len();

        // A first attempt that stops part-way, then the rest read by a copy.
        let mut first = ReplayBody::with_limit(Chunked::new(chunks.clone()), limit);
        let template = first.try_clone_body().expect("fresh body");
        let mut cx = Context::from_waker(Waker::noop());
        let mut partial = Vec::new();
        for _ in 0..stop_after {
            match Pin::new(&mut first).poll_frame(&mut cx) {
                Poll::Ready(Some(frame)) => {
                    partial.extend_from_slice(&frame.unwrap().into_data().unwrap());
                }
                _ => break,
            }
        }
        drop(first);
        prop_assert!(input.starts_with(&partial));
        let over = partial.len() > limit;
        prop_assert_eq!(template.is_capped(), over);

        if !over {
            let mut second = template.try_clone_body().expect("not capped yet");
            prop_assert_eq!(read_all(&mut second).unwrap(), input.clone());
            prop_assert_eq!(second.is_capped(), total > limit);
        }

        // The original alone always yields exactly the input.
        let mut original = ReplayBody::with_limit(Chunked::new(chunks), limit);
        let copy = original.try_clone_body().expect("fresh body");
        prop_assert_eq!(read_all(&mut original).unwrap(), input.clone());
        if total <= limit {
            let mut copy = copy;
            prop_assert_eq!(read_all(&mut copy).unwrap(), input);
            prop_assert!(original.try_clone_body().is_some());
        } else {
            prop_assert!(original.is_capped());
            prop_assert!(original.try_clone_body().is_none());
            prop_assert!(copy.try_clone_body().is_none());
        }
    }
}

#[test]
fn auto_traits() {
    fn send_sync_unpin<T: Send + Sync + Unpin + 'static>() {}
    send_sync_unpin::<ReplayBody<Full<Bytes>>>();
    send_sync_unpin::<ReplayBody<Chunked>>();
    send_sync_unpin::<BodyNotReplayable>();
}
