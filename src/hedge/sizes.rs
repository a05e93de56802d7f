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
        size_of_val(&future) <= size_of_val(&inner) + 240,
        "hedge future {} over an inner one of {}",
        size_of_val(&future),
        size_of_val(&inner),
    );
}

/// An inner future on the heap, as hyper-util's client returns.
type Boxed =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<()>, Infallible>> + Send>>;

#[test]
fn over_a_boxed_future_it_is_moved_by_straight_line_copies() {
    let mut svc = HedgeLayer::builder()
        .build()
        .unwrap()
        .layer(tower::service_fn(|_: Req| -> Boxed {
            Box::pin(async { Ok(Response::new(())) })
        }));
    let future = svc.call(get());
    println!("hedge future over a boxed one {}", size_of_val(&future));
    // glibc's `memcpy` copies up to 8 vectors (256 bytes with AVX2) without a loop.
    assert!(
        size_of_val(&future) <= 256,
        "hedge future over a boxed one {}",
        size_of_val(&future)
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
        size_of_val(&future) <= 848,
        "hedged preset future {}",
        size_of_val(&future)
    );
}
