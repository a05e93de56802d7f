//! A fault-injecting HTTP backend on 127.0.0.1, with its own "DNS/load balancer" resolver.
//!
//! Shared by the demo (`examples/demo/`) and the chaos suite (`tests/chaos`). Every fault
//! is a real socket event that the client's OS reports, never a hand-built error:
//!
//! - **refuse** (per new connection): the [`FlakyResolver`] answers `backend.test` with the
//!   address of a *dead* port instead of the live one. The dead port is a socket bound on
//!   127.0.0.1 that never listens, kept bound for the backend's lifetime, so that the kernel
//!   answers a connect with RST (a real `ECONNREFUSED`), no other process can take the port,
//!   and the kernel never picks it as a client's ephemeral port (no self-connect). URIs carry
//!   no port: hyper-util's `HttpConnector` keeps a non-zero port from a custom resolver
//!   (`set_port` in `hyper-util/src/client/legacy/connect/http.rs`).
//!   [`Outage::Refused`] makes every resolution dead. Any host other than `backend.test`
//!   fails resolution with an `io::Error` (`NotFound`).
//! - **reset** (per new connection): the server accepts, sets `SO_LINGER` to 0, **reads the
//!   request head** (the request is counted as received, and a POST is recorded as arrived),
//!   then drops the socket without answering: the client gets RST after it sent the whole
//!   request. This is the hard case on purpose (a server or proxy dying mid-request): the
//!   request *may have been processed*, so a POST without an idempotency key must not be
//!   retried, and the duplicate counters catch a client that does. Measured: hyper-util's
//!   client reports `client error (SendRequest): connection error: Connection reset by peer
//!   (os error 104)`, which the crate classifies as `FailureKind::ConnectionClosed` (urllib3's
//!   read category): retried for GET and `Idempotent`-marked requests, never for a plain POST.
//!   A refused connect is `FailureKind::ConnectRefused` (connect category), retried for every
//!   method since nothing was sent.
//! - **unavailable** (per request): `503` with `Retry-After: 1`.
//! - **slow** (per request): a normal answer, delayed by `slow_delay`.
//! - [`Outage::Unavailable`]: every request is answered `503` without `Retry-After` (counted
//!   in `outage_requests`, not in `unavailable`).
//! - **overload** ([`FlakyBackend::set_capacity`]): a request the backend answers `200`/`201`
//!   first waits for one of `workers` and holds it for `service` (a [`Capacity`]); the others
//!   queue, first come first served, so the backend answers slower as the requests in flight
//!   at it rise. Off by default (unlimited and instant); it can be set, lowered and raised
//!   while requests run. Every request the backend reads leaves a [`LoadSample`] (requests in
//!   flight at the backend when it arrived, and how long the backend took with it):
//!   [`FlakyBackend::load`].
//!
//! The server is hyper 1's http1 server with keep-alive off: every response closes its
//! connection, so every request opens a new connection and the connection-level rates are
//! per-request rates. Loopback connections are cheap: a run of a few thousand requests is far
//! from the ~28k ephemeral ports (`ip_local_port_range` 32768-60999, and `tcp_tw_reuse` = 2
//! reuses TIME_WAIT ports on loopback).
//!
//! **Over TLS** ([`FlakyBackend::start_tls`]): the server speaks HTTPS with a certificate for
//! `backend.test` issued by a certificate authority made at start-up ([`FlakyBackend::roots`]
//! is the only root a client needs), keeps connections alive (a client that reuses them
//! performs one handshake per connection, not per request), and gains the TLS layer's faults,
//! drawn per new connection from `(seed, n-th connection)` ([`TlsFaults`]):
//!
//! - **handshake stall**: the server accepts and never answers the client's hello; the client
//!   waits until its own handshake timeout, if it has one;
//! - **handshake reset**: the server reads the client's hello, then resets (`SO_LINGER` 0).
//!
//! With keep-alive, **reset** is drawn per request instead of per connection (the connection
//! dies with the request on it), so its rate stays a per-request rate; **refuse** stays per
//! new connection. URIs carry the port (`https://backend.test:<port>/`), as a connector that
//! takes the port from the URI needs, so the dead address is `[::1]:<port>`, bound and never
//! listening (if `::1` is unusable, refusals are off and `refused` stays 0). During
//! [`Outage::Refused`] a request arriving on a connection opened before is reset unread
//! (`outage_resets`), as a backend that went away would. The server records how long each
//! handshake took, from accept to the end of the handshake ([`FlakyBackend::handshake_times`]):
//! the same measure whatever the client.
//!
//! Requests: `GET /item/<n>` answers `200` with a small body; `POST /orders` reads the body and
//! answers `201`; anything else `404`. The workload sets `x-request-id: <n>` (the same on
//! every attempt of one logical request) and `idempotency-key` on keyed POSTs. Every arrival
//! of a POST head is recorded per request id, whatever the answer (201, 503 or reset): a
//! second arrival of an unkeyed POST is a duplicate (`posts_without_key_duplicates`, a bug
//! the client must never cause); of a keyed POST, an allowed retry that the server
//! deduplicates (`keyed_post_duplicates`).
//!
//! Randomness is a seeded splitmix64, so runs are reproducible: per-request faults (503, slow)
//! are drawn from `(seed, x-request-id, n-th arrival of that id)`, so two clients sending the
//! same workload meet the same 503s and slow answers on their first attempts; connection
//! faults (refuse, reset) are drawn from `(seed, n-th connection)`, whose order depends on
//! scheduling.
//!
//! ```ignore
//! let backend = FlakyBackend::start(Faults::transient(0.03)).await;
//! let http = backend.connector(Duration::from_secs(3));
//! let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(http);
//! let response = client.request(get(backend.uri("/item/1"))).await?;
//! println!("{:?}", backend.stats());
//! ```

#![allow(dead_code, unreachable_pub)]

// flaky: ready (the public API below is stable; later changes are backwards-compatible)

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Ready,
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering::Relaxed},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

pub use crate::capacity::{Capacity, LoadSample};
use crate::capacity::{Load, Workers};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::connect::{dns::Name, HttpConnector},
    rt::{TokioIo, TokioTimer},
};
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::Notify,
    task::JoinHandle,
};

/// The host name the [`FlakyResolver`] knows.
pub const HOST: &str = "backend.test";

/// The `x-request-id` header: one id per logical request, the same on every attempt.
pub const REQUEST_ID: &str = "x-request-id";

/// The `idempotency-key` header of keyed POSTs.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

// ===== Faults =====

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

    fn check(&self) {
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

/// The TLS layer's faults of [`FlakyBackend::start_tls`], per new connection; rates are
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
    fn to_u8(self) -> u8 {
        match self {
            Outage::None => 0,
            Outage::Unavailable => 1,
            Outage::Refused => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
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

// ===== randomness =====

/// splitmix64: a seeded, reproducible value per input.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `[0, 1)` from `(seed, stream, a, b)`.
fn unit(seed: u64, stream: u64, a: u64, b: u64) -> f64 {
    let x = splitmix(splitmix(splitmix(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407)) ^ a) ^ b);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

const STREAM_REFUSE: u64 = 1;
const STREAM_RESET: u64 = 2;
const STREAM_UNAVAILABLE: u64 = 3;
const STREAM_SLOW: u64 = 4;
const STREAM_TLS_STALL: u64 = 5;
const STREAM_TLS_RESET: u64 = 6;

// ===== shared state =====

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    resets: AtomicU64,
    requests: AtomicU64,
    unavailable: AtomicU64,
    slow: AtomicU64,
    ok: AtomicU64,
    posts_without_key_duplicates: AtomicU64,
    keyed_post_duplicates: AtomicU64,
    outage_requests: AtomicU64,
    handshakes: AtomicU64,
    handshake_stalls: AtomicU64,
    handshake_resets: AtomicU64,
    outage_resets: AtomicU64,
}

/// The server side of [`FlakyBackend::start_tls`].
struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    roots: rustls::RootCertStore,
    faults: TlsFaults,
    /// How long each completed handshake took at the server.
    handshake_times: Mutex<Vec<Duration>>,
}

struct Shared {
    live: SocketAddr,
    /// `None` when no dead address could be bound (refusals are off).
    dead: Option<SocketAddr>,
    faults: Faults,
    tls: Option<Tls>,
    outage: AtomicU8,
    resolutions: AtomicU64,
    anonymous: AtomicU64,
    counters: Counters,
    /// Arrivals per `x-request-id`.
    arrivals: Mutex<HashMap<u64, u32>>,
    /// The processing capacity (overload mode).
    workers: Workers,
    /// Requests in flight at the backend, and every request's sample.
    load: Load,
}

impl Shared {
    fn outage(&self) -> Outage {
        Outage::from_u8(self.outage.load(Relaxed))
    }

    /// The address a resolution of `backend.test` answers.
    fn resolve(&self) -> SocketAddr {
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

// ===== FlakyBackend =====

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fault-injecting backend. Clones share it; the server stops accepting when the last
/// clone is dropped.
#[derive(Clone)]
pub struct FlakyBackend {
    shared: Arc<Shared>,
    server: Arc<AbortOnDrop>,
    // The dead port stays bound (never listening) as long as a clone lives.
    _dead: Option<Arc<TcpSocket>>,
}

impl std::fmt::Debug for FlakyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlakyBackend")
            .field("live", &self.shared.live)
            .field("dead", &self.shared.dead)
            .field("faults", &self.shared.faults)
            .field("outage", &self.shared.outage())
            .finish()
    }
}

impl FlakyBackend {
    /// Starts the backend on 127.0.0.1.
    ///
    /// # Panics
    ///
    /// If a rate is not in `0.0..=1.0`, or binding 127.0.0.1 fails.
    pub async fn start(faults: Faults) -> FlakyBackend {
        FlakyBackend::launch(faults, None).await
    }

    /// Starts the backend on 127.0.0.1, speaking HTTPS with keep-alive, with the TLS layer's
    /// faults on top of `faults` (see the module docs).
    ///
    /// # Panics
    ///
    /// If a rate is not in `0.0..=1.0`, binding 127.0.0.1 fails, or the certificates cannot
    /// be made.
    pub async fn start_tls(faults: Faults, tls: TlsFaults) -> FlakyBackend {
        for (name, rate) in [("stall", tls.stall), ("reset", tls.reset)] {
            assert!(
                (0.0..=1.0).contains(&rate),
                "TlsFaults::{name} must be a probability in 0.0..=1.0, got {rate}"
            );
        }
        FlakyBackend::launch(faults, Some(tls)).await
    }

    async fn launch(faults: Faults, tls: Option<TlsFaults>) -> FlakyBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let live = listener.local_addr().expect("local addr");
        // Over TLS the URI carries the live port, so the dead address differs in its IP.
        let dead_socket = match tls {
            None => {
                let socket = TcpSocket::new_v4().expect("socket");
                socket
                    .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .expect("bind the dead port");
                Some(socket)
            }
            Some(_) => TcpSocket::new_v6().ok().filter(|socket| {
                socket
                    .bind(SocketAddr::from((
                        std::net::Ipv6Addr::LOCALHOST,
                        live.port(),
                    )))
                    .is_ok()
            }),
        };
        let dead = dead_socket
            .as_ref()
            .map(|socket| socket.local_addr().expect("dead local addr"));
        faults.check();
        let shared = Arc::new(Shared {
            live,
            dead,
            faults,
            tls: tls.map(|faults| {
                let (acceptor, roots) = local_ca();
                Tls {
                    acceptor,
                    roots,
                    faults,
                    handshake_times: Mutex::new(Vec::new()),
                }
            }),
            outage: AtomicU8::new(0),
            resolutions: AtomicU64::new(0),
            anonymous: AtomicU64::new(0),
            counters: Counters::default(),
            arrivals: Mutex::new(HashMap::new()),
            workers: Workers::new(),
            load: Load::default(),
        });
        let accept_shared = shared.clone();
        let server = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    // EMFILE and friends: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                tokio::spawn(serve(accept_shared.clone(), stream));
            }
        });
        FlakyBackend {
            shared,
            server: Arc::new(AbortOnDrop(server)),
            _dead: dead_socket.map(Arc::new),
        }
    }

    /// `http://backend.test/<path_and_query>` (no explicit port: the resolver gives it), or
    /// over TLS `https://backend.test:<port>/<path_and_query>`.
    pub fn uri(&self, path_and_query: &str) -> http::Uri {
        let path = path_and_query.trim_start_matches('/');
        match self.shared.tls {
            None => format!("http://{HOST}/{path}"),
            Some(_) => format!("https://{HOST}:{}/{path}", self.shared.live.port()),
        }
        .parse()
        .expect("a valid path and query")
    }

    /// The roots a client of a [`start_tls`](Self::start_tls) backend trusts: its own
    /// certificate authority only (empty for a plain backend).
    pub fn roots(&self) -> rustls::RootCertStore {
        self.shared
            .tls
            .as_ref()
            .map_or_else(rustls::RootCertStore::empty, |tls| tls.roots.clone())
    }

    /// Whether refused connects can happen (a dead address could be bound).
    pub fn can_refuse(&self) -> bool {
        self.shared.dead.is_some()
    }

    /// How long each completed TLS handshake took at the server, in completion order.
    pub fn handshake_times(&self) -> Vec<Duration> {
        self.shared.tls.as_ref().map_or_else(Vec::new, |tls| {
            tls.handshake_times
                .lock()
                .expect("handshake times lock")
                .clone()
        })
    }

    /// How many times a request with `x-request-id: id` reached the backend.
    pub fn arrivals(&self, id: u64) -> u32 {
        let arrivals = self.shared.arrivals.lock().expect("arrivals lock");
        arrivals.get(&id).copied().unwrap_or(0)
    }

    /// The backend's resolver, for `HttpConnector::new_with_resolver`.
    pub fn resolver(&self) -> FlakyResolver {
        FlakyResolver {
            shared: self.shared.clone(),
        }
    }

    /// An `HttpConnector` over [`resolver`](Self::resolver) with the given connect timeout.
    pub fn connector(&self, connect_timeout: Duration) -> HttpConnector<FlakyResolver> {
        let mut http = HttpConnector::new_with_resolver(self.resolver());
        http.set_connect_timeout(Some(connect_timeout));
        http
    }

    /// A bare client's HTTPS connector for a [`start_tls`](Self::start_tls) backend:
    /// hyper-rustls (ring) trusting [`roots`](Self::roots) only, over
    /// [`connector`](Self::connector).
    pub fn https_connector(
        &self,
        connect_timeout: Duration,
    ) -> hyper_rustls::HttpsConnector<HttpConnector<FlakyResolver>> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(self.roots())
        .with_no_client_auth();
        let mut http = self.connector(connect_timeout);
        http.enforce_http(false);
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }

    /// Starts or ends an outage.
    pub fn set_outage(&self, outage: Outage) {
        self.shared.outage.store(outage.to_u8(), Relaxed);
    }

    /// The outage in force.
    pub fn outage(&self) -> Outage {
        self.shared.outage()
    }

    /// Sets the processing capacity (`None`, the default: unlimited and instant): from now
    /// on a request the backend answers `200`/`201` waits for one of `workers`, then holds it
    /// for `service`. A drop of `workers` takes effect as busy workers finish; a rise, at
    /// once. Faults come first: a reset, a `503` or an outage takes no worker.
    ///
    /// # Panics
    ///
    /// If `workers` is 0.
    pub fn set_capacity(&self, capacity: Option<Capacity>) {
        self.shared.workers.set(capacity);
    }

    /// The processing capacity in force (`None`: unlimited and instant).
    pub fn capacity(&self) -> Option<Capacity> {
        self.shared.workers.get()
    }

    /// One sample per request the backend read (including reset and `503`-answered ones),
    /// in the order they ended: when it arrived, the requests in flight at the backend then
    /// (itself included), how long the backend took with it.
    pub fn load(&self) -> Vec<LoadSample> {
        self.shared.load.samples()
    }

    /// What the backend saw and did so far.
    pub fn stats(&self) -> BackendStats {
        let c = &self.shared.counters;
        BackendStats {
            connections: c.connections.load(Relaxed),
            refused: c.refused.load(Relaxed),
            resets: c.resets.load(Relaxed),
            requests: c.requests.load(Relaxed),
            unavailable: c.unavailable.load(Relaxed),
            slow: c.slow.load(Relaxed),
            ok: c.ok.load(Relaxed),
            posts_without_key_duplicates: c.posts_without_key_duplicates.load(Relaxed),
            keyed_post_duplicates: c.keyed_post_duplicates.load(Relaxed),
            outage_requests: c.outage_requests.load(Relaxed),
            handshakes: c.handshakes.load(Relaxed),
            handshake_stalls: c.handshake_stalls.load(Relaxed),
            handshake_resets: c.handshake_resets.load(Relaxed),
            outage_resets: c.outage_resets.load(Relaxed),
        }
    }
}

// ===== the resolver =====

/// The backend's "DNS/load balancer": `backend.test` resolves to the live port, or to the
/// dead port at the `refuse` rate and during [`Outage::Refused`]; any other name fails.
#[derive(Clone)]
pub struct FlakyResolver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FlakyResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlakyResolver")
            .field("live", &self.shared.live)
            .finish_non_exhaustive()
    }
}

impl tower::Service<Name> for FlakyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Ready<io::Result<Self::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let result = if name.as_str().eq_ignore_ascii_case(HOST) {
            Ok(vec![self.shared.resolve()].into_iter())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such host: {name}"),
            ))
        };
        std::future::ready(result)
    }
}

// ===== the server =====

async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let n = shared.counters.connections.fetch_add(1, Relaxed);
    let _ = stream.set_nodelay(true);
    if shared.tls.is_some() {
        return serve_tls(shared, stream, n).await;
    }
    let reset = unit(shared.faults.seed, STREAM_RESET, n, 0) < shared.faults.reset;
    if reset {
        // Dropping the socket now sends RST instead of FIN.
        let _ = stream.set_zero_linger();
    }
    serve_http(shared, TokioIo::new(stream), Some(reset)).await;
}

/// Serves HTTP/1.1 on one connection; `reset` is the connection's draw, or `None` to draw
/// per request (keep-alive).
async fn serve_http<I>(shared: Arc<Shared>, io: I, reset: Option<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let abort = Arc::new(Notify::new());
    let service = {
        let abort = abort.clone();
        service_fn(move |request| handle(shared.clone(), request, reset, abort.clone()))
    };
    let mut builder = http1::Builder::new();
    builder.keep_alive(reset.is_none()).timer(TokioTimer::new());
    let connection = builder.serve_connection(io, service);
    tokio::select! {
        _ = connection => {}
        // The connection (and its socket, with SO_LINGER 0) is dropped: RST.
        _ = abort.notified() => {}
    }
}

/// One TLS connection: the handshake's faults, the handshake (timed), then HTTP/1.1 with
/// keep-alive.
async fn serve_tls(shared: Arc<Shared>, mut stream: TcpStream, n: u64) {
    use tokio::io::AsyncReadExt;
    let tls = shared.tls.as_ref().expect("a TLS backend");
    let seed = shared.faults.seed;
    // Every close of a TLS connection is a reset, so that a request's reset (drawn per
    // request) is one; a client that closed first does not see it.
    let _ = stream.set_zero_linger();
    let mut buf = [0u8; 4096];
    if unit(seed, STREAM_TLS_STALL, n, 0) < tls.faults.stall {
        shared.counters.handshake_stalls.fetch_add(1, Relaxed);
        // Read and ignore until the client gives up (bounded, so no task outlives a run).
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while matches!(stream.read(&mut buf).await, Ok(1..)) {}
        })
        .await;
        return;
    }
    if unit(seed, STREAM_TLS_RESET, n, 0) < tls.faults.reset {
        shared.counters.handshake_resets.fetch_add(1, Relaxed);
        // The client's hello arrives, then the reset (the socket dropped with SO_LINGER 0).
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        return;
    }
    let started = tokio::time::Instant::now();
    let Ok(Ok(stream)) =
        tokio::time::timeout(Duration::from_secs(10), tls.acceptor.accept(stream)).await
    else {
        return;
    };
    let took = started.elapsed();
    shared.counters.handshakes.fetch_add(1, Relaxed);
    tls.handshake_times
        .lock()
        .expect("handshake times lock")
        .push(took);
    serve_http(shared.clone(), TokioIo::new(stream), None).await;
}

fn response(status: u16, body: &'static str) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid response")
}

async fn handle(
    shared: Arc<Shared>,
    request: http::Request<Incoming>,
    reset: Option<bool>,
    abort: Arc<Notify>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let counters = &shared.counters;
    if reset.is_none() && shared.outage() == Outage::Refused {
        // A backend that went away: a connection opened before dies, the request unread.
        counters.outage_resets.fetch_add(1, Relaxed);
        abort.notify_one();
        return std::future::pending().await;
    }
    let n = counters.requests.fetch_add(1, Relaxed);
    let _in_flight = shared.load.enter();
    // Keep-alive (TLS): the reset is drawn per request, so its rate stays per request.
    let reset =
        reset.unwrap_or_else(|| unit(shared.faults.seed, STREAM_RESET, n, 1) < shared.faults.reset);
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let keyed = request.headers().contains_key(IDEMPOTENCY_KEY);
    let is_post = request.method() == http::Method::POST;
    // The n-th arrival of this request id (0 for the first), or a counter for requests
    // without one.
    let (a, b) = match id {
        Some(id) => {
            let mut arrivals = shared.arrivals.lock().expect("arrivals lock");
            let seen = arrivals.entry(id).or_insert(0);
            *seen += 1;
            (id, u64::from(*seen - 1))
        }
        None => (u64::MAX, shared.anonymous.fetch_add(1, Relaxed)),
    };
    if is_post && id.is_some() && b > 0 {
        if keyed {
            counters.keyed_post_duplicates.fetch_add(1, Relaxed);
        } else {
            counters.posts_without_key_duplicates.fetch_add(1, Relaxed);
        }
    }

    if reset {
        counters.resets.fetch_add(1, Relaxed);
        abort.notify_one();
        // The connection future, and this one with it, is dropped.
        return std::future::pending().await;
    }
    if shared.outage() == Outage::Unavailable {
        counters.outage_requests.fetch_add(1, Relaxed);
        return Ok(response(503, "outage\n"));
    }
    let Faults {
        seed,
        unavailable,
        slow,
        slow_delay,
        ..
    } = shared.faults;
    if unit(seed, STREAM_UNAVAILABLE, a, b) < unavailable {
        counters.unavailable.fetch_add(1, Relaxed);
        let mut busy = response(503, "busy\n");
        busy.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        return Ok(busy);
    }
    shared.workers.process().await;
    if unit(seed, STREAM_SLOW, a, b) < slow {
        counters.slow.fetch_add(1, Relaxed);
        tokio::time::sleep(slow_delay).await;
    }
    let path = request.uri().path();
    let answer = if request.method() == http::Method::GET && path.starts_with("/item/") {
        response(200, "{\"item\":\"ok\"}\n")
    } else if is_post && path == "/orders" {
        if request.into_body().collect().await.is_err() {
            // The client went away mid-body: nothing to answer.
            return Ok(response(400, "incomplete body\n"));
        }
        response(201, "{\"order\":\"created\"}\n")
    } else {
        return Ok(response(404, "not found\n"));
    };
    counters.ok.fetch_add(1, Relaxed);
    Ok(answer)
}

// ===== the certificate authority =====

/// A certificate authority made now, and an acceptor presenting a certificate it issued for
/// [`HOST`]; the roots hold that authority only.
fn local_ca() -> (tokio_rustls::TlsAcceptor, rustls::RootCertStore) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.distinguished_name
        .push(DnType::CommonName, "flaky backend CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec![HOST.to_owned()]).expect("leaf parameters");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.der().clone())
        .expect("the CA is a valid root");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf_cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .expect("the server certificate");
    (tokio_rustls::TlsAcceptor::from(Arc::new(server)), roots)
}
