//! The retry layer's fast path for responses (mutation testing, MUTANTS.md): a response that
//! no rule could retry is returned at once, before any retry state exists, whatever its
//! status. Only a success was measured before.

use super::*;
use bytes::Bytes;
use http_body_util::Full;
use tower_fortify::retry::{RetryLayer, RetryPolicy};

/// A request per call, copied from one parsed once: the copy allocates nothing (a shared URI
/// buffer, no headers, a static body), so every allocation counted is the layer's.
fn requests() -> impl FnMut(u32) -> http::Request<Full<Bytes>> {
    let base = http::Request::get("http://127.0.0.1/items")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    move |_| {
        let mut copy = http::Request::new(base.body().clone());
        *copy.uri_mut() = base.uri().clone();
        copy
    }
}

/// An inner service answering every call with `status` (and `Retry-After: retry_after`).
fn answering(
    status: u16,
    retry_after: Option<&'static str>,
) -> impl Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<()>,
    Error = io::Error,
    Future = std::future::Ready<Result<http::Response<()>, io::Error>>,
> + Clone {
    tower::service_fn(move |_req: http::Request<Full<Bytes>>| {
        let mut response = http::Response::new(());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        if let Some(value) = retry_after {
            let value = http::HeaderValue::from_static(value);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
        std::future::ready(Ok::<_, io::Error>(response))
    })
}

/// The layer's allocations in 1,000 calls answered by `status`, after 10 to warm up: those
/// of the calls through the layer less those of the same calls to the inner service alone
/// (a `Retry-After` header is the inner service's allocation). Every call ends with the
/// response: when it is retried, the policy must return the last one.
fn allocations_of(policy: RetryPolicy, status: u16, retry_after: Option<&'static str>) -> u64 {
    let mut request = requests();
    let mut inner = answering(status, retry_after);
    counting_alloc::drive(&mut inner, 10, &mut request);
    let (ok, inner_allocations) = counting_alloc::drive(&mut inner, 1000, &mut request);
    assert_eq!(ok, 1000);

    let mut svc = RetryLayer::builder()
        .policy(policy)
        .build()
        .unwrap()
        .layer(inner);
    counting_alloc::drive(&mut svc, 10, &mut request);
    let (ok, allocated) = counting_alloc::drive(&mut svc, 1000, &mut request);
    assert_eq!(ok, 1000, "status {status}: every call answered");
    allocated.saturating_sub(inner_allocations)
}

#[test]
fn responses_no_rule_retries_allocate_nothing() {
    // Errors that are neither in the forcelist nor a status that may carry Retry-After
    // (413, 429, 503), with Retry-After honoured as by default.
    for status in [200, 301, 404, 500, 502] {
        for retry_after in [None, Some("0")] {
            let allocated = allocations_of(RetryPolicy::default(), status, retry_after);
            assert_eq!(allocated, 0, "status {status}, Retry-After {retry_after:?}");
        }
    }
    // A 503 is retried only for its Retry-After: not when the header is not honoured.
    let ignoring = RetryPolicy::default().respect_retry_after_header(false);
    assert_eq!(
        allocations_of(ignoring, 503, Some("0")),
        0,
        "Retry-After ignored"
    );
}

#[test]
fn a_retried_status_does_allocate() {
    // The check above can fail: a status the forcelist retries takes the full path (its
    // retry state and history), as does a 503 whose Retry-After is honoured.
    let once = || RetryPolicy::default().total(Some(1)).raise_on_status(false);
    assert!(allocations_of(once().status_forcelist([500]), 500, None) >= 1000);
    assert!(allocations_of(once(), 503, Some("0")) >= 1000);
}
