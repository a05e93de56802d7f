//! The least any hedge or retry does for a call answered at once, without any layer's
//! choices, for scale beside the layers in the benches over loopback
//! (`#[path = "support/floor.rs"] mod floor;`): a copy of the request kept until the
//! answer, and optionally a tokio `sleep` armed when the call is first pending.

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;
use std::time::Duration;
use tower::Service;

type Req = Request<Full<Bytes>>;

/// The least any hedge does for a call answered before its delay, without the layer's
/// choices (which calls, which delay, tracking, budget, breaker): a copy of the request
/// kept until the answer, and, with `sleep`, a tokio `sleep` of that length armed when the
/// call is first pending (a hedge's timer as a layer with a timer per call arms it; the
/// hedge layer's calls share one instead). For scale in the counted runs.
#[derive(Clone)]
pub(crate) struct Floor<S> {
    pub(crate) inner: S,
    pub(crate) sleep: Option<Duration>,
}

impl<S: Service<Req>> Service<Req> for Floor<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The parts one by one, the header fields in a `Vec` (no allocation without any):
        // as the retry and hedge layers keep theirs (`Request::clone` clones a header map,
        // an allocation even when empty).
        let copy = (
            request.method().clone(),
            request.uri().clone(),
            request.version(),
            (request.headers().iter())
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<Vec<_>>(),
            request.extensions().clone(),
            request.body().clone(),
        );
        FloorFuture {
            inner: self.inner.call(request),
            _copy: copy,
            delay: self.sleep,
            sleep: None,
        }
    }
}

pin_project_lite::pin_project! {
    pub(crate) struct FloorFuture<F> {
        #[pin]
        inner: F,
        _copy: (
            http::Method,
            Uri,
            http::Version,
            Vec<(http::HeaderName, http::HeaderValue)>,
            http::Extensions,
            Full<Bytes>,
        ),
        delay: Option<Duration>,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

impl<F: std::future::Future> std::future::Future for FloorFuture<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let mut this = self.project();
        let poll = this.inner.poll(cx);
        if poll.is_pending() {
            if let (Some(delay), None) = (*this.delay, this.sleep.as_ref().as_pin_ref()) {
                this.sleep.set(Some(tokio::time::sleep(delay)));
            }
            if let Some(sleep) = this.sleep.as_pin_mut() {
                // Its deadline is never reached in these runs: armed, then dropped.
                let _ = sleep.poll(cx);
            }
        }
        poll
    }
}
