//! The backend and helpers shared by the pool tests.

#![allow(dead_code)]

use bytes::Bytes;
use fortify_test_support::scripted::{Answer, Scripted};
use http::{Request, Response};
use http_body_util::Full;
use std::{
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

/// The pool tests' backend: the scripted backend with a one-chunk body (`ok`), which holds
/// its permit until it is read.
pub type Backend = Scripted<(), Full<Bytes>>;

/// A backend whose calls take `delay` (tokio time, none at all for zero) and answer `200`;
/// it counts its calls.
pub fn slow(delay: Duration) -> Backend {
    if delay.is_zero() {
        Backend::new(Answer::Success)
    } else {
        Backend::new(Answer::Slow(delay, 200))
    }
}

/// xorshift64*: enough randomness for a schedule, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
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
