//! Per-host pools (urllib3's `PoolManager`): which pool a request belongs to, and the
//! bounded map of pools.

use super::permit::{Core, Permit, Pool};
use crate::internal::host::{default_port, split_host_port};
use crate::internal::lru::{Evict, Eviction, LruMap};
use http::{
    header,
    request::Parts,
    uri::{Authority, Scheme},
};
use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

/// Chooses the pool of a request: requests with equal keys share a pool.
///
/// The default, [`ByAuthority`], gives one pool per scheme, host and port, as urllib3's
/// `PoolManager` does. Implement it, or pass a closure to
/// [`PoolLimitBuilder::key_fn`](super::PoolLimitBuilder::key_fn), to pool by something
/// else (a tenant header, a route). The key sees the request's head, not its body.
///
/// Keys are kept while their pool is tracked, and printed (with `Debug`) in
/// [snapshots](super::PoolSnapshot) and tracing events, never in metric labels.
///
/// ```
/// use tower_fortify::pool::{PoolKey, PoolLimitLayer};
///
/// /// One pool per tenant, from the `x-tenant` header.
/// #[derive(Debug, Clone, Copy)]
/// struct ByTenant;
///
/// impl PoolKey for ByTenant {
///     type Key = Option<http::HeaderValue>;
///
///     fn key(&self, request: &http::request::Parts) -> Self::Key {
///         request.headers.get("x-tenant").cloned()
///     }
/// }
///
/// let layer = PoolLimitLayer::builder(4).pool_key(ByTenant).build()?;
/// # let _ = layer;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
pub trait PoolKey: Send + Sync + 'static {
    /// What identifies a pool.
    type Key: Hash + Eq + fmt::Debug + Send + Sync + 'static;

    /// The key of a request's pool.
    fn key(&self, request: &Parts) -> Self::Key;
}

/// The default [`PoolKey`]: one pool per scheme, host and port ([`HostKey`]), as urllib3's
/// `PoolManager` keeps one pool per `(scheme, host, port)`.
///
/// The authority comes from the request's URI (a client's absolute URI), or else from its
/// `Host` header (a server's requests).
///
/// ```
/// use tower_fortify::pool::{ByAuthority, PoolKey};
///
/// let (a, _) = http::Request::get("http://Example.com/a").body(()).unwrap().into_parts();
/// let (b, _) = http::Request::get("http://example.com:80/b").body(()).unwrap().into_parts();
/// let (c, _) = http::Request::get("https://example.com/").body(()).unwrap().into_parts();
/// assert_eq!(ByAuthority.key(&a), ByAuthority.key(&b)); // same host, default port
/// assert_ne!(ByAuthority.key(&a), ByAuthority.key(&c)); // another scheme and port
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByAuthority;

impl PoolKey for ByAuthority {
    type Key = HostKey;

    fn key(&self, request: &Parts) -> HostKey {
        let authority = match request.uri.authority() {
            Some(authority) => Some(authority.clone()),
            None => request
                .headers
                .get(header::HOST)
                .and_then(|host| Authority::try_from(host.as_bytes()).ok()),
        };
        HostKey::new(request.uri.scheme().cloned(), authority)
    }
}

/// A pool's key in per-host mode: scheme, host (case-insensitive) and port (the scheme's
/// default when absent). User information in the authority is ignored.
///
/// `Debug` prints it as `scheme://host:port`.
///
/// ```
/// use tower_fortify::pool::{ByAuthority, PoolKey};
///
/// let (parts, _) = http::Request::get("https://user@API.example.com/v1").body(()).unwrap().into_parts();
/// let key = ByAuthority.key(&parts);
/// assert_eq!(key.scheme(), Some("https"));
/// assert_eq!(key.host(), Some("API.example.com"));
/// assert_eq!(key.port(), Some(443));
/// assert_eq!(format!("{key:?}"), "https://API.example.com:443");
/// ```
#[derive(Clone)]
pub struct HostKey {
    scheme: Option<Scheme>,
    authority: Option<Authority>,
    /// Where the host is in the authority (parsed once: keys are hashed and compared often).
    host: std::ops::Range<usize>,
    port: Option<u16>,
}

impl HostKey {
    fn new(scheme: Option<Scheme>, authority: Option<Authority>) -> Self {
        let (host, explicit) = authority.as_ref().map_or((0..0, None), |authority| {
            split_host_port(authority.as_str())
        });
        let port = explicit.or_else(|| default_port(scheme.as_ref()?.as_str()));
        HostKey {
            scheme,
            authority,
            host,
            port,
        }
    }

    /// The scheme, if the request had one.
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_ref().map(Scheme::as_str)
    }

    /// The host, if the request named one.
    pub fn host(&self) -> Option<&str> {
        let authority = self.authority.as_ref()?;
        authority.as_str().get(self.host.clone())
    }

    /// The port: explicit, or the scheme's default (80 for `http`, 443 for `https`).
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl PartialEq for HostKey {
    fn eq(&self, other: &Self) -> bool {
        self.scheme == other.scheme
            && match (self.host(), other.host()) {
                // The same spelling first: a byte comparison is cheaper.
                (Some(a), Some(b)) => a == b || a.eq_ignore_ascii_case(b),
                (None, None) => true,
                _ => false,
            }
            && self.port == other.port
    }
}

impl Eq for HostKey {}

impl Hash for HostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: the scheme as a case-insensitive tag, the host lower-cased,
        // the port. Hashing is per call: a host of up to 59 bytes takes one `write`.
        let host = self.host().map_or(&[][..], str::as_bytes);
        let scheme = match self.scheme() {
            None => 0,
            Some(s) if s.eq_ignore_ascii_case("http") => 1,
            Some(s) if s.eq_ignore_ascii_case("https") => 2,
            Some(_) => 3,
        };
        let [hi, lo] = self.port.unwrap_or(0).to_be_bytes();
        // The host's length mod 256, the scheme and the port.
        let trailer = [
            host.len() as u8,
            scheme,
            u8::from(self.port.is_some()),
            hi,
            lo,
        ];
        let mut buf = [0u8; 64];
        let n = host.len();
        if n <= buf.len() - trailer.len() {
            buf[..n].copy_from_slice(host);
            buf[..n].make_ascii_lowercase();
            buf[n..n + trailer.len()].copy_from_slice(&trailer);
            state.write(&buf[..n + trailer.len()]);
        } else {
            for chunk in host.chunks(buf.len()) {
                let buf = &mut buf[..chunk.len()];
                buf.copy_from_slice(chunk);
                buf.make_ascii_lowercase();
                state.write(buf);
            }
            state.write(&trailer);
        }
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme() {
            write!(f, "{scheme}://")?;
        }
        match self.host() {
            Some(host) => f.write_str(host)?,
            None => f.write_str("(no host)")?,
        }
        match self.port() {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// A closure as a [`PoolKey`] (from [`PoolLimitBuilder::key_fn`](super::PoolLimitBuilder::key_fn)).
///
/// ```
/// use tower_fortify::pool::{KeyBy, PoolKey};
///
/// let by_path = KeyBy::new(|parts: &http::request::Parts| parts.uri.path().to_owned());
/// let (parts, _) = http::Request::get("http://a/v1").body(()).unwrap().into_parts();
/// assert_eq!(by_path.key(&parts), "/v1");
/// ```
#[derive(Clone, Copy)]
pub struct KeyBy<F>(F);

impl<F> KeyBy<F> {
    /// Wraps `f`.
    pub const fn new(f: F) -> Self {
        KeyBy(f)
    }
}

impl<F> fmt::Debug for KeyBy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyBy")
            .field(&std::any::type_name::<F>())
            .finish()
    }
}

impl<F, K> PoolKey for KeyBy<F>
where
    F: Fn(&Parts) -> K + Send + Sync + 'static,
    K: Hash + Eq + fmt::Debug + Send + Sync + 'static,
{
    type Key = K;

    fn key(&self, request: &Parts) -> K {
        (self.0)(request)
    }
}

// ===== the map of pools =====

/// The pools of a per-host layer, shared by all its services and their clones (see
/// [`LruMap`] for the shards, the locks and the order of eviction).
///
/// It keeps at most `max_pools` pools, evicting the least recently used idle ones; a pool
/// with a call in flight or waiting is never evicted (its limit must hold), so while more
/// than `max_pools` keys are busy at once the map holds one pool per busy key: it is bounded
/// by the calls in flight, never by the keys ever seen.
pub(crate) struct Keyed<K> {
    map: LruMap<K, Arc<Pool>>,
}

/// Under the map's write lock nobody can take a new reference: a pool only the map holds
/// has no permit, no waiter and no call about to use it.
impl Evict for Arc<Pool> {
    fn eviction(&self) -> Eviction {
        if Arc::strong_count(self) == 1 {
            Eviction::Idle
        } else {
            Eviction::Never
        }
    }
}

impl<K> fmt::Debug for Keyed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Keyed").field(&self.map).finish()
    }
}

impl<K: Hash + Eq + fmt::Debug> Keyed<K> {
    pub(crate) fn new(max_pools: usize) -> Self {
        Keyed {
            map: LruMap::new(max_pools),
        }
    }

    /// A permit of `key`'s pool (created if needed), or the pool if it has none free.
    #[inline]
    pub(crate) fn try_acquire(&self, key: K, core: &Arc<Core>) -> Result<Permit, Arc<Pool>> {
        // Under the shard's lock, eviction cannot pick the pool meanwhile.
        let found = |pool: &Arc<Pool>| pool.try_acquire().ok_or_else(|| Arc::clone(pool));
        let make = |key: &K| {
            Arc::new(Pool::new(
                Arc::clone(core),
                Some(format!("{key:?}").into_boxed_str()),
            ))
        };
        self.map.get_or_insert(key, found, make, |_| {
            #[cfg(feature = "metrics")]
            core.pools_changed(|| self.map.len());
        })
    }

    /// Every pool tracked now.
    pub(crate) fn pools(&self) -> Vec<Arc<Pool>> {
        self.map.collect(|_, pool| Arc::clone(pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn key(uri: &str) -> HostKey {
        let (parts, ()) = http::Request::get(uri).body(()).unwrap().into_parts();
        ByAuthority.key(&parts)
    }

    fn hash(key: &HostKey) -> u64 {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        h.finish()
    }

    #[test]
    fn host_keys_follow_urllib3() {
        let same = [
            "http://example.com/",
            "http://EXAMPLE.com:80/x",
            "http://u:p@example.com/",
        ];
        for uri in same {
            assert_eq!(key(uri), key(same[0]), "{uri}");
            assert_eq!(hash(&key(uri)), hash(&key(same[0])), "{uri}");
        }
        assert_ne!(key("http://example.com/"), key("https://example.com/"));
        assert_ne!(key("http://example.com/"), key("http://example.com:8080/"));
        assert_ne!(key("http://example.com/"), key("http://example.org/"));
    }

    #[test]
    fn long_hosts_hash_consistently() {
        let long = "a".repeat(150);
        let a = key(&format!("http://{long}.example/"));
        let b = key(&format!("http://{}.EXAMPLE:80/", long.to_uppercase()));
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&key("http://a.example/")));
    }

    #[test]
    fn host_header_when_the_uri_has_no_authority() {
        let (parts, ()) = http::Request::get("/path")
            .header("host", "svc.local:8080")
            .body(())
            .unwrap()
            .into_parts();
        let key = ByAuthority.key(&parts);
        assert_eq!(key.host(), Some("svc.local"));
        assert_eq!(key.port(), Some(8080));
        let (bare, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        assert_eq!(format!("{:?}", ByAuthority.key(&bare)), "(no host)");
    }
}
