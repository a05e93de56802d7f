//! A bounded map of per-key state, least recently used first out: the keyed breaker's
//! breakers and the per-host pool limit's pools.
//!
//! Keys are hashed once per lookup, with [`MapHasher`] (foldhash, seeded per map): the hash
//! picks the shard and is the shard's own key, and the lookup compares itself with the keys
//! of that hash ([`Probe`]), so that a request is looked up as it is, without making a key.
//!
//! Each shard is a hash map under a read-write lock: a call finds its value under the read
//! lock; only a new key takes the write lock, to insert, and to evict when the shard is
//! full. The pool limit keeps one shard (its bound and its recency are exact, as urllib3's
//! `num_pools`); the keyed breaker spreads its keys over up to 16, so that calls to
//! different hosts seldom meet on one lock, and then the bound and the recency hold per
//! shard.
//!
//! Least recent use is kept in stamps from a per-shard clock: a lookup stamps its entry
//! only when that entry was not the last one stamped, so a busy key's calls write nothing
//! shared but the shard's read lock. Stamps are distinct (each from one `fetch_add`), and
//! an entry's only grows.
//!
//! A new key in a full shard evicts up to an eighth of it, least recently used first: idle
//! entries fill that batch, busy ones go only as far as room is needed, and entries that
//! must stay never go, so a shard may then hold more than its share (the pool limit's pools
//! with calls in flight, a breaker an operator holds open or disabled).
//!
//! A thread may keep the entry it found last, to find it again without a lookup
//! ([`recent`](super::recent)): [`LruMap::evictions`] tells it whether a scan began since,
//! and so whether the entry may have left the map.
//!
//! Choosing what to evict scans the shard. When the scan cannot bring the shard back within
//! its share (too many entries must stay), the next scan waits until the shard has grown by
//! half: new keys are then admitted without a scan, so that admission costs a constant
//! number of entries scanned on average however many entries must stay (a scan per new key
//! would cost the square of their number). The shard then holds at most half as many
//! entries again as must stay; the first scan that finds them gone brings it back within
//! its share.

use super::{
    padded::Padded,
    sync::{fence, AtomicU64, AtomicUsize, Ordering, RwLock},
};
use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, Hash, Hasher},
    sync::PoisonError,
};

/// The hasher of the per-key maps: foldhash, fast on short keys (a host name), seeded at
/// random so that keys made to collide cannot be chosen in advance. One seed for the
/// process ([`map_hasher`]): a request hashed once is looked up in several maps (the
/// preset's breakers and pools) with that one hash.
pub(crate) type MapHasher = foldhash::fast::RandomState;

/// The hasher of every per-key map.
#[inline]
pub(crate) fn map_hasher() -> &'static MapHasher {
    static HASHER: std::sync::OnceLock<MapHasher> = std::sync::OnceLock::new();
    HASHER.get_or_init(MapHasher::default)
}

/// A probe hashed once, to be looked up in several maps (the preset's breaker and pool).
#[derive(Clone)]
pub(crate) struct Hashed<P> {
    hash: u64,
    probe: P,
}

#[cfg(feature = "stack")]
impl<P> Hashed<P> {
    #[inline]
    pub(crate) fn new<K>(probe: P) -> Self
    where
        P: Probe<K>,
    {
        Hashed {
            hash: probe.hash_with(map_hasher()),
            probe,
        }
    }

    /// The probe's hash, the same in every map.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }
}

impl<K, P: Probe<K>> Probe<K> for Hashed<P> {
    #[inline]
    fn hash_with(&self, _: &MapHasher) -> u64 {
        self.hash
    }

    #[inline]
    fn matches(&self, key: &K) -> bool {
        self.probe.matches(key)
    }
}

impl<K, P: Lookup<K>> Lookup<K> for Hashed<P> {
    fn into_key(self) -> K {
        self.probe.into_key()
    }
}

/// What a thread keeps of an entry it found, besides the entry: the map's count of
/// eviction scans then ([`LruMap::evictions`]) and the key's hash ([`LruMap::touch`]).
#[derive(Clone, Copy)]
pub(crate) struct Counted {
    pub(crate) evictions: u64,
    pub(crate) hash: u64,
}

/// Whether a value may be evicted (the breaker's are `Idle` or `Busy`, the pool's `Idle`
/// or `Never`).
#[cfg_attr(
    not(all(feature = "pool", feature = "circuit-breaker")),
    allow(dead_code)
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Eviction {
    /// Evicted first.
    Idle,
    /// Evicted only when too few idle values remain.
    Busy,
    /// Never evicted.
    Never,
}

/// A value of an [`LruMap`].
pub(crate) trait Evict {
    /// Whether the value may be evicted now (asked under the shard's write lock).
    fn eviction(&self) -> Eviction;
}

/// What a map of keys `K` is searched with: hashed with the map's hasher, then compared with
/// the keys of that hash.
pub(crate) trait Probe<K> {
    fn hash_with(&self, hasher: &MapHasher) -> u64;

    fn matches(&self, key: &K) -> bool;
}

/// A [`Probe`] that becomes the map's own key `K` when it is inserted.
pub(crate) trait Lookup<K>: Probe<K> {
    fn into_key(self) -> K;
}

pub(crate) struct LruMap<K, V> {
    shards: Box<[Padded<Shard<K, V>>]>,
    len: AtomicUsize,
    capacity: usize,
    /// This map among all others, for a thread's cache of its last entry
    /// ([`recent`](super::recent)).
    id: u64,
    /// Bumped before every eviction scan (before it asks a value whether it may go): a
    /// thread's cached entry is valid while this has not moved.
    evictions: AtomicU64,
}

struct Shard<K, V> {
    table: RwLock<Table<K, V>>,
    /// The clock of least-recent use.
    clock: AtomicU64,
    capacity: usize,
    /// The length at which a new key scans for entries to evict: `capacity`, or more after
    /// a scan that could not make room (read and written under the write lock).
    scan_at: AtomicUsize,
    /// Entries looked at by eviction scans, for the tests.
    #[cfg(test)]
    scanned: AtomicUsize,
}

/// A shard's entries by their keys' hash (hashed again by nothing: [`Identity`]); the keys
/// of one hash (almost always one) in a bucket.
struct Table<K, V> {
    buckets: HashMap<u64, Bucket<K, V>, BuildIdentity>,
    len: usize,
}

struct Bucket<K, V> {
    first: Slot<K, V>,
    /// Other keys of the same hash.
    more: Vec<Slot<K, V>>,
}

struct Slot<K, V> {
    key: K,
    value: V,
    last_used: AtomicU64,
}

impl<K, V> Table<K, V> {
    #[inline]
    fn find(&self, hash: u64, probe: &impl Probe<K>) -> Option<&Slot<K, V>> {
        let bucket = self.buckets.get(&hash)?;
        if probe.matches(&bucket.first.key) {
            return Some(&bucket.first);
        }
        bucket.more.iter().find(|slot| probe.matches(&slot.key))
    }

    fn slots(&self) -> impl Iterator<Item = &Slot<K, V>> {
        self.buckets
            .values()
            .flat_map(|bucket| std::iter::once(&bucket.first).chain(&bucket.more))
    }

    fn insert(&mut self, hash: u64, slot: Slot<K, V>) -> &Slot<K, V> {
        self.len += 1;
        match self.buckets.entry(hash) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                &entry
                    .insert(Bucket {
                        first: slot,
                        more: Vec::new(),
                    })
                    .first
            }
            std::collections::hash_map::Entry::Occupied(entry) => {
                let more = &mut entry.into_mut().more;
                more.push(slot);
                more.last().expect("just pushed")
            }
        }
    }

    /// Keeps the slots `keep` says to keep.
    fn retain(&mut self, mut keep: impl FnMut(&Slot<K, V>) -> bool) {
        let mut len = 0;
        self.buckets.retain(|_, bucket| {
            bucket.more.retain(&mut keep);
            if !keep(&bucket.first) {
                match bucket.more.pop() {
                    Some(last) => bucket.first = last,
                    None => return false,
                }
            }
            len += 1 + bucket.more.len();
            true
        });
        self.len = len;
    }
}

impl<K, V: Evict> LruMap<K, V> {
    /// A map of at most `capacity` entries (beyond it only by entries that must stay), in
    /// one shard.
    #[cfg(any(test, feature = "pool"))]
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_shards(capacity, 1)
    }

    /// [`new`](Self::new) in about one shard per 64 entries (rounded up to a power of two,
    /// at most 16), each with its share of `capacity`.
    #[cfg(any(test, feature = "circuit-breaker"))]
    pub(crate) fn sharded(capacity: usize) -> Self {
        Self::with_shards(capacity, (capacity / 64).clamp(1, 16).next_power_of_two())
    }

    fn with_shards(capacity: usize, count: usize) -> Self {
        let shards = (0..count)
            .map(|i| {
                // The capacities add up to `capacity` exactly.
                let capacity = capacity / count + usize::from(i < capacity % count);
                Padded(Shard {
                    table: RwLock::new(Table {
                        buckets: HashMap::default(),
                        len: 0,
                    }),
                    clock: AtomicU64::new(0),
                    capacity,
                    scan_at: AtomicUsize::new(capacity),
                    #[cfg(test)]
                    scanned: AtomicUsize::new(0),
                })
            })
            .collect();
        // Statics keep `std`'s atomics (see `internal::sync`).
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        LruMap {
            shards,
            len: AtomicUsize::new(0),
            capacity,
            id: IDS.fetch_add(1, Ordering::Relaxed),
            evictions: AtomicU64::new(0),
        }
    }

    /// This map's identity (never 0, never reused).
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// How many eviction scans began. A thread that took a reference to an entry and then
    /// (after a `SeqCst` fence) reads the same count as when it found the entry in the
    /// map, knows that no scan since could have missed its reference: the scan's count
    /// comes first, then a `SeqCst` fence, then its questions to the values.
    #[inline(always)]
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // Bits the shard's table uses least (it takes the low ones for its index and the
        // top seven for its tags).
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    /// `found` applied to `key`'s value, inserted first (made by `make` from the key) if
    /// `key` is new; `found` runs under the shard's lock. After an insertion, `inserted`
    /// is told how many entries it evicted, once the lock is released.
    #[inline]
    pub(crate) fn get_or_insert<L, R>(
        &self,
        key: L,
        found: impl FnOnce(&V) -> R,
        make: impl FnOnce(&K) -> V,
        inserted: impl FnOnce(usize),
    ) -> R
    where
        L: Lookup<K>,
    {
        let hash = key.hash_with(map_hasher());
        let shard = self.shard(hash);
        {
            let table = shard.table.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = table.find(hash, &key) {
                // `found` by value here, not through a reference: it inlines.
                shard.touch(slot);
                return found(&slot.value);
            }
        }
        self.insert(shard, hash, key, found, make, inserted)
    }

    /// [`get_or_insert`](Self::get_or_insert) past the read lock: under the write lock.
    #[cold]
    #[inline(never)]
    fn insert<L, R>(
        &self,
        shard: &Shard<K, V>,
        hash: u64,
        key: L,
        found: impl FnOnce(&V) -> R,
        make: impl FnOnce(&K) -> V,
        inserted: impl FnOnce(usize),
    ) -> R
    where
        L: Lookup<K>,
    {
        let mut table = shard.table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = table.find(hash, &key) {
            shard.touch(slot);
            return found(&slot.value);
        }
        // The value first: if `make` panics (a user's `Debug`, a metrics recorder), nothing
        // was evicted and the count is right.
        let key = key.into_key();
        let value = make(&key);
        let evicted = if table.len >= shard.scan_at.load(Ordering::Relaxed) {
            // Before the scan asks any value whether it may go (see `evictions`).
            self.evictions.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            shard.scan(&mut table)
        } else {
            0
        };
        let slot = Slot {
            key,
            value,
            last_used: AtomicU64::new(shard.clock.fetch_add(1, Ordering::Relaxed) + 1),
        };
        let slot = table.insert(hash, slot);
        // Under the shard's lock: the total never counts an entry twice or misses one.
        if evicted == 0 {
            self.len.fetch_add(1, Ordering::Relaxed);
        } else {
            self.len.fetch_sub(evicted - 1, Ordering::Relaxed);
        }
        let r = found(&slot.value);
        drop(table);
        inserted(evicted);
        r
    }

    /// [`get_or_insert`](Self::get_or_insert), with what a thread keeps of the entry found:
    /// [`evictions`](Self::evictions) as read while it was found (under its shard's lock: no
    /// scan of that shard runs), and the key's hash (to [`touch`](Self::touch) it later).
    #[inline]
    pub(crate) fn get_or_insert_counted<L, R>(
        &self,
        key: L,
        found: impl FnOnce(&V, Counted) -> R,
        make: impl FnOnce(&K) -> V,
        inserted: impl FnOnce(usize),
    ) -> R
    where
        L: Lookup<K>,
    {
        let hash = key.hash_with(map_hasher());
        let counted = |value: &V| {
            let evictions = self.evictions.load(Ordering::SeqCst);
            found(value, Counted { evictions, hash })
        };
        self.get_or_insert(Hashed { hash, probe: key }, counted, make, inserted)
    }

    /// Stamps as the most recently used the entry of hash `hash` that `is` picks, if it is
    /// still in the map: what a thread that keeps the entry does from time to time, so that
    /// its calls, which skip the map, do not leave the entry looking idle. Whether it found
    /// it.
    #[cold]
    #[inline(never)]
    pub(crate) fn touch(&self, hash: u64, is: impl Fn(&V) -> bool) -> bool {
        let shard = self.shard(hash);
        let table = shard.table.read().unwrap_or_else(PoisonError::into_inner);
        let found = table.buckets.get(&hash).and_then(|bucket| {
            std::iter::once(&bucket.first)
                .chain(&bucket.more)
                .find(|slot| is(&slot.value))
        });
        found.map(|slot| shard.touch(slot)).is_some()
    }

    /// `f` applied to `key`'s value, if it is tracked (without stamping it as used).
    #[cfg(any(test, feature = "circuit-breaker"))]
    pub(crate) fn get<R>(&self, key: &impl Probe<K>, f: impl FnOnce(&V) -> R) -> Option<R> {
        let hash = key.hash_with(map_hasher());
        let table = self
            .shard(hash)
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        table.find(hash, key).map(|slot| f(&slot.value))
    }

    /// The entries tracked.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// `f` of every entry, shard by shard.
    pub(crate) fn collect<T>(&self, mut f: impl FnMut(&K, &V) -> T) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let table = shard.table.read().unwrap_or_else(PoisonError::into_inner);
            out.extend(table.slots().map(|slot| f(&slot.key, &slot.value)));
        }
        out
    }
}

impl<K, V: Evict> Shard<K, V> {
    /// Evicts from a shard about to take a new key (under its write lock), and sets when
    /// the next scan is due: at `capacity` if this one made room, else once the shard has
    /// grown by half (entries that must stay are not scanned again for every new key).
    /// Returns how many entries were evicted.
    fn scan(&self, table: &mut Table<K, V>) -> usize {
        #[cfg(test)]
        self.scanned.fetch_add(table.len, Ordering::Relaxed);
        let evicted = evict(table, self.capacity);
        let scan_at = if table.len < self.capacity {
            self.capacity
        } else {
            let len = table.len + 1;
            len.saturating_add(len / 2).max(self.capacity)
        };
        self.scan_at.store(scan_at, Ordering::Relaxed);
        evicted
    }
}

impl<K, V> Shard<K, V> {
    /// Stamps a slot found under either lock (eviction cannot pick it meanwhile) as the most
    /// recently used, unless it already is.
    #[inline]
    fn touch(&self, slot: &Slot<K, V>) {
        if slot.last_used.load(Ordering::Relaxed) != self.clock.load(Ordering::Relaxed) {
            let stamp = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
            slot.last_used.fetch_max(stamp, Ordering::Relaxed);
        }
    }
}

/// Evicts from a full shard, least recently used first: idle entries up to an eighth of it
/// (at least enough to make room for one more entry), busy ones only as far as room is
/// still needed, never an entry that must stay. Batches keep the cost per new key constant
/// while a scan of hosts fills the map again and again. Returns how many were evicted.
fn evict<K, V: Evict>(table: &mut Table<K, V>, capacity: usize) -> usize {
    let needed = (table.len + 1).saturating_sub(capacity).max(1);
    // Under the write lock nobody stamps an entry, so stamps identify entries (they are
    // distinct). Whether a value may go is asked once: it can change meanwhile (a call on
    // a breaker ends), and asking again could evict fewer or more than chosen.
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    for slot in table.slots() {
        let stamp = slot.last_used.load(Ordering::Relaxed);
        match slot.value.eviction() {
            Eviction::Idle => idle.push(stamp),
            Eviction::Busy => busy.push(stamp),
            Eviction::Never => {}
        }
    }
    least(&mut idle, needed.max(capacity / 8));
    least(&mut busy, needed.saturating_sub(idle.len()));
    idle.append(&mut busy);
    if idle.is_empty() {
        return 0;
    }
    idle.sort_unstable();
    let before = table.len;
    table.retain(|slot| {
        idle.binary_search(&slot.last_used.load(Ordering::Relaxed))
            .is_err()
    });
    before - table.len
}

/// Keeps the `n` smallest of `stamps`.
fn least(stamps: &mut Vec<u64>, n: usize) {
    if stamps.len() > n {
        if n > 0 {
            stamps.select_nth_unstable(n - 1);
        }
        stamps.truncate(n);
    }
}

impl<K, V> fmt::Debug for LruMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruMap")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// The hasher of a shard's table, whose keys are hashes already.
#[derive(Default, Clone, Copy)]
struct BuildIdentity;

struct Identity(u64);

impl BuildHasher for BuildIdentity {
    type Hasher = Identity;

    #[inline]
    fn build_hasher(&self) -> Identity {
        Identity(0)
    }
}

impl Hasher for Identity {
    fn write(&mut self, _: &[u8]) {
        unreachable!("a shard's table hashes only its `u64` keys")
    }

    #[inline]
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A key looked up as itself.
impl<K: Hash + Eq> Probe<K> for K {
    #[inline]
    fn hash_with(&self, hasher: &MapHasher) -> u64 {
        hasher.hash_one(self)
    }

    #[inline]
    fn matches(&self, key: &K) -> bool {
        self == key
    }
}

impl<K: Hash + Eq> Lookup<K> for K {
    fn into_key(self) -> K {
        self
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, fortify_loom))]
mod loom;
