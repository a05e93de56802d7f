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
    lru::{Lookup, MapHasher, Probe},
};
use http::{
    uri::{Authority, Scheme},
    Request, Uri,
};
use std::{
    any::Any,
    fmt,
    hash::{BuildHasher, Hash, Hasher},
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

    /// Whether this is [`ByAuthority`]: the per-key maps then read the request's authority
    /// in place instead of making its key (no copy, no reference count touched). Not part
    /// of the API: the default (`false`) is right for every key of your own.
    #[doc(hidden)]
    #[inline(always)]
    fn by_authority(&self) -> bool {
        false
    }
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

    #[inline(always)]
    fn by_authority(&self) -> bool {
        true
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
    /// The scheme's [`tag`].
    tag: u8,
    authority: Option<Authority>,
    /// Where the host is in the authority (parsed once: keys are hashed and compared often).
    host: std::ops::Range<usize>,
    port: Option<u16>,
}

impl HostKey {
    /// The key as [`ByAuthority`] looks it up (borrowed).
    #[inline]
    fn as_ref(&self) -> HostRef<'_> {
        HostRef {
            scheme: self.scheme.as_ref(),
            tag: self.tag,
            authority: self.authority.as_ref(),
            host: self.host.clone(),
            port: self.port,
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
        HostRef::of(uri).to_owned()
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
        self.as_ref() == other.as_ref()
    }
}

impl Eq for HostKey {}

impl Hash for HostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

/// A [`HostKey`] read in place from a URI: what the per-key maps look a request up with
/// (its scheme and authority are copied only for a new entry).
#[derive(Clone)]
pub(crate) struct HostRef<'a> {
    scheme: Option<&'a Scheme>,
    /// The scheme's [`tag`].
    tag: u8,
    authority: Option<&'a Authority>,
    host: std::ops::Range<usize>,
    port: Option<u16>,
}

impl<'a> HostRef<'a> {
    #[inline]
    pub(crate) fn of(uri: &'a Uri) -> Self {
        let scheme = uri.scheme();
        let authority = uri.authority();
        let (host, explicit) = authority.map_or((0..0, None), |authority| {
            split_host_port(authority.as_str())
        });
        let tag = tag(scheme);
        let port = explicit.or(match tag {
            HTTP => Some(80),
            HTTPS => Some(443),
            _ => None,
        });
        HostRef {
            scheme,
            tag,
            authority,
            host,
            port,
        }
    }

    fn to_owned(&self) -> HostKey {
        HostKey {
            scheme: self.scheme.cloned(),
            tag: self.tag,
            authority: self.authority.cloned(),
            host: self.host.clone(),
            port: self.port,
        }
    }

    /// The host's bytes (a byte range needs no check of character boundaries).
    #[inline]
    fn host_bytes(&self) -> Option<&'a [u8]> {
        self.authority?.as_str().as_bytes().get(self.host.clone())
    }
}

impl PartialEq for HostRef<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.port == other.port
            && self.tag == other.tag
            // The tag tells `http` and `https` apart: only other schemes are compared.
            && (self.tag != OTHER || self.scheme == other.scheme)
            && match (self.host_bytes(), other.host_bytes()) {
                // The same spelling first: a byte comparison is cheaper.
                (Some(a), Some(b)) => a.len() == b.len() && (a == b || a.eq_ignore_ascii_case(b)),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Hash for HostRef<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: the host lower-cased in 64-byte writes (one for most
        // hosts, copied only when it has upper-case letters), then in one word its length,
        // the scheme as a tag and the port.
        let host = self.host_bytes().unwrap_or_default();
        if has_upper(host) {
            let mut buf = [0u8; 64];
            for chunk in host.chunks(buf.len()) {
                let buf = &mut buf[..chunk.len()];
                buf.copy_from_slice(chunk);
                buf.make_ascii_lowercase();
                state.write(buf);
            }
        } else {
            for chunk in host.chunks(64) {
                state.write(chunk);
            }
        }
        let port = self.port.map_or(0, |port| 0x1_0000 | u64::from(port));
        state.write_u64((host.len() as u64) << 32 | u64::from(self.tag) << 24 | port);
    }
}

/// [`HostRef::tag`]: no scheme, `http`, `https` (in any case), another.
const NONE: u8 = 0;
const HTTP: u8 = 1;
const HTTPS: u8 = 2;
const OTHER: u8 = 3;

/// A scheme as a tag: the schemes `http` parses first (an enum compare), then any other
/// spelling of them.
#[inline]
fn tag(scheme: Option<&Scheme>) -> u8 {
    match scheme {
        None => NONE,
        Some(s) if *s == Scheme::HTTP => HTTP,
        Some(s) if *s == Scheme::HTTPS => HTTPS,
        Some(s) => match default_port(s.as_str()) {
            Some(80) => HTTP,
            Some(_) => HTTPS,
            None => OTHER,
        },
    }
}

/// Whether `bytes` may hold an upper-case ASCII letter (also for any byte not ASCII, which
/// a parsed authority never holds), eight bytes at a time.
#[inline]
fn has_upper(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    let upper = |word: u64| {
        // For an ASCII byte `b`, `b + 0x3f` has its top bit set from `A` on, `b + 0x25`
        // from after `Z` on; no sum carries into the next byte.
        word & (ONES * 0x80) != 0
            || (word + ONES * 0x3f) & !(word + ONES * 0x25) & (ONES * 0x80) != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        if upper(u64::from_ne_bytes(chunk.try_into().expect("8 bytes"))) {
            return true;
        }
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    upper(u64::from_ne_bytes(last))
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
    /// use tower_fortify::key::{KeyBy, RequestKey};
    ///
    /// // Two keys: one for the safe methods (reads), one for the others (writes).
    /// let by_method = KeyBy::new(|request: &http::Request<()>| request.method().is_safe());
    /// assert!(by_method.key(&http::Request::get("http://a.test/").body(()).unwrap()));
    /// assert!(!by_method.key(&http::Request::post("http://a.test/").body(()).unwrap()));
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

// ===== the keys of the per-key maps =====

/// A key of any type, as the per-key maps (pools, breakers) store a key of your own: a layer
/// is built before the request type (and so the key type) is known. Every key of one map
/// has the same type. Only a new key and a handle's lookup go through it: a call compares
/// its own key with [`as_any`](Self::as_any).
pub(crate) trait ErasedKey: Any + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<K: fmt::Debug + Send + Sync + 'static> ErasedKey for K {
    #[inline]
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The key of a per-key map: [`ByAuthority`]'s own (compared without an indirect call), or
/// any other key, its type erased.
pub(crate) enum MapKey {
    Host(HostKey),
    Other(Box<dyn ErasedKey>),
}

impl fmt::Debug for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Host(key) => fmt::Debug::fmt(key, f),
            MapKey::Other(key) => key.debug(f),
        }
    }
}

/// How a request is looked up in a per-key map: by its authority read in place (the
/// default key), or by the key a [`RequestKey`] of your own made for it.
pub(crate) enum RequestLookup<'a, K> {
    Host(HostRef<'a>),
    Other(K),
}

impl<'a, K> RequestLookup<'a, K> {
    /// The lookup of `request` with `key`: for [`ByAuthority`], its URI read in place.
    #[inline(always)]
    pub(crate) fn of<B, R>(key: &R, request: &'a Request<B>) -> Self
    where
        R: RequestKey<B, Key = K>,
    {
        if key.by_authority() {
            RequestLookup::Host(HostRef::of(request.uri()))
        } else {
            RequestLookup::Other(key.key(request))
        }
    }
}

impl<K: Hash + Eq + fmt::Debug + Send + Sync + 'static> Probe<MapKey> for RequestLookup<'_, K> {
    #[inline]
    fn hash_with(&self, hasher: &MapHasher) -> u64 {
        match self {
            RequestLookup::Host(host) => host.hash_with(hasher),
            RequestLookup::Other(key) => hasher.hash_one(key),
        }
    }

    #[inline]
    fn matches(&self, stored: &MapKey) -> bool {
        match (self, stored) {
            (RequestLookup::Host(host), stored) => host.matches(stored),
            (RequestLookup::Other(key), MapKey::Other(stored)) => {
                stored.as_any().downcast_ref::<K>() == Some(key)
            }
            _ => false,
        }
    }
}

impl<K: Hash + Eq + fmt::Debug + Send + Sync + 'static> Lookup<MapKey> for RequestLookup<'_, K> {
    fn into_key(self) -> MapKey {
        match self {
            RequestLookup::Host(host) => host.into_key(),
            RequestLookup::Other(key) => MapKey::Other(Box::new(key)),
        }
    }
}

impl Probe<MapKey> for HostRef<'_> {
    #[inline]
    fn hash_with(&self, hasher: &MapHasher) -> u64 {
        hasher.hash_one(self)
    }

    #[inline]
    fn matches(&self, stored: &MapKey) -> bool {
        matches!(stored, MapKey::Host(stored) if *self == stored.as_ref())
    }
}

impl Lookup<MapKey> for HostRef<'_> {
    fn into_key(self) -> MapKey {
        MapKey::Host(self.to_owned())
    }
}

/// A key a handle looks up (`CircuitBreakerHandle::get`): any type, a [`HostKey`] found
/// among [`ByAuthority`]'s keys.
#[cfg(feature = "circuit-breaker")]
pub(crate) struct ByRef<'a, Q: ?Sized>(pub(crate) &'a Q);

#[cfg(feature = "circuit-breaker")]
impl<Q: Hash + Eq + Any> Probe<MapKey> for ByRef<'_, Q> {
    fn hash_with(&self, hasher: &MapHasher) -> u64 {
        // A `HostKey` hashes as the `HostRef` it was looked up with.
        hasher.hash_one(self.0)
    }

    fn matches(&self, stored: &MapKey) -> bool {
        match stored {
            MapKey::Host(stored) => (self.0 as &dyn Any).downcast_ref::<HostKey>() == Some(stored),
            MapKey::Other(stored) => stored.as_any().downcast_ref::<Q>() == Some(self.0),
        }
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
    fn upper_case_letters_are_found_in_any_byte() {
        for len in 0..20 {
            for at in 0..len {
                for (b, upper) in [(b'A', true), (b'Z', true), (b'@', false), (b'[', false)] {
                    let mut host = vec![b'a'; len];
                    host[at] = b;
                    assert_eq!(has_upper(&host), upper, "{len} {at} {b}");
                }
            }
            assert!(!has_upper(&vec![b'z'; len]));
        }
        assert!(has_upper(&[0xc3, 0xa9]), "not ASCII: copied");
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
        // Keys told apart by their port or scheme alone hash apart too (a map of one
        // host's ports would otherwise keep them all in one chain).
        let hashes = [
            "http://a.example/",
            "http://a.example:8080/",
            "https://a.example:8080/",
        ]
        .map(|uri| hash(&key(uri)));
        assert!(hashes[0] != hashes[1] && hashes[0] != hashes[2] && hashes[1] != hashes[2]);
        // Schemes with no default port of their own are compared as themselves.
        let other = key("foo://example.com:1/");
        assert_eq!(key("foo://example.com:1/x"), other);
        assert_ne!(key("bar://example.com:1/"), other);
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
    #[cfg(feature = "circuit-breaker")]
    fn lookups_match_their_own_keys_only() {
        let hasher = MapHasher::default();
        let request = Request::get("http://A.example/x").body(()).unwrap();
        let host = RequestLookup::<HostKey>::of(&ByAuthority, &request);
        let stored = RequestLookup::<HostKey>::of(&ByAuthority, &request).into_key();
        assert!(host.matches(&stored));
        let (a, b) = (key("http://a.example/"), key("http://A.EXAMPLE:80/"));
        // A request's lookup, a handle's and the key's own hash alike.
        assert_eq!(host.hash_with(&hasher), hasher.hash_one(&a));
        assert_eq!(ByRef(&b).hash_with(&hasher), host.hash_with(&hasher));
        assert!(ByRef(&b).matches(&stored));
        assert!(!ByRef(&key("http://b.example/")).matches(&stored));
        assert!(
            !ByRef(&"http://a.example:80").matches(&stored),
            "another type"
        );
        // A key of your own is erased, and compared as its type.
        let by_path = KeyBy::new(|r: &Request<()>| r.uri().path().to_owned());
        let other = RequestLookup::of(&by_path, &request);
        assert!(!other.matches(&stored));
        let erased = RequestLookup::of(&by_path, &request).into_key();
        assert!(other.matches(&erased) && !host.matches(&erased));
        assert!(ByRef(&String::from("/x")).matches(&erased));
        assert!(!ByRef(&"/x").matches(&erased), "another type");
        assert_eq!(
            format!("{stored:?} {erased:?}"),
            "http://A.example:80 \"/x\""
        );
    }
}
