//! One breaker per key (per host by default), with a bound on the keys tracked.

use super::{
    admission::{Admission, Shared},
    future::ResponseFuture,
    service::respond,
    settings::Settings,
    CircuitBreakerHandle, Classify, HttpStatus, State,
};
use crate::{
    classify::{Failure, Stage},
    internal::host::{default_port, split_host_port},
    internal::lru::{Evict, Eviction, Lookup, LruMap},
    BoxError,
};
use std::{
    borrow::Cow,
    fmt,
    sync::Arc,
    task::{Context, Poll},
};
use tower_layer::Layer;
use tower_service::Service;

// ===== keys =====

/// Computes the key of a request: requests with the same key share a breaker.
///
/// Implemented by [`ByAuthority`] (the default) and by [`KeyBy`], which wraps a closure
/// (see [`CircuitBreakerBuilder::build_keyed_by`](super::CircuitBreakerBuilder::build_keyed_by)).
/// Keys are strings, so that the map can be searched with a borrowed key without allocating.
///
/// ```
/// use std::borrow::Cow;
/// use tower_fortify::circuit_breaker::BreakerKey;
///
/// /// One breaker per first path segment (`/users/1` and `/users/2` share one).
/// #[derive(Clone)]
/// struct FirstSegment;
///
/// impl<B> BreakerKey<http::Request<B>> for FirstSegment {
///     fn key<'a>(&self, request: &'a http::Request<B>) -> Cow<'a, str> {
///         let path = request.uri().path().trim_start_matches('/');
///         Cow::Borrowed(path.split('/').next().unwrap_or(""))
///     }
/// }
///
/// let request = http::Request::get("http://api/users/1").body(()).unwrap();
/// assert_eq!(FirstSegment.key(&request), "users");
/// ```
pub trait BreakerKey<Req> {
    /// The key of `request`.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{ByAuthority, BreakerKey};
    ///
    /// let request = http::Request::get("http://example.com:8080/").body(()).unwrap();
    /// assert_eq!(ByAuthority.key(&request), "example.com:8080");
    /// ```
    fn key<'a>(&self, request: &'a Req) -> Cow<'a, str>;
}

/// The default key of a keyed breaker: the host of the request URI's authority, lowercased,
/// with its port when that is not the scheme's default (`host:port`; no user information),
/// or the empty string when the URI has no authority.
///
/// It never reads the `Host` header: on a server (where URIs have no authority) a remote
/// client writes that header, and could otherwise create a breaker per request, filling the
/// map and evicting the breakers that matter. Requests without an authority share one
/// breaker, keyed `""`. A key function of your own may read headers.
///
/// It reads the authority as the pool limit's per-host key does, so requests that share a
/// pool always share a breaker. The scheme itself is not part of it: `http://h/`
/// and `https://h/` are one host to the breaker, and two pools.
///
/// ```
/// use tower_fortify::circuit_breaker::{ByAuthority, BreakerKey};
///
/// let request = http::Request::get("https://user:secret@api.example.com:8443/v1")
///     .body(())
///     .unwrap();
/// assert_eq!(ByAuthority.key(&request), "api.example.com:8443");
///
/// // The Host header is not read: a relative URI has no authority.
/// let request = http::Request::get("/v1").header("host", "example.org").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&request), "");
///
/// let request = http::Request::get("http://Example.COM:80/").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&request), "example.com");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByAuthority;

impl<B> BreakerKey<http::Request<B>> for ByAuthority {
    fn key<'a>(&self, request: &'a http::Request<B>) -> Cow<'a, str> {
        // Never the `Host` header: on a server, a remote client writes it, and could make
        // a breaker per request.
        let authority = request.uri().authority().map_or("", |a| a.as_str());
        // The host and port as the pool's key reads them (user information left out: it
        // must not end up in keys, logs or errors); the port only if it is not the scheme's
        // default.
        let (host, port) = split_host_port(authority);
        let is_default = |port| request.uri().scheme_str().and_then(default_port) == Some(port);
        let key = match port.filter(|&port| !is_default(port)) {
            None => &authority[host],
            // Written as the port it is (`:0081` is port 81), else a key of its own.
            Some(port) => {
                let text = &authority[host.end + 1..];
                if text.starts_with('0') || text.starts_with('+') {
                    let host = authority[host].to_ascii_lowercase();
                    return Cow::Owned(format!("{host}:{port}"));
                }
                &authority[host.start..]
            }
        };
        // Allocates only for a host written with capitals. A fold, not `any`: no early
        // exit, so the scan of these few bytes vectorises.
        if key
            .bytes()
            .fold(false, |upper, b| upper | b.is_ascii_uppercase())
        {
            Cow::Owned(key.to_ascii_lowercase())
        } else {
            Cow::Borrowed(key)
        }
    }
}

/// A key function from a closure: see
/// [`CircuitBreakerBuilder::build_keyed_by`](super::CircuitBreakerBuilder::build_keyed_by).
///
/// ```
/// use std::borrow::Cow;
/// use tower_fortify::circuit_breaker::{KeyBy, BreakerKey};
///
/// let by_path = KeyBy::new(|req: &http::Request<()>| Cow::Borrowed(req.uri().path()));
/// assert_eq!(by_path.key(&http::Request::get("/a").body(()).unwrap()), "/a");
/// ```
#[derive(Clone, Copy)]
pub struct KeyBy<F> {
    f: F,
}

impl<F> KeyBy<F> {
    /// Wraps `f`. The bound is here so that a closure's signature is inferred with the
    /// lifetime that lets it return a borrow of its request.
    pub fn new<Req>(f: F) -> Self
    where
        F: for<'a> Fn(&'a Req) -> Cow<'a, str>,
    {
        KeyBy { f }
    }
}

impl<F> fmt::Debug for KeyBy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBy").finish_non_exhaustive()
    }
}

impl<Req, F> BreakerKey<Req> for KeyBy<F>
where
    F: for<'a> Fn(&'a Req) -> Cow<'a, str>,
{
    fn key<'a>(&self, request: &'a Req) -> Cow<'a, str> {
        (self.f)(request)
    }
}

// ===== the map =====

/// The breakers of a keyed layer (see [`LruMap`] for the shards, the locks and the order of
/// eviction): a closed breaker is idle and may be evicted in a batch; an open or half-open
/// one only when room is still needed; one an operator forced open or disabled never (its
/// state must hold).
pub(crate) struct KeyedMap {
    settings: Arc<Settings>,
    map: LruMap<Arc<str>, Shared>,
}

impl Evict for Shared {
    fn eviction(&self) -> Eviction {
        match self.breaker.state() {
            State::Closed => Eviction::Idle,
            State::Open | State::HalfOpen => Eviction::Busy,
            State::ForcedOpen | State::Disabled => Eviction::Never,
        }
    }
}

/// A key from [`BreakerKey`], borrowed until its breaker is created.
impl Lookup<Arc<str>> for Cow<'_, str> {
    type Borrowed = str;

    fn borrowed(&self) -> &str {
        self
    }

    fn into_key(self) -> Arc<str> {
        self.into()
    }
}

impl KeyedMap {
    fn new(settings: Arc<Settings>) -> Self {
        let map = LruMap::sharded(settings.config.max_keys);
        KeyedMap { settings, map }
    }

    pub(crate) fn admit(&self, key: Cow<'_, str>) -> Admission {
        self.map.get_or_insert(
            key,
            Shared::admit,
            |key| Shared::new(Arc::clone(&self.settings), Some(Arc::clone(key))),
            |_evicted| {
                #[cfg(feature = "metrics")]
                {
                    let instruments = &self.settings.instruments;
                    instruments.evicted(_evicted as u64);
                    instruments.keys(1.0 - _evicted as f64);
                }
            },
        )
    }

    fn get(&self, key: &str) -> Option<CircuitBreakerHandle> {
        self.map.get(key, |shared| {
            CircuitBreakerHandle::new(Arc::clone(&shared.breaker))
        })
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn states(&self) -> Vec<(String, State)> {
        let mut states = self
            .map
            .collect(|key, shared| (key.to_string(), shared.breaker.state()));
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        states
    }
}

impl fmt::Debug for KeyedMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMap")
            .field("name", &self.settings.name)
            .field("keys", &self.len())
            .field("max_keys", &self.settings.config.max_keys)
            .finish()
    }
}

// ===== layer =====

/// Applies a [`KeyedCircuitBreaker`]: one breaker per key (per host by default), so that one
/// failing host does not open the circuit for the others.
///
/// Build it with [`CircuitBreakerBuilder::build_keyed`](super::CircuitBreakerBuilder::build_keyed)
/// (by [`ByAuthority`]) or
/// [`build_keyed_by`](super::CircuitBreakerBuilder::build_keyed_by) (by your key). Every key's
/// breaker has the builder's settings; at most
/// [`max_keys`](super::CircuitBreakerBuilder::max_keys) keys are tracked.
///
/// # Clone
///
/// The layer holds the map of breakers: every service it builds, and every clone, shares it.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
///
/// let layer = CircuitBreakerLayer::builder().max_keys(512).build_keyed()?;
/// let handle = layer.handle();
/// let client = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::io::Error>(http::Response::new(String::new()))
///     });
/// assert!(handle.is_empty());
/// # let _ = client;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyedCircuitBreakerLayer<K = ByAuthority, C = HttpStatus> {
    map: Arc<KeyedMap>,
    key: K,
    classifier: C,
}

impl<K, C> KeyedCircuitBreakerLayer<K, C> {
    pub(crate) fn from_parts(settings: Arc<Settings>, key: K, classifier: C) -> Self {
        KeyedCircuitBreakerLayer {
            map: Arc::new(KeyedMap::new(settings)),
            key,
            classifier,
        }
    }

    /// A handle on the breakers.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().build_keyed()?;
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// assert_eq!(layer.handle().len(), svc.handle().len());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn handle(&self) -> KeyedCircuitBreakerHandle {
        KeyedCircuitBreakerHandle {
            map: Arc::clone(&self.map),
        }
    }
}

impl<S, K: Clone, C: Clone> Layer<S> for KeyedCircuitBreakerLayer<K, C> {
    type Service = KeyedCircuitBreaker<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            map: Arc::clone(&self.map),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

// ===== service =====

/// A circuit breaker per key: each request goes through the breaker of its key (its host by
/// default), created on first use.
///
/// Each key's breaker behaves as a [`CircuitBreaker`](super::CircuitBreaker) (see the
/// [module docs](super)); `poll_ready` is the inner service's, for the same reasons.
///
/// # Memory
///
/// At most [`max_keys`](super::CircuitBreakerBuilder::max_keys) breakers are kept, in up to
/// 16 shards of the map, each with its share of the bound. A new key in a full shard evicts
/// up to an eighth of it, least recently used first: closed breakers fill that batch; open
/// or half-open ones go only as far as room is still needed; a breaker an operator forced
/// open or disabled is never evicted (then the map may hold more, by as many). An evicted
/// key starts again with a fresh, closed breaker. So a scan of a million hosts holds at most
/// `max_keys` breakers (a few KiB each) at any time.
///
/// # Clone
///
/// Clones share the breakers with each other and with every service built by the same layer.
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let layer = CircuitBreakerLayer::builder().build_keyed()?;
/// let handle = layer.handle();
/// let svc = layer.layer(tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(()))
/// }));
/// let request = http::Request::get("http://a.example/").body(())?;
/// svc.oneshot(request).await?;
/// assert_eq!(handle.get("a.example").unwrap().state(), State::Closed);
/// assert!(handle.get("b.example").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KeyedCircuitBreaker<S, K = ByAuthority, C = HttpStatus> {
    inner: S,
    map: Arc<KeyedMap>,
    key: K,
    classifier: C,
}

impl<S, K, C> KeyedCircuitBreaker<S, K, C> {
    /// A handle on the breakers.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().build_keyed()?;
    /// let mut svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// assert!(svc.handle().is_empty());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn handle(&self) -> KeyedCircuitBreakerHandle {
        KeyedCircuitBreakerHandle {
            map: Arc::clone(&self.map),
        }
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().build_keyed()?;
    /// let mut svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// let _inner = svc.get_ref();
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().build_keyed()?;
    /// let mut svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// let _inner = svc.get_mut();
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::builder().build_keyed()?;
    /// let mut svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// let _inner = svc.into_inner();
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, K, C, Request> Service<Request> for KeyedCircuitBreaker<S, K, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    K: BreakerKey<Request>,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|err| Failure::boxed_at(err.into(), Stage::Request))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The key borrows the request until its breaker is found.
        let admission = self.map.admit(self.key.key(&request));
        respond(admission, &mut self.inner, request, &self.classifier)
    }
}

// ===== handle =====

/// Reads and steers the breakers of a keyed layer.
///
/// # Clone
///
/// Clones refer to the same breakers.
///
/// ```
/// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
///
/// let handle = CircuitBreakerLayer::builder().max_keys(100).build_keyed()?.handle();
/// assert_eq!(handle.len(), 0);
/// assert_eq!(handle.max_keys(), 100);
/// assert!(handle.states().is_empty());
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone)]
pub struct KeyedCircuitBreakerHandle {
    map: Arc<KeyedMap>,
}

impl KeyedCircuitBreakerHandle {
    /// A handle on the breaker of `key`, if it is tracked.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().max_keys(2).build_keyed()?;
    /// let handle = layer.handle();
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// for host in ["a.test", "b.test", "c.test"] {
    ///     let request = http::Request::get(format!("http://{host}/")).body(())?;
    ///     svc.clone().oneshot(request).await?;
    /// }
    /// // "a.test" was the least recently used when "c.test" came.
    /// assert!(handle.get("a.test").is_none());
    /// assert_eq!(handle.get("c.test").unwrap().state(), State::Closed);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &str) -> Option<CircuitBreakerHandle> {
        self.map.get(key)
    }

    /// The keys tracked.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().max_keys(2).build_keyed()?;
    /// let handle = layer.handle();
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// for host in ["a.test", "b.test", "c.test"] {
    ///     let request = http::Request::get(format!("http://{host}/")).body(())?;
    ///     svc.clone().oneshot(request).await?;
    /// }
    /// assert_eq!(handle.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is tracked.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert!(CircuitBreakerLayer::builder().build_keyed()?.handle().is_empty());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys tracked at once.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    ///
    /// assert_eq!(CircuitBreakerLayer::builder().build_keyed()?.handle().max_keys(), 1024);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn max_keys(&self) -> usize {
        self.map.settings.config.max_keys
    }

    /// Every tracked key with its breaker's state, sorted by key.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().max_keys(2).build_keyed()?;
    /// let handle = layer.handle();
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// for host in ["a.test", "b.test", "c.test"] {
    ///     let request = http::Request::get(format!("http://{host}/")).body(())?;
    ///     svc.clone().oneshot(request).await?;
    /// }
    /// let states = handle.states();
    /// let closed = |key: &str| (key.to_owned(), State::Closed);
    /// assert_eq!(states, [closed("b.test"), closed("c.test")]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn states(&self) -> Vec<(String, State)> {
        self.map.states()
    }
}

impl fmt::Debug for KeyedCircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyedCircuitBreakerHandle")
            .field(&self.map)
            .finish()
    }
}
