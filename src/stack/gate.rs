//! The preset's per-host breaker and pool as one service: the request's host compared once
//! per call with the thread's last host, for both maps, and read and hashed once for both
//! when the maps must be searched.

mod future;

use crate::{
    circuit_breaker::{
        Admission, Breakers, CircuitBreaker, HttpStatus, KeptBreaker, ProbeCall, Shared, Ticket,
    },
    internal::{lru::Hashed, recent::Recent, sync::thread_local_const},
    key::{ByAuthority, HostRef},
    pool::{KeptPool, Permit, Pool, PoolBody, PoolLimit, PoolShared},
    BoxError,
};
use future::ResponseFuture as GateFuture;
use http::{Request, Response, Uri};
use http_body::Body;
use std::{
    cell::RefCell,
    fmt,
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// `CircuitBreaker<PoolLimit<S>>` with one lookup of the host per call: the breaker and
/// the pool behave, count and report as the two layers do (the same maps, handles and
/// futures), but the request's authority is compared with the thread's last host once, and
/// read and hashed once when the maps are searched, not once per layer.
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

/// Calls the gate's inner service with the call's ticket and its pool's permit (or, the
/// pool full, as the pool's mode says): in `call`'s body, so that the request is not moved
/// once more. A probe, or a full pool, goes out of line: the common call then builds its
/// future in place, with no probe's mark to end after the inner call.
macro_rules! admitted {
    ($gate:ident, $request:ident, $ticket:ident, $acquired:ident) => {{
        match $acquired {
            Ok(permit) if !$ticket.is_probe() => GateFuture::called(
                $gate.inner.call($request),
                permit,
                $ticket,
                $gate.classifier,
                $gate.pools.release_on_body_end(),
            ),
            acquired => $gate.call_marked($request, $ticket, acquired),
        }
    }};
}

impl<S, B, ResB> Service<Request<B>> for HostGate<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: Body,
{
    type Response = Response<PoolBody<ResB>>;
    type Error = BoxError;
    type Future = GateFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pools are per host: nothing is reserved before the request is seen.
        self.inner.poll_ready(cx).map_err(|err| {
            crate::classify::Failure::boxed_at(err.into(), crate::classify::Stage::Request)
        })
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The ticket and the permit are used where `pass_kept` put them, and the request is
        // moved straight into the inner call (a closure per layer, or a function taking
        // it, would copy it once more each).
        match self.pass_kept(request.uri()) {
            Passage::Admitted(ticket, acquired) => admitted!(self, request, ticket, acquired),
            Passage::Rejected(error) => GateFuture::rejected(error, self.classifier),
            missed => self.call_missed(request, missed),
        }
    }
}

impl<S> HostGate<S> {
    /// [`call`](Service::call) for a probe (marked as one while the inner service is
    /// called) or a call whose pool is full.
    #[inline(never)]
    fn call_marked<B, ResB>(
        &mut self,
        request: Request<B>,
        ticket: Ticket,
        acquired: Result<Permit, Arc<Pool>>,
    ) -> GateFuture<S, B>
    where
        S: Service<Request<B>, Response = Response<ResB>> + Clone,
        S::Error: Into<BoxError>,
    {
        // A rejected call never waits for a permit: the pool sits inside the breaker.
        let probe = ticket.is_probe().then(ProbeCall::enter);
        let release = self.pools.release_on_body_end();
        let future = match acquired {
            Ok(permit) => GateFuture::called(
                self.inner.call(request),
                permit,
                ticket,
                self.classifier,
                release,
            ),
            Err(pool) => GateFuture::full(
                self.pools.call_full(&mut self.inner, request, pool),
                ticket,
                self.classifier,
                release,
            ),
        };
        drop(probe);
        future
    }

    /// [`call`](Service::call) when the thread's last host did not serve: what is left is
    /// looked up (out of line, so that the common call stays short).
    #[inline(never)]
    fn call_missed<B, ResB>(&mut self, request: Request<B>, missed: Passage) -> GateFuture<S, B>
    where
        S: Service<Request<B>, Response = Response<ResB>> + Clone,
        S::Error: Into<BoxError>,
    {
        let uri = request.uri();
        let passage = match missed {
            Passage::PoolMissed(ticket, breaker) => self.pass_pool(uri, ticket, breaker),
            _ => self.pass_keeping(uri),
        };
        match passage {
            Passage::Admitted(ticket, acquired) => admitted!(self, request, ticket, acquired),
            Passage::Rejected(error) => GateFuture::rejected(error, self.classifier),
            Passage::Missed | Passage::PoolMissed(..) => unreachable!("both maps were searched"),
        }
    }
}

// ===== one host, one lookup =====

/// A call's way through the gate: admitted by its host's breaker, with a permit of its
/// host's pool (or the pool, full), or rejected.
enum Passage {
    Admitted(Ticket, Result<Permit, Arc<Pool>>),
    Rejected(BoxError),
    /// The thread's last host is another, or its breaker left the map: both maps are
    /// searched next.
    Missed,
    /// The thread's last host's breaker admitted the call, but its pool left the map: it
    /// is searched next.
    PoolMissed(Ticket, KeptBreaker),
}

/// What a thread keeps of the host it called last through a gate (see
/// [`recent`](crate::internal::recent)): the host's breaker and pool, so that the next call
/// to that host compares its authority once for both and searches neither map. The
/// [`Recent`]'s map is the breakers'.
struct Kept {
    /// The pools' map among all others.
    pools: u64,
    breaker: KeptBreaker,
    pool: KeptPool,
}

thread_local_const! {
    /// A thread's last host through a gate with per-host breakers.
    static KEPT: RefCell<Option<Recent<Kept>>> = const { RefCell::new(None) };
}

impl<S> HostGate<S> {
    /// The breaker's decision and the pool's permit for a call to `uri` through the
    /// thread's last host, if it is `uri`'s and its breaker and pool are still in their
    /// maps; else what is left to look up ([`Passage::Missed`], [`Passage::PoolMissed`]).
    #[inline(always)]
    fn pass_kept(&self, uri: &Uri) -> Passage {
        let map = match &self.breakers {
            Breakers::Keyed(map) => map,
            Breakers::Single(shared) => return self.pass_one_breaker(shared, uri),
        };
        let passage = KEPT.try_with(|slot| {
            let Ok(slot) = slot.try_borrow() else {
                return Passage::Missed;
            };
            let Some(kept) = slot.as_ref() else {
                return Passage::Missed;
            };
            if kept.entry.pools != self.pools.pools_id() || !kept.hit(map.id(), uri) {
                return Passage::Missed;
            }
            // One hash for both maps (one hasher): see `lru::Hashed`.
            if kept.due()
                && !(map.touch(kept.hash(), &kept.entry.breaker)
                    && self.pools.touch(kept.hash(), &kept.entry.pool))
            {
                return Passage::Missed;
            }
            // Under a shared borrow: if a transition's events run a user's code that calls
            // again, that call finds the slot borrowed and leaves it as it is.
            match map.admit_kept(&kept.entry.breaker) {
                Some(Admission::Call(ticket)) => match self.pools.acquire_kept(&kept.entry.pool) {
                    Some(acquired) => Passage::Admitted(ticket, acquired),
                    // The breaker counts the call already: only the pool is looked up again.
                    None => Passage::PoolMissed(ticket, kept.entry.breaker.clone()),
                },
                Some(Admission::Reject(error)) => Passage::Rejected(error),
                None => Passage::Missed,
            }
        });
        passage.unwrap_or_else(|_| Passage::Missed)
    }

    /// [`pass_kept`](Self::pass_kept) missed: through the maps, with the host read and
    /// hashed once for both, then kept as the thread's last if its breaker admits the call.
    #[inline(never)]
    fn pass_keeping(&self, uri: &Uri) -> Passage {
        let Breakers::Keyed(map) = &self.breakers else {
            unreachable!("one breaker for every host passes in `pass_kept`");
        };
        let key = Hashed::new(HostRef::of(uri));
        match map.admit_keeping(key.clone()) {
            (Admission::Call(ticket), breaker, hash) => {
                let pool = self.pools.acquire_keeping(key);
                self.keep(map.id(), hash, uri, ticket, breaker, pool)
            }
            (Admission::Reject(error), ..) => Passage::Rejected(error),
        }
    }

    /// The thread's last host's breaker admitted the call, but its pool has left the map.
    #[inline(never)]
    fn pass_pool(&self, uri: &Uri, ticket: Ticket, breaker: KeptBreaker) -> Passage {
        let Breakers::Keyed(map) = &self.breakers else {
            unreachable!("one breaker for every host passes in `pass_kept`");
        };
        let key = Hashed::new(HostRef::of(uri));
        let hash = key.hash();
        let pool = self.pools.acquire_keeping(key);
        self.keep(map.id(), hash, uri, ticket, breaker, pool)
    }

    /// Keeps `uri`'s host's breaker and pool as the thread's last.
    fn keep(
        &self,
        map: u64,
        hash: u64,
        uri: &Uri,
        ticket: Ticket,
        breaker: KeptBreaker,
        (acquired, pool): (Result<Permit, Arc<Pool>>, KeptPool),
    ) -> Passage {
        let kept = Kept {
            pools: self.pools.pools_id(),
            breaker,
            pool,
        };
        let recent = Recent::new(map, hash, uri, kept);
        let _ = KEPT.try_with(|slot| Recent::keep(slot, recent));
        Passage::Admitted(ticket, acquired)
    }

    /// [`pass_kept`](Self::pass_kept) with one breaker for every host (`per_host(false)`): the
    /// pool's own cache of the thread's last host.
    #[inline(never)]
    fn pass_one_breaker(&self, shared: &Shared, uri: &Uri) -> Passage {
        match shared.admit() {
            Admission::Call(ticket) => {
                let lookup = || Hashed::new(HostRef::of(uri));
                Passage::Admitted(ticket, self.pools.acquire_host(uri, lookup))
            }
            Admission::Reject(error) => Passage::Rejected(error),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The thread's last host through the gate: each host's calls reach its own breaker and
    //! pool, and a breaker or pool that left its map is never used through the cache.

    use crate::{circuit_breaker::CircuitBreakerLayer, key::HostKey, stack::ClientConfig};
    use bytes::Bytes;
    use http::{Request, Response, Uri};
    use http_body_util::Full;
    use std::{
        convert::Infallible,
        task::{Context, Poll},
    };
    use tower::{Layer, Service, ServiceExt};

    /// A response whose body holds its pool's permit until it is dropped.
    fn ok() -> impl Service<
        Request<String>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
           + Send
           + 'static {
        tower::service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
    }

    fn get(host: &str) -> Request<String> {
        Request::get(format!("http://{host}/"))
            .body(String::new())
            .unwrap()
    }

    fn key(host: &str) -> HostKey {
        HostKey::from_uri(&format!("http://{host}/").parse::<Uri>().unwrap())
    }

    /// Calls in flight (bodies held) and calls counted, of `host`'s pool and breaker.
    fn figures(layer: &crate::stack::ClientStackLayer, host: &str) -> (Option<usize>, u64) {
        let in_use = layer
            .pool_handle()
            .snapshot()
            .pools
            .iter()
            .find(|pool| pool.key.as_deref() == Some(&format!("http://{host}:80")))
            .map(|pool| pool.in_use);
        let calls = layer
            .breaker_handle()
            .get(&key(host))
            .map_or(0, |breaker| breaker.figures().calls());
        (in_use, calls)
    }

    #[tokio::test]
    async fn hosts_called_in_turn_each_reach_their_own_breaker_and_pool() {
        let layer = ClientConfig::default().pool_maxsize(1000).build().unwrap();
        let svc = layer.layer(ok());
        // A run long enough to go through the maps again (every `REFRESH` calls), then the
        // hosts in turn, most calls missing the thread's last host (within the breakers'
        // count window of 100 calls per host).
        let mut hosts = vec!["a.test"; 70];
        hosts.extend(["b.test", "a.test", "c.test", "b.test", "b.test", "a.test"].repeat(10));
        let mut held = Vec::new();
        for host in &hosts {
            held.push(svc.clone().oneshot(get(host)).await.unwrap());
        }
        for host in ["a.test", "b.test", "c.test"] {
            let count = hosts.iter().filter(|h| **h == host).count();
            assert_eq!(figures(&layer, host), (Some(count), count as u64), "{host}");
        }
        drop(held);
        assert_eq!(layer.pool_handle().snapshot().total.in_use, 0);
    }

    /// Calls `host` on another thread (whose last host is another), and waits for the
    /// response.
    fn call_elsewhere(svc: &impl ServiceFor, host: &'static str) {
        let svc = svc.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            drop(rt.block_on(svc.oneshot(get(host))).unwrap());
        })
        .join()
        .unwrap();
    }

    trait ServiceFor:
        Service<Request<String>, Future: Send, Error: std::fmt::Debug, Response: Send>
        + Clone
        + Send
        + 'static
    {
    }

    impl<S> ServiceFor for S where
        S: Service<Request<String>, Future: Send, Error: std::fmt::Debug, Response: Send>
            + Clone
            + Send
            + 'static
    {
    }

    #[tokio::test]
    async fn an_evicted_breaker_and_pool_are_not_used_through_the_threads_last_host() {
        let layer = ClientConfig::default()
            .circuit_breaker(CircuitBreakerLayer::builder().max_keys(1))
            .max_pools(1)
            .build()
            .unwrap();
        let svc = layer.layer(ok());
        drop(svc.clone().oneshot(get("a.test")).await.unwrap());
        assert_eq!(figures(&layer, "a.test"), (Some(0), 1));
        // Another thread's call to b evicts a's breaker and pool (both idle): this
        // thread's last host is still a.
        call_elsewhere(&svc, "b.test");
        assert_eq!(figures(&layer, "a.test"), (None, 0), "a evicted");
        // a's new breaker and pool take the call, not the evicted ones.
        let held = svc.clone().oneshot(get("a.test")).await.unwrap();
        assert_eq!(figures(&layer, "a.test"), (Some(1), 1));
        drop(held);
    }

    /// Two hosts at most in each map: a called on this thread, then b on another, then a
    /// `a_calls` times more on this thread (its last host), then c on another, which
    /// evicts the least recently used host of each map. A map search stamps a host as
    /// used; a call served from the thread's last host does not, but one in `REFRESH`
    /// touches it: which host c evicts shows which of a's calls searched the maps.
    async fn a_then_b_then_a_then_c(a_calls: u32) -> crate::stack::ClientStackLayer {
        let layer = ClientConfig::default()
            .circuit_breaker(CircuitBreakerLayer::builder().max_keys(2))
            .max_pools(2)
            .build()
            .unwrap();
        let svc = layer.layer(ok());
        drop(svc.clone().oneshot(get("a.test")).await.unwrap());
        call_elsewhere(&svc, "b.test");
        for _ in 0..a_calls {
            drop(svc.clone().oneshot(get("a.test")).await.unwrap());
        }
        call_elsewhere(&svc, "c.test");
        layer
    }

    #[tokio::test]
    async fn a_host_called_through_the_cache_stays_recently_used() {
        // One of a's calls through the cache stamps it: b is evicted.
        let layer = a_then_b_then_a_then_c(crate::internal::recent::REFRESH + 1).await;
        assert_eq!(figures(&layer, "b.test"), (None, 0), "b evicted");
        let (in_use, calls) = figures(&layer, "a.test");
        assert_eq!((in_use, calls), (Some(0), 66), "a kept");
    }

    #[tokio::test]
    async fn calls_through_the_threads_last_host_search_neither_map() {
        // Three calls through the cache stamp nothing: a is evicted.
        let layer = a_then_b_then_a_then_c(3).await;
        assert_eq!(figures(&layer, "a.test"), (None, 0), "a evicted");
        // (Another thread's calls are counted in its lane of b's breaker: b is there.)
        assert_eq!(figures(&layer, "b.test").0, Some(0), "b's pool kept");
        assert!(
            layer.breaker_handle().get(&key("b.test")).is_some(),
            "b's breaker kept"
        );
    }

    /// The inner service: tower-test's mock, its readiness as its handle sets it.
    type Mock = tower_test::mock::Mock<Request<String>, Response<Full<Bytes>>>;

    #[test]
    fn the_inner_services_readiness_reaches_the_caller() {
        let (mock, mut handle): (Mock, _) = tower_test::mock::pair();
        handle.allow(0);
        let layer = ClientConfig::default().build().unwrap();
        let mut svc = layer.layer(mock);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(svc.poll_ready(&mut cx).is_pending(), "pending below");
        handle.send_error("no connection");
        let Poll::Ready(Err(err)) = svc.poll_ready(&mut cx) else {
            panic!("the inner service's error is not the caller's");
        };
        let failure = err.downcast_ref::<crate::classify::Failure>().unwrap();
        assert_eq!(failure.stage(), crate::classify::Stage::Request);
        assert!(format!("{err:?}").contains("no connection"), "{err:?}");
        handle.allow(1);
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    }

    #[test]
    fn the_gate_and_its_future_say_what_they_hold() {
        let (mock, mut handle): (Mock, _) = tower_test::mock::pair();
        handle.allow(1);
        let layer = ClientConfig::default().build().unwrap();
        let mut gate = layer.layer(mock).inner.get_ref().clone();
        let gate_text = format!("{gate:?}");
        for field in ["HostGate", "Mock", "breakers", "pools"] {
            assert!(gate_text.contains(field), "{field} in {gate_text}");
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(gate.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let future = gate.call(get("a.test"));
        let future_text = format!("{future:?}");
        for field in ["ResponseFuture", "state", "ticket"] {
            assert!(future_text.contains(field), "{field} in {future_text}");
        }
    }

    /// The gate's own service (under the retry layer) over `ok`, with its layer.
    fn gate(
        config: ClientConfig,
    ) -> (
        crate::stack::ClientStackLayer,
        impl ServiceFor<
            Response = http::Response<crate::pool::PoolBody<Full<Bytes>>>,
            Error = crate::BoxError,
        >,
    ) {
        let layer = config.build().unwrap();
        let gate = layer.layer(ok()).inner.get_ref().clone();
        (layer, gate)
    }

    fn kind(err: &crate::BoxError) -> Option<crate::classify::FailureKind> {
        err.downcast_ref::<crate::classify::Failure>()
            .map(crate::classify::Failure::kind)
    }

    #[tokio::test]
    async fn a_rejected_call_fails_with_the_breakers_error_and_takes_no_permit() {
        let (layer, gate) = gate(ClientConfig::default());
        drop(gate.clone().oneshot(get("a.test")).await.unwrap());
        layer
            .breaker_handle()
            .get(&key("a.test"))
            .unwrap()
            .force_open();
        let err = gate.clone().oneshot(get("a.test")).await.unwrap_err();
        assert_eq!(kind(&err), Some(crate::classify::FailureKind::CircuitOpen));
        // Forced open, the breaker counts from zero again; the rejection is not a call.
        assert_eq!(figures(&layer, "a.test"), (Some(0), 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_for_its_pool_goes_through_or_times_out_uncounted() {
        let config = ClientConfig::default()
            .pool_maxsize(1)
            .pool_timeout(Some(std::time::Duration::from_secs(1)));
        let (layer, gate) = gate(config);
        let held = gate.clone().oneshot(get("a.test")).await.unwrap();
        assert!(held.body().holds_permit());
        // The pool full: the call waits, then times out, which the breaker does not count
        // (the backend was never called).
        let err = gate.clone().oneshot(get("a.test")).await.unwrap_err();
        assert_eq!(kind(&err), Some(crate::classify::FailureKind::PoolTimeout));
        let (_, timed_out) = figures(&layer, "a.test");
        assert_eq!(timed_out, 1, "the pool's timeout is not the host's failure");
        // A call that waits gets the permit given back by the body, then is called.
        let waiting = tokio::spawn(gate.clone().oneshot(get("a.test")));
        tokio::task::yield_now().await;
        drop(held);
        let response = waiting.await.unwrap().unwrap();
        assert!(response.body().holds_permit());
        assert_eq!(figures(&layer, "a.test"), (Some(1), timed_out + 1));
        drop(response);
        assert_eq!(figures(&layer, "a.test").0, Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_is_marked_as_one_while_the_inner_service_is_called() {
        use crate::circuit_breaker::is_probe_call;
        // 503 while the flag says so, and the inner call's probe mark in a header.
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let inner = {
            let failing = std::sync::Arc::clone(&failing);
            tower::service_fn(move |_: Request<String>| {
                let status = if failing.load(std::sync::atomic::Ordering::Relaxed) {
                    503
                } else {
                    200
                };
                let response = Response::builder()
                    .status(status)
                    .header("probe", if is_probe_call() { "1" } else { "0" })
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                async move { Ok::<_, Infallible>(response) }
            })
        };
        let layer = ClientConfig::default()
            .circuit_breaker(CircuitBreakerLayer::builder().minimum_calls(1))
            .build()
            .unwrap();
        let gate = layer.layer(inner).inner.get_ref().clone();
        let first = gate.clone().oneshot(get("a.test")).await.unwrap();
        assert_eq!(first.headers()["probe"], "0");
        assert!(gate.clone().oneshot(get("a.test")).await.is_err(), "open");
        tokio::time::advance(std::time::Duration::from_secs(600)).await;
        failing.store(false, std::sync::atomic::Ordering::Relaxed);
        let probe = gate.clone().oneshot(get("a.test")).await.unwrap();
        assert_eq!(probe.headers()["probe"], "1");
        assert!(!is_probe_call());
    }

    #[tokio::test]
    async fn an_evicted_pool_is_looked_up_again_under_a_breaker_still_kept() {
        let layer = ClientConfig::default().max_pools(1).build().unwrap();
        let svc = layer.layer(ok());
        drop(svc.clone().oneshot(get("a.test")).await.unwrap());
        // b's call evicts a's pool (idle), not its breaker (the map holds many).
        call_elsewhere(&svc, "b.test");
        assert_eq!(figures(&layer, "a.test"), (None, 1));
        let held = svc.clone().oneshot(get("a.test")).await.unwrap();
        assert_eq!(
            figures(&layer, "a.test"),
            (Some(1), 2),
            "a's new pool holds it"
        );
        drop(held);
        assert_eq!(figures(&layer, "a.test"), (Some(0), 2));
    }
}
