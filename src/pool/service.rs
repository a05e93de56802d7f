use super::{
    body::PoolBody,
    future::{GenericResponseFuture, ResponseFuture},
    handle::{PoolHandle, PoolSnapshot, PoolStats, Source},
    keyed::Keyed,
    permit::{deadline, Core, Mode, Pool},
    reserve::Reserver,
};
#[cfg(feature = "stack")]
use super::{keyed::KeptPool, permit::Permit};
use crate::{
    classify::{Failure, Stage},
    key::{ByAuthority, HostRef, RequestKey, RequestLookup},
    BoxError,
};
use http::{Request, Response};
use http_body::Body;
use std::{
    fmt,
    sync::{atomic::Ordering, Arc},
    task::{Context, Poll},
};
use tokio::time::Instant;
use tower_service::Service;

/// What every service of a layer, and every clone, shares: settings, metric handles, pools.
pub(crate) struct Shared<K> {
    pub(crate) core: Arc<Core>,
    pub(crate) pools: Pools<K>,
}

pub(crate) enum Pools<K> {
    Single(Arc<Pool>),
    Keyed { key: K, pools: Keyed },
}

impl<K> fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Shared");
        d.field("core", &self.core);
        match &self.pools {
            Pools::Single(pool) => d.field("pool", pool),
            Pools::Keyed { pools, .. } => d.field("pools", pools),
        };
        d.finish()
    }
}

impl<K: Send + Sync + 'static> Shared<K> {
    /// The shared state of a layer just built: its gauges' refresher reads its pools.
    pub(crate) fn new(core: Arc<Core>, pools: Pools<K>) -> Arc<Self> {
        let shared = Arc::new(Shared { core, pools });
        #[cfg(feature = "metrics")]
        {
            let source: Arc<dyn Source> = Arc::clone(&shared) as Arc<dyn Source>;
            shared
                .core
                .instruments
                .refresh
                .set_source(Arc::downgrade(&source));
        }
        shared
    }
}

impl<K> Shared<K> {
    /// Every pool of the layer now.
    fn pools_now(&self) -> Vec<Arc<Pool>> {
        match &self.pools {
            Pools::Single(pool) => vec![Arc::clone(pool)],
            Pools::Keyed { pools, .. } => pools.pools(),
        }
    }
}

impl<K: Send + Sync + 'static> Source for Shared<K> {
    fn snapshot(&self) -> PoolSnapshot {
        let pools = self.pools_now();
        // A scrape handler that takes a snapshot first exports exact gauges.
        #[cfg(feature = "metrics")]
        self.core.publish_totals(&pools);
        let pools: Vec<PoolStats> = pools.iter().map(|pool| pool.stats()).collect();
        let mut total = PoolStats::default();
        for pool in &pools {
            total.add_current(pool);
        }
        let totals = &self.core.totals;
        total.overflowed = totals.overflowed.load(Ordering::Relaxed);
        total.timed_out = totals.timed_out.load(Ordering::Relaxed);
        total.rejected = totals.rejected.load(Ordering::Relaxed);
        total.leaked = totals.leaked.load(Ordering::Relaxed);
        PoolSnapshot {
            name: self.core.name,
            total,
            pools,
        }
    }

    #[cfg(feature = "metrics")]
    fn publish_gauges(&self) {
        self.core.publish_totals(&self.pools_now());
    }

    #[cfg(feature = "metrics")]
    fn gauges_per_call(&self) {
        for pool in self.pools_now() {
            pool.gauges_per_call();
        }
    }
}

/// Limits the calls in flight to an HTTP service, the way urllib3 sizes its connection
/// pools: `maxsize` permits per pool, one pool per host by default, and at the limit, wait
/// (`block`), overflow, or fail fast. See the [module docs](super).
///
/// Built by a [`PoolLimitLayer`](super::PoolLimitLayer); the pools belong to the layer and are **shared by all
/// clones** of every service it built.
///
/// A call's permit is held until its response body ends or is dropped ([`PoolBody`]),
/// because that is when the connection is free again.
///
/// With a single pool (`per_host(false)`), `poll_ready` reserves the permit (in `block`
/// mode it waits there, FIFO, up to `pool_timeout`), and `call` takes it. Per host, the
/// pool is only known from the request, so `poll_ready` drives the inner service alone and
/// the call waits for its host's permit in its [`ResponseFuture`].
///
/// Errors come back as a classified [`Failure`](crate::classify::Failure): of kind
/// [`PoolTimeout`](crate::classify::FailureKind::PoolTimeout) or
/// [`PoolFull`](crate::classify::FailureKind::PoolFull) when the pool refused the call, or
/// the inner service's error classified at the request stage.
///
/// # Clone
///
/// A clone shares the pools but not the reservation: it starts without a permit (a
/// reservation made by `poll_ready` is never copied), and needs its own `poll_ready`.
///
/// # Cancel safety
///
/// Dropping the service gives back its reservation, or leaves the queue it waits in.
///
/// ```
/// use std::time::Duration;
/// use tower::{Service, ServiceExt};
/// use tower_fortify::pool::PoolLimit;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let inner = tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let mut svc = PoolLimit::new(inner, 10)?;
/// let response = svc.ready().await?.call(http::Request::new(())).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(())
/// # }
/// ```
pub struct PoolLimit<S, K = ByAuthority> {
    inner: S,
    shared: Arc<Shared<K>>,
    reserver: Reserver,
}

impl<S, K> fmt::Debug for PoolLimit<S, K>
where
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolLimit")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .field("reserver", &self.reserver)
            .finish()
    }
}

impl<S: Clone, K> Clone for PoolLimit<S, K> {
    fn clone(&self) -> Self {
        // A reservation is one call's: a clone starts without one.
        PoolLimit {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            reserver: Reserver::new(),
        }
    }
}

impl<S, K> PoolLimit<S, K> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<K>>) -> Self {
        PoolLimit {
            inner,
            shared,
            reserver: Reserver::new(),
        }
    }

    /// A handle on the pools (see [`PoolHandle`]).
    ///
    /// ```
    /// let svc = tower_fortify::pool::PoolLimit::new((), 4)?;
    /// assert_eq!(svc.handle().snapshot().total.in_use, 0);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn handle(&self) -> PoolHandle
    where
        K: Send + Sync + 'static,
    {
        PoolHandle::new(Arc::clone(&self.shared) as Arc<dyn Source>)
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// let svc = tower_fortify::pool::PoolLimit::new("inner", 4)?;
    /// assert_eq!(*svc.get_ref(), "inner");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// ```
    /// let mut svc = tower_fortify::pool::PoolLimit::new("inner", 4)?;
    /// *svc.get_mut() = "replaced";
    /// assert_eq!(*svc.get_ref(), "replaced");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service (and giving back any reservation).
    ///
    /// ```
    /// let svc = tower_fortify::pool::PoolLimit::new("inner", 4)?;
    /// assert_eq!(svc.into_inner(), "inner");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, K, B, ResB> Service<Request<B>> for PoolLimit<S, K>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    K: RequestKey<B>,
    ResB: Body,
{
    type Response = Response<PoolBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &self.shared.pools {
            Pools::Single(pool) => {
                self.reserver
                    .poll_ready::<S, Request<B>>(pool, &mut self.inner, cx)
            }
            // A keyed call waits for its host's permit in its future: nothing is reserved.
            Pools::Keyed { .. } => self
                .inner
                .poll_ready(cx)
                .map_err(|err| Failure::boxed_at(err.into(), Stage::Request)),
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match &self.shared.pools {
            Pools::Single(pool) => {
                let release = self.shared.core.release_on_body_end;
                match self.reserver.take(pool) {
                    Ok(permit) => ResponseFuture::called(self.inner.call(request), permit, release),
                    Err(error) => ResponseFuture::failed(error),
                }
            }
            Pools::Keyed { key, pools } => {
                let core = &self.shared.core;
                let acquired = if key.by_authority() {
                    let uri = request.uri();
                    pools.try_acquire_recent(uri, || HostRef::of(uri), core)
                } else {
                    pools.try_acquire(RequestLookup::of(key, &request), core)
                };
                // Matched here, so that the request moves once, straight into the inner call:
                // through a function taking it, it was copied twice (its argument, then the
                // inner call's).
                match acquired {
                    Ok(permit) => ResponseFuture::called(
                        self.inner.call(request),
                        permit,
                        core.release_on_body_end,
                    ),
                    Err(pool) => self.shared.call_full(&mut self.inner, request, pool),
                }
            }
        }
    }
}

impl<K> Shared<K> {
    /// The permit of the pool of `uri`'s host, for the preset: the thread's last pool, or
    /// `lookup` (hashed once for its breaker and pool, [`stack`](crate::stack)). The
    /// preset's pools are per host.
    #[cfg(feature = "stack")]
    #[inline(always)]
    pub(crate) fn acquire_host<'a>(
        &self,
        uri: &http::Uri,
        lookup: impl FnOnce() -> crate::internal::lru::Hashed<HostRef<'a>>,
    ) -> Result<Permit, Arc<Pool>> {
        match &self.pools {
            Pools::Single(_) => unreachable!("the preset's pools are per host"),
            Pools::Keyed { pools, .. } => pools.try_acquire_recent(uri, lookup, &self.core),
        }
    }

    /// The preset's per-host pools.
    #[cfg(feature = "stack")]
    #[inline(always)]
    fn keyed(&self) -> &Keyed {
        match &self.pools {
            Pools::Single(_) => unreachable!("the preset's pools are per host"),
            Pools::Keyed { pools, .. } => pools,
        }
    }

    /// The map of the preset's pools among all others (for the gate's cache of the
    /// thread's last host).
    #[cfg(feature = "stack")]
    #[inline(always)]
    pub(crate) fn pools_id(&self) -> u64 {
        self.keyed().id()
    }

    /// A permit of a pool the thread kept, if that pool is still in the map.
    #[cfg(feature = "stack")]
    #[inline(always)]
    pub(crate) fn acquire_kept(&self, kept: &KeptPool) -> Option<Result<Permit, Arc<Pool>>> {
        self.keyed().try_acquire_kept(kept)
    }

    /// A permit of `key`'s pool (created if needed), or the pool if it has none free, and
    /// the pool as the thread keeps it.
    #[cfg(feature = "stack")]
    #[inline]
    pub(crate) fn acquire_keeping(
        &self,
        key: impl crate::internal::lru::Lookup<crate::key::MapKey>,
    ) -> (Result<Permit, Arc<Pool>>, KeptPool) {
        let (acquired, kept, _) = self.keyed().try_acquire_keeping(key, &self.core);
        (acquired, kept)
    }

    /// Stamps a pool the thread kept as used, if it is still in the map.
    #[cfg(feature = "stack")]
    #[inline]
    pub(crate) fn touch(&self, hash: u64, kept: &KeptPool) -> bool {
        self.keyed().touch(hash, kept)
    }

    /// Whether a response's body holds the permit until it ends.
    #[cfg(feature = "stack")]
    #[inline(always)]
    pub(crate) fn release_on_body_end(&self) -> bool {
        self.core.release_on_body_end
    }

    /// A per-host call when its host's pool is full: as the pool's mode says.
    #[inline(never)]
    pub(crate) fn call_full<S, B, ResB>(
        &self,
        inner: &mut S,
        request: Request<B>,
        pool: Arc<Pool>,
    ) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>, Response = Response<ResB>> + Clone,
        S::Error: Into<BoxError>,
    {
        let release = self.core.release_on_body_end;
        pool.on_full();
        match self.core.mode {
            Mode::Overflow => {
                let permit = pool.overflow();
                ResponseFuture::called(inner.call(request), permit, release)
            }
            Mode::FailFast => ResponseFuture::failed(pool.rejected()),
            Mode::Block(timeout) => {
                // Wait for the host's permit in the future, then call the service that was
                // driven to readiness; keep a clone for the next call.
                let now = Instant::now();
                let clone = inner.clone();
                let service = std::mem::replace(inner, clone);
                let timer = timeout
                    .and_then(|timeout| deadline(now, timeout))
                    .map(tokio::time::sleep_until);
                ResponseFuture::waiting(pool.acquire(now), timer, service, request, release)
            }
        }
    }
}

impl<S, K> PoolLimit<S, K> {
    /// The inner service and the pools, for the preset's gate (which calls through
    /// [`Shared::call_full`] itself).
    #[cfg(feature = "stack")]
    pub(crate) fn into_parts(self) -> (S, Arc<Shared<K>>) {
        (self.inner, self.shared)
    }
}

// ===== GenericPoolLimit =====

/// Limits the calls in flight to any service, with one pool: the same modes as
/// [`PoolLimit`], for requests that are not HTTP (a connector, a database client, a gRPC
/// channel). The permit is given back when the response future completes.
///
/// Built by a [`GenericPoolLimitLayer`](super::GenericPoolLimitLayer); its pool is
/// **shared by all clones** of every service the layer built.
///
/// `poll_ready` reserves the permit (in `block` mode it waits there, FIFO, up to
/// `pool_timeout`), and `call` takes it.
///
/// # Clone
///
/// A clone shares the pool but not the reservation: it needs its own `poll_ready`.
///
/// # Cancel safety
///
/// Dropping the service gives back its reservation, or leaves the queue it waits in.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::pool::GenericPoolLimit;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let inner = tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) });
/// let mut svc = GenericPoolLimit::new(inner, 4)?;
/// assert_eq!(svc.ready().await?.call(21).await?, 42);
/// # Ok(())
/// # }
/// ```
pub struct GenericPoolLimit<S> {
    inner: S,
    pool: Arc<Pool>,
    shared: Arc<Shared<ByAuthority>>,
    reserver: Reserver,
}

impl<S: fmt::Debug> fmt::Debug for GenericPoolLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericPoolLimit")
            .field("inner", &self.inner)
            .field("pool", &self.pool)
            .field("reserver", &self.reserver)
            .finish()
    }
}

impl<S: Clone> Clone for GenericPoolLimit<S> {
    fn clone(&self) -> Self {
        // A reservation is one call's: a clone starts without one.
        GenericPoolLimit {
            inner: self.inner.clone(),
            pool: Arc::clone(&self.pool),
            shared: Arc::clone(&self.shared),
            reserver: Reserver::new(),
        }
    }
}

impl<S> GenericPoolLimit<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<ByAuthority>>) -> Self {
        let pool = match &shared.pools {
            Pools::Single(pool) => Arc::clone(pool),
            Pools::Keyed { .. } => unreachable!("a generic layer has one pool"),
        };
        GenericPoolLimit {
            inner,
            pool,
            shared,
            reserver: Reserver::new(),
        }
    }

    /// A handle on the pool (see [`PoolHandle`]).
    ///
    /// ```
    /// let svc = tower_fortify::pool::GenericPoolLimit::new((), 4)?;
    /// assert_eq!(svc.handle().snapshot().total.max, 4);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn handle(&self) -> PoolHandle {
        PoolHandle::new(Arc::clone(&self.shared) as Arc<dyn Source>)
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// let svc = tower_fortify::pool::GenericPoolLimit::new("inner", 4)?;
    /// assert_eq!(*svc.get_ref(), "inner");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// ```
    /// let mut svc = tower_fortify::pool::GenericPoolLimit::new("inner", 4)?;
    /// *svc.get_mut() = "replaced";
    /// assert_eq!(*svc.get_ref(), "replaced");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service (and giving back any reservation).
    ///
    /// ```
    /// let svc = tower_fortify::pool::GenericPoolLimit::new("inner", 4)?;
    /// assert_eq!(svc.into_inner(), "inner");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for GenericPoolLimit<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = GenericResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.reserver
            .poll_ready::<S, Req>(&self.pool, &mut self.inner, cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.reserver.take(&self.pool) {
            Ok(permit) => GenericResponseFuture::called(self.inner.call(request), permit),
            Err(error) => GenericResponseFuture::failed(error),
        }
    }
}
