//! Permanent and transient TLS failures, from real rustls peers on 127.0.0.1: a failed
//! negotiation is `TlsNegotiation` and never retried; a stalled or reset handshake stays
//! `TlsHandshake` and is retried.

use std::sync::Arc;

use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::{error::RetryError, RetryLayer, RetryPolicy},
    BoxError,
};

use crate::servers::{self, SelfSigned, Timeouts};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A provider whose only cipher suite is `suite`.
fn provider_with(suite: rustls::SupportedCipherSuite) -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    Arc::new(provider)
}

/// A rustls server presenting `cert` with `provider` and `versions`, answering 200.
async fn rustls_server(
    cert: &SelfSigned,
    provider: Arc<rustls::crypto::CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::net::SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], cert.key.clone_key())
        .expect("server certificate");
    servers::tls_server_with(config).await
}

/// A client trusting `cert`, with `provider` and `versions`.
fn client(
    cert: &SelfSigned,
    provider: Arc<rustls::crypto::CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> servers::Stack {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.clone()).expect("root");
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let timeouts = Timeouts::default();
    servers::stack(
        servers::connector(servers::loopback_resolver(), tls, timeouts),
        timeouts,
    )
}

/// GETs `https://localhost:port/` through the retry layer (default policy, so a GET) on
/// top of `stack`; returns the failure kind, whether it was a `RetryError`, and the error.
async fn get_with_retries(stack: servers::Stack, port: u16) -> (FailureKind, bool, BoxError) {
    let svc = RetryLayer::builder()
        .policy(RetryPolicy::default().total(Some(2)))
        .build()
        .expect("policy")
        .layer(stack);
    let request = http::Request::get(format!("https://localhost:{port}/"))
        .body(Empty::new())
        .expect("request");
    let err = match svc.oneshot(request).await {
        Ok(response) => panic!("expected a failure, got {}", response.status()),
        Err(err) => err,
    };
    let (kind, retried) = match err.downcast_ref::<RetryError>() {
        Some(retry) => (retry.failure().expect("a failure").kind(), true),
        None => (
            err.downcast_ref::<Failure>()
                .unwrap_or_else(|| panic!("not classified: {err:?}"))
                .kind(),
            false,
        ),
    };
    (kind, retried, err)
}

/// Counts the connections a server accepts, to see whether a retry was made.
async fn counting<F, Fut>(serve: F) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let addr = servers::spawn_server(move |stream| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        serve(stream)
    })
    .await;
    (addr, count)
}

#[tokio::test]
async fn server_tls12_only_client_tls13_only_is_negotiation_not_retried() {
    let cert = servers::self_signed(&["localhost"]);
    let addr = rustls_server(&cert, provider(), &[&rustls::version::TLS12]).await;
    let stack = client(&cert, provider(), &[&rustls::version::TLS13]);
    let (kind, retried, err) = get_with_retries(stack, addr.port()).await;
    assert_eq!(kind, FailureKind::TlsNegotiation, "{err:#}");
    assert!(!retried, "a negotiation failure was retried: {err}");
}

#[tokio::test]
async fn server_tls13_only_client_tls12_only_is_negotiation() {
    let cert = servers::self_signed(&["localhost"]);
    let addr = rustls_server(&cert, provider(), &[&rustls::version::TLS13]).await;
    let stack = client(&cert, provider(), &[&rustls::version::TLS12]);
    let (kind, retried, err) = get_with_retries(stack, addr.port()).await;
    assert_eq!(kind, FailureKind::TlsNegotiation, "{err:#}");
    assert!(!retried, "{err}");
    // The server's alert: it speaks only TLS 1.3.
    assert_eq!(
        err.to_string(),
        "tls negotiation failed: the server speaks no TLS version this client enables (TLS \
         1.2 or 1.3 here; rustls does not report which versions the server speaks)"
    );
}

#[tokio::test]
async fn no_shared_cipher_suite_is_negotiation() {
    use rustls::crypto::ring::cipher_suite;
    let cert = servers::self_signed(&["localhost"]);
    let addr = rustls_server(
        &cert,
        provider_with(cipher_suite::TLS13_AES_256_GCM_SHA384),
        &[&rustls::version::TLS13],
    )
    .await;
    let stack = client(
        &cert,
        provider_with(cipher_suite::TLS13_CHACHA20_POLY1305_SHA256),
        &[&rustls::version::TLS13],
    );
    let (kind, retried, err) = get_with_retries(stack, addr.port()).await;
    assert_eq!(kind, FailureKind::TlsNegotiation, "{err:#}");
    assert!(!retried, "{err}");
    assert_eq!(
        err.to_string(),
        "tls negotiation failed: the server shares no cipher suite or key exchange with this \
         client"
    );
}

#[tokio::test]
async fn plain_http_server_on_a_tls_port_is_negotiation_not_retried() {
    // A plain HTTP server reads the ClientHello as a bad request and answers in plain text.
    let (addr, accepted) = counting(|mut stream| async move {
        let mut buf = [0u8; 2048];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
    let (kind, retried, err) = get_with_retries(servers::default_stack(&[]), addr.port()).await;
    assert_eq!(kind, FailureKind::TlsNegotiation, "{err:#}");
    assert!(!retried, "{err}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Serves with `serve` and GETs through the retry layer: the failure must be a retried
/// `TlsHandshake`, after 3 connections (`total(Some(2))`).
async fn assert_retried_handshake<F, Fut>(serve: F) -> BoxError
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (addr, accepted) = counting(serve).await;
    let (kind, retried, err) = get_with_retries(servers::default_stack(&[]), addr.port()).await;
    assert_eq!(kind, FailureKind::TlsHandshake, "{err:#}");
    assert!(retried, "{err}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    err
}

#[tokio::test]
async fn stalled_handshake_is_still_retried() {
    // Read the ClientHello, then hold the connection without a word.
    assert_retried_handshake(|mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        std::future::pending::<()>().await;
        drop(stream);
    })
    .await;
}

#[tokio::test]
async fn reset_during_handshake_is_still_retried() {
    // Read the ClientHello, then reset the connection (SO_LINGER 0 makes close send RST).
    let err = assert_retried_handshake(|mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        stream.set_zero_linger().expect("SO_LINGER");
        drop(stream);
    })
    .await;
    // The cause is a reset, not a timeout.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
    let mut kinds = Vec::new();
    while let Some(e) = source {
        source = e.source();
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            kinds.push(io.kind());
            // `io::Error::source` skips the error it wraps.
            if let Some(inner) = io.get_ref() {
                source = Some(inner);
            }
        }
    }
    assert!(
        kinds.contains(&std::io::ErrorKind::ConnectionReset),
        "no reset in {kinds:?}: {err}"
    );
}
