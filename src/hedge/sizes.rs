//! The size of the hedge layer's response future: a call moves it several times (out of
//! `call`, into the caller's future), so a call never hedged carries only what such a call
//! needs (what a sent hedge needs is boxed). These bounds fail if a field makes it grow.

use super::HedgeLayer;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{convert::Infallible, future::Ready, mem::size_of_val};
use tower_layer::Layer;
use tower_service::Service;

type Req = Request<Full<Bytes>>;

fn ok(_: Req) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::new()))))
}

fn get() -> Req {
    Request::get("http://a.example/")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[test]
fn the_hedge_future_stays_small() {
    let mut svc = HedgeLayer::builder()
        .build()
        .unwrap()
        .layer(tower::service_fn(ok));
    let inner = tower::service_fn(ok).call(get());
    let future = svc.call(get());
    // `cargo test --lib hedge::sizes -- --nocapture` prints them.
    println!(
        "request {}, inner future {}, hedge future {}",
        std::mem::size_of::<Req>(),
        size_of_val(&inner),
        size_of_val(&future),
    );
    assert!(
        size_of_val(&future) <= size_of_val(&inner) + 400,
        "hedge future {} over an inner one of {}",
        size_of_val(&future),
        size_of_val(&inner),
    );
}

#[cfg(feature = "stack")]
#[test]
fn the_hedged_presets_future_stays_small() {
    let _rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let layer = crate::stack::ClientConfig::default()
        .hedge(HedgeLayer::builder())
        .build()
        .unwrap();
    let mut stack = layer.layer(tower::service_fn(ok));
    let future = stack.call(get());
    println!("hedged preset future {}", size_of_val(&future));
    assert!(
        size_of_val(&future) <= 1000,
        "hedged preset future {}",
        size_of_val(&future)
    );
}
