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
    internal::lru::{Evict, Eviction, Lookup, LruMap, Probe},
    key::MapKey,
};
use std::{fmt, sync::Arc};

// ===== the map =====

/// The breakers of a per-host layer (see [`LruMap`] for the shards, the locks and the order of
/// eviction): a closed breaker is idle and may be evicted in a batch; an open or half-open
/// one only when room is still needed; one an operator forced open or disabled never (its
/// state must hold).
pub(crate) struct KeyedMap {
    pub(crate) settings: Arc<Settings>,
    map: LruMap<MapKey, Shared>,
}

impl Evict for Shared {
    fn eviction(&self) -> Eviction {
        match self.breaker.state() {
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
            Shared::admit,
            // The key as printed, once per breaker: its rejections and events share it.
            |key| Shared::new(Arc::clone(&self.settings), Some(format!("{key:?}").into())),
            |_evicted| {
                #[cfg(feature = "metrics")]
                {
                    let instruments = &self.settings.instruments;
                    instruments.evicted(_evicted as u64);
                    instruments.keys(1.0 - _evicted as f64);
                }
            },
        )
    }

    pub(crate) fn get(&self, key: &impl Probe<MapKey>) -> Option<Arc<Breaker>> {
        self.map.get(key, |shared| Arc::clone(&shared.breaker))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every breaker tracked now, sorted by its key's text.
    pub(crate) fn breakers(&self) -> Vec<Arc<Breaker>> {
        let mut breakers = self.map.collect(|_, shared| Arc::clone(&shared.breaker));
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
