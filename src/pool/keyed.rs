//! Per-host pools (urllib3's `PoolManager`): the bounded map of pools, keyed by any
//! [`RequestKey`](crate::key::RequestKey)'s key.

use super::permit::{Core, Permit, Pool};
use crate::{
    internal::{
        lru::{Counted, Evict, Eviction, Lookup, LruMap},
        recent::Recent,
        sync::{fence, thread_local_const, Ordering},
    },
    key::MapKey,
};
use http::Uri;
use std::{
    cell::RefCell,
    fmt,
    sync::{Arc, Weak},
};

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
        let idle = Arc::strong_count(self) == 1;
        // `Arc`'s count is `std`'s, which loom does not see: a point where the model may
        // run another thread between the count read and the eviction (a thread upgrading
        // its kept reference meanwhile, `loom` below).
        #[cfg(all(test, fortify_loom))]
        ::loom::thread::yield_now();
        if idle {
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
        let make = |key: &MapKey| Self::make(key, core);
        self.map.get_or_insert(key, found, make, |_| {
            #[cfg(feature = "metrics")]
            core.pools_changed(|| self.map.len());
        })
    }

    /// This map among all others (for a thread's cache of its last pool).
    #[cfg(feature = "stack")]
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.map.id()
    }

    /// [`try_acquire`](Self::try_acquire) for a request to `uri` keyed by its authority
    /// (`lookup` is its key, made only if needed): the thread's last pool of this map, if
    /// it is `uri`'s host's and still in the map, without a lookup.
    #[inline]
    pub(crate) fn try_acquire_recent<L: Lookup<MapKey>>(
        &self,
        uri: &Uri,
        lookup: impl FnOnce() -> L,
        core: &Arc<Core>,
    ) -> Result<Permit, Arc<Pool>> {
        if let Some(acquired) = self.recent(uri) {
            return acquired;
        }
        self.try_acquire_caching(uri, lookup(), core)
    }

    /// The thread's last pool, if it is `uri`'s and still in the map.
    #[inline(always)]
    fn recent(&self, uri: &Uri) -> Option<Result<Permit, Arc<Pool>>> {
        RECENT
            .try_with(|recent| {
                let recent = recent.try_borrow().ok()?;
                let recent = recent.as_ref()?;
                if !recent.hit(self.map.id(), uri) {
                    return None;
                }
                if recent.due() && !self.touch(recent.hash(), &recent.entry) {
                    return None;
                }
                self.try_acquire_kept(&recent.entry)
            })
            .ok()
            .flatten()
    }

    /// [`try_acquire`](Self::try_acquire) through a pool a thread kept, if it is still in
    /// the map; `None` if it is not (or may not be).
    #[inline(always)]
    pub(crate) fn try_acquire_kept(&self, kept: &KeptPool) -> Option<Result<Permit, Arc<Pool>>> {
        // A reference first, then the map's count of eviction scans: either a scan saw the
        // reference (and kept the pool), or this sees the scan (see `LruMap::evictions`).
        // The fence is needed: `upgrade` increments the count with an acquire
        // read-modify-write, and only a `SeqCst` fence after it is ordered with the scan's
        // (its count, a `SeqCst` fence, then a relaxed read of the references): without it,
        // the model lets both read the old values (the scan evicts a pool this call then
        // takes a permit of). On x86 it is one `mfence`. A strong reference kept would need
        // none, but the map evicts a pool only when it holds the only reference: each
        // thread's last pool would stay in the map however long the thread leaves it.
        let pool = kept.pool.upgrade()?;
        fence(Ordering::SeqCst);
        if self.map.evictions() != kept.evictions {
            return None;
        }
        Some(pool.try_acquire_owned())
    }

    /// Stamps a pool a thread kept as used, if it is still in the map (found by its key's
    /// hash).
    #[inline(always)]
    pub(crate) fn touch(&self, hash: u64, kept: &KeptPool) -> bool {
        self.map
            .touch(hash, |pool| Arc::as_ptr(pool) == Weak::as_ptr(&kept.pool))
    }

    /// [`try_acquire`](Self::try_acquire), then the pool kept as the thread's last.
    #[inline(never)]
    fn try_acquire_caching(
        &self,
        uri: &Uri,
        key: impl Lookup<MapKey>,
        core: &Arc<Core>,
    ) -> Result<Permit, Arc<Pool>> {
        let (acquired, kept, hash) = self.try_acquire_keeping(key, core);
        let recent = Recent::new(self.map.id(), hash, uri, kept);
        let _ = RECENT.try_with(|slot| Recent::keep(slot, recent));
        acquired
    }

    /// [`try_acquire`](Self::try_acquire), and the pool as a thread keeps it, with its
    /// key's hash.
    #[inline]
    pub(crate) fn try_acquire_keeping(
        &self,
        key: impl Lookup<MapKey>,
        core: &Arc<Core>,
    ) -> (Result<Permit, Arc<Pool>>, KeptPool, u64) {
        let found = |pool: &Arc<Pool>, counted: Counted| {
            let acquired = pool.try_acquire().ok_or_else(|| Arc::clone(pool));
            let kept = KeptPool {
                pool: Arc::downgrade(pool),
                evictions: counted.evictions,
            };
            (acquired, kept, counted.hash)
        };
        self.map.get_or_insert_counted(
            key,
            found,
            |key| Self::make(key, core),
            |_| {
                #[cfg(feature = "metrics")]
                core.pools_changed(|| self.map.len());
            },
        )
    }

    fn make(key: &MapKey, core: &Arc<Core>) -> Arc<Pool> {
        Arc::new(Pool::new(
            Arc::clone(core),
            Some(format!("{key:?}").into_boxed_str()),
        ))
    }

    /// Every pool tracked now.
    pub(crate) fn pools(&self) -> Vec<Arc<Pool>> {
        self.map.collect(|_, pool| Arc::clone(pool))
    }
}

// ===== the thread's last pool =====

/// A pool as a thread keeps it (see [`recent`](crate::internal::recent)): a weak
/// reference, so that it never keeps a pool in the map (a pool is evicted only when the map
/// alone holds it) nor alive once evicted, and the map's count of eviction scans when the
/// pool was found in it.
pub(crate) struct KeptPool {
    pool: Weak<Pool>,
    evictions: u64,
}

thread_local_const! {
    /// A thread's last pool.
    static RECENT: RefCell<Option<Recent<KeptPool>>> = const { RefCell::new(None) };
}

#[cfg(all(test, fortify_loom))]
mod loom {
    //! The thread's last pool against another thread's eviction: the protocol of
    //! [`Keyed::try_acquire_kept`] (a weak reference upgraded, a `SeqCst` fence, the map's
    //! count of eviction scans compared) against the scan's (its count, a `SeqCst` fence,
    //! the references read). See `internal::sync` for how to run it.

    use super::*;
    use crate::{key::HostRef, pool::loom_tests::core};

    /// A map of one pool: this thread keeps host a's (its permit given back, the pool
    /// idle), another thread's call to b evicts it, and this thread takes a permit through
    /// what it kept meanwhile. Either the permit is of the pool the map still holds for a
    /// (the scan saw this thread's reference and kept the pool), or there is none (this
    /// thread saw the scan, and would look a up again): never a permit of a pool that left
    /// the map, beside which a second pool for a would hand out permits of its own.
    ///
    /// The pool's `Arc` is `std`'s, whose counts loom does not see, so two yields make the
    /// race reachable: one here before the kept pool is used (without a loom operation
    /// before the upgrade, this thread always upgrades before the other starts), and one in
    /// the scan after it reads a count (`Evict for Arc<Pool>`, under the models only:
    /// without it, the read and the eviction run as one step).
    ///
    /// Seeded bug it catches: `LruMap::evictions` always 0 (cargo-mutants' `evictions -> 0`:
    /// the count never tells a kept pool that a scan ran); without either yield the model
    /// passes with it. (The `SeqCst` fence after the upgrade orders it with `std`'s
    /// atomics, which loom does not model: no model here can show it is needed.)
    #[test]
    fn loom_a_kept_pool_evicted_meanwhile_gives_no_permit() {
        ::loom::model(|| {
            let core = core(1, None);
            let keyed = Arc::new(Keyed::new(1));
            let a: Uri = "http://a.test/".parse().unwrap();
            let (acquired, kept, _) = keyed.try_acquire_keeping(HostRef::of(&a), &core);
            drop(acquired.unwrap_or_else(|_| panic!("a's pool has a free permit")));
            let other = {
                let (keyed, core) = (Arc::clone(&keyed), Arc::clone(&core));
                ::loom::thread::spawn(move || {
                    let b: Uri = "http://b.test/".parse().unwrap();
                    drop(keyed.try_acquire(HostRef::of(&b), &core));
                })
            };
            // A point where the other thread may go first (the upgrade below is `std`'s).
            ::loom::thread::yield_now();
            if let Some(acquired) = keyed.try_acquire_kept(&kept) {
                let permit = acquired.unwrap_or_else(|_| panic!("a's pool was idle"));
                let pool = kept.pool.upgrade().expect("the permit holds its pool");
                assert!(
                    keyed.pools().iter().any(|held| Arc::ptr_eq(held, &pool)),
                    "a permit of a pool that left the map"
                );
                drop(permit);
            }
            other.join().unwrap();
        });
    }
}
