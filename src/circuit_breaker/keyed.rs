//! One breaker per key (per host by default): the keys, and the map with a bound on the keys
//! tracked.

use super::{
    admission::{Admission, Shared},
    breaker::Breaker,
    settings::Settings,
    State,
};
use crate::internal::{
    host::{default_port, split_host_port},
    lru::{Evict, Eviction, Lookup, LruMap},
};
use std::{borrow::Cow, fmt, sync::Arc};

// ===== keys =====

/// Computes the key of a request: requests with the same key share a breaker.
///
/// Implemented by [`ByAuthority`] (the default) and by [`KeyBy`], which wraps a closure
/// (see [`CircuitBreakerBuilder::key_fn`](super::CircuitBreakerBuilder::key_fn)).
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

/// The default key of a per-host breaker: the host of the request URI's authority, lowercased,
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
/// [`CircuitBreakerBuilder::key_fn`](super::CircuitBreakerBuilder::key_fn).
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

/// The breakers of a per-host layer (see [`LruMap`] for the shards, the locks and the order of
/// eviction): a closed breaker is idle and may be evicted in a batch; an open or half-open
/// one only when room is still needed; one an operator forced open or disabled never (its
/// state must hold).
pub(crate) struct KeyedMap {
    pub(crate) settings: Arc<Settings>,
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

    pub(crate) fn get(&self, key: &str) -> Option<Arc<Breaker>> {
        self.map.get(key, |shared| Arc::clone(&shared.breaker))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn states(&self) -> Vec<(String, State)> {
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

// ===== one breaker, or one per key =====

/// The breakers of an HTTP layer: one for every request (`per_host(false)`: no key is
/// computed, no map searched), or one per key.
#[derive(Debug, Clone)]
pub(crate) enum Breakers {
    Single(Arc<Shared>),
    Keyed(Arc<KeyedMap>),
}

impl Breakers {
    pub(crate) fn new(settings: Arc<Settings>, per_host: bool) -> Self {
        if per_host {
            Breakers::Keyed(Arc::new(KeyedMap::new(settings)))
        } else {
            Breakers::Single(Arc::new(Shared::new(settings, None)))
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        match self {
            Breakers::Single(shared) => &shared.breaker.settings,
            Breakers::Keyed(map) => &map.settings,
        }
    }
}
