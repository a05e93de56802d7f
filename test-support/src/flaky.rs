//! A fault-injecting HTTP backend on 127.0.0.1, with its own "DNS/load balancer" resolver.
//!
//! Shared by `examples/demo.rs` and the chaos suite (`tests/chaos`). Every fault
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
//!
//! The server is hyper 1's http1 server with keep-alive off: every response closes its
//! connection, so every request opens a new connection and the connection-level rates are
//! per-request rates. Loopback connections are cheap: a run of a few thousand requests is far
//! from the ~28k ephemeral ports (`ip_local_port_range` 32768-60999, and `tcp_tw_reuse` = 2
//! reuses TIME_WAIT ports on loopback).
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
}

struct Shared {
    live: SocketAddr,
    dead: SocketAddr,
    faults: Faults,
    outage: AtomicU8,
    resolutions: AtomicU64,
    anonymous: AtomicU64,
    counters: Counters,
    /// Arrivals per `x-request-id`.
    arrivals: Mutex<HashMap<u64, u32>>,
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
        if refuse {
            self.counters.refused.fetch_add(1, Relaxed);
            self.dead
        } else {
            self.live
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
    _dead: Arc<TcpSocket>,
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
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let live = listener.local_addr().expect("local addr");
        let dead_socket = TcpSocket::new_v4().expect("socket");
        dead_socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind the dead port");
        let dead = dead_socket.local_addr().expect("dead local addr");
        faults.check();
        let shared = Arc::new(Shared {
            live,
            dead,
            faults,
            outage: AtomicU8::new(0),
            resolutions: AtomicU64::new(0),
            anonymous: AtomicU64::new(0),
            counters: Counters::default(),
            arrivals: Mutex::new(HashMap::new()),
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
            _dead: Arc::new(dead_socket),
        }
    }

    /// `http://backend.test/<path_and_query>` (no explicit port: the resolver gives it).
    pub fn uri(&self, path_and_query: &str) -> http::Uri {
        let path = path_and_query.trim_start_matches('/');
        format!("http://{HOST}/{path}")
            .parse()
            .expect("a valid path and query")
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

    /// Starts or ends an outage.
    pub fn set_outage(&self, outage: Outage) {
        self.shared.outage.store(outage.to_u8(), Relaxed);
    }

    /// The outage in force.
    pub fn outage(&self) -> Outage {
        self.shared.outage()
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
    let reset = unit(shared.faults.seed, STREAM_RESET, n, 0) < shared.faults.reset;
    if reset {
        // Dropping the socket now sends RST instead of FIN.
        let _ = stream.set_zero_linger();
    }
    let _ = stream.set_nodelay(true);
    let abort = Arc::new(Notify::new());
    let service = {
        let abort = abort.clone();
        service_fn(move |request| handle(shared.clone(), request, reset, abort.clone()))
    };
    let mut builder = http1::Builder::new();
    builder.keep_alive(false).timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // The connection (and its socket, with SO_LINGER 0) is dropped: RST.
        _ = abort.notified() => {}
    }
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
    reset: bool,
    abort: Arc<Notify>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let counters = &shared.counters;
    counters.requests.fetch_add(1, Relaxed);
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
