//! Misbehaving servers on 127.0.0.1, and a client stack that classifies every stage.
//!
//! Shared by the integration tests, the benches and the demo, so that all meet the same
//! real failures.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::{HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::{
    client::legacy::{
        connect::{dns::Name, HttpConnector},
        Client,
    },
    rt::{TokioExecutor, TokioIo},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};
use tower::{util::BoxCloneSyncService, BoxError, Layer, ServiceBuilder, ServiceExt};
use tower_fortify::classify::{ErrorClassify, ErrorClassifyLayer};

/// A request as the tests send it.
pub type Request = http::Request<Empty<Bytes>>;
/// A response as the tests receive it.
pub type Response = http::Response<hyper::body::Incoming>;

/// Spawns `serve(stream)` for every connection accepted on a fresh loopback listener.
pub async fn spawn_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    spawn_accepting(listener, serve);
    addr
}

/// Spawns `serve(stream)` for every connection accepted on `listener`.
pub fn spawn_accepting<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
}

/// Serves `service` over HTTP/1.1 (hyper's http1 server, a clone of `service` per
/// connection) on every connection accepted on a fresh loopback listener.
pub async fn serve_http<S, B>(service: S) -> SocketAddr
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    spawn_server(move |stream| {
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service.clone());
        async move {
            let _ = connection.await;
        }
    })
    .await
}

/// Reads until the end of a request head (or EOF), so that the request was surely sent.
pub async fn read_head(stream: &mut TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(());
        }
    }
}

/// An address on which nothing listens: connecting is refused.
///
/// The port stays bound (to a socket that never listens) for the rest of the process: a
/// port given back at once could be taken by another test's listener in between, whose
/// connects are then accepted or reset instead of refused.
pub async fn refused() -> SocketAddr {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1");
    let addr = socket.local_addr().expect("local addr");
    std::mem::forget(socket);
    addr
}

/// A listener whose accept queue is full and that never accepts: a new connect stalls,
/// because the kernel drops its SYN. Keep the returned value alive while using the address.
pub struct Stalled {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _held: Vec<TcpStream>,
}

pub async fn stalled_connect() -> Stalled {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind 127.0.0.1");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("local addr");
    let mut held = Vec::new();
    // Fill the accept queue until a connect no longer completes.
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(err)) => panic!("filling the accept queue failed: {err}"),
            Err(_) => {
                return Stalled {
                    addr,
                    _listener: listener,
                    _held: held,
                }
            }
        }
    }
    panic!("the accept queue of a listen(0) socket never filled");
}

/// Reads the request, then closes the connection without answering.
pub async fn close_after_request() -> SocketAddr {
    spawn_server(|mut stream| async move {
        let _ = read_head(&mut stream).await;
        drop(stream);
    })
    .await
}

/// Reads the request and never answers (the connection stays open).
pub async fn never_answers() -> SocketAddr {
    spawn_server(|mut stream| async move {
        let _ = read_head(&mut stream).await;
        std::future::pending::<()>().await;
        drop(stream);
    })
    .await
}

/// Reads the request and answers with bytes that are not HTTP.
pub async fn garbage() -> SocketAddr {
    spawn_server(|mut stream| async move {
        let _ = read_head(&mut stream).await;
        let _ = stream
            .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02\r\n\r\n")
            .await;
        let _ = stream.shutdown().await;
    })
    .await
}

/// Answers every request with `200 OK` and a short body.
pub async fn ok() -> SocketAddr {
    answers(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await
}

/// Answers every request with the given raw response, then closes.
pub async fn answers(raw: &'static [u8]) -> SocketAddr {
    spawn_server(move |mut stream| async move {
        let _ = read_head(&mut stream).await;
        let _ = stream.write_all(raw).await;
        let _ = stream.shutdown().await;
    })
    .await
}

/// Answers every connection at once with an HTTP response, before reading anything: a
/// TLS client reads it as its ServerHello.
pub async fn speaks_http_first() -> SocketAddr {
    spawn_server(|mut stream| async move {
        let _ = stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        let _ = read_head(&mut stream).await;
    })
    .await
}

/// Accepts TCP and never answers the TLS ClientHello.
pub async fn tls_stalls() -> SocketAddr {
    spawn_server(|mut stream| async move {
        let mut buf = [0u8; 4096];
        // Read the ClientHello, then hold the connection without a word.
        let _ = stream.read(&mut buf).await;
        std::future::pending::<()>().await;
        drop(stream);
    })
    .await
}

/// A self-signed certificate and its key, for `names`.
pub struct SelfSigned {
    pub cert: rustls::pki_types::CertificateDer<'static>,
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

pub fn self_signed(names: &[&str]) -> SelfSigned {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("rcgen");
    SelfSigned {
        cert: certified.cert.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server presenting `cert` that answers `200 OK` once the handshake succeeds.
pub async fn tls_server(cert: &SelfSigned) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], cert.key.clone_key())
        .expect("server certificate");
    tls_server_with(config).await
}

/// A TLS server with `config` that answers `200 OK` once the handshake succeeds.
pub async fn tls_server_with(config: rustls::ServerConfig) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    spawn_server(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
            let _ = tls.shutdown().await;
        }
    })
    .await
}

/// A client TLS configuration trusting only `roots`.
pub fn client_tls(roots: &[rustls::pki_types::CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("root certificate");
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth()
}

/// A resolver answering every name with 127.0.0.1, so that no test asks real DNS.
pub fn loopback_resolver() -> impl tower::Service<
    Name,
    Response = std::vec::IntoIter<SocketAddr>,
    Error = io::Error,
    Future = std::future::Ready<io::Result<std::vec::IntoIter<SocketAddr>>>,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_name: Name| {
        std::future::ready(Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))].into_iter()))
    })
}

/// A resolver that fails every lookup, as a resolver does for a name that does not exist.
pub fn failing_resolver() -> impl tower::Service<
    Name,
    Response = std::vec::IntoIter<SocketAddr>,
    Error = io::Error,
    Future = std::future::Ready<io::Result<std::vec::IntoIter<SocketAddr>>>,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|name: Name| {
        std::future::ready(Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such host: {name}"),
        )))
    })
}

/// Timeouts of the [`Stack`].
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub handshake: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(300),
            handshake: Duration::from_millis(600),
            request: Duration::from_millis(1500),
        }
    }
}

type TlsStream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// The fully classified connector: resolve, TCP connect and TLS handshake each named.
pub type Connector = ErrorClassify<BoxCloneSyncService<http::Uri, TlsStream, BoxError>>;

/// The client stack of the tests: ErrorClassify → Timeout → hyper-util legacy client over
/// the fully classified connector.
pub type Stack = BoxCloneSyncService<Request, Response, BoxError>;

/// Builds the connector, with `resolver` for names and `tls` for https URIs.
pub fn connector<R>(resolver: R, tls: rustls::ClientConfig, timeouts: Timeouts) -> Connector
where
    R: tower::Service<Name, Response = std::vec::IntoIter<SocketAddr>>
        + Clone
        + Send
        + Sync
        + 'static,
    R::Error: Into<BoxError>,
    R::Future: Send,
{
    let resolver = ErrorClassifyLayer::resolver().layer(resolver);
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeouts.connect));
    let tcp = ErrorClassifyLayer::connector().layer(http);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    // hyper-util needs an Unpin connector future, and Timeout's holds a Sleep: box it.
    let timed = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .timeout(timeouts.handshake)
            .service(https),
    );
    ErrorClassifyLayer::tls_handshake().layer(timed)
}

/// Builds the whole client stack.
pub fn stack(connector: Connector, timeouts: Timeouts) -> Stack {
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(ErrorClassifyLayer::new())
            .timeout(timeouts.request)
            .service(client),
    )
}

/// A client stack with the loopback resolver and TLS trusting `roots`.
pub fn default_stack(roots: &[rustls::pki_types::CertificateDer<'static>]) -> Stack {
    let timeouts = Timeouts::default();
    stack(
        connector(loopback_resolver(), client_tls(roots), timeouts),
        timeouts,
    )
}

/// Sends a GET to `uri` through `stack`.
pub async fn get(stack: &Stack, uri: &str) -> Result<Response, BoxError> {
    let request = http::Request::get(uri).body(Empty::new()).expect("request");
    stack.clone().oneshot(request).await
}
