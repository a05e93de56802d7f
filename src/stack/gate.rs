//! The preset's per-host breaker and pool as one service: the request's host read and
//! hashed once per call, for both maps.

use crate::{
    circuit_breaker::{future::ResponseFuture as BreakerFuture, CircuitBreaker, HttpStatus},
    internal::lru::Hashed,
    key::{ByAuthority, HostRef},
    pool::{future::ResponseFuture as PoolFuture, PoolBody, PoolLimit},
    BoxError,
};
use http::{Request, Response};
use http_body::Body;
use std::task::{Context, Poll};
use tower_service::Service;

/// `CircuitBreaker<PoolLimit<S>>` with one lookup of the host per call: the breaker and
/// the pool behave, count and report as the two layers do (the same maps, handles and
/// futures), but the request's authority is read and hashed once, not once per layer.
///
/// `pub` in a private module: it is part of [`ClientStack`](super::ClientStack)'s service
/// and future types, never nameable from outside.
#[allow(unreachable_pub)]
#[derive(Clone, Debug)]
pub struct HostGate<S> {
    pub(crate) inner: CircuitBreaker<PoolLimit<S>, ByAuthority, HttpStatus>,
}

impl<S, B, ResB> Service<Request<B>> for HostGate<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: Body,
{
    type Response = Response<PoolBody<ResB>>;
    type Error = BoxError;
    type Future = BreakerFuture<PoolFuture<S, B>, HttpStatus>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let lookup = Hashed::new(HostRef::of(request.uri()));
        let admission = self.inner.admit_hashed(lookup.clone());
        // A rejected call never waits for a permit: the pool sits inside the breaker.
        let acquired = admission
            .is_call()
            .then(|| self.inner.get_ref().acquire_hashed(lookup));
        self.inner
            .call_admitted(admission, request, |pool, request| {
                pool.call_acquired(request, acquired.expect("admitted calls acquire"))
            })
    }
}
