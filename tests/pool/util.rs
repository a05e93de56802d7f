//! Services and helpers shared by the pool tests.

#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{
    future::Future,
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll, Waker},
    time::Duration,
};
use tower::Service;
use tower_fortify::{
    classify::{Failure, FailureKind},
    pool::PoolHandle,
    BoxError,
};

pub type Req = Request<()>;
pub type Res = Response<Full<Bytes>>;

/// A GET to `host`.
pub fn get(host: &str) -> Req {
    Request::get(format!("http://{host}/"))
        .body(())
        .expect("a valid request")
}

/// A service whose calls take `delay` (tokio time) and answer with a one-chunk body; it
/// counts its calls.
#[derive(Clone)]
pub struct Slow {
    pub delay: Duration,
    pub calls: Arc<AtomicUsize>,
}

impl Slow {
    pub fn new(delay: Duration) -> Self {
        Slow {
            delay,
            calls: Arc::default(),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Req> for Slow {
    type Response = Res;
    type Error = io::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Res, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay;
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
    }
}

/// The kind of a classified error.
pub fn kind(err: &BoxError) -> FailureKind {
    err.downcast_ref::<Failure>()
        .unwrap_or_else(|| panic!("not a Failure: {err}"))
        .kind()
}

/// Polls `poll_ready` once, without a task.
pub fn poll_ready_now<S: Service<R>, R>(svc: &mut S) -> Poll<Result<(), S::Error>> {
    svc.poll_ready(&mut Context::from_waker(Waker::noop()))
}

/// Yields until `cond` holds (bounded, so a broken condition fails instead of hanging).
pub async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never held");
}

/// Waits until `n` calls wait in the layer's pools.
pub async fn waiting(handle: &PoolHandle, n: usize) {
    until(|| handle.snapshot().total.waiting == n).await;
}
