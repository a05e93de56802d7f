//! Per-host pools (urllib3's `PoolManager`): the bounded map of pools, keyed by any
//! [`RequestKey`](crate::key::RequestKey)'s key.

use super::permit::{Core, Permit, Pool};
use crate::internal::lru::{Evict, Eviction, Lookup, LruMap};
use std::{
    any::Any,
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

// ===== keys, their type erased =====

/// A key of any type, as the map stores it: the layer is built before the request type (and
/// so the key type) is known. Every key of one map has the same type.
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
/// only when its pool is created.
struct ByValue<K>(K);

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

// ===== the map of pools =====

/// The pools of a per-host layer, shared by all its services and their clones (see
/// [`LruMap`] for the shards, the locks and the order of eviction).
///
/// It keeps at most `max_pools` pools, evicting the least recently used idle ones; a pool
/// with a call in flight or waiting is never evicted (its limit must hold), so while more
/// than `max_pools` keys are busy at once the map holds one pool per busy key: it is bounded
/// by the calls in flight, never by the keys ever seen.
pub(crate) struct Keyed {
    map: LruMap<Box<dyn ErasedKey>, Arc<Pool>>,
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

impl fmt::Debug for Keyed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Keyed").field(&self.map).finish()
    }
}

impl Keyed {
    pub(crate) fn new(max_pools: usize) -> Self {
        Keyed {
            map: LruMap::new(max_pools),
        }
    }

    /// A permit of `key`'s pool (created if needed), or the pool if it has none free.
    #[inline]
    pub(crate) fn try_acquire<K: ErasedKey>(
        &self,
        key: K,
        core: &Arc<Core>,
    ) -> Result<Permit, Arc<Pool>> {
        // Under the shard's lock, eviction cannot pick the pool meanwhile.
        let found = |pool: &Arc<Pool>| pool.try_acquire().ok_or_else(|| Arc::clone(pool));
        let make = |key: &dyn ErasedKey| {
            Arc::new(Pool::new(
                Arc::clone(core),
                Some(format!("{key:?}").into_boxed_str()),
            ))
        };
        self.map.get_or_insert(
            ByValue(key),
            found,
            |key| make(&**key),
            |_| {
                #[cfg(feature = "metrics")]
                core.pools_changed(|| self.map.len());
            },
        )
    }

    /// Every pool tracked now.
    pub(crate) fn pools(&self) -> Vec<Arc<Pool>> {
        self.map.collect(|_, pool| Arc::clone(pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ByAuthority, RequestKey};
    use std::collections::hash_map::DefaultHasher;

    fn hash(key: &dyn ErasedKey) -> u64 {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        h.finish()
    }

    #[test]
    fn erased_keys_hash_and_compare_as_their_type() {
        let key = |uri: &str| ByAuthority.key(&http::Request::get(uri).body(()).unwrap());
        let (a, b) = (key("http://a.example/"), key("http://A.EXAMPLE:80/"));
        let boxed: Box<dyn ErasedKey> = Box::new(a.clone());
        assert!(*boxed == *(&b as &dyn ErasedKey));
        assert_eq!(hash(&*boxed), hash(&b));
        let mut direct = DefaultHasher::new();
        b.hash(&mut direct);
        assert_eq!(hash(&b), direct.finish());
        assert!(*boxed != *(&key("http://b.example/") as &dyn ErasedKey));
        assert_eq!(format!("{boxed:?}"), "http://a.example:80");
    }
}
