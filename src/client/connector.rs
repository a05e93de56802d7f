//! The connector: resolve, TCP connect, TLS handshake, each classified, timed and bounded.

use crate::stack::https::Resolver;
use crate::{
    classify::{Failure, FailureKind, Stage},
    BoxError,
};
use http::Uri;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::{client::legacy::connect::dns::Name, rt::TokioIo};
use rustls::pki_types::ServerName;
use std::{
    fmt,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    str::FromStr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{net::TcpStream, time::Instant};
use tower::ServiceExt;
use tower_service::Service;

/// A connection the [`Connector`] opened: plain TCP for `http://` URIs, TLS over TCP for
/// `https://` ones (hyper-rustls's stream type, which tells hyper-util whether ALPN chose
/// HTTP/2).
///
/// ```
/// use hyper_rustls::MaybeHttpsStream;
/// use tower::ServiceExt;
/// use tower_fortify::client::Connection;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let uri = format!("http://{}/", listener.local_addr()?).parse()?;
/// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
/// let connection: Connection = client.connector().clone().oneshot(uri).await?;
/// assert!(matches!(connection, MaybeHttpsStream::Http(_)));
/// # Ok(())
/// # }
/// ```
pub type Connection = MaybeHttpsStream<TokioIo<TcpStream>>;

/// The connector of the [`HttpsClient`](super::HttpsClient): a `Service<Uri>` that opens
/// a connection in three phases, each with its own classification, timeout and timing.
///
/// 1. **resolve** (stage `resolve`): the configured resolver (hyper-util's `GaiResolver`
///    unless [`ClientConfig::resolver`](crate::stack::ClientConfig::resolver) plugged
///    another); any error is a [`Dns`](FailureKind::Dns) failure. An IP address in the URI
///    skips this phase.
/// 2. **connect** (stage `connect`): TCP to each resolved address in turn, all of them
///    within `connect_timeout`; a refusal is [`ConnectRefused`](FailureKind::ConnectRefused),
///    the timeout [`ConnectTimeout`](FailureKind::ConnectTimeout). `TCP_NODELAY` is set.
/// 3. **tls_handshake** (stage `tls_handshake`, `https://` only): rustls within
///    `tls_handshake_timeout`; a stall, reset or negotiation failure is
///    [`TlsHandshake`](FailureKind::TlsHandshake), a certificate that does not verify
///    (unknown issuer, expired, wrong name) [`TlsCertificate`](FailureKind::TlsCertificate).
///
/// Every error is a [`Failure`] with its kind already decided, so the stack around the
/// client keeps it (a connect-stage `TimedOut` never becomes a read timeout).
///
/// # Allocation
///
/// One boxed future per connection set-up (as hyper-util's `HttpConnector`), never per
/// request: hyper-util's pool reuses the connection.
///
/// # Clone
///
/// Clones share the resolver, the TLS configuration and the metric handles.
///
/// ```
/// use tower::ServiceExt;
/// use tower_fortify::stack::ClientConfig;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let client = ClientConfig::default().https::<String>()?;
/// let connector = client.connector().clone();
/// // Nothing listens on port 1 of 127.0.0.1: the connect phase is refused.
/// let err = connector.oneshot("http://127.0.0.1:1".parse()?).await.unwrap_err();
/// let failure = err.downcast_ref::<tower_fortify::classify::Failure>().unwrap();
/// assert_eq!(failure.kind(), tower_fortify::classify::FailureKind::ConnectRefused);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Connector {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) name: &'static str,
    pub(crate) resolver: Resolver,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) tls: tokio_rustls::TlsConnector,
    #[cfg(feature = "metrics")]
    pub(crate) instruments: super::metrics::Instruments,
}

impl Connector {
    pub(crate) fn new(shared: Shared) -> Self {
        Connector {
            shared: Arc::new(shared),
        }
    }

    /// The `name` label of the connector's metrics and events.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().name("billing").https::<String>()?;
    /// assert_eq!(client.connector().name(), "billing");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// The timeout of the TCP connect phase.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = tower_fortify::stack::ClientConfig::default()
    ///     .connect_timeout(Duration::from_secs(1))
    ///     .https::<String>()?;
    /// assert_eq!(client.connector().connect_timeout(), Duration::from_secs(1));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn connect_timeout(&self) -> Duration {
        self.shared.connect_timeout
    }

    /// The timeout of the TLS handshake phase.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = tower_fortify::stack::ClientConfig::default()
    ///     .tls_handshake_timeout(Duration::from_secs(2))
    ///     .https::<String>()?;
    /// assert_eq!(client.connector().tls_handshake_timeout(), Duration::from_secs(2));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn tls_handshake_timeout(&self) -> Duration {
        self.shared.tls_handshake_timeout
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("name", &self.shared.name)
            .field("resolver", &self.shared.resolver)
            .field("connect_timeout", &self.shared.connect_timeout)
            .field("tls_handshake_timeout", &self.shared.tls_handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Service<Uri> for Connector {
    type Response = Connection;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The resolver is driven inside the set-up future (a clone of it, through `oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Connecting {
            inner: Box::pin(connect(Arc::clone(&self.shared), uri)),
        }
    }
}

/// The future of a connection's set-up, returned by [`Connector`]'s `call`.
///
/// # Cancel safety
///
/// Dropping it abandons the set-up: the socket, if one was opened, is closed, and nothing
/// is recorded for the unfinished phase.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::client::Connecting;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
/// let mut connector = client.connector().clone();
/// let connecting: Connecting = connector.ready().await?.call("http://127.0.0.1:1/".parse()?);
/// assert!(connecting.await.is_err()); // nothing listens on port 1
/// # Ok(())
/// # }
/// ```
pub struct Connecting {
    inner: Pin<Box<dyn Future<Output = Result<Connection, BoxError>> + Send>>,
}

impl fmt::Debug for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting").finish_non_exhaustive()
    }
}

impl Future for Connecting {
    type Output = Result<Connection, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

// ===== the three phases =====

/// The URI's scheme, host and port were not usable for a connection.
#[derive(Debug)]
struct InvalidUri(&'static str);

impl fmt::Display for InvalidUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidUri {}

async fn connect(shared: Arc<Shared>, uri: Uri) -> Result<Connection, BoxError> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("the URI's scheme is neither http nor https")),
    };
    let Some(host) = uri.host() else {
        return Err(invalid("the URI has no host"));
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    // `Uri::host` keeps an IPv6 literal's brackets.
    let bare_host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);

    let mut timings = Timings::default();
    let addrs = match bare_host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let start = Instant::now();
            let resolved = resolve(&shared, bare_host, port).await;
            timings.resolve = Some(shared.finish(Stage::Resolve, start, resolved.as_ref().err()));
            resolved?
        }
    };

    let start = Instant::now();
    // The peer a failure names: the address tried, when there was only one.
    let with_peer = |failure: Failure| match addrs.as_slice() {
        [addr] => failure.with_peer_addr(*addr),
        _ => failure,
    };
    let tcp = match tokio::time::timeout(shared.connect_timeout, connect_any(&addrs)).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(err)) => Err(with_peer(Failure::classify(err, Stage::Connect))),
        Err(elapsed) => Err(with_peer(Failure::classify(elapsed, Stage::Connect))),
    };
    timings.connect = Some(shared.finish(Stage::Connect, start, tcp.as_ref().err()));
    let tcp = tcp?;
    // Nagle's delay would hold back small requests; hyper-util's connector sets it too.
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().ok();
    let tcp = TokioIo::new(tcp);

    if !https {
        shared.opened(&timings);
        return Ok(MaybeHttpsStream::Http(tcp));
    }

    let server_name = ServerName::try_from(bare_host.to_owned())
        .map_err(|err| Failure::new(FailureKind::Other, err))?;
    let start = Instant::now();
    let handshake = shared.tls.connect(server_name, TokioIo::new(tcp));
    let tls = match tokio::time::timeout(shared.tls_handshake_timeout, handshake).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(err)) => Err(Failure::classify(err, Stage::TlsHandshake)),
        Err(elapsed) => Err(Failure::classify(elapsed, Stage::TlsHandshake)),
    }
    .map_err(|failure| match peer {
        Some(peer) => failure.with_peer_addr(peer),
        None => failure,
    });
    timings.tls_handshake = Some(shared.finish(Stage::TlsHandshake, start, tls.as_ref().err()));
    let tls = tls?;
    shared.opened(&timings);
    Ok(MaybeHttpsStream::Https(TokioIo::new(tls)))
}

fn invalid(reason: &'static str) -> BoxError {
    Failure::new(FailureKind::Other, InvalidUri(reason)).into()
}

async fn resolve(shared: &Shared, host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    let name = Name::from_str(host).map_err(|err| Failure::new(FailureKind::Dns, err))?;
    let resolved = shared
        .resolver
        .clone()
        .oneshot(name)
        .await
        .map_err(|err| Failure::classify(err, Stage::Resolve))?;
    let addrs: Vec<SocketAddr> = resolved
        .into_iter()
        .map(|mut addr| {
            addr.set_port(port);
            addr
        })
        .collect();
    if addrs.is_empty() {
        return Err(Failure::new(
            FailureKind::Dns,
            InvalidUri("the name resolved to no address"),
        ));
    }
    Ok(addrs)
}

/// Connects to each address in turn; the last error if none accepts.
async fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

/// How long each finished phase took.
#[derive(Default)]
struct Timings {
    resolve: Option<Duration>,
    connect: Option<Duration>,
    tls_handshake: Option<Duration>,
}

impl Shared {
    /// Records a finished phase, failed or not, and hands back its duration.
    fn finish(&self, stage: Stage, start: Instant, failure: Option<&Failure>) -> Duration {
        let elapsed = start.elapsed();
        #[cfg(feature = "metrics")]
        self.instruments
            .phase(stage, failure.map_or(Ok(()), |f| Err(f.kind())), elapsed);
        #[cfg(feature = "tracing")]
        if let Some(failure) = failure {
            tracing::debug!(
                target: "tower_fortify::client",
                name = self.name,
                stage = stage.as_str(),
                kind = failure.kind().as_str(),
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                error = %format_args!("{failure:#}"),
                "connection set-up failed"
            );
        }
        let _ = (stage, failure);
        elapsed
    }

    fn opened(&self, timings: &Timings) {
        #[cfg(feature = "metrics")]
        self.instruments.opened();
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::client",
            name = self.name,
            resolve_ms = timings.resolve.map(|d| d.as_secs_f64() * 1e3),
            connect_ms = timings.connect.map(|d| d.as_secs_f64() * 1e3),
            tls_handshake_ms = timings.tls_handshake.map(|d| d.as_secs_f64() * 1e3),
            "connection opened"
        );
        let _ = timings;
    }
}
