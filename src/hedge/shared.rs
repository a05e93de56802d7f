//! What every clone of a hedge layer's services shares, and the futures' reference to it.

use super::{
    host_cache,
    tracker::{self, Tracker},
};
use crate::{
    internal::ticker::Ticker,
    retry::{AllowedMethods, RetryBudget},
};
use http::Request;
use std::{
    hash::BuildHasher,
    sync::{atomic::AtomicU64, Arc},
};

/// What every clone of a layer's services shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: &'static str,
    /// Unique per layer built (from 1), never reused: the key of the threads' `host_cache`.
    pub(super) id: u64,
    pub(crate) tracker: Arc<Tracker>,
    /// The hedge delays of the pending calls, on one timer.
    pub(crate) ticker: Arc<Ticker>,
    pub(super) per_host: bool,
    /// The tracker's hasher: foldhash, seeded at random (the maps' own, `internal::lru`).
    pub(super) hasher: crate::internal::lru::MapHasher,
    pub(crate) allowed_methods: AllowedMethods,
    pub(crate) max_in_flight: u32,
    pub(crate) budget: Option<RetryBudget>,
    #[cfg(feature = "circuit-breaker")]
    pub(crate) breaker: Option<crate::circuit_breaker::CircuitBreakerHandle>,
    #[cfg(feature = "metrics")]
    pub(crate) instruments: super::metrics::Instruments,
}

/// The next layer's `Shared::id`.
pub(super) static LAYERS: AtomicU64 = AtomicU64::new(1);

impl Shared {
    /// The hash of a host's [`HostKey`](crate::key::HostKey), as the tracker keys it.
    #[inline]
    pub(super) fn hash(&self, key: &crate::key::HostKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The tracker's slot of the request's host (of every request, with `per_host(false)`):
    /// the thread's last one if it is this host's (`host_cache`), else the host hashed in
    /// place (a `HostKey` hashes as the `HostRef` it is read from) and looked up.
    #[inline]
    pub(crate) fn slot_of<B>(&self, request: &Request<B>) -> Option<usize> {
        if !self.per_host {
            return Some(0);
        }
        let uri = request.uri();
        let tracker = &self.tracker;
        if let Some(slot) = host_cache::get(self.id, uri, |slot, tag| tracker.holds(slot, tag)) {
            return Some(slot);
        }
        let hash = self.hasher.hash_one(crate::key::HostRef::of(uri));
        let slot = tracker.slot_of(hash)?;
        host_cache::put(self.id, uri, slot, tracker::tag(hash));
        Some(slot)
    }
}
