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
//!
//! | file | what |
//! |---|---|
//! | `flaky.rs` | [`FlakyBackend`]: start, addresses, connectors, outage, capacity, stats |
//! | `flaky/faults.rs` | [`Faults`], [`TlsFaults`], [`Outage`], [`BackendStats`], the seeded draws |
//! | `flaky/shared.rs` | the state the server, the resolver and the handles share |
//! | `flaky/resolver.rs` | [`FlakyResolver`] |
//! | `flaky/server.rs` | the server, its faults, its certificate authority |

#![allow(dead_code, unreachable_pub)]

// flaky: ready (the public API below is stable; later changes are backwards-compatible)

mod faults;
mod resolver;
mod server;
mod shared;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::Duration,
};

pub use crate::capacity::{Capacity, LoadSample};
use crate::capacity::{Load, Workers};
pub use faults::{splitmix, BackendStats, Faults, Outage, TlsFaults};
use hyper_util::client::legacy::connect::HttpConnector;
pub use resolver::FlakyResolver;
use server::{local_ca, serve};
use shared::{Counters, Shared, Tls};
use tokio::{
    net::{TcpListener, TcpSocket},
    task::JoinHandle,
};

/// The host name the [`FlakyResolver`] knows.
pub const HOST: &str = "backend.test";

/// The `x-request-id` header: one id per logical request, the same on every attempt.
pub const REQUEST_ID: &str = "x-request-id";

/// The `idempotency-key` header of keyed POSTs.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

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
