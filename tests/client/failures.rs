//! Each failure kind a connection meets, from a real socket, through the one-call client.

use crate::servers;
use crate::support::{
    self, config, failure_kind, get, rustls_error, tls_server, After, Ca, ATTEMPT_TIMEOUT,
    CONNECT_TIMEOUT, TLS_HANDSHAKE_TIMEOUT,
};
use rustls::CertificateError;
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};
use tower_fortify::classify::FailureKind;

#[tokio::test]
async fn success_over_tls_with_a_local_ca() {
    let ca = Ca::new();
    let server = tls_server(&ca.leaf(&["localhost"]), After::Answers).await;
    let client = config(&ca).https().expect("valid config");
    let uri = format!("https://localhost:{}/", server.addr.port());
    for _ in 0..3 {
        assert_eq!(get(&client, &uri).await.expect("200"), 200);
    }
    // Keep-alive: the three requests went over one connection.
    assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused() {
    let ca = Ca::new();
    let addr = servers::refused().await;
    let client = config(&ca).https().expect("valid config");
    let (kind, err) = failure_kind(&client, &format!("https://127.0.0.1:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::ConnectRefused);
    // The client's connector knows the address it tried: the failure names it.
    let failure = err
        .downcast_ref::<tower_fortify::classify::Failure>()
        .unwrap();
    assert_eq!(failure.peer_addr(), Some(addr));
    let line = failure.to_string();
    assert!(
        line.ends_with(&format!(
            "connect refused: connection refused by {addr} (nothing listening)"
        )),
        "{line}"
    );
}

#[tokio::test]
async fn connect_timeout_on_a_full_accept_queue() {
    let ca = Ca::new();
    let stalled = servers::stalled_connect().await;
    let client = config(&ca).https().expect("valid config");
    let start = Instant::now();
    let (kind, _) = failure_kind(
        &client,
        &format!("https://127.0.0.1:{}/", stalled.addr.port()),
    )
    .await;
    assert_eq!(kind, FailureKind::ConnectTimeout);
    // The connect timeout ended it, not the attempt's.
    let elapsed = start.elapsed();
    assert!(elapsed >= CONNECT_TIMEOUT, "{elapsed:?}");
    assert!(elapsed < ATTEMPT_TIMEOUT, "{elapsed:?}");
}

#[tokio::test]
async fn dns_from_a_failing_resolver() {
    let ca = Ca::new();
    let client = config(&ca)
        .resolver(servers::failing_resolver())
        .https()
        .expect("valid config");
    let (kind, err) = failure_kind(&client, "https://no-such-host.test/").await;
    assert_eq!(kind, FailureKind::Dns);
    // The resolver's own error is still in the chain.
    assert!(format!("{err:#}").contains("no such host"), "{err:#}");
}

#[tokio::test]
async fn stalled_handshake() {
    let ca = Ca::new();
    let addr = servers::tls_stalls().await;
    let client = config(&ca).https().expect("valid config");
    let start = Instant::now();
    let (kind, _) = failure_kind(&client, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsHandshake);
    let elapsed = start.elapsed();
    assert!(elapsed >= TLS_HANDSHAKE_TIMEOUT, "{elapsed:?}");
    assert!(elapsed < ATTEMPT_TIMEOUT, "{elapsed:?}");
}

/// Sends a GET to `host` (resolved to 127.0.0.1) on `addr`'s port with a client trusting
/// `ca`; asserts a `TlsCertificate` failure and returns the rustls error in its chain.
async fn rejected(ca: &Ca, addr: SocketAddr, host: &str) -> rustls::Error {
    let client = config(ca).https().expect("valid config");
    let uri = format!("https://{host}:{}/", addr.port());
    let (kind, err) = failure_kind(&client, &uri).await;
    assert_eq!(kind, FailureKind::TlsCertificate, "{err:#}");
    rustls_error(err.as_ref())
        .unwrap_or_else(|| panic!("no rustls error in {err:#}"))
        .clone()
}

#[tokio::test]
async fn untrusted_certificate() {
    let ca = Ca::new();
    // Signed by itself, not by the CA the client trusts.
    let addr = servers::tls_server(&servers::self_signed(&["localhost"])).await;
    let err = rejected(&ca, addr, "localhost").await;
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn expired_certificate() {
    let ca = Ca::new();
    let server = tls_server(&ca.expired_leaf(&["localhost"]), After::Answers).await;
    let err = rejected(&ca, server.addr, "localhost").await;
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_host_name() {
    let ca = Ca::new();
    let server = tls_server(&ca.leaf(&["localhost"]), After::Answers).await;
    // The loopback resolver sends every name to the server, whose certificate is for
    // `localhost` only.
    let err = rejected(&ca, server.addr, "api.example.test").await;
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{err}"
    );
}

#[tokio::test]
async fn read_timeout_after_the_handshake() {
    let ca = Ca::new();
    let server = tls_server(&ca.leaf(&["localhost"]), After::NeverAnswers).await;
    let client = config(&ca).https().expect("valid config");
    let start = Instant::now();
    let uri = format!("https://localhost:{}/", server.addr.port());
    let (kind, _) = failure_kind(&client, &uri).await;
    assert_eq!(kind, FailureKind::ReadTimeout);
    assert!(start.elapsed() >= ATTEMPT_TIMEOUT, "{:?}", start.elapsed());
}

#[tokio::test]
async fn reset_after_the_request() {
    let ca = Ca::new();
    let server = tls_server(&ca.leaf(&["localhost"]), After::ResetsAfterRequest).await;
    let client = config(&ca).https().expect("valid config");
    let uri = format!("https://localhost:{}/", server.addr.port());
    let (kind, _) = failure_kind(&client, &uri).await;
    assert_eq!(kind, FailureKind::ConnectionClosed);
}

#[tokio::test]
async fn connect_failures_are_retried_by_the_default_policy() {
    let ca = Ca::new();
    let addr = servers::refused().await;
    let client = config(&ca)
        .retry(tower_fortify::retry::RetryPolicy::production())
        .https()
        .expect("valid config");
    let (kind, err) = failure_kind(&client, &format!("https://127.0.0.1:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::ConnectRefused);
    let failure = err
        .downcast_ref::<tower_fortify::classify::Failure>()
        .unwrap();
    let retry = failure
        .get_ref()
        .downcast_ref::<tower_fortify::retry::error::RetryError>()
        .expect("retries ran out");
    assert_eq!(retry.history().records().len(), 5);
    // One line: why it stopped, the attempts, the last failure with the address.
    let line = failure.to_string();
    assert!(
        line.starts_with("max retries exceeded: 6 attempts")
            && line.ends_with(&format!(
                "; last: connect refused: connection refused by {addr} (nothing listening)"
            )),
        "{line}"
    );
}

#[test]
fn settings_are_validated_by_name() {
    let ca = Ca::new();
    for (config, field) in [
        (
            config(&ca).tls_handshake_timeout(Duration::ZERO),
            "tls_handshake_timeout",
        ),
        (
            config(&ca).pool_idle_timeout(Some(Duration::ZERO)),
            "pool_idle_timeout",
        ),
        (
            config(&ca).connect_timeout(Duration::ZERO),
            "connect_timeout",
        ),
        (
            config(&ca).attempt_timeout(Duration::from_millis(600)),
            "attempt_timeout",
        ),
        (config(&ca).pool_maxsize(0), "maxsize"),
    ] {
        let err = config.https::<String>().expect_err(field);
        assert_eq!(err.field(), field);
    }
}

#[tokio::test]
async fn a_scheme_other_than_http_or_https_is_refused_before_any_socket() {
    let ca = Ca::new();
    let client = config(&ca).https().expect("valid config");
    let (kind, err) = failure_kind(&client, "ftp://127.0.0.1/").await;
    assert_eq!(kind, FailureKind::Other);
    assert!(format!("{err:#}").contains("scheme"), "{err:#}");
}

#[tokio::test]
async fn no_application_protocol_in_common() {
    let ca = Ca::new();
    // A server that speaks only a protocol this client never offers by ALPN.
    let acceptor = support::acceptor(&ca.leaf(&["localhost"]), &[b"spdy/3"]);
    let addr = servers::spawn_server(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let _ = acceptor.accept(stream).await;
        }
    })
    .await;
    let client = config(&ca).https().expect("valid config");
    let (kind, err) = failure_kind(&client, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsNegotiation, "{err:#}");
    assert_eq!(
        err.to_string(),
        format!(
            "tls negotiation failed: {addr} and this client share no application protocol \
             (ALPN)"
        )
    );
}
