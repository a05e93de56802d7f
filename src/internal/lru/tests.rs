//! Unit tests of the LRU map: eviction order and batches, entries that must stay, the cost of
//! admission, failed inserts, shards, threads racing, borrowed and colliding lookups.

use super::*;
use std::sync::Arc;

/// A value whose eviction class the test sets.
struct Value(std::sync::Mutex<Eviction>);

impl Value {
    fn new() -> Self {
        Value(std::sync::Mutex::new(Eviction::Idle))
    }
}

impl Evict for Value {
    fn eviction(&self) -> Eviction {
        *self.0.lock().unwrap()
    }
}

/// The entries evicted, if `key` was inserted.
fn insert(map: &LruMap<u32, Value>, key: u32) -> Option<usize> {
    let mut out = None;
    map.get_or_insert(key, |_| (), |_| Value::new(), |evicted| out = Some(evicted));
    out
}

fn keys(map: &LruMap<u32, Value>) -> Vec<u32> {
    let mut keys = map.collect(|k, _| *k);
    keys.sort_unstable();
    keys
}

#[test]
fn the_least_recently_used_goes_first() {
    let map = LruMap::new(3);
    for key in [1, 2, 3] {
        assert_eq!(insert(&map, key).unwrap(), 0);
        assert_eq!(map.len(), usize::try_from(key).unwrap());
    }
    assert!(insert(&map, 1).is_none(), "a hit inserts nothing");
    assert_eq!(insert(&map, 4).unwrap(), 1);
    assert_eq!(keys(&map), [1, 3, 4]);
    assert_eq!(map.len(), 3);
}

#[test]
fn idle_entries_go_before_busy_ones_and_some_never() {
    let map = LruMap::new(3);
    for key in [1, 2, 3] {
        insert(&map, key);
    }
    map.get(&1, |v| *v.0.lock().unwrap() = Eviction::Busy)
        .unwrap();
    map.get(&2, |v| *v.0.lock().unwrap() = Eviction::Never)
        .unwrap();
    insert(&map, 4);
    assert_eq!(keys(&map), [1, 2, 4], "the idle one went, though used last");
    map.get(&4, |v| *v.0.lock().unwrap() = Eviction::Never)
        .unwrap();
    insert(&map, 5);
    assert_eq!(keys(&map), [2, 4, 5], "then a busy one");
    map.get(&5, |v| *v.0.lock().unwrap() = Eviction::Never)
        .unwrap();
    assert_eq!(insert(&map, 6).unwrap(), 0, "beyond the bound");
    assert_eq!(map.len(), 4);
    assert_eq!(keys(&map), [2, 4, 5, 6]);
}

#[test]
fn a_full_shard_evicts_an_eighth() {
    let map = LruMap::new(64);
    for key in 0..64 {
        insert(&map, key);
    }
    assert_eq!(insert(&map, 64).unwrap(), 8);
    assert_eq!(map.len(), 57);
    assert_eq!(keys(&map), (8..=64).collect::<Vec<_>>());
}

fn set(map: &LruMap<u32, Value>, key: u32, class: Eviction) {
    map.get(&key, |v| *v.0.lock().unwrap() = class).unwrap();
}

#[test]
fn busy_entries_go_only_as_far_as_room_is_needed() {
    let map = LruMap::new(64);
    for key in 0..64 {
        insert(&map, key);
        if key >= 4 {
            set(&map, key, Eviction::Busy);
        }
    }
    // An eighth is 8, but only the 4 idle entries fill the batch: no busy one goes.
    assert_eq!(insert(&map, 64), Some(4));
    assert_eq!(keys(&map), (4..=64).collect::<Vec<_>>());
    assert_eq!(map.len(), 61);
    // All busy: only the least recent one goes, not an eighth.
    let map = LruMap::new(64);
    for key in 0..64 {
        insert(&map, key);
        set(&map, key, Eviction::Busy);
    }
    assert_eq!(insert(&map, 64), Some(1));
    assert_eq!(keys(&map), (1..=64).collect::<Vec<_>>());
}

/// Issue 16: with every entry made to stay (a pool per host in flight), each new key
/// scanned every entry under the write lock, so admitting `n` keys scanned about
/// `n * n / 2` entries. Now the entries scanned per admission stay constant on average.
#[test]
fn admission_scans_a_constant_number_of_entries_however_many_must_stay() {
    let scanned = |map: &LruMap<u32, Value>| map.shards[0].scanned.load(Ordering::Relaxed);
    let map = LruMap::new(10);
    let mut per_admission = Vec::new();
    for n in [2_000u32, 8_000] {
        let before = scanned(&map);
        let start = u32::try_from(map.len()).unwrap();
        for key in start..n {
            insert(&map, key);
            set(&map, key, Eviction::Never);
        }
        per_admission.push((scanned(&map) - before) as f64 / f64::from(n - start));
    }
    assert_eq!(map.len(), 8_000, "entries that must stay all stay");
    // Each scan looks at every entry once per growth by half: about 3 per admission.
    for (i, cost) in per_admission.iter().enumerate() {
        assert!(
            *cost <= 4.0,
            "round {i}: {cost} entries scanned per admission"
        );
    }
    // Once they may go, the shard comes back within its share by the next scan, at
    // most half as many new keys later.
    for key in 0..8_000 {
        set(&map, key, Eviction::Idle);
    }
    let mut key = 8_000;
    while map.len() > 10 {
        insert(&map, key);
        key += 1;
        assert!(key <= 12_001, "still {} entries", map.len());
    }
    assert_eq!(map.len(), 10);
}

#[test]
fn a_value_that_fails_to_be_made_changes_nothing() {
    let map = LruMap::new(2);
    insert(&map, 1);
    insert(&map, 2);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        map.get_or_insert(3, |_| (), |_| panic!("no value"), |_| ());
    }));
    assert!(panicked.is_err());
    assert_eq!(keys(&map), [1, 2], "nothing evicted");
    assert_eq!(map.len(), 2);
    assert_eq!(insert(&map, 3), Some(1), "the map still works");
}

#[test]
fn many_keys_spread_over_shards_and_stay_bounded() {
    let map = LruMap::sharded(1024);
    assert_eq!(map.shards.len(), 16);
    for key in 0..100_000 {
        insert(&map, key);
        assert!(map.len() <= 1024);
    }
    assert_eq!(map.len(), map.collect(|_, _| ()).len());
    assert!(map.len() >= 1024 * 7 / 8, "{}", map.len());
}

#[test]
fn threads_racing_on_shared_keys_keep_the_count_and_the_bound() {
    let map = Arc::new(LruMap::<u32, Value>::sharded(256));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let map = Arc::clone(&map);
            std::thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9e37_79b9) | 1;
                for _ in 0..20_000 {
                    // xorshift: keys over a space eight times the bound, shared by all.
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    insert(&map, x % 2_048);
                    assert!(map.len() <= 256, "{}", map.len());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(map.len(), map.collect(|_, _| ()).len());
    assert!(map.len() <= 256);
}

#[test]
fn borrowed_lookups_find_owned_keys() {
    struct Str<'a>(&'a str);
    impl Probe<Arc<str>> for Str<'_> {
        fn hash_with(&self, hasher: &MapHasher) -> u64 {
            hasher.hash_one(self.0)
        }
        fn matches(&self, key: &Arc<str>) -> bool {
            **key == *self.0
        }
    }
    impl Lookup<Arc<str>> for Str<'_> {
        fn into_key(self) -> Arc<str> {
            self.0.into()
        }
    }
    let map: LruMap<Arc<str>, Value> = LruMap::new(4);
    let made = std::cell::Cell::new(0);
    for _ in 0..3 {
        map.get_or_insert(
            Str("a"),
            |_| (),
            |_| {
                made.set(made.get() + 1);
                Value::new()
            },
            |_| (),
        );
    }
    assert_eq!(made.get(), 1);
    assert!(map.get(&Str("a"), |_| ()).is_some());
    assert!(map.get(&Str("b"), |_| ()).is_none());
}

/// A key whose hash is always 7.
#[derive(PartialEq, Eq)]
struct Colliding(u32);

impl Probe<Colliding> for Colliding {
    fn hash_with(&self, _: &MapHasher) -> u64 {
        7
    }
    fn matches(&self, key: &Colliding) -> bool {
        self == key
    }
}

impl Lookup<Colliding> for Colliding {
    fn into_key(self) -> Colliding {
        self
    }
}

/// Keys of one hash share a bucket: each is found, and eviction keeps the others.
#[test]
fn keys_of_one_hash_are_told_apart() {
    let map: LruMap<Colliding, Value> = LruMap::new(3);
    let made = std::cell::Cell::new(0);
    let use_key = |key| {
        map.get_or_insert(
            Colliding(key),
            |_| (),
            |_| {
                made.set(made.get() + 1);
                Value::new()
            },
            |_| (),
        )
    };
    for key in [1, 2, 3, 1, 2, 3] {
        use_key(key);
    }
    assert_eq!(made.get(), 3, "each key made once");
    use_key(4); // evicts 1, the least recently used (the bucket's first)
    let mut keys = map.collect(|k, _| k.0);
    keys.sort_unstable();
    assert_eq!(keys, [2, 3, 4]);
    assert_eq!(map.len(), 3);
    assert!(map.get(&Colliding(1), |_| ()).is_none());
    assert!(map.get(&Colliding(3), |_| ()).is_some());
}

/// A probe hashed once for several maps (the preset's gate) carries its hash, and tells the
/// keys of that hash apart as the probe does.
#[cfg(feature = "stack")]
#[test]
fn a_probe_hashed_once_finds_its_own_key_among_those_of_its_hash() {
    let map: LruMap<Colliding, Value> = LruMap::new(4);
    for key in [1, 2] {
        map.get_or_insert(Colliding(key), |_| (), |_| Value::new(), |_| ());
    }
    let probe = |key| Hashed::new(Colliding(key));
    assert_eq!(probe(2).hash(), 7);
    assert!(map.get(&probe(2), |_| ()).is_some());
    assert!(
        map.get(&probe(3), |_| ()).is_none(),
        "another key of its hash"
    );
}

#[test]
fn shards_share_the_capacity_exactly() {
    let map: LruMap<u32, Value> = LruMap::with_shards(10, 4);
    let capacities: Vec<usize> = map.shards.iter().map(|shard| shard.capacity).collect();
    assert_eq!(capacities, [3, 3, 2, 2]);
}

/// A key whose every value hashes alike: a key looked up as itself (the maps' keys are)
/// is told apart from the others of its hash by equality.
#[derive(PartialEq, Eq)]
struct SameHash(u32);

impl std::hash::Hash for SameHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(7);
    }
}

#[test]
fn keys_looked_up_as_themselves_are_told_apart_by_equality() {
    let map: LruMap<SameHash, Value> = LruMap::new(4);
    for key in [1, 2] {
        map.get_or_insert(SameHash(key), |_| (), |_| Value::new(), |_| ());
    }
    assert!(map.get(&SameHash(2), |_| ()).is_some());
    assert!(
        map.get(&SameHash(3), |_| ()).is_none(),
        "another key of its hash"
    );
    assert_eq!(
        format!("{map:?}"),
        "LruMap { len: 2, capacity: 4, shards: 1 }"
    );
}
