//! The faults a backend injects (rates, the TLS layer's, an outage), what it counts, and the
//! seeded draws that decide each fault.

use std::time::Duration;

/// Fault rates; all rates are probabilities in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Per new connection: the connection is refused (real `ECONNREFUSED`).
    pub refuse: f64,
    /// Per new connection: accepted, the request head read, then reset (`SO_LINGER` 0).
    pub reset: f64,
    /// Per request: `503` with `Retry-After: 1`.
    pub unavailable: f64,
    /// Per request: the answer is delayed by `slow_delay`.
    pub slow: f64,
    /// The delay of a slow answer.
    pub slow_delay: Duration,
    /// The seed of every random draw.
    pub seed: u64,
}

impl Faults {
    /// No faults (`slow_delay` 1 s, seed 1).
    pub fn none() -> Self {
        Faults {
            refuse: 0.0,
            reset: 0.0,
            unavailable: 0.0,
            slow: 0.0,
            slow_delay: Duration::from_secs(1),
            seed: 1,
        }
    }

    /// Connection failures only, `rate` in all: 2/3 refused, 1/3 reset.
    pub fn transient(rate: f64) -> Self {
        Faults {
            refuse: rate * 2.0 / 3.0,
            reset: rate / 3.0,
            ..Faults::none()
        }
    }

    /// The same rates with another seed.
    pub fn seed(self, seed: u64) -> Self {
        Faults { seed, ..self }
    }

    pub(super) fn check(&self) {
        for (name, rate) in [
            ("refuse", self.refuse),
            ("reset", self.reset),
            ("unavailable", self.unavailable),
            ("slow", self.slow),
        ] {
            assert!(
                (0.0..=1.0).contains(&rate),
                "Faults::{name} must be a probability in 0.0..=1.0, got {rate}"
            );
        }
    }
}

/// The TLS layer's faults of [`FlakyBackend::start_tls`](super::FlakyBackend::start_tls), per new connection; rates are
/// probabilities in `0.0..=1.0` (drawn with the seed of [`Faults`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TlsFaults {
    /// The server never answers the client's hello.
    pub stall: f64,
    /// The server reads the client's hello, then resets the connection.
    pub reset: f64,
}

impl TlsFaults {
    /// No TLS faults.
    pub fn none() -> Self {
        TlsFaults {
            stall: 0.0,
            reset: 0.0,
        }
    }
}

/// A total outage of the backend, on top of the fault rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Outage {
    /// No outage.
    #[default]
    None,
    /// Every request is answered `503` without `Retry-After` (and counted in
    /// `outage_requests`).
    Unavailable,
    /// Every connection is refused (the resolver always answers the dead port).
    Refused,
}

impl Outage {
    pub(super) fn to_u8(self) -> u8 {
        match self {
            Outage::None => 0,
            Outage::Unavailable => 1,
            Outage::Refused => 2,
        }
    }

    pub(super) fn from_u8(v: u8) -> Self {
        match v {
            1 => Outage::Unavailable,
            2 => Outage::Refused,
            _ => Outage::None,
        }
    }
}

/// What the backend saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Connections accepted.
    pub connections: u64,
    /// Resolutions answered with the dead port (each a refused connect).
    pub refused: u64,
    /// Connections reset after their request head was read.
    pub resets: u64,
    /// Requests whose head the server read (including reset and 503-answered ones).
    pub requests: u64,
    /// `503` with `Retry-After: 1` (the `unavailable` rate; not the outage).
    pub unavailable: u64,
    /// Slow answers.
    pub slow: u64,
    /// `200`/`201` answers.
    pub ok: u64,
    /// Arrivals of an unkeyed POST beyond its first (must be 0).
    pub posts_without_key_duplicates: u64,
    /// Arrivals of a keyed POST beyond its first (allowed, deduplicated retries).
    pub keyed_post_duplicates: u64,
    /// Requests answered `503` during [`Outage::Unavailable`].
    pub outage_requests: u64,
    /// TLS handshakes the server completed.
    pub handshakes: u64,
    /// TLS handshakes the server stalled ([`TlsFaults::stall`]).
    pub handshake_stalls: u64,
    /// TLS handshakes the server reset ([`TlsFaults::reset`]).
    pub handshake_resets: u64,
    /// Requests on a connection opened before an [`Outage::Refused`], reset unread.
    pub outage_resets: u64,
}

/// `later - earlier`, field by field: what the backend saw and did in between.
impl std::ops::Sub for BackendStats {
    type Output = BackendStats;

    fn sub(self, earlier: BackendStats) -> BackendStats {
        BackendStats {
            connections: self.connections - earlier.connections,
            refused: self.refused - earlier.refused,
            resets: self.resets - earlier.resets,
            requests: self.requests - earlier.requests,
            unavailable: self.unavailable - earlier.unavailable,
            slow: self.slow - earlier.slow,
            ok: self.ok - earlier.ok,
            posts_without_key_duplicates: self.posts_without_key_duplicates
                - earlier.posts_without_key_duplicates,
            keyed_post_duplicates: self.keyed_post_duplicates - earlier.keyed_post_duplicates,
            outage_requests: self.outage_requests - earlier.outage_requests,
            handshakes: self.handshakes - earlier.handshakes,
            handshake_stalls: self.handshake_stalls - earlier.handshake_stalls,
            handshake_resets: self.handshake_resets - earlier.handshake_resets,
            outage_resets: self.outage_resets - earlier.outage_resets,
        }
    }
}

/// splitmix64: a seeded, reproducible value per input.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `[0, 1)` from `(seed, stream, a, b)`.
pub(super) fn unit(seed: u64, stream: u64, a: u64, b: u64) -> f64 {
    let x = splitmix(splitmix(splitmix(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407)) ^ a) ^ b);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

pub(super) const STREAM_REFUSE: u64 = 1;
pub(super) const STREAM_RESET: u64 = 2;
pub(super) const STREAM_UNAVAILABLE: u64 = 3;
pub(super) const STREAM_SLOW: u64 = 4;
pub(super) const STREAM_TLS_STALL: u64 = 5;
pub(super) const STREAM_TLS_RESET: u64 = 6;
