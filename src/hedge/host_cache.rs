//! The last host a thread looked up, and its tracker slot: a client calling one host again
//! and again (most do) compares the URI's scheme and authority with the thread's last ones
//! instead of parsing, hashing and probing them (about five times cheaper).
//!
//! The scheme and authority are kept and compared as the per-host maps' caches keep theirs
//! ([`RecentHost`]). An entry is valid for one layer (its `id`, unique per layer built, never reused) and one
//! spelling of the scheme and authority (compared byte for byte: the same bytes make the
//! same [`HostKey`](crate::key::HostKey), so the same hash and slot). It is checked against
//! the tracker on every use: the slot still holds the host's tag (one atomic load), or the
//! host was evicted and the slot is looked up again. A thread keeps one entry: two layers
//! or hosts called in turn look theirs up as without it.

use crate::internal::{recent::RecentHost, sync::thread_local_const};
use std::cell::RefCell;

/// One thread's last host.
struct Entry {
    /// The layer's id.
    layer: u64,
    /// The host's tag in the tracker slot.
    tag: u64,
    slot: u32,
    /// The scheme and authority, compared as bytes (the per-host maps' caches do the same).
    host: RecentHost,
}

thread_local_const! {
    static LAST: RefCell<Option<Entry>> = const { RefCell::new(None) };
}

/// The slot of `uri`'s host in layer `layer`'s tracker, if the thread's last lookup was
/// this host's and `holds(slot, tag)` says its slot still holds it.
#[inline]
pub(crate) fn get(
    layer: u64,
    uri: &http::Uri,
    holds: impl FnOnce(usize, u64) -> bool,
) -> Option<usize> {
    LAST.try_with(|last| {
        let last = last.try_borrow().ok()?;
        let entry = last.as_ref()?;
        (entry.layer == layer && entry.host.is(uri) && holds(entry.slot as usize, entry.tag))
            .then_some(entry.slot as usize)
    })
    .ok()
    .flatten()
}

/// Remembers `slot` (holding `tag`) as the thread's last lookup of `uri`'s host.
#[inline]
pub(crate) fn put(layer: u64, uri: &http::Uri, slot: usize, tag: u64) {
    let (Some(host), Ok(slot)) = (RecentHost::of(uri), u32::try_from(slot)) else {
        return;
    };
    let entry = Entry {
        layer,
        tag,
        slot,
        host,
    };
    let _ = LAST.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some(entry);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Uri;

    #[test]
    fn a_host_is_found_again_by_the_same_layer_only() {
        let uri = Uri::from_static("https://api.example.com:8443/a");
        put(7, &uri, 3, 99);
        let same = Uri::from_static("https://api.example.com:8443/other?x=1");
        assert_eq!(get(7, &same, |slot, tag| slot == 3 && tag == 99), Some(3));
        // Another layer, scheme, port or spelling: not this entry.
        assert_eq!(get(8, &same, |_, _| true), None);
        for other in [
            "http://api.example.com:8443/",
            "https://api.example.com:443/",
            "https://API.example.com:8443/",
            "https://api.example.co:8443/",
        ] {
            assert_eq!(
                get(7, &Uri::from_static(other), |_, _| true),
                None,
                "{other}"
            );
        }
        // The tracker says the slot changed hands: not found.
        assert_eq!(get(7, &same, |_, _| false), None);
    }

    #[test]
    fn other_schemes_and_long_authorities_are_not_cached() {
        let ws = Uri::from_static("ws://a.example/");
        put(1, &ws, 2, 5);
        assert_eq!(get(1, &ws, |_, _| true), None);
        let long = format!("http://{}.example/", "a".repeat(60))
            .parse()
            .unwrap();
        put(1, &long, 2, 5);
        assert_eq!(get(1, &long, |_, _| true), None);
        // Without an authority: cached as the empty one.
        let path = Uri::from_static("/only/a/path");
        put(1, &path, 4, 6);
        assert_eq!(get(1, &path, |_, _| true), Some(4));
    }
}
