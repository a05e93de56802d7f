//! Connection-pool limits, the urllib3 way: [`PoolLimitLayer`].
//!
//! urllib3 sizes each connection pool with `maxsize` and, when all its connections are
//! busy, either waits for one (`block=True`, at most `pool_timeout`, then `EmptyPoolError`)
//! or opens an extra connection that it discards on return (`block=False`, the default,
//! with the warning "Connection pool is full, discarding connection"); its `PoolManager`
//! keeps one pool per host, at most `num_pools` of them. hyper-util and reqwest put no cap
//! on connections per host, and tower's `ConcurrencyLimit` gives its permit back when the
//! response *head* arrives, while the connection stays busy until the body is read.
//!
//! [`PoolLimitLayer`] brings urllib3's semantics to any tower HTTP client or server:
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_fortify::pool::PoolLimitLayer;
//!
//! // urllib3: PoolManager(num_pools=10, maxsize=10, block=True), pool_timeout=2
//! let layer = PoolLimitLayer::builder(10)
//!     .block(true)
//!     .pool_timeout(Some(Duration::from_secs(2)))
//!     .build()?;
//! let handle = layer.handle(); // for dashboards and health checks
//! let client = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::io::Error>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//! });
//! # let _ = (client, handle);
//! # Ok::<(), tower_fortify::InvalidConfig>(())
//! ```
//!
//! # Three modes at the limit
//!
//! | mode | setting | urllib3 | a call that finds its pool full |
//! |---|---|---|---|
//! | overflow (default) | `block(false)` | `block=False` | goes through; counted in `fortify_pool_overflow_total`, and a tracing warning "Connection pool is full, discarding connection" when it ends |
//! | block | `block(true)`, `pool_timeout(Some(t))` | `block=True`, `pool_timeout=t` | waits for a permit, first come first served; after `t`, a [`Failure`](crate::classify::Failure) of kind [`PoolTimeout`](crate::classify::FailureKind::PoolTimeout) ([`EmptyPool`](error::EmptyPool): urllib3's `EmptyPoolError`) |
//! | fail fast | `fail_fast()` | (none) | fails at once: kind [`PoolFull`](crate::classify::FailureKind::PoolFull) ([`error::PoolFull`]); load shedding for servers |
//!
//! Neither failure is retried by [`RetryLayer`][retry-layer]: waiting longer
//! is the pool timeout's job, and a full pool is this layer's decision to shed load.
//! Overflow is urllib3's default because it never fails a call; its counter tells a
//! dashboard that the pool is too small.
//!
//! # Permit lifetime
//!
//! A call takes a permit before it calls the inner service. For an
//! `http::Response<B>`, the permit rides in the response's [`PoolBody`] and is given back
//! when the body reaches its end, fails, or is dropped: that is when the connection is
//! free. `release_on_body_end(false)` gives it back when the response head arrives, as
//! `tower::limit::ConcurrencyLimit` does. For other services, [`GenericPoolLimit`] gives it
//! back when the response future completes. A call dropped while it waits, or while it
//! runs, gives back whatever it holds.
//!
//! # One pool, or one per host
//!
//! By default a layer keeps one pool per scheme, host and port of the request URI's
//! authority (urllib3's `PoolManager`; [`ByAuthority`](crate::key::ByAuthority),
//! [`HostKey`](crate::key::HostKey)), or per a key of your own
//! ([`RequestKey`](crate::key::RequestKey), [`PoolLimitBuilder::key`],
//! [`PoolLimitBuilder::key_fn`]). The default key never reads the `Host` header: on a
//! server, where URIs have no authority, every request shares one pool, so a client cannot
//! split the limit by sending many `Host` values. The pools belong to the layer and are **shared by all
//! clones** of every service it builds. At most `max_pools` pools are kept (default 10,
//! urllib3's `num_pools`): the least recently used *idle* pools are evicted for a new host.
//! A busy pool is never evicted (its limit must hold), so a scan of a million hosts holds
//! about one pool per call in flight (at most one and a half), not one per host seen; and
//! admitting a new host costs the same however many pools are busy.
//!
//! With one pool (`per_host(false)`), the permit is reserved in `poll_ready` and taken in
//! `call`, as tower's `ConcurrencyLimit` does: in `block` mode, `poll_ready` is where the
//! call waits (backpressure). Per host, the pool is only known from the request, which
//! `poll_ready` does not see: `poll_ready` drives the inner service, and a call whose host
//! pool is full waits for its permit in the [response future](future::ResponseFuture),
//! before the inner service is called. That is honest backpressure per host, but not
//! through `poll_ready`.
//!
//! # Adaptive limit
//!
//! A fixed `maxsize` is a guess. With [`adaptive`](PoolLimitBuilder::adaptive), each pool
//! (each host) moves its limit between a floor and `maxsize` by what its calls measure:
//! down when their latency rises over the no-load latency (a queue builds at the backend)
//! or when they time out, find the connection refused or dropped, wait `pool_timeout` in
//! vain, or are answered 5xx or 429; up again, one permit per window, while the latency
//! stays normal. [`AdaptiveLimit`] describes the estimator (Netflix's Gradient2, driven as
//! AIMD) and its settings; the limit needs `block(true)` or `fail_fast()`, and each pool's
//! limit in force is [`PoolStats::limit`].
//!
//! ```
//! use std::time::Duration;
//! use tower_fortify::pool::{AdaptiveLimit, PoolLimitLayer};
//!
//! let layer = PoolLimitLayer::builder(50)
//!     .block(true)
//!     .pool_timeout(Some(Duration::from_secs(2)))
//!     .adaptive(AdaptiveLimit::gradient().min_limit(4))
//!     .build()?;
//! # let _ = layer;
//! # Ok::<(), tower_fortify::InvalidConfig>(())
//! ```
//!
//! # Leak detection
//!
//! A body that is neither read to its end nor dropped keeps its permit: the classic
//! "connection never returned" leak, which ends with a pool where every call waits. With
//! `leak_threshold(Some(t))`, a permit held longer than `t` is reported once: counted in
//! `fortify_pool_leaks_total` and in the snapshot, and a tracing warning. Each permit is
//! stamped when taken (one clock read); the check scans the pool's permits on every
//! [`PoolHandle::snapshot`], and when a call takes a permit or finds the pool full, at most
//! every `t / 10`. No background task: a leak is found by the pool's next call, or when
//! someone looks. The [snapshot](PoolSnapshot) also gives the age of the oldest permit in
//! use. Without a `leak_threshold` (the default, as HikariCP's `leakDetectionThreshold`),
//! permits are not stamped and cost no clock read.
//!
//! # Metrics
//!
//! With the `metrics` feature, the layer records through the `metrics` facade. Its handles
//! are registered once, when the layer is built, so install the recorder before. Names and
//! labels are part of the API; the only label is `name` (the layer's, static), never the
//! host. A per-host layer's figures are the sum over its pools.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `fortify_pool_in_use` | gauge | calls holding a permit (reserved by `poll_ready`, in flight, or in an unread body), plus calls overflowing |
//! | `fortify_pool_max` | gauge | permits: `maxsize` times the pools tracked |
//! | `fortify_pool_utilisation_ratio` | gauge | `in_use / max` (above 1 while overflowing) |
//! | `fortify_pool_waiting` | gauge | calls waiting for a permit |
//! | `fortify_pool_wait_seconds` | histogram | how long calls that waited for a permit waited, until they got it |
//! | `fortify_pool_timeouts_total` | counter | calls that waited `pool_timeout` in vain |
//! | `fortify_pool_overflow_total` | counter | calls let through over `maxsize` |
//! | `fortify_pool_rejected_total` | counter | calls a full pool rejected (fail fast) |
//! | `fortify_pool_leaks_total` | counter | permits held longer than `leak_threshold` |
//! | `fortify_pool_limit` | gauge | with [`adaptive`](PoolLimitBuilder::adaptive) only: the limits in force, summed over the pools (between `min_limit` and `maxsize` each) |
//!
//! The in-use and utilisation gauges are published once a second by one task per layer
//! (spawned on the runtime where the layer is built, or else where its first call runs),
//! and by every [`PoolHandle::snapshot`]: a scrape reads a value at most a second old, and
//! a scrape handler that takes a snapshot first reads the exact one. Calls do not publish
//! them (a change per permit taken or given back would cost each call four recorder
//! calls), except while no such task can run: calls outside a tokio runtime, or on one
//! without time. Layers that share a `name` share their gauges: name each layer.
//!
//! # Tracing
//!
//! With the `tracing` feature, events with target `tower_fortify::pool` and fields `name`,
//! `pool` (the key, in per-host mode) and `maxsize`: a `WARN` "Connection pool is full,
//! discarding connection" when an overflowing call ends, a `WARN` per leaked permit (with
//! `held_ms`), an `INFO` when a leaked permit comes back, a `DEBUG` per pool timeout and per
//! rejection.
//!
//! # Differences from urllib3
//!
//! urllib3 owns its connections; here hyper-util's client does, and `PoolLimit` limits the
//! calls in flight per host (the same effect on a server, counted the same way). urllib3's
//! `block=False` opens and then discards an extra connection; here the extra call goes
//! through and is counted as overflow.
//!
//! # Cost
//!
//! A call publishes no gauge, with a metrics recorder or without (see [Metrics](#metrics)). On the
//! uncontended path, a call costs one compare-and-swap to take the permit and one
//! to give it back, and allocates nothing: the semaphore here is FIFO-fair like tokio's,
//! but takes a lock only when a call waits or a waiter is served (tokio's takes one on
//! every release). With one pool, those two are the only shared memory a call writes: its
//! permit references the pool through the thread's spare reference, not a shared count.
//! A layer's only fixed pool (no adaptive limit, `leak_threshold` or metrics recorder)
//! does not even write the semaphore's word while nobody waits: a permit given back is
//! parked in a slot of the thread's own, where the thread's next call takes it, so calls
//! on several threads each write their own cache line (a caller that has to wait takes
//! the parked permits back for the queue). A per-host call adds its key (scheme, host and port, sharing the URI's
//! bytes: a reference count taken and dropped, no allocation), read from the request in
//! place, and a map lookup with that key, borrowed, under a read lock (a write lock and
//! one boxed key only for a new host). A thread's calls to the host it called last skip
//! the key and the lookup: it keeps a weak reference to that host's pool (which never
//! keeps the pool in the map), valid while no eviction has run since, and once every 64
//! calls stamps the pool as used in the map (its read lock, no key made) so that it stays
//! recently used. A call that has to wait allocates
//! its place in the queue (per host, also a box for its request and timer). A
//! `leak_threshold` adds a clock read per call; an [adaptive limit](AdaptiveLimit) two, and
//! a sample added to its window. The
//! `benches/pool.rs` benchmark compares it with tower's `ConcurrencyLimit` and
//! tower-resilience's bulkhead.
//!
#![cfg_attr(feature = "retry", doc = "[retry-layer]: crate::retry::RetryLayer")]
#![cfg_attr(
    not(feature = "retry"),
    doc = "[retry-layer]: https://docs.rs/tower-fortify/latest/tower_fortify/retry/struct.RetryLayer.html"
)]

mod acquire;
mod adaptive;
mod body;
pub mod error;
pub mod future;
mod handle;
mod keyed;
mod layer;
#[cfg(all(test, fortify_loom))]
mod loom_tests;
#[cfg(feature = "metrics")]
mod metrics;
mod permit;
mod reserve;
mod semaphore;
mod service;
mod tracker;

pub use adaptive::AdaptiveLimit;
pub use body::PoolBody;
pub use handle::{PoolHandle, PoolSnapshot, PoolStats};
pub use layer::{GenericPoolLimitLayer, PoolLimitBuilder, PoolLimitLayer, DEFAULT_MAX_POOLS};
pub use service::{GenericPoolLimit, PoolLimit};
#[cfg(feature = "stack")]
pub(crate) use {
    keyed::KeptPool,
    permit::{Permit, Pool},
    service::Shared as PoolShared,
};
