use super::{
    adaptive::{self, AdaptiveLimit},
    handle::{PoolHandle, Source},
    keyed::Keyed,
    permit::{Core, Counts, Mode, Pool, NEVER},
    semaphore::MAX_PERMITS,
    service::{Pools, Shared},
    tracker::MAX_TRACKED,
    GenericPoolLimit, PoolLimit,
};
use crate::{
    key::{ByAuthority, KeyBy},
    InvalidConfig,
};
use http::Request;
use std::{fmt, hash::Hash, sync::Arc, time::Duration};
use tower_layer::Layer;

/// How many pools a per-host layer keeps by default: urllib3's `PoolManager(num_pools=10)`.
///
/// An idle pool here holds no connection, so evicting one changes no limit (unlike urllib3,
/// where it closes keep-alive connections); the bound is about memory. Raise it with
/// [`PoolLimitBuilder::max_pools`] to keep per-host figures in snapshots for more hosts.
///
/// ```
/// assert_eq!(tower_fortify::pool::DEFAULT_MAX_POOLS, 10);
/// ```
pub const DEFAULT_MAX_POOLS: usize = 10;

/// Applies [`PoolLimit`] to HTTP services: urllib3's connection-pool semantics.
///
/// [`builder`](Self::builder)`(maxsize)` starts from urllib3's defaults: `maxsize` permits
/// per host (`PoolManager`), `block=False` (calls over `maxsize` go through, counted as
/// overflow). See the [module docs](super) for the modes.
///
/// The pools are created with the layer and **shared by all clones**: of the layer, of
/// every service it builds, and of those services.
///
/// # Clone
///
/// Clones share the pools, the settings and the metric handles.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_fortify::pool::PoolLimitLayer;
///
/// // urllib3: PoolManager(maxsize=10, block=True) with pool_timeout=5
/// let layer = PoolLimitLayer::builder(10)
///     .block(true)
///     .pool_timeout(Some(Duration::from_secs(5)))
///     .build()?;
/// let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// # let _ = svc;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
pub struct PoolLimitLayer<K = ByAuthority> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for PoolLimitLayer<K> {
    fn clone(&self) -> Self {
        PoolLimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> fmt::Debug for PoolLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolLimitLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S> PoolLimit<S> {
    /// Wraps `inner` with the defaults of [`PoolLimitLayer::builder`]: `maxsize` permits
    /// per host, `block=False`.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming `maxsize` when it is zero.
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimit;
    ///
    /// assert!(PoolLimit::new((), 10).is_ok());
    /// assert_eq!(PoolLimit::new((), 0).unwrap_err().field(), "maxsize");
    /// ```
    pub fn new(inner: S, maxsize: usize) -> Result<Self, InvalidConfig> {
        Ok(tower_layer::Layer::layer(
            &PoolLimitLayer::builder(maxsize).build()?,
            inner,
        ))
    }
}

impl<S> GenericPoolLimit<S> {
    /// Wraps `inner` with one pool of `maxsize` permits, `block=False`.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming `maxsize` when it is zero.
    ///
    /// ```
    /// use tower_fortify::pool::GenericPoolLimit;
    ///
    /// assert_eq!(GenericPoolLimit::new((), 0).unwrap_err().field(), "maxsize");
    /// ```
    pub fn new(inner: S, maxsize: usize) -> Result<Self, InvalidConfig> {
        Ok(tower_layer::Layer::layer(
            &PoolLimitLayer::builder(maxsize).build_generic()?,
            inner,
        ))
    }
}

impl PoolLimitLayer {
    /// A builder for a layer with `maxsize` permits per pool (urllib3's `maxsize`); its
    /// defaults are urllib3's: `block=False`, one pool per host, at most
    /// [`DEFAULT_MAX_POOLS`] idle pools kept.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// let layer = PoolLimitLayer::builder(20)
    ///     .fail_fast()
    ///     .per_host(false)
    ///     .leak_threshold(Some(Duration::from_secs(60)))
    ///     .name("inbound")
    ///     .build()?;
    /// assert_eq!(layer.maxsize(), 20);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn builder(maxsize: usize) -> PoolLimitBuilder {
        PoolLimitBuilder {
            maxsize,
            block: false,
            pool_timeout: None,
            fail_fast: false,
            per_host: None,
            key: ByAuthority,
            key_setter: None,
            max_pools: None,
            release_on_body_end: None,
            leak_threshold: None,
            adaptive: None,
            name: "pool",
        }
    }
}

impl<K: Send + Sync + 'static> PoolLimitLayer<K> {
    /// A handle on the layer's pools: [`snapshot`](PoolHandle::snapshot) for in-use,
    /// waiting, overflow, timeouts and leaks.
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// let layer = PoolLimitLayer::builder(10).build()?;
    /// let handle = layer.handle();
    /// assert_eq!(handle.snapshot().total.waiting, 0);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn handle(&self) -> PoolHandle {
        PoolHandle::new(Arc::clone(&self.shared) as Arc<dyn Source>)
    }

    /// The permits of each pool.
    ///
    /// ```
    /// assert_eq!(tower_fortify::pool::PoolLimitLayer::builder(7).build()?.maxsize(), 7);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.shared.core.maxsize
    }

    /// The `name` label of the layer's metrics and tracing events.
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// assert_eq!(PoolLimitLayer::builder(1).build()?.name(), "pool");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.core.name
    }
}

impl<S, K> Layer<S> for PoolLimitLayer<K> {
    type Service = PoolLimit<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        PoolLimit::from_shared(inner, Arc::clone(&self.shared))
    }
}

/// Applies [`GenericPoolLimit`] to any service: one pool, the permit given back when the
/// response future completes.
///
/// Built by [`PoolLimitBuilder::build_generic`]. The pool is **shared by all clones** of the layer and of every service it
/// builds.
///
/// # Clone
///
/// Clones share the pool, the settings and the metric handles.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::pool::{GenericPoolLimitLayer, PoolLimitLayer};
///
/// let layer: GenericPoolLimitLayer = PoolLimitLayer::builder(8).block(true).build_generic()?;
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|x: u64| async move { Ok::<_, std::io::Error>(x) });
/// # let _ = svc;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone)]
pub struct GenericPoolLimitLayer {
    shared: Arc<Shared<ByAuthority>>,
}

impl fmt::Debug for GenericPoolLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericPoolLimitLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl GenericPoolLimitLayer {
    /// A handle on the pool (see [`PoolHandle`]).
    ///
    /// ```
    /// let layer = tower_fortify::pool::PoolLimitLayer::builder(3).build_generic()?;
    /// assert_eq!(layer.handle().snapshot().total.max, 3);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn handle(&self) -> PoolHandle {
        PoolHandle::new(Arc::clone(&self.shared) as Arc<dyn Source>)
    }

    /// The pool's permits.
    ///
    /// ```
    /// assert_eq!(tower_fortify::pool::PoolLimitLayer::builder(7).build_generic()?.maxsize(), 7);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.shared.core.maxsize
    }

    /// The `name` label of the layer's metrics and tracing events.
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// let layer = PoolLimitLayer::builder(1).name("db").build_generic()?;
    /// assert_eq!(layer.name(), "db");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.core.name
    }
}

impl<S> Layer<S> for GenericPoolLimitLayer {
    type Service = GenericPoolLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GenericPoolLimit::from_shared(inner, Arc::clone(&self.shared))
    }
}

/// Settings of a [`PoolLimitLayer`] (or [`GenericPoolLimitLayer`]), checked together by
/// [`build`](Self::build).
///
/// | setting | urllib3 | default |
/// |---|---|---|
/// | `maxsize` (required) | `maxsize` | |
/// | [`block`](Self::block) | `block` | `false` |
/// | [`pool_timeout`](Self::pool_timeout) | `pool_timeout` / `Timeout(pool=..)` | `None`: wait as long as it takes |
/// | [`fail_fast`](Self::fail_fast) | (none) | off |
/// | [`per_host`](Self::per_host) | `PoolManager` vs `HTTPConnectionPool` | `true` |
/// | [`max_pools`](Self::max_pools) | `num_pools` | [`DEFAULT_MAX_POOLS`] (10) |
/// | [`key`](Self::key), [`key_fn`](Self::key_fn) | `key_fn_by_scheme` | [`ByAuthority`]: the URI's scheme, host and port |
/// | [`release_on_body_end`](Self::release_on_body_end) | `preload_content=False` + `release_conn()` | `true` |
/// | [`leak_threshold`](Self::leak_threshold) | (none) | `None`: off |
/// | [`name`](Self::name) | | `"pool"` |
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::pool::PoolLimitLayer;
///
/// let err = PoolLimitLayer::builder(10)
///     .pool_timeout(Some(Duration::from_secs(1))) // without block(true)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "pool_timeout");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolLimitBuilder<K = ByAuthority> {
    maxsize: usize,
    block: bool,
    pool_timeout: Option<Duration>,
    fail_fast: bool,
    per_host: Option<bool>,
    key: K,
    key_setter: Option<&'static str>,
    max_pools: Option<usize>,
    release_on_body_end: Option<bool>,
    leak_threshold: Option<Duration>,
    adaptive: Option<AdaptiveLimit>,
    name: &'static str,
}

impl<K> fmt::Debug for PoolLimitBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolLimitBuilder")
            .field("maxsize", &self.maxsize)
            .field("block", &self.block)
            .field("pool_timeout", &self.pool_timeout)
            .field("fail_fast", &self.fail_fast)
            .field("per_host", &self.per_host)
            .field("max_pools", &self.max_pools)
            .field("release_on_body_end", &self.release_on_body_end)
            .field("leak_threshold", &self.leak_threshold)
            .field("adaptive", &self.adaptive)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K> PoolLimitBuilder<K> {
    /// urllib3's `block`: with `true`, a call that finds its pool full waits for a permit
    /// (FIFO), at most [`pool_timeout`](Self::pool_timeout), then fails with a `Failure` of
    /// kind [`PoolTimeout`](crate::classify::FailureKind::PoolTimeout) (urllib3's
    /// `EmptyPoolError`). With `false` (the default), it goes through and is counted as
    /// overflow.
    ///
    /// ```
    /// let layer = tower_fortify::pool::PoolLimitLayer::builder(4).block(true).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn block(mut self, block: bool) -> Self {
        self.block = block;
        self
    }

    /// urllib3's `pool_timeout`: how long a call waits for a permit with `block(true)`.
    /// `None` (the default) waits as long as it takes.
    ///
    /// Rejected by `build` when zero (use [`fail_fast`](Self::fail_fast)), and when set
    /// without `block(true)`. A timeout of 30 years or more (up to `Duration::MAX`)
    /// saturates: the call waits as long as it takes, as with `None`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// let layer = PoolLimitLayer::builder(4)
    ///     .block(true)
    ///     .pool_timeout(Some(Duration::from_millis(500)))
    ///     .build()?;
    /// # let _ = layer;
    /// let zero = PoolLimitLayer::builder(4).block(true).pool_timeout(Some(Duration::ZERO)).build();
    /// assert_eq!(zero.unwrap_err().field(), "pool_timeout");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn pool_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_timeout = timeout;
        self
    }

    /// The third mode: never wait, never overflow. A call that finds its pool full fails at
    /// once with a `Failure` of kind [`PoolFull`](crate::classify::FailureKind::PoolFull)
    /// (load shedding, for servers). Cannot be combined with `block(true)`.
    ///
    /// # Shedding load on a server
    ///
    /// The limit holds per pool, so what chooses the pool decides what a client can do:
    ///
    /// - For one limit over the whole server, use `per_host(false)`: one pool, and
    ///   `poll_ready` reserves its permit.
    /// - The default per-host key ([`ByAuthority`]) reads only the URI's authority, which a
    ///   server's requests do not have: they all share one pool, whatever `Host` header each
    ///   client sends. (A request with an absolute URI, as a proxy receives, gets the pool
    ///   of its authority.)
    /// - A [`key`](Self::key) or [`key_fn`](Self::key_fn) that reads a header (`Host`, a
    ///   tenant) gives each value its own `maxsize`: a client that sends many values gets
    ///   many times the limit. Only key by what the client cannot choose freely (an
    ///   authenticated tenant), and keep [`max_pools`](Self::max_pools) small.
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// let layer = PoolLimitLayer::builder(100).fail_fast().build()?;
    /// # let _ = layer;
    /// let both = PoolLimitLayer::builder(100).fail_fast().block(true).build();
    /// assert_eq!(both.unwrap_err().field(), "fail_fast");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }

    /// One pool per host (`true`, the default: urllib3's `PoolManager`), or one pool for all
    /// requests (`false`: a single `HTTPConnectionPool`).
    ///
    /// With one pool, `poll_ready` reserves the permit (backpressure). Per host, the pool is
    /// only known from the request, so a call waits for its host's permit in its response
    /// future.
    ///
    /// ```
    /// let layer = tower_fortify::pool::PoolLimitLayer::builder(4).per_host(false).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn per_host(mut self, per_host: bool) -> Self {
        self.per_host = Some(per_host);
        self
    }

    /// urllib3's `num_pools`: how many pools a per-host layer keeps (default
    /// [`DEFAULT_MAX_POOLS`]). When a new host comes and the bound is reached, the least
    /// recently used *idle* pools are evicted, an eighth of the bound at once (at least one;
    /// from 16 pools on a batch, so that a scan of hosts does not evict on every new one). A
    /// pool with a call in flight
    /// or waiting is never evicted, since its limit must hold: the pools beyond the bound are
    /// then one per busy host, bounded by the calls in flight, never by the hosts ever seen.
    /// After a new host found every pool busy, the next search for idle pools waits until
    /// the map has grown by half, so that a new host's admission scans a constant number of
    /// pools on average however many are busy: the map then holds at most one and a half
    /// times the busy pools (or `max_pools`, if more).
    ///
    /// An idle pool holds no permit, so evicting it changes no limit; only its per-pool
    /// counters leave the [snapshot](super::PoolSnapshot) (the totals keep them).
    ///
    /// ```
    /// let layer = tower_fortify::pool::PoolLimitLayer::builder(4).max_pools(1000).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn max_pools(mut self, max_pools: usize) -> Self {
        self.max_pools = Some(max_pools);
        self
    }

    /// Pools requests by a key a closure computes from the request, instead of by host
    /// (a [`KeyBy`]; the closure's request type must be written out).
    ///
    /// A key read from a header a remote client controls lets that client choose its pool:
    /// on a server, such a key gives each value its own `maxsize` (see
    /// [`fail_fast`](Self::fail_fast)).
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// // One pool per tenant.
    /// let layer = PoolLimitLayer::builder(4)
    ///     .key_fn(|request: &http::Request<()>| request.headers().get("x-tenant").cloned())
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn key_fn<F, B, Key>(self, f: F) -> PoolLimitBuilder<KeyBy<F>>
    where
        F: Fn(&Request<B>) -> Key + Send + Sync + 'static,
        Key: Hash + Eq + fmt::Debug + Send + Sync + 'static,
    {
        self.with_key(KeyBy::new(f), "key_fn")
    }

    /// Pools requests by a [`RequestKey`](crate::key::RequestKey), instead of by host ([`ByAuthority`], the
    /// default).
    ///
    /// ```
    /// use tower_fortify::{key::ByAuthority, pool::PoolLimitLayer};
    ///
    /// let layer = PoolLimitLayer::builder(4).key(ByAuthority).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn key<P: Send + Sync + 'static>(self, key: P) -> PoolLimitBuilder<P> {
        self.with_key(key, "key")
    }

    fn with_key<P>(self, key: P, setter: &'static str) -> PoolLimitBuilder<P> {
        PoolLimitBuilder {
            maxsize: self.maxsize,
            block: self.block,
            pool_timeout: self.pool_timeout,
            fail_fast: self.fail_fast,
            per_host: self.per_host,
            key,
            key_setter: Some(setter),
            max_pools: self.max_pools,
            release_on_body_end: self.release_on_body_end,
            leak_threshold: self.leak_threshold,
            adaptive: self.adaptive,
            name: self.name,
        }
    }

    /// Whether a response's permit rides in its body until the body ends or is dropped
    /// (`true`, the default: the connection is busy until then), or is given back when the
    /// response head arrives (`false`, as `tower::limit::ConcurrencyLimit` does).
    ///
    /// ```
    /// let layer = tower_fortify::pool::PoolLimitLayer::builder(4)
    ///     .release_on_body_end(false)
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn release_on_body_end(mut self, release_on_body_end: bool) -> Self {
        self.release_on_body_end = Some(release_on_body_end);
        self
    }

    /// Reports a permit held longer than this as a possible leak, once: metric
    /// `fortify_pool_leaks_total` and a tracing warning. `None` (the default) turns leak
    /// detection and permit ages off.
    ///
    /// With a threshold, each permit is stamped with the time it was taken (one clock read
    /// per call). The check scans the pool's permits on every snapshot, and when a call
    /// takes a permit or finds its pool full, at most every tenth of the threshold. There is
    /// no background task: a leak is found by the pool's next call, or when someone looks.
    ///
    /// Rejected by `build` when zero, or with a `maxsize` over 65 536. Any larger duration,
    /// up to `Duration::MAX`, is valid (permit ages saturate; such a permit is never
    /// reported).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let layer = tower_fortify::pool::PoolLimitLayer::builder(4)
    ///     .leak_threshold(Some(Duration::from_secs(120)))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn leak_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.leak_threshold = threshold;
        self
    }

    /// Lets each pool's limit move between a floor and `maxsize` by what its calls measure:
    /// down when its latency rises over the no-load latency or its calls fail (timeouts,
    /// refused or dropped connections, pool timeouts, 5xx, 429), up again while the latency
    /// stays normal. See [`AdaptiveLimit`] for the estimator, its settings and its cost.
    ///
    /// The limit must hold, so it needs `block(true)` or `fail_fast()`: `build` rejects it
    /// in overflow mode (the default, `block=False`), where calls over it would go through.
    /// The current limit of each pool is [`PoolStats::limit`](super::PoolStats::limit) in
    /// the snapshot, and their sum the gauge `fortify_pool_limit`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
    ///
    /// let layer = PoolLimitLayer::builder(50)
    ///     .block(true)
    ///     .pool_timeout(Some(Duration::from_secs(2)))
    ///     .adaptive(AdaptiveLimit::gradient().min_limit(4))
    ///     .build()?;
    /// # let _ = layer;
    /// let overflow = PoolLimitLayer::builder(50).adaptive(AdaptiveLimit::gradient()).build();
    /// assert_eq!(overflow.unwrap_err().field(), "adaptive");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn adaptive(mut self, adaptive: AdaptiveLimit) -> Self {
        self.adaptive = Some(adaptive);
        self
    }

    /// Sets the `name` label of the metrics and tracing events (default `"pool"`). It must
    /// be a static string, so that labels stay bounded.
    ///
    /// ```
    /// let layer = tower_fortify::pool::PoolLimitLayer::builder(4).name("payments").build()?;
    /// assert_eq!(layer.name(), "payments");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Checks the settings that apply to every layer, returning the mode.
    fn validate(&self) -> Result<Mode, InvalidConfig> {
        if self.maxsize == 0 {
            return Err(InvalidConfig::new("maxsize", "must be greater than zero"));
        }
        if self.maxsize > MAX_PERMITS {
            return Err(InvalidConfig::new("maxsize", "is too large"));
        }
        if self.pool_timeout == Some(Duration::ZERO) {
            return Err(InvalidConfig::new(
                "pool_timeout",
                "must be greater than zero (to never wait, use fail_fast)",
            ));
        }
        if self.fail_fast && self.block {
            return Err(InvalidConfig::new(
                "fail_fast",
                "cannot be combined with block(true)",
            ));
        }
        if self.pool_timeout.is_some() && !self.block {
            return Err(InvalidConfig::new(
                "pool_timeout",
                "only applies with block(true)",
            ));
        }
        if self.max_pools == Some(0) {
            return Err(InvalidConfig::new("max_pools", "must be greater than zero"));
        }
        if self.leak_threshold == Some(Duration::ZERO) {
            return Err(InvalidConfig::new(
                "leak_threshold",
                "must be greater than zero",
            ));
        }
        if self.leak_threshold.is_some() && self.maxsize > MAX_TRACKED {
            return Err(InvalidConfig::new(
                "leak_threshold",
                "tracks pools of at most 65536 permits (lower maxsize or disable leak detection)",
            ));
        }
        if let Some(adaptive) = &self.adaptive {
            if !self.block && !self.fail_fast {
                return Err(InvalidConfig::new(
                    "adaptive",
                    "needs block(true) or fail_fast(): with block(false), calls over the limit go through",
                ));
            }
            adaptive.validate(self.maxsize)?;
        }
        Ok(if self.fail_fast {
            Mode::FailFast
        } else if self.block {
            // Saturates: a timeout of 30 years or more waits as long as it takes.
            Mode::Block(self.pool_timeout.filter(|&timeout| timeout < NEVER))
        } else {
            Mode::Overflow
        })
    }

    fn core(&self, mode: Mode, keyed: bool) -> Arc<Core> {
        #[cfg(not(feature = "metrics"))]
        let _ = keyed;
        let core = Arc::new(Core {
            name: self.name,
            maxsize: self.maxsize,
            mode,
            release_on_body_end: self.release_on_body_end.unwrap_or(true),
            leak_threshold: self.leak_threshold,
            adaptive: self
                .adaptive
                .map(|adaptive| adaptive::Shared::new(adaptive, self.maxsize, self.name)),
            totals: Counts::default(),
            #[cfg(feature = "metrics")]
            keyed: keyed.then(Default::default),
            #[cfg(feature = "metrics")]
            instruments: super::metrics::Instruments::register(self.name),
        });
        #[cfg(feature = "metrics")]
        if core.instruments.live() {
            // Before the pools are made: with the refresher running, their permits are
            // plain from the start.
            core.instruments.refresh.start();
        }
        #[cfg(feature = "metrics")]
        if !keyed {
            let max = core.maxsize;
            core.instruments.set_max(max);
            core.instruments.publish(|| (0, max));
        } else {
            core.pools_changed(|| 0);
        }
        core
    }

    /// Builds the layer for generic (non-HTTP) services: one pool, the permit given back
    /// when the response future completes.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and [`InvalidConfig`] naming a setting that only applies
    /// to HTTP: `per_host(true)`, `max_pools`, `key` / `key_fn`,
    /// `release_on_body_end`.
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// let layer = PoolLimitLayer::builder(16).block(true).build_generic()?;
    /// # let _ = layer;
    /// let err = PoolLimitLayer::builder(16).max_pools(4).build_generic().unwrap_err();
    /// assert_eq!(err.field(), "max_pools");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn build_generic(self) -> Result<GenericPoolLimitLayer, InvalidConfig> {
        let mode = self.validate()?;
        const ONE_POOL: &str = "a generic service has one pool";
        if self.per_host == Some(true) {
            return Err(InvalidConfig::new("per_host", ONE_POOL));
        }
        if let Some(setter) = self.key_setter {
            return Err(InvalidConfig::new(setter, ONE_POOL));
        }
        if self.max_pools.is_some() {
            return Err(InvalidConfig::new("max_pools", ONE_POOL));
        }
        if self.release_on_body_end.is_some() {
            return Err(InvalidConfig::new(
                "release_on_body_end",
                "a generic response has no body: its permit is given back with the response",
            ));
        }
        let core = self.core(mode, false);
        let pool = Arc::new(Pool::new(Arc::clone(&core), None));
        Ok(GenericPoolLimitLayer {
            shared: Shared::new(core, Pools::Single(pool)),
        })
    }
}

impl<K: Send + Sync + 'static> PoolLimitBuilder<K> {
    /// Builds the layer (and its pools, its metric handles: install a metrics recorder
    /// before).
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming the first invalid setting: `maxsize` zero; `pool_timeout`
    /// zero or without `block(true)`; `fail_fast` with `block(true)`; `max_pools` zero or
    /// with `per_host(false)`; `key` / `key_fn` with `per_host(false)`;
    /// `leak_threshold` zero or with `maxsize` over 65 536; `adaptive` without `block(true)`
    /// or `fail_fast()`, or one of its settings out of range (named as its setter on
    /// [`AdaptiveLimit`]).
    ///
    /// ```
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// let err = PoolLimitLayer::builder(4).per_host(false).max_pools(2).build().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid max_pools: only applies with per_host(true)");
    /// ```
    pub fn build(self) -> Result<PoolLimitLayer<K>, InvalidConfig> {
        let mode = self.validate()?;
        let per_host = self.per_host.unwrap_or(true);
        if !per_host {
            if self.max_pools.is_some() {
                return Err(InvalidConfig::new(
                    "max_pools",
                    "only applies with per_host(true)",
                ));
            }
            if let Some(setter) = self.key_setter {
                return Err(InvalidConfig::new(
                    setter,
                    "chooses among pools: it needs per_host(true)",
                ));
            }
        }
        let core = self.core(mode, per_host);
        let pools = if per_host {
            Pools::Keyed {
                key: self.key,
                pools: Keyed::new(self.max_pools.unwrap_or(DEFAULT_MAX_POOLS)),
            }
        } else {
            Pools::Single(Arc::new(Pool::new(Arc::clone(&core), None)))
        };
        Ok(PoolLimitLayer {
            shared: Shared::new(core, pools),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait for a permit debugs as its pool's key, its start and whether it is queued.
    /// Crate-private: the layer's futures print only a state name (mutation testing,
    /// MUTANTS.md).
    #[test]
    fn a_wait_for_a_permit_debugs_as_its_pool_and_queue() {
        let layer = PoolLimitLayer::builder(1).build_generic().unwrap();
        let Pools::Single(pool) = &layer.shared.pools else {
            panic!("a generic layer has one pool")
        };
        let acquire = pool.acquire(tokio::time::Instant::now());
        let shown = format!("{acquire:?}");
        assert!(shown.starts_with("Acquire {"), "{shown}");
        assert!(shown.contains("pool: None"), "{shown}");
        assert!(shown.contains("queued: false"), "{shown}");
    }
}
