//! What a pool limit looks like right now: [`PoolHandle`], [`PoolSnapshot`], [`PoolStats`].

use std::{fmt, sync::Arc, time::Duration};

/// A window on the pools of one layer, for dashboards, health checks and tests.
///
/// Taken from [`PoolLimitLayer::handle`](super::PoolLimitLayer::handle) (or from a service,
/// [`PoolLimit::handle`](super::PoolLimit::handle)); it sees the pools shared by every
/// service the layer built and all their clones.
///
/// # Clone
///
/// Clones see the same pools.
///
/// ```
/// use tower_fortify::pool::PoolLimitLayer;
///
/// let layer = PoolLimitLayer::builder(10).build()?;
/// let handle = layer.handle();
/// let snapshot = handle.snapshot();
/// assert_eq!(snapshot.total.in_use, 0);
/// assert_eq!(snapshot.pools.len(), 0); // per host: no host seen yet
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone)]
pub struct PoolHandle {
    source: Arc<dyn Source>,
}

/// Anything that can describe its pools.
pub(crate) trait Source: Send + Sync + 'static {
    fn snapshot(&self) -> PoolSnapshot;
    /// Publishes the in-use and utilisation gauges from the pools' counts (the refresher).
    #[cfg(feature = "metrics")]
    fn publish_gauges(&self);
    /// The refresher stopped: the pools' calls publish the gauges again.
    #[cfg(feature = "metrics")]
    fn gauges_per_call(&self);
}

impl PoolHandle {
    pub(crate) fn new(source: Arc<dyn Source>) -> Self {
        PoolHandle { source }
    }

    /// The figures of every pool now, and their total.
    ///
    /// Taking a snapshot also runs the leak check: a permit held longer than the
    /// `leak_threshold` is reported (metric and tracing warning), once. It scans every
    /// tracked permit of every pool: cheap for a dashboard's poll, not for every request.
    /// With the `metrics` feature it also publishes the in-use and utilisation gauges,
    /// which the layer otherwise refreshes once a second: a scrape handler that takes a
    /// snapshot first exports the exact values.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_fortify::pool::PoolLimitLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let layer = PoolLimitLayer::builder(2)
    ///     .leak_threshold(Some(Duration::from_secs(30)))
    ///     .build_generic()
    ///     .unwrap();
    /// let handle = layer.handle();
    /// let mut svc = layer.layer(tower::service_fn(|()| std::future::pending::<Result<(), std::io::Error>>()));
    /// let stuck = svc.ready().await.unwrap().call(());
    ///
    /// tokio::time::advance(Duration::from_secs(31)).await;
    /// let snapshot = handle.snapshot();
    /// assert_eq!(snapshot.total.in_use, 1);
    /// assert_eq!(snapshot.total.leaked, 1);
    /// assert_eq!(snapshot.total.oldest_in_use, Some(Duration::from_secs(31)));
    ///
    /// drop(stuck);
    /// assert_eq!(handle.snapshot().total.in_use, 0);
    /// # }
    /// ```
    pub fn snapshot(&self) -> PoolSnapshot {
        self.source.snapshot()
    }
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle").finish_non_exhaustive()
    }
}

/// The pools of one layer at one moment: their total, and each pool.
///
/// ```
/// use tower_fortify::pool::PoolLimitLayer;
///
/// let layer = PoolLimitLayer::builder(4).per_host(false).name("api").build()?;
/// let snapshot = layer.handle().snapshot();
/// assert_eq!(snapshot.name, "api");
/// assert_eq!(snapshot.total.max, 4);
/// assert_eq!(snapshot.pools.len(), 1);
/// assert_eq!(snapshot.pools[0].key, None); // the layer's only pool
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSnapshot {
    /// The layer's `name` (its metrics label).
    pub name: &'static str,
    /// All pools together. Its counters include pools evicted since; `max` is the sum
    /// over the pools tracked now, `oldest_in_use` the oldest of all.
    pub total: PoolStats,
    /// Each pool tracked now (one per host in per-host mode, in no particular order).
    pub pools: Vec<PoolStats>,
}

/// The figures of one pool (or, in [`PoolSnapshot::total`], of all).
///
/// ```
/// use tower_fortify::pool::PoolLimitLayer;
///
/// let stats = PoolLimitLayer::builder(8).per_host(false).build()?.handle().snapshot().total;
/// assert_eq!((stats.in_use, stats.max, stats.waiting), (0, 8, 0));
/// assert_eq!(stats.oldest_in_use, None);
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's key as printed (for the default per-host key, `scheme://host:port`);
    /// `None` for a layer's only pool and for the total.
    pub key: Option<String>,
    /// Permits held (reserved by `poll_ready`, by a call in flight, or by a response body
    /// not yet done), plus calls overflowing (`block=False`): it can exceed `max`.
    pub in_use: usize,
    /// `maxsize`.
    pub max: usize,
    /// The limit in force: `maxsize`, or in adaptive mode the current adaptive limit
    /// (between its `min_limit` and `maxsize`; see [`AdaptiveLimit`](super::AdaptiveLimit)).
    pub limit: usize,
    /// Calls waiting for a permit (`block=True`).
    pub waiting: usize,
    /// Calls in flight over `maxsize` now (`block=False`).
    pub overflowing: usize,
    /// Calls let through over `maxsize` so far (`block=False`).
    pub overflowed: u64,
    /// Calls that waited `pool_timeout` in vain so far.
    pub timed_out: u64,
    /// Calls rejected by a full pool so far (fail fast).
    pub rejected: u64,
    /// Permits reported as held longer than `leak_threshold` so far.
    pub leaked: u64,
    /// How long the oldest permit in use has been held. `None` when no permit is in use,
    /// or when permit ages are not tracked (no `leak_threshold`).
    pub oldest_in_use: Option<Duration>,
}

impl PoolStats {
    /// Adds the current figures of `pool` (not its counters) to this total.
    pub(crate) fn add_current(&mut self, pool: &PoolStats) {
        self.in_use += pool.in_use;
        self.max += pool.max;
        self.limit += pool.limit;
        self.waiting += pool.waiting;
        self.overflowing += pool.overflowing;
        self.oldest_in_use = self.oldest_in_use.max(pool.oldest_in_use);
    }
}
