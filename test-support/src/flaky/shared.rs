//! The state a backend's server, resolver and handle share: its addresses, its faults, the
//! outage in force, its counters.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering::Relaxed},
        Mutex,
    },
    time::Duration,
};

use super::faults::{unit, Faults, Outage, TlsFaults, STREAM_REFUSE};
use crate::capacity::{Load, Workers};

/// What the backend counts ([`FlakyBackend::stats`](super::FlakyBackend::stats) reads them).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) connections: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) resets: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) unavailable: AtomicU64,
    pub(super) slow: AtomicU64,
    pub(super) ok: AtomicU64,
    pub(super) posts_without_key_duplicates: AtomicU64,
    pub(super) keyed_post_duplicates: AtomicU64,
    pub(super) outage_requests: AtomicU64,
    pub(super) handshakes: AtomicU64,
    pub(super) handshake_stalls: AtomicU64,
    pub(super) handshake_resets: AtomicU64,
    pub(super) outage_resets: AtomicU64,
}

/// The server side of [`FlakyBackend::start_tls`](super::FlakyBackend::start_tls).
pub(super) struct Tls {
    pub(super) acceptor: tokio_rustls::TlsAcceptor,
    pub(super) roots: rustls::RootCertStore,
    pub(super) faults: TlsFaults,
    /// How long each completed handshake took at the server.
    pub(super) handshake_times: Mutex<Vec<Duration>>,
}

/// What the backend's server, resolver and handles share.
pub(super) struct Shared {
    pub(super) live: SocketAddr,
    /// `None` when no dead address could be bound (refusals are off).
    pub(super) dead: Option<SocketAddr>,
    pub(super) faults: Faults,
    pub(super) tls: Option<Tls>,
    pub(super) outage: AtomicU8,
    pub(super) resolutions: AtomicU64,
    pub(super) anonymous: AtomicU64,
    pub(super) counters: Counters,
    /// Arrivals per `x-request-id`.
    pub(super) arrivals: Mutex<HashMap<u64, u32>>,
    /// The processing capacity (overload mode).
    pub(super) workers: Workers,
    /// Requests in flight at the backend, and every request's sample.
    pub(super) load: Load,
}

impl Shared {
    pub(super) fn outage(&self) -> Outage {
        Outage::from_u8(self.outage.load(Relaxed))
    }

    /// The address a resolution of `backend.test` answers.
    pub(super) fn resolve(&self) -> SocketAddr {
        let n = self.resolutions.fetch_add(1, Relaxed);
        let refuse = self.outage() == Outage::Refused
            || unit(self.faults.seed, STREAM_REFUSE, n, 0) < self.faults.refuse;
        match self.dead {
            Some(dead) if refuse => {
                self.counters.refused.fetch_add(1, Relaxed);
                dead
            }
            _ => self.live,
        }
    }
}
