//! A thread's last host, for the per-host maps' caches of their last entry: the pools' and
//! the breakers' keyed maps ([`LruMap`](super::lru::LruMap)) keep, per thread, the entry of
//! the host that thread looked up last, so that the calls of a thread to one host find
//! their pool or breaker without reading the host's key, hashing it, or taking the map's
//! read lock (an atomic write to a line every thread's calls write). The preset's gate
//! keeps one entry for both of a host's maps (its breaker and its pool), so that a call
//! compares the host once for the two.
//!
//! A cached entry is found again by the request's scheme and authority, compared as bytes:
//! equal bytes make an equal key (the key is a function of them), and different spellings
//! of one key (`Example.com`, `example.com:80`) only miss the cache. It stays valid while
//! its map's [`evictions`](super::lru::LruMap::evictions) count has not moved (the entry
//! holds the count it was found at), and it is stamped as used in its map (for the order
//! of eviction) every [`REFRESH`] calls, found by its key's hash and its identity.

use http::Uri;
use std::cell::{Cell, RefCell};

/// The calls served from a cached entry before it is stamped as used in its map again: a
/// host that one thread calls without pause must not look
/// idle to the map's least-recently-used order.
pub(crate) const REFRESH: u32 = 64;

/// The longest authority kept (a longer one is never cached).
const MAX: usize = 62;

/// The schemes whose hosts are cached, each its own tag (`None` for another scheme): read
/// as `&str`, so that nothing but the URI's bytes is compared.
#[inline(always)]
fn scheme_tag(uri: &Uri) -> Option<u8> {
    match uri.scheme_str() {
        None => Some(0),
        Some("http") => Some(1),
        Some("https") => Some(2),
        Some(_) => None,
    }
}

/// A URI's scheme (as a tag) and authority, as bytes.
#[derive(Clone)]
pub(crate) struct RecentHost {
    /// The scheme's tag and the authority's length in one word ([`head`]), compared with
    /// one load of the thread-local instead of two.
    head: u64,
    bytes: [u8; MAX],
}

/// A scheme's tag and an authority's length as one word: equal words, equal both (a
/// length never reaches the bits of the tag).
#[inline(always)]
fn head(tag: u8, len: usize) -> u64 {
    u64::from(tag) | (len as u64) << 8
}

impl RecentHost {
    /// `uri`'s host, or `None` if it cannot be cached (an authority too long, a scheme
    /// other than `http` and `https`).
    #[inline]
    pub(crate) fn of(uri: &Uri) -> Option<Self> {
        let tag = scheme_tag(uri)?;
        let authority = uri.authority().map_or("", |a| a.as_str()).as_bytes();
        if authority.len() > MAX {
            return None;
        }
        let mut bytes = [0; MAX];
        bytes[..authority.len()].copy_from_slice(authority);
        Some(RecentHost {
            head: head(tag, authority.len()),
            bytes,
        })
    }

    /// Whether `uri` has this scheme and authority.
    #[inline(always)]
    pub(crate) fn is(&self, uri: &Uri) -> bool {
        let authority = uri.authority().map_or("", |a| a.as_str()).as_bytes();
        // The tag and the length first, in one comparison: equal, the length is at most
        // `MAX` (the kept one's), and the bytes are compared.
        scheme_tag(uri).is_some_and(|tag| head(tag, authority.len()) == self.head)
            && same_bytes(authority, &self.bytes[..authority.len()])
    }
}

/// `a == b` for slices of one length, without a call to `memcmp` for the lengths of most
/// authorities (4 to 16 bytes: two loads of each, overlapping in the middle).
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    if b.len() != n {
        return false;
    }
    if (8..=16).contains(&n) {
        let word =
            |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8 bytes"));
        word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
    } else if (4..8).contains(&n) {
        let word =
            |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().expect("4 bytes"));
        word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4)
    } else {
        a == b
    }
}

/// A thread's last entry of a map: `T` is what the thread keeps of it (a reference).
pub(crate) struct Recent<T> {
    map: u64,
    /// The key's hash, to stamp the entry as used without making the key again.
    hash: u64,
    host: RecentHost,
    pub(crate) entry: T,
    /// Calls left before the entry is stamped as used in its map again.
    hits: Cell<u32>,
}

impl<T> Recent<T> {
    /// Whether this is the entry of map `map` for `uri`'s host.
    #[inline(always)]
    pub(crate) fn hit(&self, map: u64, uri: &Uri) -> bool {
        self.map == map && self.host.is(uri)
    }

    /// Counts a call served from the entry: true every [`REFRESH`] calls, when the entry is
    /// due to be stamped as used in its map ([`LruMap::touch`](super::lru::LruMap::touch)
    /// with [`hash`](Self::hash)).
    #[inline(always)]
    pub(crate) fn due(&self) -> bool {
        let hits = self.hits.get();
        let due = hits <= 1;
        self.hits.set(if due { REFRESH } else { hits - 1 });
        due
    }

    /// The entry's key's hash.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// `entry`, of map `map` for `uri`'s host (whose key hashes to `hash`); `None` if the
    /// host cannot be cached. The entry holds what tells whether it is still in the map
    /// (the map's count of eviction scans when it was found).
    #[inline]
    pub(crate) fn new(map: u64, hash: u64, uri: &Uri, entry: T) -> Option<Self> {
        Some(Recent {
            map,
            hash,
            host: RecentHost::of(uri)?,
            entry,
            hits: Cell::new(REFRESH),
        })
    }

    /// Keeps `recent` in a thread's `slot`, unless a call further up this thread's stack is
    /// using the slot.
    pub(crate) fn keep(slot: &RefCell<Option<Self>>, recent: Option<Self>) {
        if let (Ok(mut slot), Some(recent)) = (slot.try_borrow_mut(), recent) {
            *slot = Some(recent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_only() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let host = RecentHost::of(&uri("http://a.example:81/x")).unwrap();
        assert!(host.is(&uri("http://a.example:81/y?z")));
        assert!(!host.is(&uri("https://a.example:81/")));
        assert!(!host.is(&uri("http://a.example:8/")));
        assert!(!host.is(&uri("http://b.example:81/")));
        assert!(!host.is(&uri("/x")));
        let none = RecentHost::of(&uri("/x")).unwrap();
        assert!(none.is(&uri("/y")) && !none.is(&uri("http://a/")));
        assert!(RecentHost::of(&uri("ftp://a.example/")).is_none());
        // The longest authority kept is `MAX` bytes.
        let longest = format!("http://{}.test/", "a".repeat(MAX - 5));
        assert!(RecentHost::of(&uri(&longest)).is_some_and(|h| h.is(&uri(&longest))));
        let long = format!("http://{}.test/", "a".repeat(MAX - 4));
        assert!(RecentHost::of(&uri(&long)).is_none());
    }

    #[test]
    fn an_entry_serves_its_own_map_and_host_and_is_due_every_refresh_calls() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let recent = Recent::new(7, 42, &uri("http://a.test/"), ()).unwrap();
        assert!(recent.hit(7, &uri("http://a.test/x")));
        assert!(!recent.hit(8, &uri("http://a.test/x")), "another map's");
        assert!(!recent.hit(7, &uri("http://b.test/")), "another host's");
        assert_eq!(recent.hash(), 42);
        let due: Vec<u32> = (1..=3 * REFRESH).filter(|_| recent.due()).collect();
        assert_eq!(due, [REFRESH, 2 * REFRESH, 3 * REFRESH]);
    }

    #[test]
    fn bytes_differing_anywhere_differ_at_every_length() {
        let a: Vec<u8> = (0..MAX as u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=MAX {
            assert!(same_bytes(&a[..n], &a[..n]), "{n} bytes");
            for at in 0..n {
                let mut b = a[..n].to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a[..n], &b), "{n} bytes, differing at {at}");
            }
        }
    }
}
