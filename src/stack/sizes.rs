//! The sizes of the preset's futures: each is moved (copied) several times per call, so
//! their sizes are kept small; these bounds fail if a field makes one grow.

use super::ClientConfig;
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

fn request_to(uri: &str) -> Req {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

#[test]
fn the_presets_futures_stay_small() {
    let _rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let layer = ClientConfig::default().build().unwrap();
    let mut stack = layer.layer(tower::service_fn(ok));
    let future = stack.call(request_to("http://a.example/"));
    let gate = stack.inner.get_ref();
    let gated = gate.clone().call(request_to("http://a.example/"));
    // `cargo test --lib stack::sizes -- --nocapture` prints them.
    println!(
        "request {}, gate service {}, gate future {}, preset service {}, preset future {}",
        std::mem::size_of::<Req>(),
        size_of_val(gate),
        size_of_val(&gated),
        size_of_val(&stack),
        size_of_val(&future),
    );
    // The retry layer clones the gate (from its template) for each call it retries.
    assert!(
        size_of_val(gate) <= 40,
        "gate service {}",
        size_of_val(gate)
    );
    assert!(
        size_of_val(&gated) <= 224,
        "gate future {}",
        size_of_val(&gated)
    );
    assert!(
        size_of_val(&future) <= 472,
        "preset future {}",
        size_of_val(&future)
    );
}

#[cfg(feature = "client")]
#[tokio::test]
async fn the_https_clients_future_stays_small() {
    let mut client = ClientConfig::default().https().unwrap();
    let future = client.call(request_to("https://127.0.0.1:1/"));
    let stack = client.get_ref();
    println!(
        "https client service {}, stack service {}, inner client {}, future {}",
        size_of_val(&client),
        size_of_val(stack),
        size_of_val(stack.get_ref()),
        size_of_val(&future),
    );
    assert!(
        size_of_val(&future) <= 344,
        "future {}",
        size_of_val(&future)
    );
}
