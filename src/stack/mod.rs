//! The preset client stack: every layer of the crate, in the order that makes them work
//! together, from one named configuration.
//!
//! ```text
//! ErrorClassify        metrics and tracing of the whole call; every error a `Failure`
//!   -> Retry           urllib3's matrix, full-jitter backoff, bounded Retry-After, budget
//!     -> CircuitBreaker  one per host; rejects at once while the host is failing
//!       -> PoolLimit       one pool per host; permit held until the response body ends
//!         -> Timeout         per attempt (the read timeout)
//!           -> your client   hyper_util's legacy `Client`, or any HTTP service
//! ```
//!
//! With [`hedge`][config-hedge] (feature `hedge`), a `Hedge` layer sits between
//! `Retry` and `CircuitBreaker`: each attempt of an idempotent request not answered after
//! its host's latency percentile is sent again, paid from the retry budget, never to an
//! open breaker, each copy with its own pool permit.
//!
//! The classification is the retry layer's job in the preset, not a layer of its own: its
//! errors (from `poll_ready` and from its futures) are classified and recorded with the
//! classification layer's metrics and tracing events exactly as `ErrorClassify` around it
//! would, with one nested future fewer per call.
//!
//! The order matters. The breaker sits *inside* the retry layer so that every attempt is
//! counted by the breaker of its host and a retry never goes to a host whose breaker is
//! open (the retry layer stops at once on `CircuitOpen`). The pool sits inside the breaker
//! so that a call the breaker rejects never waits for a permit. The timeout is per attempt,
//! innermost, so that a slow attempt is abandoned and retried while the whole call stays
//! bounded by the retry policy's `deadline`.
//!
//! # The HTTPS client in one call
//!
//! With the `client` feature, `ClientConfig::default().https()?` builds this stack around
//! hyper-util's client over a classified, timed rustls connector: see the `client` module.
//! The sections below are for a client or service of your own.
//!
//! # Defaults
//!
//! [`ClientConfig::default`] follows production practice; each default and why:
//!
//! | setting | default | why |
//! |---|---|---|
//! | [`pool_maxsize`](ClientConfig::pool_maxsize) | 64 per host | enough concurrency for a busy service, bounded so a slow host cannot take every socket |
//! | [`pool_block`](ClientConfig::pool_block) | `true` | a full pool makes callers wait (backpressure) instead of opening unbounded connections |
//! | [`pool_timeout`](ClientConfig::pool_timeout) | 5 s (when blocking) | a caller never waits for a permit forever: it fails with `PoolTimeout`, which is not retried |
//! | [`pool_adaptive`](ClientConfig::pool_adaptive) | off: a fixed `pool_maxsize` | a fixed limit is predictable; an adaptive one sends a slowing host fewer calls at once |
//! | [`connect_timeout`](ClientConfig::connect_timeout) | 3 s | a loopback or LAN connect takes milliseconds; a black-holed address must fail fast (the HTTPS client applies it; apply it to your own connector) |
//! | [`attempt_timeout`](ClientConfig::attempt_timeout) | 10 s | the read timeout: a stalled attempt is abandoned (`ReadTimeout`) and retried if safe |
//! | [`retry`](ClientConfig::retry) | [`RetryPolicy::production`] with a 30 s `deadline` | 5 retries, connect failures at once, full-jitter exponential backoff, 502/503/504, `Retry-After` capped at 60 s, a budget of 20% of requests plus 10 retries/s |
//! | [`circuit_breaker`](ClientConfig::circuit_breaker) | one breaker per host, the builder's defaults | opens at 50% failures over the last 100 calls (10 at least), 5 s open, growing x2 up to 2 min with 20% jitter |
//! | [`max_pools`](ClientConfig::max_pools) | 10 hosts | urllib3's `num_pools`; only idle pools are evicted |
//! | [`name`](ClientConfig::name) | `"client"` | the `name` label of every layer's metrics |
//! | [`leak_threshold`](ClientConfig::leak_threshold) | off | a client that streams long downloads would report false leaks; set it where bodies are short |
//! | [`pool_adaptive`](ClientConfig::pool_adaptive) | off | a fixed `pool_maxsize` is what urllib3 users expect; turn it on to let each host's limit follow its latency and failures |
//! | `hedge` (feature `hedge`) | off | a hedge is a second request to the backend; turn it on for idempotent calls whose tail latency matters, with the retry budget bounding the extra load |
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_fortify::stack::ClientConfig;
//!
//! let layer = ClientConfig::default().build()?;
//! let client = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, std::io::Error>(http::Response::new(String::from("ok")))
//! });
//! # let _ = client;
//! # Ok::<(), tower_fortify::InvalidConfig>(())
//! ```
//!
//! # Cost
//!
//! The preset does more than a tower-only composition (`Retry` + `ConcurrencyLimit` +
//! `Timeout`): classification with metrics, a breaker per host, a pool per host, an overall
//! deadline, a retry budget. Its time goes to one clock read per call (the attempt
//! timeout's, at the attempt's first pending poll) that the budget, the deadline and the
//! call's recorded duration share, the host's breaker and pool (a thread's calls to the host it called last find
//! both without a lookup; otherwise the host's key is read and hashed once for both maps),
//! and the nested futures (the inner stack is cloned, from a template the retry layer
//! keeps, only for a call that is retried). The attempt timeout reads the clock only when
//! an attempt is pending at its first poll, and then takes a slot in the layer's one timer
//! (a task that wakes the attempts whose timeout has passed, shared by every service the
//! layer builds) instead of a tokio `Sleep` of its own: an attempt answered in time never
//! touches the runtime's timer wheel. It times out at most one tokio timer tick (1 ms)
//! after its timeout, never before, as with a `Sleep`. The retry layer's deadline and
//! backoffs wait in the same timer; the deadline is watched only when the wait for
//! readiness is pending, or an attempt is pending that its attempt timeout (after the
//! longest wait for a pool permit) would not end before the deadline.
//! `benches/stack.rs` and `benches/interleaved.rs` measure it beside tower's and
//! tower-resilience's compositions; the figures are in `BENCHMARKS.md`.
//!
//! # With hyper-util's client
//!
//! The connect timeout belongs to the connector (hyper-util's `HttpConnector`); the stack
//! wraps the client, and its service type can be named in a struct field:
//!
//! ```
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use hyper_util::client::legacy::{connect::HttpConnector, Client};
//! use hyper_util::rt::TokioExecutor;
//! use tower_fortify::stack::{ClientConfig, ClientStack};
//!
//! struct Backend {
//!     http: ClientStack<Client<HttpConnector, Full<Bytes>>>,
//! }
//!
//! let layer = ClientConfig::default().build()?;
//! let mut connector = HttpConnector::new();
//! connector.set_connect_timeout(Some(layer.connect_timeout()));
//! let client = Client::builder(TokioExecutor::new()).build(connector);
//! let backend = Backend { http: tower::Layer::layer(&layer, client) };
//!
//! // A `Service` for requests with a `Full<Bytes>` body, `Send`, `Sync` and `Clone`:
//! fn check<S>(_: &S)
//! where
//!     S: tower::Service<http::Request<Full<Bytes>>> + Clone + Send + Sync + 'static,
//!     S::Future: Send,
//! {
//! }
//! check(&backend.http);
//! # Ok::<(), tower_fortify::InvalidConfig>(())
//! ```
//!
#![cfg_attr(feature = "hedge", doc = "[config-hedge]: ClientConfig::hedge")]
#![cfg_attr(
    not(feature = "hedge"),
    doc = "[config-hedge]: https://docs.rs/tower-fortify/latest/tower_fortify/stack/struct.ClientConfig.html#method.hedge"
)]

mod gate;
mod hedge;
#[cfg(feature = "client")]
pub(crate) mod https;
#[cfg(test)]
mod sizes;
#[cfg(test)]
mod tests;
mod timeout;

use crate::{
    circuit_breaker::{
        CircuitBreakerBuilder, CircuitBreakerHandle, CircuitBreakerLayer, HttpStatus,
    },
    classify::ErrorClassifyLayer,
    internal::ticker::Ticker,
    key::ByAuthority,
    pool::{AdaptiveLimit, PoolHandle, PoolLimitLayer, DEFAULT_MAX_POOLS},
    retry::{Retry, RetryLayer, RetryPolicy},
    InvalidConfig,
};
use gate::HostGate;
#[cfg(feature = "hedge")]
pub use hedge::Hedged;
pub use hedge::{HedgeMode, NoHedge};
use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use timeout::AttemptTimeout;
use tower_layer::Layer;
use tower_service::Service;

/// How long a blocking call waits for a permit by default.
const DEFAULT_POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The configuration of the preset client stack; see the [module docs](self) for the stack
/// and a table of the defaults.
///
/// Settings are `self`-returning setters; [`build`](Self::build) validates them together and
/// builds the [`ClientStackLayer`]. With the `client` feature, `https` builds the whole
/// fortified HTTPS client instead (see [`client`][client-mod]).
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::retry::RetryPolicy;
/// use tower_fortify::stack::ClientConfig;
///
/// let layer = ClientConfig::default()
///     .name("payments")
///     .pool_maxsize(100)
///     .attempt_timeout(Duration::from_secs(2))
///     .retry(RetryPolicy::production().total(Some(3)))
///     .build()?;
/// assert_eq!(layer.pool_handle().snapshot().total.in_use, 0);
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[cfg_attr(feature = "client", doc = "[client-mod]: crate::client")]
#[cfg_attr(
    not(feature = "client"),
    doc = "[client-mod]: https://docs.rs/tower-fortify/latest/tower_fortify/client/index.html"
)]
#[derive(Debug, Clone)]
pub struct ClientConfig<H: HedgeMode = NoHedge> {
    name: &'static str,
    retry: RetryPolicy,
    circuit_breaker: CircuitBreakerBuilder,
    pub(crate) pool_maxsize: usize,
    pool_block: bool,
    /// `None`: not set, the default applies (5 s when blocking, none otherwise).
    pool_timeout: Option<Option<Duration>>,
    max_pools: usize,
    leak_threshold: Option<Duration>,
    /// `None`: a fixed pool of `pool_maxsize`.
    pool_adaptive: Option<AdaptiveLimit>,
    attempt_timeout: Duration,
    connect_timeout: Duration,
    /// The HTTPS client's own settings (`https`).
    #[cfg(feature = "client")]
    pub(crate) client: https::Settings,
    /// The hedge layer's settings (`hedge`), or `()`.
    hedge: H::Config,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: "client",
            retry: RetryPolicy::production().deadline(Some(Duration::from_secs(30))),
            circuit_breaker: CircuitBreakerLayer::builder(),
            pool_maxsize: 64,
            pool_block: true,
            pool_timeout: None,
            max_pools: DEFAULT_MAX_POOLS,
            leak_threshold: None,
            pool_adaptive: None,
            attempt_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            #[cfg(feature = "client")]
            client: https::Settings::default(),
            hedge: (),
        }
    }
}

impl<H: HedgeMode> ClientConfig<H> {
    /// The `name` label of every layer's metrics and tracing events (default `"client"`).
    ///
    /// ```
    /// let layer = tower_fortify::stack::ClientConfig::default().name("search").build()?;
    /// assert_eq!(layer.name(), "search");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The retry policy (default [`RetryPolicy::production`] with a 30 s `deadline`).
    ///
    /// ```
    /// use tower_fortify::retry::RetryPolicy;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default()
    ///     .retry(RetryPolicy::production().status_forcelist([429, 502, 503, 504]))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The per-host circuit breakers' settings (default: the builder's defaults). The
    /// breakers are keyed by the request URI's authority (with `per_host(false)`, one for
    /// every request); the builder's `name` is replaced by [`name`](Self::name).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default()
    ///     .circuit_breaker(
    ///         CircuitBreakerLayer::builder().open_duration(Duration::from_secs(1)),
    ///     )
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn circuit_breaker(mut self, builder: CircuitBreakerBuilder) -> Self {
        self.circuit_breaker = builder;
        self
    }

    /// urllib3's `maxsize`: calls in flight per host (default 64).
    ///
    /// ```
    /// let layer = tower_fortify::stack::ClientConfig::default().pool_maxsize(8).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn pool_maxsize(mut self, maxsize: usize) -> Self {
        self.pool_maxsize = maxsize;
        self
    }

    /// urllib3's `block` (default `true`): wait for a permit when the host's pool is full.
    /// With `false`, calls over `maxsize` go through and are counted as overflow, and the
    /// default [`pool_timeout`](Self::pool_timeout) does not apply (as in urllib3, where
    /// `pool_timeout` only bounds a blocking wait); setting one explicitly is an error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// let layer = ClientConfig::default().pool_block(false).build()?;
    /// # let _ = layer;
    /// let err = ClientConfig::default()
    ///     .pool_block(false)
    ///     .pool_timeout(Some(Duration::from_secs(1)))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "pool_timeout");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn pool_block(mut self, block: bool) -> Self {
        self.pool_block = block;
        self
    }

    /// urllib3's `pool_timeout` (default 5 s when blocking): how long a call waits for a
    /// permit before it fails with a `PoolTimeout` failure. `None` waits as long as it takes.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let err = tower_fortify::stack::ClientConfig::default()
    ///     .pool_timeout(Some(Duration::ZERO))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "pool_timeout");
    /// ```
    pub fn pool_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_timeout = Some(timeout);
        self
    }

    /// An adaptive limit for each host's pool (default none: a fixed limit of
    /// [`pool_maxsize`](Self::pool_maxsize)): the limit moves between the floor and
    /// `pool_maxsize` with the host's measured latency and failures, so that a slowing host
    /// gets fewer calls at once (see [`AdaptiveLimit`]). Needs a blocking pool (the
    /// default); with [`pool_block(false)`](Self::pool_block) `build` rejects it.
    ///
    /// ```
    /// use tower_fortify::pool::AdaptiveLimit;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// let layer = ClientConfig::default()
    ///     .pool_maxsize(64)
    ///     .pool_adaptive(AdaptiveLimit::gradient().min_limit(4))
    ///     .build()?;
    /// # let _ = layer;
    /// let err = ClientConfig::default()
    ///     .pool_adaptive(AdaptiveLimit::gradient().min_limit(100))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "min_limit");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn pool_adaptive(mut self, adaptive: AdaptiveLimit) -> Self {
        self.pool_adaptive = Some(adaptive);
        self
    }

    /// Hedged requests (default off): a [`HedgeLayer`](crate::hedge::HedgeLayer) with
    /// `builder`'s settings between the retry layer and the per-host breaker, so that each
    /// attempt of an idempotent request not answered after its host's latency percentile
    /// is sent again and the first answer taken (see the [`hedge`](crate::hedge) module).
    /// Hedges withdraw from the retry policy's budget (when it has one: the default
    /// policy's; otherwise the builder's own, if any), never go to a host whose breaker is
    /// not closed (the preset's breakers), and each takes its own pool permit, given back
    /// when it loses. The builder's `name` is replaced by [`name`](Self::name). Feature
    /// `hedge`.
    ///
    /// The choice is made in the types ([`Hedged`]): a stack without hedging has no trace
    /// of the hedge layer, not even a branch.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::hedge::HedgeLayer;
    /// use tower_fortify::stack::{ClientConfig, ClientStackLayer, Hedged};
    ///
    /// let layer: ClientStackLayer<Hedged> = ClientConfig::default()
    ///     .hedge(HedgeLayer::builder().percentile(99.0).min_delay(Duration::from_millis(20)))
    ///     .build()?;
    /// assert_eq!(layer.hedge().name(), "client");
    /// let err = ClientConfig::default()
    ///     .hedge(HedgeLayer::builder().percentile(0.95))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "percentile");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "hedge")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
    pub fn hedge(self, builder: crate::hedge::HedgeBuilder) -> ClientConfig<Hedged> {
        ClientConfig {
            name: self.name,
            retry: self.retry,
            circuit_breaker: self.circuit_breaker,
            pool_maxsize: self.pool_maxsize,
            pool_block: self.pool_block,
            pool_timeout: self.pool_timeout,
            max_pools: self.max_pools,
            leak_threshold: self.leak_threshold,
            pool_adaptive: self.pool_adaptive,
            attempt_timeout: self.attempt_timeout,
            connect_timeout: self.connect_timeout,
            #[cfg(feature = "client")]
            client: self.client,
            hedge: builder,
        }
    }

    /// urllib3's `num_pools`: how many per-host pools are tracked (default 10); only idle
    /// pools are evicted.
    ///
    /// ```
    /// let layer = tower_fortify::stack::ClientConfig::default().max_pools(100).build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn max_pools(mut self, max_pools: usize) -> Self {
        self.max_pools = max_pools;
        self
    }

    /// Report a pool permit held longer than this as a leak (default `None`: a client
    /// that streams long downloads would report false leaks).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// assert!(ClientConfig::default().leak_threshold(Some(Duration::from_secs(300))).build().is_ok());
    /// let err = ClientConfig::default().leak_threshold(Some(Duration::ZERO)).build().unwrap_err();
    /// assert_eq!(err.field(), "leak_threshold");
    /// ```
    pub fn leak_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.leak_threshold = threshold;
        self
    }

    /// The timeout of each attempt, from its start (its first poll, right after the call)
    /// to the response head (default 10 s): the read timeout. An attempt that takes longer
    /// fails with `ReadTimeout`, which is retried for idempotent requests.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let err = tower_fortify::stack::ClientConfig::default()
    ///     .attempt_timeout(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "attempt_timeout");
    /// ```
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// urllib3's `Timeout(connect=...)` (default 3 s): how long the TCP connect may take.
    /// The HTTPS client (`https`, feature `client`) applies it itself; the stack alone
    /// cannot reach into a connector, so apply it to yours with hyper-util's
    /// `HttpConnector::set_connect_timeout(Some(layer.connect_timeout()))` (see the
    /// [module docs](self)). It is validated with the rest.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default()
    ///     .connect_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(layer.connect_timeout(), Duration::from_secs(5));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Validates the settings and builds the stack's layer.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming the first invalid field: a zero `attempt_timeout` or
    /// `connect_timeout`, or a field the retry, breaker, pool or hedge layer rejects
    /// (`maxsize`, `pool_timeout`, `max_pools`, `status_forcelist`, `percentile`, ...).
    ///
    /// ```
    /// let err = tower_fortify::stack::ClientConfig::default().pool_maxsize(0).build().unwrap_err();
    /// assert_eq!(err.field(), "maxsize");
    /// ```
    pub fn build(&self) -> Result<ClientStackLayer<H>, InvalidConfig> {
        if self.attempt_timeout.is_zero() {
            return Err(InvalidConfig::new(
                "attempt_timeout",
                "must be greater than zero",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(InvalidConfig::new(
                "connect_timeout",
                "must be greater than zero",
            ));
        }
        let pool_timeout = self
            .pool_timeout
            .unwrap_or_else(|| self.pool_block.then_some(DEFAULT_POOL_TIMEOUT));
        // The attempt timeouts' timer, which the retry layer's waits share.
        let ticker = Arc::new(Ticker::with_delay(self.attempt_timeout));
        let retry = RetryLayer::builder()
            .policy(self.retry.clone())
            .name(self.name)
            .attempt_bound(self.attempt_bound(pool_timeout))
            .ticker(Arc::clone(&ticker))
            .build()?;
        let breaker = self.circuit_breaker.clone().name(self.name).build()?;
        let mut pool = PoolLimitLayer::builder(self.pool_maxsize);
        if let Some(adaptive) = self.pool_adaptive {
            pool = pool.adaptive(adaptive);
        }
        let pool = pool
            .block(self.pool_block)
            .pool_timeout(pool_timeout)
            .max_pools(self.max_pools)
            .leak_threshold(self.leak_threshold)
            .name(self.name)
            .build()?;
        // Hedges draw from the retry layer's budget and respect the preset's breakers.
        let hedge = H::build(
            &self.hedge,
            self.name,
            retry.policy().budget.as_ref(),
            breaker.handle(),
        )?;
        Ok(ClientStackLayer {
            name: self.name,
            connect_timeout: self.connect_timeout,
            attempt_timeout: self.attempt_timeout,
            ticker,
            classify: ErrorClassifyLayer::builder().name(self.name).build()?,
            retry,
            hedge,
            breaker,
            pool,
        })
    }
}

impl<H: HedgeMode> ClientConfig<H> {
    /// The longest an attempt can last from its first pending poll below the retry layer:
    /// the wait for the host's pool permit (when it blocks), then the attempt timeout. The
    /// retry layer watches the deadline with a timer only for an attempt that could
    /// outlast it. Any layer added between the retry layer and the attempt timeout that
    /// delays an attempt (or starts another one later) must add its delay here: a hedge
    /// starts a second attempt after a measured delay, so with hedging there is no bound.
    fn attempt_bound(&self, pool_timeout: Option<Duration>) -> Option<Duration> {
        if H::HEDGES {
            return None;
        }
        let wait = if self.pool_block {
            pool_timeout?
        } else {
            Duration::ZERO
        };
        wait.checked_add(self.attempt_timeout)
    }
}

/// The preset client stack as a layer, built by [`ClientConfig::build`].
///
/// # Clone
///
/// The breakers, pools and retry budget are **shared by all clones**: of the layer, of every
/// service it builds, and of those services. Build one layer per backend and clone the
/// service into each task or handler.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::stack::ClientConfig;
///
/// let layer = ClientConfig::default().build()?;
/// let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(String::new()))
/// });
/// assert_eq!(layer.pool_handle().snapshot().total.in_use, 0);
/// assert!(layer.breaker_handle().is_empty());
/// # let _ = svc;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientStackLayer<H: HedgeMode = NoHedge> {
    name: &'static str,
    connect_timeout: Duration,
    attempt_timeout: Duration,
    /// The attempt timeouts' one timer, shared by every service the layer builds.
    ticker: Arc<Ticker>,
    classify: ErrorClassifyLayer,
    retry: RetryLayer,
    hedge: H::Layer,
    breaker: CircuitBreakerLayer<ByAuthority, HttpStatus>,
    pool: PoolLimitLayer,
}

impl ClientStackLayer {
    /// The stack's configuration with its defaults, to set and then
    /// [`build`](ClientConfig::build): the same as [`ClientConfig::default`].
    ///
    /// ```
    /// use tower_fortify::stack::ClientStackLayer;
    ///
    /// let layer = ClientStackLayer::builder().name("search").pool_maxsize(16).build()?;
    /// assert_eq!(layer.name(), "search");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn builder() -> ClientConfig {
        ClientConfig::default()
    }
}

#[cfg(feature = "hedge")]
impl ClientStackLayer<Hedged> {
    /// The hedge layer ([`ClientConfig::hedge`]): its name, and each host's hedge delay.
    ///
    /// ```
    /// use tower_fortify::hedge::HedgeLayer;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// let layer = ClientConfig::default().hedge(HedgeLayer::builder()).build()?;
    /// let uri = http::Uri::from_static("http://api.test/");
    /// assert_eq!(layer.hedge().hedge_delay(&uri), None); // no latency measured yet
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
    pub fn hedge(&self) -> &crate::hedge::HedgeLayer {
        &self.hedge
    }
}

impl<H: HedgeMode> ClientStackLayer<H> {
    /// A handle on the per-host pools: in use, waiting, overflow, timeouts, leaks.
    ///
    /// ```
    /// let layer = tower_fortify::stack::ClientConfig::default().build()?;
    /// assert_eq!(layer.pool_handle().snapshot().total.in_use, 0);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn pool_handle(&self) -> PoolHandle {
        self.pool.handle()
    }

    /// A handle on the per-host circuit breakers: state, figures, probes in flight.
    ///
    /// ```
    /// let layer = tower_fortify::stack::ClientConfig::default().build()?;
    /// assert_eq!(layer.breaker_handle().len(), 0);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn breaker_handle(&self) -> CircuitBreakerHandle {
        self.breaker.handle()
    }

    /// The retry policy in force.
    ///
    /// ```
    /// use tower_fortify::retry::RetryPolicy;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default()
    ///     .retry(RetryPolicy::production().total(Some(2)))
    ///     .build()?;
    /// println!("{:?}", layer.retry());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn retry(&self) -> &RetryPolicy {
        self.retry.policy()
    }

    /// The `name` label of every layer's metrics and tracing events.
    ///
    /// ```
    /// let layer = tower_fortify::stack::ClientConfig::default().name("search").build()?;
    /// assert_eq!(layer.name(), "search");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The connect timeout, for a connector built by hand (the HTTPS client of
    /// `ClientConfig::https` applies it itself).
    ///
    /// ```
    /// use std::time::Duration;
    /// use hyper_util::client::legacy::connect::HttpConnector;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default()
    ///     .connect_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// let mut connector = HttpConnector::new();
    /// connector.set_connect_timeout(Some(layer.connect_timeout()));
    /// assert_eq!(layer.connect_timeout(), Duration::from_secs(5));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The timeout of each attempt (the read timeout).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default()
    ///     .attempt_timeout(Duration::from_secs(2))
    ///     .build()?;
    /// assert_eq!(layer.attempt_timeout(), Duration::from_secs(2));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }
}

/// The retry layer does the classification layer's job too (`ErrorClassifyLayer` is not a
/// layer of its own here): its errors and its futures' errors are classified and recorded
/// as `ErrorClassify` around it would, with one future fewer per call.
type Inner<S, H> = Retry<<H as HedgeMode>::Service<HostGate<AttemptTimeout<S>>>>;

impl<S, H: HedgeMode> Layer<S> for ClientStackLayer<H> {
    type Service = ClientStack<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = AttemptTimeout::new(inner, Arc::clone(&self.ticker));
        let inner = self.pool.layer(inner);
        let inner = HostGate::new(self.breaker.layer(inner));
        let inner = H::layer(&self.hedge, inner);
        ClientStack {
            inner: self.retry.layer_classified(inner, self.classify.shared()),
        }
    }
}

/// The preset client stack around a service `S` (see the [module docs](self)).
///
/// For `S: Service<http::Request<B>, Response = http::Response<ResB>>` it is a
/// `Service<http::Request<B>>` with `Response = http::Response<PoolBody<ResB>>` (the body
/// holds the host's pool permit until it ends) and `Error = BoxError`, always a
/// [`Failure`](crate::classify::Failure) (the outermost layer classifies): its kind says
/// what ended the call. When retries ran out, the failure wraps the
/// [`RetryError`](crate::retry::error::RetryError) with the history of every attempt (see the
/// example below). The request body must be replayable: `B: Clone` (`Full<Bytes>`,
/// `String`, ...) or a [`ReplayBody`](crate::retry::ReplayBody).
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::classify::{Failure, FailureKind};
/// use tower_fortify::retry::error::RetryError;
/// use tower_fortify::stack::ClientConfig;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let refused = tower::service_fn(|_req: http::Request<String>| async {
///     Err::<http::Response<String>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
/// });
/// let client = ClientConfig::default().build()?.layer(refused);
/// let request = http::Request::get("http://127.0.0.1/").body(String::new())?;
/// let err = client.oneshot(request).await.unwrap_err();
///
/// let failure = err.downcast_ref::<Failure>().unwrap();
/// assert_eq!(failure.kind(), FailureKind::ConnectRefused);
/// let retry = failure.get_ref().downcast_ref::<RetryError>().unwrap();
/// assert_eq!(retry.history().records().len(), 5); // connect failures are retried at once
/// # Ok(())
/// # }
/// ```
///
/// The type can be named (`ClientStack<Client<HttpConnector, Full<Bytes>>>`), so it fits
/// in a struct or in axum's state. It is `Clone`; clones share the breakers, pools and
/// budget.
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::stack::{ClientConfig, ClientStack};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let backend = tower::service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::io::Error>(http::Response::new(String::from("pong")))
/// });
/// let client: ClientStack<_> = ClientConfig::default().build()?.layer(backend);
/// let request = http::Request::get("http://127.0.0.1/ping").body(String::new())?;
/// let response = client.oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(())
/// # }
/// ```
pub struct ClientStack<S, H: HedgeMode = NoHedge> {
    inner: Inner<S, H>,
}

// By hand: the hedge mode's service type is `Clone` and `Debug` when `S` is.
impl<S, H: HedgeMode> Clone for ClientStack<S, H>
where
    Inner<S, H>: Clone,
{
    fn clone(&self) -> Self {
        ClientStack {
            inner: self.inner.clone(),
        }
    }
}

impl<S, H: HedgeMode> std::fmt::Debug for ClientStack<S, H>
where
    Inner<S, H>: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStack")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, H: HedgeMode> ClientStack<S, H> {
    /// The wrapped client.
    ///
    /// ```
    /// use tower::Layer;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default().build()?;
    /// let svc = layer.layer(42_u8);
    /// assert_eq!(*svc.get_ref(), 42);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &H::get_ref(self.inner.get_ref()).inner.inner
    }

    /// The wrapped client, mutably.
    ///
    /// ```
    /// use tower::Layer;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default().build()?;
    /// let mut svc = layer.layer(42_u8);
    /// *svc.get_mut() = 7;
    /// assert_eq!(*svc.get_ref(), 7);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut H::get_mut(self.inner.get_mut()).inner.inner
    }

    /// Unwraps the client.
    ///
    /// ```
    /// use tower::Layer;
    ///
    /// let layer = tower_fortify::stack::ClientConfig::default().build()?;
    /// assert_eq!(layer.layer(42_u8).into_inner(), 42);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn into_inner(self) -> S {
        H::into_inner(self.inner.into_inner()).inner.inner
    }
}

impl<S, H: HedgeMode, Request> Service<Request> for ClientStack<S, H>
where
    Inner<S, H>: Service<Request>,
{
    type Response = <Inner<S, H> as Service<Request>>::Response;
    type Error = <Inner<S, H> as Service<Request>>::Error;
    type Future = <Inner<S, H> as Service<Request>>::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        self.inner.call(request)
    }
}
