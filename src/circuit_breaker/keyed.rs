//! One breaker per key (per host by default), with a bound on the keys tracked.

use super::{
    future::ResponseFuture,
    service::respond,
    state::{Admission, Settings, Shared},
    window::Padded,
    CircuitBreakerHandle, Classify, HttpStatus, State,
};
use crate::{
    classify::{Failure, Stage},
    BoxError,
};
use http::header::HOST;
use std::{
    borrow::Cow,
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, PoisonError, RwLock,
    },
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

/// The default key of a keyed breaker: the request URI's authority (`host:port`, without
/// user information), or the `Host` header when the URI has none (as a server receives
/// it), or the empty string. As the pool limit's per-host key does, it treats the host
/// case-insensitively (lowercased) and the scheme's default port as absent, so that the
/// breaker and the pool of one stack agree on what one host is.
///
/// ```
/// use tower_fortify::circuit_breaker::{ByAuthority, BreakerKey};
///
/// let request = http::Request::get("https://user:secret@api.example.com:8443/v1")
///     .body(())
///     .unwrap();
/// assert_eq!(ByAuthority.key(&request), "api.example.com:8443");
///
/// let request = http::Request::get("/v1").header("host", "example.org").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&request), "example.org");
///
/// let request = http::Request::get("http://Example.COM:80/").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&request), "example.com");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByAuthority;

impl<B> BreakerKey<http::Request<B>> for ByAuthority {
    fn key<'a>(&self, request: &'a http::Request<B>) -> Cow<'a, str> {
        let authority = match request.uri().authority() {
            Some(authority) => authority.as_str(),
            None => request
                .headers()
                .get(HOST)
                .and_then(|value| value.to_str().ok())
                .unwrap_or(""),
        };
        // User information must not end up in keys, logs or errors. A byte scan: a
        // `str` splitter costs more than the short authority it searches.
        let start = authority
            .as_bytes()
            .iter()
            .rposition(|&b| b == b'@')
            .map_or(0, |at| at + 1);
        let mut authority = &authority[start..];
        // The scheme is looked at only when the authority ends with a port.
        if authority.as_bytes().last().is_some_and(u8::is_ascii_digit) {
            let default_port = match request.uri().scheme_str() {
                Some(s) if s.eq_ignore_ascii_case("http") => ":80",
                Some(s) if s.eq_ignore_ascii_case("https") => ":443",
                _ => ":",
            };
            if let Some(host) = authority.strip_suffix(default_port) {
                authority = host;
            }
        }
        // Allocates only for a host written with capitals. A fold, not `any`: no early
        // exit, so the scan of these few bytes vectorises.
        if authority
            .bytes()
            .fold(false, |upper, b| upper | b.is_ascii_uppercase())
        {
            Cow::Owned(authority.to_ascii_lowercase())
        } else {
            Cow::Borrowed(authority)
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

/// The breakers of a keyed layer, in shards of a hash map under read-write locks.
///
/// A call takes its shard's read lock to find its breaker: unlike a single breaker's closed
/// path, this is a shared write (the lock's reader count) per call, on one of up to 16
/// shards. A new key takes the write lock, and evicts breakers when the shard is full.
pub(crate) struct KeyedMap {
    settings: Arc<Settings>,
    shards: Box<[Padded<Shard>]>,
}

struct Shard {
    map: RwLock<HashMap<Arc<str>, Entry>>,
    /// Keys inserted so far: the clock of least-recent use.
    inserts: AtomicU64,
    capacity: usize,
}

struct Entry {
    shared: Shared,
    /// The value of `inserts` when the breaker was last used: writing it only when it
    /// changed keeps a busy breaker's entry from being written by every call.
    last_used: AtomicU64,
}

impl KeyedMap {
    fn new(settings: Arc<Settings>) -> Self {
        let max_keys = settings.config.max_keys;
        let count = (max_keys / 64).clamp(1, 16).next_power_of_two().min(16);
        let shards = (0..count)
            .map(|i| {
                // The capacities add up to max_keys exactly.
                let capacity = max_keys / count + usize::from(i < max_keys % count);
                Padded(Shard {
                    map: RwLock::new(HashMap::new()),
                    inserts: AtomicU64::new(0),
                    capacity,
                })
            })
            .collect();
        KeyedMap { settings, shards }
    }

    fn shard(&self, key: &str) -> &Shard {
        // FNV-1a: only spreads keys over shards; the maps themselves use SipHash, so keys
        // chosen to collide slow down no more than one shard's lock.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.shards[(hash as usize) & (self.shards.len() - 1)]
    }

    pub(crate) fn admit(&self, key: &str) -> Admission {
        let shard = self.shard(key);
        {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = map.get(key) {
                entry.touch(shard);
                return entry.shared.admit();
            }
        }
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get(key) {
            entry.touch(shard);
            return entry.shared.admit();
        }
        self.insert(shard, &mut map, key).shared.admit()
    }

    fn insert<'m>(
        &self,
        shard: &Shard,
        map: &'m mut HashMap<Arc<str>, Entry>,
        key: &str,
    ) -> &'m Entry {
        if map.len() >= shard.capacity {
            let _evicted = evict(map, shard.capacity);
            #[cfg(feature = "metrics")]
            {
                self.settings.instruments.evicted(_evicted as u64);
                self.settings.instruments.keys(-(_evicted as f64));
            }
        }
        let now = shard.inserts.fetch_add(1, Ordering::AcqRel) + 1;
        let key: Arc<str> = key.into();
        let entry = Entry {
            shared: Shared::new(Arc::clone(&self.settings), Some(key.clone())),
            last_used: AtomicU64::new(now),
        };
        #[cfg(feature = "metrics")]
        self.settings.instruments.keys(1.0);
        map.entry(key).or_insert(entry)
    }

    fn get(&self, key: &str) -> Option<CircuitBreakerHandle> {
        let map = self
            .shard(key)
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .map(|entry| CircuitBreakerHandle::new(Arc::clone(&entry.shared.breaker)))
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .map
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    fn states(&self) -> Vec<(String, State)> {
        let mut states = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            states.extend(
                map.iter()
                    .map(|(key, entry)| (key.to_string(), entry.shared.breaker.state())),
            );
        }
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        states
    }
}

impl Entry {
    #[inline]
    fn touch(&self, shard: &Shard) {
        let now = shard.inserts.load(Ordering::Relaxed);
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// Evicts an eighth of a full shard (at least one breaker): the least recently used closed
/// (or disabled) ones first, then the least recently used of the others. Batches keep the
/// cost per new key constant while a scan of hosts fills the map again and again.
fn evict(map: &mut HashMap<Arc<str>, Entry>, capacity: usize) -> usize {
    let excess = (map.len() + 1).saturating_sub(capacity);
    let count = excess.max(capacity / 8).clamp(1, map.len());
    let mut candidates: Vec<(bool, u64, &Arc<str>)> = map
        .iter()
        .map(|(key, entry)| {
            let busy = !entry.shared.breaker.is_idle();
            (busy, entry.last_used.load(Ordering::Relaxed), key)
        })
        .collect();
    if count < candidates.len() {
        candidates.select_nth_unstable_by_key(count, |&(busy, last_used, _)| (busy, last_used));
    }
    let victims: Vec<Arc<str>> = candidates[..count]
        .iter()
        .map(|&(_, _, key)| key.clone())
        .collect();
    for key in &victims {
        map.remove(key);
    }
    victims.len()
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
/// At most [`max_keys`](super::CircuitBreakerBuilder::max_keys) breakers are kept. A new key
/// in a full map evicts an eighth of it: closed breakers first, least recently used first;
/// open ones only when nothing else is left. An evicted key starts again with a fresh,
/// closed breaker. So a scan of a million hosts holds at most `max_keys` breakers (a few KiB
/// each) at any time.
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
        // The key borrows the request: it is dropped before the request moves on.
        let admission = self.map.admit(&self.key.key(&request));
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
