//! One uncontended call of an HTTP service with no runtime, the trivial service it wraps,
//! and the request: shared by the pool benches (`benches/pool.rs`, `benches/adaptive.rs`;
//! `#[path = "support/pool_calls.rs"] mod pool_calls;`). Each bench uses some of them.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use std::{
    future::{ready, Future, Ready},
    hint::black_box,
    io,
    pin::pin,
    sync::OnceLock,
    task::{Context, Poll, Waker},
};
use tower::Service;

pub(crate) type Req = Request<()>;
pub(crate) type Res = Response<Full<Bytes>>;

/// One call, polled once by hand; `true` on `Ready(Ok)`.
pub(crate) fn call_once<Q, S: Service<Q>>(svc: &mut S, req: Q) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(response)) => {
            drop(black_box(response));
            true
        }
        _ => false,
    }
}

pub(crate) fn ok_service(
) -> impl Service<Req, Response = Res, Error = io::Error, Future = Ready<Result<Res, io::Error>>>
       + Clone
       + Send
       + 'static {
    tower::service_fn(|_: Req| ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))))
}

pub(crate) fn request() -> Req {
    // Parsed once: `Uri::from_static` parses on every call (about 38 ns, which was in every
    // figure here, the bare one included). A clone of a URI made of static bytes copies
    // pointers.
    static URI: OnceLock<Uri> = OnceLock::new();
    let mut request = Request::new(());
    *request.uri_mut() = URI
        .get_or_init(|| Uri::from_static("http://api.example.com/v1/items"))
        .clone();
    request
}

/// A call closure over its own service (a first call checked), for paired groups.
pub(crate) fn caller<S: Service<Req>>(mut svc: S) -> impl FnMut() {
    assert!(call_once(&mut svc, request()), "a call succeeds");
    move || {
        black_box(call_once(&mut svc, black_box(request())));
    }
}
