//! Loom model of eviction (see `internal::sync` for how to run them).

use super::*;
use crate::internal::sync::{Arc, AtomicBool};

/// A value held the way the pool limit holds its pools: a call in flight holds a clone
/// of the `Arc`, and only a value nobody else holds may be evicted.
struct Entry(Arc<AtomicBool>);

impl Evict for Entry {
    fn eviction(&self) -> Eviction {
        if Arc::strong_count(&self.0) == 1 {
            Eviction::Idle
        } else {
            Eviction::Never
        }
    }
}

impl Drop for Entry {
    /// Leaving the map (evicted or replaced) marks the value gone.
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn use_key(map: &LruMap<u32, Entry>, key: u32) {
    let held = map.get_or_insert(
        key,
        |entry| Arc::clone(&entry.0),
        |_| Entry(Arc::new(AtomicBool::new(false))),
        |_| {},
    );
    ::loom::thread::yield_now();
    assert!(
        !held.load(Ordering::SeqCst),
        "an entry left the map while a call held it"
    );
}

/// No evicted entry is still in use: two threads look up the same keys of a map with
/// room for one (every new key evicts, each lookup of a key may race the insertion or
/// the eviction of that key by the other thread), and an entry a thread holds never
/// leaves the map while it holds it. Otherwise a second entry (a second pool, with its
/// own permits) could be made for a key whose first is still in use.
///
/// Seeded bug it caught: `LruMap::insert` without its second search under the write
/// lock (two threads that both missed under the read lock each insert the key: the map
/// holds more entries than keys).
#[test]
fn loom_no_entry_in_use_is_evicted() {
    ::loom::model(|| {
        let map = Arc::new(LruMap::<u32, Entry>::new(1));
        let other = {
            let map = Arc::clone(&map);
            ::loom::thread::spawn(move || {
                use_key(&map, 1);
                use_key(&map, 2);
            })
        };
        use_key(&map, 2);
        use_key(&map, 1);
        other.join().unwrap();
        assert!(map.len() <= 2);
    });
}
