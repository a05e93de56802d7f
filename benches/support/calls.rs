//! One uncontended call of an HTTP service taking a `Request<Full<Bytes>>` (the request a
//! client sends), with no runtime, the trivial service it wraps, and a call closure for
//! paired groups: shared by the benches of the layers that copy the request
//! (`benches/retry.rs`, `benches/hedge.rs`; `#[path = "support/calls.rs"] mod calls;`).
//! The call itself is the pool benches' (`pool_calls.rs`), generic over the request.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{future::ready, hint::black_box, io};
use tower::Service;

#[path = "pool_calls.rs"]
mod pool_calls;

pub(crate) use pool_calls::call_once;

pub(crate) type Req = Request<Full<Bytes>>;

/// Answers `200` with an empty body at the first poll.
pub(crate) fn ok_service(
) -> impl Service<Req, Response = Response<()>, Error = io::Error, Future: Send> + Clone + Send + 'static
{
    tower::service_fn(|_: Req| ready(Ok::<_, io::Error>(Response::new(()))))
}

/// A call closure over its own service (a first call checked), each call with a copy of
/// `request` made in the closure (in every variant alike, the bare one included, so that
/// it cancels out of the differences).
pub(crate) fn caller<S: Service<Req>>(mut svc: S, request: Req) -> impl FnMut() {
    assert!(call_once(&mut svc, request.clone()), "a call succeeds");
    move || {
        black_box(call_once(&mut svc, black_box(&request).clone()));
    }
}
