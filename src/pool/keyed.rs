//! Per-host pools (urllib3's `PoolManager`): the bounded map of pools, keyed by any
//! [`RequestKey`](crate::key::RequestKey)'s key.

use super::permit::{Core, Permit, Pool};
use crate::{
    internal::lru::{Evict, Eviction, Lookup, LruMap},
    key::MapKey,
};
use std::{fmt, sync::Arc};

// ===== the map of pools =====

/// The pools of a per-host layer, shared by all its services and their clones (see
/// [`LruMap`] for the shards, the locks and the order of eviction).
///
/// It keeps at most `max_pools` pools, evicting the least recently used idle ones; a pool
/// with a call in flight or waiting is never evicted (its limit must hold), so while more
/// than `max_pools` keys are busy at once the map holds one pool per busy key: it is bounded
/// by the calls in flight, never by the keys ever seen.
pub(crate) struct Keyed {
    map: LruMap<MapKey, Arc<Pool>>,
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
    pub(crate) fn try_acquire(
        &self,
        key: impl Lookup<MapKey>,
        core: &Arc<Core>,
    ) -> Result<Permit, Arc<Pool>> {
        // Under the shard's lock, eviction cannot pick the pool meanwhile.
        let found = |pool: &Arc<Pool>| pool.try_acquire().ok_or_else(|| Arc::clone(pool));
        let make = |key: &MapKey| {
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
