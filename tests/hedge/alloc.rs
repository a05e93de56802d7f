//! Heap allocations per call, counted exactly (the binary's counting allocator): a call
//! answered before its hedge delay allocates nothing, unless its request has header fields
//! to copy (one allocation: the copy a hedge would be sent from, as the retry layer's).

use fortify_test_support::counting_alloc;
use http::{Method, Request, Response, Uri};
use std::{future::ready, io};
use tower::Layer;
use tower_fortify::hedge::HedgeLayer;

fn request(method: Method) -> Request<()> {
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from_static("http://api.test/items");
    request
}

/// A GET with one header field (whose map allocates twice: its index and its entries).
fn with_header() -> Request<()> {
    let mut request = request(Method::GET);
    request
        .headers_mut()
        .insert("accept", http::HeaderValue::from_static("*/*"));
    request
}

/// The hedge layer with `min_samples`, over a service that answers at once.
fn hedged(
    min_samples: u32,
) -> (
    HedgeLayer,
    impl tower::Service<Request<()>, Response = Response<()>, Error = io::Error>,
) {
    let layer = HedgeLayer::builder()
        .min_samples(min_samples)
        .build()
        .unwrap();
    let inner = tower::service_fn(|_: Request<()>| ready(Ok::<_, io::Error>(Response::new(()))));
    let svc = layer.layer(inner);
    (layer, svc)
}

#[test]
fn a_call_answered_before_its_delay_allocates_nothing() {
    let (layer, mut svc) = hedged(5);
    // Warm: the host gets its slot and its delay (the floor: every answer took no time).
    counting_alloc::drive(&mut svc, 10, |_| request(Method::GET));
    let uri = Uri::from_static("http://api.test/");
    assert!(layer.hedge_delay(&uri).is_some());

    for method in [Method::GET, Method::POST] {
        let (ok, allocated) = counting_alloc::drive(&mut svc, 10_000, |_| request(method.clone()));
        assert_eq!(ok, 10_000);
        assert_eq!(allocated, 0, "{method}");
    }

    // The counter sees the copy of a request with header fields: one per hedgeable call.
    let (ok, allocated) = counting_alloc::drive(&mut svc, 100, |_| with_header());
    assert_eq!(ok, 100);
    // Each request's own header map (its index and its entries), and the copy's one.
    assert_eq!(allocated, 3 * 100);
}

#[test]
fn a_call_to_a_host_without_its_delay_keeps_no_copy() {
    // No hedge before `min_samples` answers: a request with header fields is not copied.
    let (layer, mut svc) = hedged(1_000);
    counting_alloc::drive(&mut svc, 10, |_| request(Method::GET));
    let (ok, allocated) = counting_alloc::drive(&mut svc, 100, |_| with_header());
    assert_eq!(ok, 100);
    assert!(layer
        .hedge_delay(&Uri::from_static("http://api.test/"))
        .is_none());
    // Each request's own header map (its index and its entries): no copy.
    assert_eq!(allocated, 2 * 100);
}

/// In the preset, whose retry layer clones the inner stack for every call, a call answered
/// before its hedge delay allocates no more with hedging than without.
#[cfg(feature = "stack")]
#[test]
fn the_preset_allocates_no_more_with_hedging() {
    use tower_fortify::stack::ClientConfig;

    let inner = || {
        tower::service_fn(|_: Request<()>| ready(Ok::<_, io::Error>(Response::new(String::new()))))
    };
    let hedged = ClientConfig::default()
        .hedge(HedgeLayer::builder().min_samples(5))
        .build()
        .unwrap();
    let mut with_hedge = hedged.layer(inner());
    let mut without = ClientConfig::default().build().unwrap().layer(inner());
    // Warm: the host gets its delay, the services their per-host state.
    counting_alloc::drive(&mut with_hedge, 10, |_| request(Method::GET));
    counting_alloc::drive(&mut without, 10, |_| request(Method::GET));
    assert!(hedged
        .hedge()
        .hedge_delay(&Uri::from_static("http://api.test/"))
        .is_some());

    let (ok, hedging) = counting_alloc::drive(&mut with_hedge, 1_000, |_| request(Method::GET));
    assert_eq!(ok, 1_000);
    let (ok, plain) = counting_alloc::drive(&mut without, 1_000, |_| request(Method::GET));
    assert_eq!(ok, 1_000);
    assert_eq!(hedging, plain);
}
