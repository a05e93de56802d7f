//! Which per-key state a request belongs to: one key trait, [`RequestKey`], for the
//! per-host pools and the per-host circuit breakers, so that a request maps to the same key
//! in both.
//!
//! The default, [`ByAuthority`], keys a request by the scheme, host and port of its URI's
//! **authority** ([`HostKey`]), as urllib3's `PoolManager` keys its pools. It never reads
//! the `Host` header: on a server, the URI of a request has no authority and the `Host`
//! header is whatever the remote client sent, so a key made from it would let a client
//! create as many pools (or breakers) as it likes, each with its own limit. Requests
//! without an authority share one key. A key of your own ([`KeyBy`], or an implementation
//! of [`RequestKey`]) may read headers: then it is your choice.
//!
//! ```
//! use tower_fortify::key::{ByAuthority, RequestKey};
//!
//! let client = http::Request::get("https://API.example.com/v1").body(()).unwrap();
//! assert_eq!(format!("{:?}", ByAuthority.key(&client)), "https://API.example.com:443");
//!
//! // A server's requests: the `Host` header does not make a key of its own.
//! let a = http::Request::get("/").header("host", "a.example").body(()).unwrap();
//! let b = http::Request::get("/").header("host", "b.example").body(()).unwrap();
//! assert_eq!(ByAuthority.key(&a), ByAuthority.key(&b));
//! ```

use crate::internal::{
    host::{default_port, split_host_port},
    lru::Lookup,
};
use http::{
    uri::{Authority, Scheme},
    Request, Uri,
};
use std::{
    any::Any,
    fmt,
    hash::{Hash, Hasher},
};

/// Computes the key of a request: requests with equal keys share per-key state (a pool, a
/// breaker).
///
/// It sees the whole request (its head; the body is not read), generic over the body type
/// `B`. Keys are kept while their state is tracked, and printed (with `Debug`) in snapshots
/// and tracing events, never in metric labels.
///
/// ```
/// use tower_fortify::key::RequestKey;
///
/// /// One key per tenant, from the `x-tenant` header.
/// #[derive(Debug, Clone, Copy)]
/// struct ByTenant;
///
/// impl<B> RequestKey<B> for ByTenant {
///     type Key = Option<http::HeaderValue>;
///
///     fn key(&self, request: &http::Request<B>) -> Self::Key {
///         request.headers().get("x-tenant").cloned()
///     }
/// }
///
/// let request = http::Request::get("/").header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(ByTenant.key(&request).unwrap(), "acme");
/// ```
pub trait RequestKey<B> {
    /// What identifies the state of a request.
    type Key: Hash + Eq + fmt::Debug + Send + Sync + 'static;

    /// The key of `request`.
    ///
    /// ```
    /// use tower_fortify::key::{ByAuthority, RequestKey};
    ///
    /// let request = http::Request::get("http://example.com/").body(()).unwrap();
    /// assert_eq!(ByAuthority.key(&request).port(), Some(80));
    /// ```
    fn key(&self, request: &Request<B>) -> Self::Key;
}

/// The default [`RequestKey`]: one key per scheme, host and port of the request URI's
/// authority ([`HostKey`]), as urllib3's `PoolManager` keeps one pool per
/// `(scheme, host, port)`.
///
/// Only the URI counts, never the `Host` header (which a remote client controls on a
/// server): requests without an authority in their URI share one key.
///
/// ```
/// use tower_fortify::key::{ByAuthority, RequestKey};
///
/// let a = http::Request::get("http://Example.com/a").body(()).unwrap();
/// let b = http::Request::get("http://example.com:80/b").body(()).unwrap();
/// let c = http::Request::get("https://example.com/").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&a), ByAuthority.key(&b)); // same host, default port
/// assert_ne!(ByAuthority.key(&a), ByAuthority.key(&c)); // another scheme and port
///
/// let server = http::Request::get("/").header("host", "x.example").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&server).host(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByAuthority;

impl<B> RequestKey<B> for ByAuthority {
    type Key = HostKey;

    #[inline]
    fn key(&self, request: &Request<B>) -> HostKey {
        HostKey::from_uri(request.uri())
    }
}

/// A key of [`ByAuthority`]: scheme, host (case-insensitive) and port (the scheme's default
/// when absent), from a URI's authority. User information in the authority is ignored.
///
/// It shares the URI's bytes (making one allocates nothing). `Debug` prints it as
/// `scheme://host:port`, or `(no host)` for a request without an authority.
///
/// ```
/// use tower_fortify::key::{ByAuthority, RequestKey};
///
/// let request = http::Request::get("https://user@API.example.com/v1").body(()).unwrap();
/// let key = ByAuthority.key(&request);
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
    #[inline]
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

    /// The key of a URI, as [`ByAuthority`] computes it for a request to that URI: to find
    /// a host's state by its address (for example with a circuit breaker handle's `get`).
    ///
    /// ```
    /// use http::Uri;
    /// use tower_fortify::key::{ByAuthority, HostKey, RequestKey};
    ///
    /// let request = http::Request::get("https://api.example.com/v1").body(()).unwrap();
    /// let key = HostKey::from_uri(&Uri::from_static("https://API.example.com:443"));
    /// assert_eq!(key, ByAuthority.key(&request));
    /// ```
    #[inline]
    pub fn from_uri(uri: &Uri) -> Self {
        HostKey::new(uri.scheme().cloned(), uri.authority().cloned())
    }

    /// The scheme, if the URI had one.
    ///
    /// ```
    /// use tower_fortify::key::{ByAuthority, RequestKey};
    ///
    /// let request = http::Request::get("http://a.example/").body(()).unwrap();
    /// assert_eq!(ByAuthority.key(&request).scheme(), Some("http"));
    /// ```
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_ref().map(Scheme::as_str)
    }

    /// The host, if the URI named one (as written: compare keys, not hosts).
    ///
    /// ```
    /// use tower_fortify::key::{ByAuthority, RequestKey};
    ///
    /// let request = http::Request::get("http://A.example:8080/").body(()).unwrap();
    /// assert_eq!(ByAuthority.key(&request).host(), Some("A.example"));
    /// ```
    pub fn host(&self) -> Option<&str> {
        let authority = self.authority.as_ref()?;
        authority.as_str().get(self.host.clone())
    }

    /// The port: explicit, or the scheme's default (80 for `http`, 443 for `https`).
    ///
    /// ```
    /// use tower_fortify::key::{ByAuthority, RequestKey};
    ///
    /// let request = http::Request::get("http://a.example:8080/").body(()).unwrap();
    /// assert_eq!(ByAuthority.key(&request).port(), Some(8080));
    /// ```
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

/// A closure as a [`RequestKey`].
///
/// ```
/// use tower_fortify::key::{KeyBy, RequestKey};
///
/// let by_path = KeyBy::new(|request: &http::Request<()>| request.uri().path().to_owned());
/// let request = http::Request::get("http://a/v1").body(()).unwrap();
/// assert_eq!(by_path.key(&request), "/v1");
/// ```
#[derive(Clone, Copy)]
pub struct KeyBy<F>(F);

impl<F> KeyBy<F> {
    /// Wraps `f`.
    ///
    /// ```
    /// let key = tower_fortify::key::KeyBy::new(|_: &http::Request<()>| 0u8);
    /// # let _ = key;
    /// ```
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

impl<B, F, K> RequestKey<B> for KeyBy<F>
where
    F: Fn(&Request<B>) -> K,
    K: Hash + Eq + fmt::Debug + Send + Sync + 'static,
{
    type Key = K;

    #[inline]
    fn key(&self, request: &Request<B>) -> K {
        (self.0)(request)
    }
}

// ===== keys, their type erased =====

/// A key of any type, as the per-key maps (pools, breakers) store it: a layer is built before
/// the request type (and so the key type) is known. Every key of one map has the same type.
pub(crate) trait ErasedKey: Any + Send + Sync {
    fn hash_erased(&self, state: &mut dyn Hasher);
    fn eq_erased(&self, other: &dyn ErasedKey) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<K: Hash + Eq + fmt::Debug + Send + Sync + 'static> ErasedKey for K {
    #[inline]
    fn hash_erased(&self, mut state: &mut dyn Hasher) {
        self.hash(&mut state);
    }

    #[inline]
    fn eq_erased(&self, other: &dyn ErasedKey) -> bool {
        other.as_any().downcast_ref::<K>() == Some(self)
    }

    #[inline]
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Hash for dyn ErasedKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash_erased(state);
    }
}

impl PartialEq for dyn ErasedKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.eq_erased(other)
    }
}

impl Eq for dyn ErasedKey {}

impl fmt::Debug for dyn ErasedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug(f)
    }
}

/// A request's key, looked up as it is (borrowed: nothing is boxed on a hit), and boxed
/// only when its entry (a pool, a breaker) is created.
pub(crate) struct ByValue<K>(pub(crate) K);

impl<K: ErasedKey> Lookup<Box<dyn ErasedKey>> for ByValue<K> {
    type Borrowed = dyn ErasedKey;

    #[inline]
    fn borrowed(&self) -> &dyn ErasedKey {
        &self.0
    }

    fn into_key(self) -> Box<dyn ErasedKey> {
        Box::new(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn key(uri: &str) -> HostKey {
        ByAuthority.key(&Request::get(uri).body(()).unwrap())
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
    fn the_host_header_never_makes_a_key() {
        let with_host = |host: &str| {
            ByAuthority.key(&Request::get("/path").header("host", host).body(()).unwrap())
        };
        let a = with_host("a.local:8080");
        assert_eq!((a.host(), a.port()), (None, None));
        assert_eq!(a, with_host("b.local"));
        assert_eq!(hash(&a), hash(&with_host("b.local")));
        assert_eq!(a, key("/"));
        assert_eq!(format!("{a:?}"), "(no host)");
        // The URI's authority wins over a different `Host` header.
        let both = Request::get("http://uri.example/")
            .header("host", "header.example")
            .body(())
            .unwrap();
        assert_eq!(ByAuthority.key(&both).host(), Some("uri.example"));
    }

    #[test]
    fn erased_keys_hash_and_compare_as_their_type() {
        let (a, b) = (key("http://a.example/"), key("http://A.EXAMPLE:80/"));
        let erased = |key: &dyn ErasedKey| {
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            h.finish()
        };
        let boxed: Box<dyn ErasedKey> = Box::new(a.clone());
        assert!(*boxed == *(&b as &dyn ErasedKey));
        assert_eq!(erased(&*boxed), erased(&b));
        assert_eq!(erased(&b), hash(&b));
        assert!(*boxed != *(&key("http://b.example/") as &dyn ErasedKey));
        assert!(
            *boxed != *(&"http://a.example:80" as &dyn ErasedKey),
            "another type"
        );
        assert_eq!(format!("{boxed:?}"), "http://a.example:80");
    }
}
