//! The preset's per-host breaker and pool as one service: the request's host read and
//! hashed once per call, for both maps.

use crate::{
    circuit_breaker::{
        future::ResponseFuture as BreakerFuture, Admission, Breakers, CircuitBreaker, HttpStatus,
        ProbeCall,
    },
    internal::lru::Hashed,
    key::{ByAuthority, HostRef},
    pool::{future::ResponseFuture as PoolFuture, PoolBody, PoolLimit, PoolShared},
    BoxError,
};
use http::{Request, Response};
use http_body::Body;
use std::{
    cell::OnceCell,
    fmt,
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// `CircuitBreaker<PoolLimit<S>>` with one lookup of the host per call: the breaker and
/// the pool behave, count and report as the two layers do (the same maps, handles and
/// futures), but the request's authority is read and hashed once, not once per layer.
///
/// It holds the breakers and the pools themselves rather than the two services: the retry
/// layer clones it into every call's future, so it is kept to the inner service and three
/// words (a `PoolLimit` would add its reservation, which per-host pools never use).
///
/// `pub` in a private module: it is part of [`ClientStack`](super::ClientStack)'s service
/// and future types, never nameable from outside.
#[allow(unreachable_pub)]
pub struct HostGate<S> {
    pub(crate) inner: S,
    breakers: Breakers,
    pools: Arc<PoolShared<ByAuthority>>,
    classifier: HttpStatus,
}

impl<S: Clone> Clone for HostGate<S> {
    /// The inner service cloned last, so that it is written in place (cloned first, it
    /// would be moved in: a copy of the whole service per clone).
    #[inline]
    fn clone(&self) -> Self {
        HostGate {
            breakers: self.breakers.clone(),
            pools: Arc::clone(&self.pools),
            classifier: self.classifier,
            inner: self.inner.clone(),
        }
    }
}

impl<S> HostGate<S> {
    /// The gate of a per-host breaker around a per-host pool, as the layers built them.
    pub(crate) fn new(breaker: CircuitBreaker<PoolLimit<S>, ByAuthority, HttpStatus>) -> Self {
        let (pool, breakers, classifier) = breaker.into_parts();
        let (inner, pools) = pool.into_parts();
        HostGate {
            inner,
            breakers,
            pools,
            classifier,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for HostGate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostGate")
            .field("inner", &self.inner)
            .field("breakers", &self.breakers)
            .field("pools", &self.pools)
            .finish()
    }
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
        // The pools are per host: nothing is reserved before the request is seen.
        self.inner.poll_ready(cx).map_err(|err| {
            crate::classify::Failure::boxed_at(err.into(), crate::classify::Stage::Request)
        })
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The host is read and hashed at most once, and only if a map must be searched (the
        // thread's last breaker and pool are another host's, or gone).
        let uri = request.uri();
        let hashed = OnceCell::new();
        let lookup = || hashed.get_or_init(|| Hashed::new(HostRef::of(uri))).clone();
        // The request is moved straight into the inner call (a closure per layer would
        // copy it once more each).
        match self.breakers.admit_host(uri, lookup) {
            Admission::Call(ticket) => {
                // A rejected call never waits for a permit: the pool sits inside the breaker.
                let acquired = self.pools.acquire_host(uri, lookup);
                let probe = ticket.is_probe().then(ProbeCall::enter);
                let future = match acquired {
                    Ok(permit) => PoolFuture::called(
                        self.inner.call(request),
                        permit,
                        self.pools.release_on_body_end(),
                    ),
                    Err(pool) => self.pools.call_full(&mut self.inner, request, pool),
                };
                drop(probe);
                BreakerFuture::called(future, ticket, self.classifier)
            }
            Admission::Reject(error) => BreakerFuture::rejected(error, self.classifier),
        }
    }
}
