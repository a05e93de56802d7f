//! One breaker per key (per host by default, [`ByAuthority`](crate::key::ByAuthority)): the
//! map with a bound on the keys tracked. Keys are [`RequestKey`](crate::key::RequestKey)'s,
//! stored and looked up as the per-host pools' are ([`MapKey`]).

use super::{
    admission::{Admission, Shared},
    breaker::Breaker,
    settings::Settings,
    State,
};
use crate::{
    internal::{
        lru::{Counted, Evict, Eviction, Lookup, LruMap, Probe},
        recent::Recent,
        sync::thread_local_const,
    },
    key::MapKey,
};
use http::Uri;
use std::{cell::RefCell, fmt, sync::Arc};

// ===== the map =====

/// The breakers of a per-host layer (see [`LruMap`] for the shards, the locks and the order of
/// eviction): a closed breaker is idle and may be evicted in a batch; an open or half-open
/// one only when room is still needed; one an operator forced open or disabled never (its
/// state must hold).
pub(crate) struct KeyedMap {
    pub(crate) settings: Arc<Settings>,
    map: LruMap<MapKey, Entry>,
}

/// A breaker in the map, shared with the threads that keep it as their last one: it
/// retires when the map lets it go.
pub(crate) struct Entry(Arc<Shared>);

impl Drop for Entry {
    fn drop(&mut self) {
        self.0.retire();
    }
}

impl Evict for Entry {
    fn eviction(&self) -> Eviction {
        match self.0.breaker.state() {
            State::Closed => Eviction::Idle,
            State::Open | State::HalfOpen => Eviction::Busy,
            State::ForcedOpen | State::Disabled => Eviction::Never,
        }
    }
}

impl KeyedMap {
    fn new(settings: Arc<Settings>) -> Self {
        let map = LruMap::sharded(settings.config.max_keys);
        KeyedMap { settings, map }
    }

    /// Admits a call through `key`'s breaker, created if needed. The key is looked up
    /// borrowed, and boxed only for a new breaker.
    #[inline]
    pub(crate) fn admit(&self, key: impl Lookup<MapKey>) -> Admission {
        self.map.get_or_insert(
            key,
            |entry| entry.0.admit(),
            |key| self.make(key),
            |evicted| self.inserted(evicted),
        )
    }

    /// This map among all others (for a thread's cache of its last breaker).
    #[cfg(feature = "stack")]
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.map.id()
    }

    /// [`admit`](Self::admit) for a request to `uri` keyed by its authority (`lookup` is
    /// its key, made only if needed): through the thread's last breaker of this map if it
    /// is `uri`'s host's and still in the map, without a lookup.
    #[inline]
    pub(crate) fn admit_recent<L: Lookup<MapKey>>(
        &self,
        uri: &Uri,
        lookup: impl FnOnce() -> L,
    ) -> Admission {
        let recent = RECENT.try_with(|recent| {
            let recent = recent.try_borrow().ok()?;
            let recent = recent.as_ref()?;
            if !recent.hit(self.map.id(), uri) {
                return None;
            }
            if recent.due() && !self.touch(recent.hash(), &recent.entry) {
                return None;
            }
            // Under a shared borrow: if a transition's events run a user's code that calls
            // again, that call finds the slot borrowed and leaves it as it is.
            self.admit_kept(&recent.entry)
        });
        match recent.ok().flatten() {
            Some(admission) => admission,
            None => self.admit_caching(uri, lookup()),
        }
    }

    /// [`admit`](Self::admit) through a breaker a thread kept, if it is still in the map;
    /// `None` if it may have left it.
    #[inline(always)]
    pub(crate) fn admit_kept(&self, kept: &KeptBreaker) -> Option<Admission> {
        // An evicted breaker's calls would not count (as those in flight when it goes):
        // the count of eviction scans tells it apart.
        (self.map.evictions() == kept.evictions).then(|| kept.shared.admit())
    }

    /// Stamps a breaker a thread kept as used, if it is still in the map (found by its
    /// key's hash).
    #[inline(always)]
    pub(crate) fn touch(&self, hash: u64, kept: &KeptBreaker) -> bool {
        self.map
            .touch(hash, |entry| Arc::ptr_eq(&entry.0, &kept.shared))
    }

    /// [`admit`](Self::admit), then the breaker kept as the thread's last.
    #[inline(never)]
    fn admit_caching(&self, uri: &Uri, key: impl Lookup<MapKey>) -> Admission {
        let (admission, kept, hash) = self.admit_keeping(key);
        let recent = Recent::new(self.map.id(), hash, uri, kept);
        let _ = RECENT.try_with(|slot| Recent::keep(slot, recent));
        admission
    }

    /// [`admit`](Self::admit), and the breaker as a thread keeps it, with its key's hash.
    #[inline]
    pub(crate) fn admit_keeping(&self, key: impl Lookup<MapKey>) -> (Admission, KeptBreaker, u64) {
        let found = |entry: &Entry, counted: Counted| {
            let kept = KeptBreaker {
                shared: Arc::clone(&entry.0),
                evictions: counted.evictions,
            };
            (entry.0.admit(), kept, counted.hash)
        };
        self.map.get_or_insert_counted(
            key,
            found,
            |key| self.make(key),
            |evicted| self.inserted(evicted),
        )
    }

    fn make(&self, key: &MapKey) -> Entry {
        // The key as printed, once per breaker: its rejections and events share it.
        Entry(Arc::new(Shared::new(
            Arc::clone(&self.settings),
            Some(format!("{key:?}").into()),
        )))
    }

    fn inserted(&self, _evicted: usize) {
        #[cfg(feature = "metrics")]
        {
            let instruments = &self.settings.instruments;
            instruments.evicted(_evicted as u64);
            instruments.keys(1.0 - _evicted as f64);
        }
    }

    pub(crate) fn get(&self, key: &impl Probe<MapKey>) -> Option<Arc<Breaker>> {
        self.map.get(key, |entry| Arc::clone(&entry.0.breaker))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every breaker tracked now, sorted by its key's text.
    pub(crate) fn breakers(&self) -> Vec<Arc<Breaker>> {
        let mut breakers = self.map.collect(|_, entry| Arc::clone(&entry.0.breaker));
        breakers.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
        breakers
    }
}

impl fmt::Debug for KeyedMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMap")
            .field("name", &self.settings.name)
            .field("keys", &self.len())
            .field("max_keys", &self.settings.config.max_keys)
            .finish()
    }
}

// ===== the thread's last breaker =====

/// A breaker as a thread keeps it (see [`recent`](crate::internal::recent)), and the map's
/// count of eviction scans when the breaker was found in it. It may outlive its place in
/// the map until the thread's next call (its `Entry` retired it already).
#[derive(Clone)]
pub(crate) struct KeptBreaker {
    shared: Arc<Shared>,
    evictions: u64,
}

thread_local_const! {
    /// A thread's last breaker.
    static RECENT: RefCell<Option<Recent<KeptBreaker>>> = const { RefCell::new(None) };
}

// ===== one breaker, or one per key =====

/// The breakers of an HTTP layer: one for every request (`per_host(false)`: no key is
/// computed, no map searched), or one per key.
#[derive(Debug, Clone)]
pub(crate) enum Breakers {
    Single(Arc<Shared>),
    Keyed(Arc<KeyedMap>),
}

impl Breakers {
    pub(crate) fn new(settings: Arc<Settings>, per_host: bool) -> Self {
        if per_host {
            Breakers::Keyed(Arc::new(KeyedMap::new(settings)))
        } else {
            Breakers::Single(Arc::new(Shared::new(settings, None)))
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        match self {
            Breakers::Single(shared) => &shared.breaker.settings,
            Breakers::Keyed(map) => &map.settings,
        }
    }
}
