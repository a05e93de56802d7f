//! The one-line `Display` of a `Failure` and of a `RetryError`, for real failures from
//! sockets on 127.0.0.1: the key words of each line, and no wrapper text.

use fortify_test_support::text::assert_shows;
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind, Stage},
    retry::{RetryLayer, RetryPolicy},
    BoxError,
};

use crate::servers::{self, SelfSigned, Timeouts};

/// The failure of a GET to `uri` through `stack`, and its one-line display.
async fn failure(stack: &servers::Stack, uri: &str) -> (FailureKind, Stage, String) {
    let err = match servers::get(stack, uri).await {
        Ok(response) => panic!("expected a failure, got {}", response.status()),
        Err(err) => err,
    };
    let failure = err
        .downcast_ref::<Failure>()
        .unwrap_or_else(|| panic!("not classified: {err:?}"));
    let line = failure.to_string();
    assert!(!line.contains('\n'), "{line}");
    // The wrappers' text (hyper-util's client error, its connect error) is not repeated.
    assert!(!line.contains("client error"), "{line}");
    assert!(!line.contains("tcp connect error"), "{line}");
    (failure.kind(), failure.stage(), line)
}

/// Asserts that a GET to `uri` through the default stack (trusting nothing) fails with
/// `kind`, explained in exactly `line`.
async fn assert_explained(uri: &str, kind: FailureKind, line: &str) {
    let stack = servers::default_stack(&[]);
    let (got, _, explained) = failure(&stack, uri).await;
    assert_eq!(got, kind);
    assert_eq!(explained, line);
}

/// The count of days in a line's first parentheses: `(2,163 days ago)` is 2163.
#[track_caller]
fn day_count(line: &str) -> u64 {
    let count: String = line
        .split('(')
        .nth(1)
        .expect("parentheses")
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    count.parse().expect("a day count")
}

/// A self-signed certificate for `names` made from `params`.
fn certificate(mut params: rcgen::CertificateParams, names: &[&str]) -> SelfSigned {
    params.subject_alt_names = names
        .iter()
        .map(|n| rcgen::SanType::DnsName((*n).try_into().expect("DNS name")))
        .collect();
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    SelfSigned {
        cert: cert.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

#[tokio::test]
async fn refused() {
    let addr = servers::refused().await;
    let stack = servers::default_stack(&[]);
    let (kind, stage, line) = failure(&stack, &format!("http://{addr}/")).await;
    assert_eq!((kind, stage), (FailureKind::ConnectRefused, Stage::Connect));
    // hyper-util keeps the address private: the line says so without it.
    assert_eq!(
        line,
        "connect refused: connection refused (nothing listening)"
    );
}

#[tokio::test]
async fn dns() {
    let timeouts = Timeouts::default();
    let stack = servers::stack(
        servers::connector(
            servers::failing_resolver(),
            servers::client_tls(&[]),
            timeouts,
        ),
        timeouts,
    );
    let (kind, stage, line) = failure(&stack, "http://api.example.test/").await;
    assert_eq!((kind, stage), (FailureKind::Dns, Stage::Resolve));
    assert_shows(&line, &["DNS: ", "no such host", "api.example.test"]);
}

/// The line of a GET to a server whose certificate is valid from `not_before` to
/// `not_after` (trusted): a rejected certificate.
async fn dated_certificate_line(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> String {
    let mut params = rcgen::CertificateParams::default();
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = certificate(params, &["localhost"]);
    let addr = servers::tls_server(&cert).await;
    let stack = servers::default_stack(std::slice::from_ref(&cert.cert));
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsCertificate);
    line
}

/// Asserts that `line` counts, with thousands separated, the days between now and the
/// UNIX time `date`, within a day.
#[track_caller]
fn assert_days_to(line: &str, date: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = date.abs_diff(now) / 86_400;
    let count = day_count(line);
    assert!(count.abs_diff(days) <= 1, "{count} vs {days}: {line}");
}

#[tokio::test]
async fn expired_certificate() {
    let line = dated_certificate_line((2020, 1, 1), (2021, 1, 1)).await;
    assert_shows(
        &line,
        &["certificate expired on 2021-01-01 (", " days ago)"],
    );
    assert_days_to(&line, 1_609_459_200);
}

#[tokio::test]
async fn wrong_host() {
    let cert = certificate(rcgen::CertificateParams::default(), &["other.example"]);
    let addr = servers::tls_server(&cert).await;
    let stack = servers::default_stack(std::slice::from_ref(&cert.cert));
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsCertificate);
    assert_shows(
        &line,
        &["certificate is valid for other.example, not localhost"],
    );
}

#[tokio::test]
async fn self_signed_ca_certificate() {
    // What `openssl req -x509` makes: a CA certificate served as the server's own.
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = certificate(params, &["localhost"]);
    let addr = servers::tls_server(&cert).await;
    let stack = servers::default_stack(&[]);
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsCertificate);
    assert_shows(&line, &["server certificate is self-signed"]);
}

#[tokio::test]
async fn untrusted_issuer() {
    // Not a CA certificate: webpki says only "unknown issuer", and the line says so.
    let cert = servers::self_signed(&["localhost"]);
    let addr = servers::tls_server(&cert).await;
    let stack = servers::default_stack(&[]);
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsCertificate);
    assert_shows(&line, &["CA this client does not trust", "self-signed"]);
}

#[tokio::test]
async fn no_common_tls_version() {
    let cert = servers::self_signed(&["localhost"]);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], cert.key.clone_key())
        .expect("certificate");
    let addr = servers::tls_server_with(config).await;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let timeouts = Timeouts::default();
    let stack = servers::stack(
        servers::connector(servers::loopback_resolver(), tls, timeouts),
        timeouts,
    );
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsNegotiation);
    assert_shows(
        &line,
        &[
            "speaks no TLS version this client enables",
            "does not report",
        ],
    );
}

#[tokio::test]
async fn plain_http_on_a_tls_port() {
    let addr = servers::speaks_http_first().await;
    let stack = servers::default_stack(&[]);
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsNegotiation);
    assert_shows(&line, &["not TLS", "plain HTTP"]);
}

#[tokio::test]
async fn stalled_handshake() {
    let addr = servers::tls_stalls().await;
    let stack = servers::default_stack(&[]);
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsHandshake);
    assert_shows(&line, &["did not finish the TLS handshake in time"]);
}

#[tokio::test]
async fn retry_error_names_the_attempts_and_the_last_failure() {
    let addr = servers::refused().await;
    let svc = RetryLayer::builder()
        .policy(
            RetryPolicy::default()
                .total(Some(2))
                .backoff_factor(std::time::Duration::from_millis(50)),
        )
        .build()
        .expect("policy")
        .layer(servers::default_stack(&[]));
    let request = http::Request::get(format!("http://{addr}/"))
        .body(http_body_util::Empty::new())
        .expect("request");
    let err: BoxError = svc.oneshot(request).await.map(|_| ()).unwrap_err();
    // Sleeps 0 then 100 ms (factor * 2^1).
    assert_eq!(
        err.to_string(),
        "max retries exceeded: 3 attempts over 100 ms of backoff; last: connect refused: \
         connection refused (nothing listening)"
    );
}

#[tokio::test]
async fn connect_timeout() {
    let stalled = servers::stalled_connect().await;
    let stack = servers::default_stack(&[]);
    let (kind, stage, line) = failure(&stack, &format!("http://{}/", stalled.addr)).await;
    assert_eq!((kind, stage), (FailureKind::ConnectTimeout, Stage::Connect));
    assert_eq!(
        line,
        "connect timeout: no answer to the TCP connect in time (packets dropped, or the host \
         is down)"
    );
}

/// A server that reads the ClientHello and then closes the connection: with a reset
/// (`SO_LINGER` 0) or a plain close.
async fn ends_the_handshake(reset: bool) -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    servers::spawn_server(move |mut stream| async move {
        let mut hello = [0u8; 4096];
        let _ = stream.read(&mut hello).await;
        if reset {
            stream.set_zero_linger().expect("SO_LINGER 0");
        }
        drop(stream);
    })
    .await
}

#[tokio::test]
async fn reset_or_closed_during_the_handshake() {
    for (reset, how) in [(true, "reset"), (false, "closed")] {
        let addr = ends_the_handshake(reset).await;
        assert_explained(
            &format!("https://localhost:{}/", addr.port()),
            FailureKind::TlsHandshake,
            &format!(
                "tls handshake failed: the server {how} the connection during the TLS handshake"
            ),
        )
        .await;
    }
}

#[tokio::test]
async fn no_response_in_time() {
    let addr = servers::never_answers().await;
    assert_explained(
        &format!("http://{addr}/"),
        FailureKind::ReadTimeout,
        "read timeout: no response in time after the request was sent",
    )
    .await;
}

#[tokio::test]
async fn closed_before_the_response() {
    let addr = servers::close_after_request().await;
    let stack = servers::default_stack(&[]);
    let (kind, _, line) = failure(&stack, &format!("http://{addr}/")).await;
    assert_eq!(kind, FailureKind::ConnectionClosed);
    assert_shows(
        &line,
        &["connection closed: the connection closed before the response was complete ("],
    );
}

#[tokio::test]
async fn not_http() {
    let addr = servers::garbage().await;
    let stack = servers::default_stack(&[]);
    let (kind, _, line) = failure(&stack, &format!("http://{addr}/")).await;
    assert_eq!(kind, FailureKind::Protocol);
    assert_shows(&line, &["protocol error: the response is not valid HTTP ("]);
}

#[tokio::test]
async fn certificate_not_valid_yet() {
    let line = dated_certificate_line((2999, 1, 1), (3000, 1, 1)).await;
    assert_shows(
        &line,
        &[
            "certificate is not valid before 2999-01-01 (",
            " days from now: clock skew?)",
        ],
    );
    // 2999-01-01 is 32,472,144,000 s after the epoch.
    assert_days_to(&line, 32_472_144_000);
}

#[tokio::test]
async fn an_alert_without_its_own_explanation() {
    // A TLS 1.2 server that requires a client certificate, which this client does not have:
    // the server ends the handshake with an alert.
    let cert = servers::self_signed(&["localhost"]);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.clone()).expect("root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::clone(&provider),
    )
    .build()
    .expect("client verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.cert.clone()], cert.key.clone_key())
        .expect("certificate");
    let addr = servers::tls_server_with(config).await;
    let stack = servers::default_stack(std::slice::from_ref(&cert.cert));
    let (_, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_shows(
        &line,
        &["the server ended the TLS handshake with the alert "],
    );
}

#[tokio::test]
async fn a_certificate_rejection_without_its_own_explanation() {
    // An extension marked critical that no verifier knows: webpki's error, which rustls
    // passes on as `Other`, has no sentence of its own and is shown as it is.
    let mut params = rcgen::CertificateParams::default();
    let mut extension =
        rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99_999], vec![5, 0]);
    extension.set_criticality(true);
    params.custom_extensions = vec![extension];
    let cert = certificate(params, &["localhost"]);
    // Served as it is: `with_single_cert` would refuse it.
    let provider = rustls::crypto::ring::default_provider();
    let key = provider
        .key_provider
        .load_private_key(cert.key.clone_key())
        .expect("key");
    let certified = rustls::sign::CertifiedKey::new(vec![cert.cert.clone()], key);
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(std::sync::Arc::new(rustls::sign::SingleCertAndKey::from(
            certified,
        )));
    let addr = servers::tls_server_with(config).await;
    let stack = servers::default_stack(std::slice::from_ref(&cert.cert));
    let (kind, _, line) = failure(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert_eq!(kind, FailureKind::TlsCertificate);
    assert_eq!(
        line,
        "tls certificate rejected: invalid peer certificate: \
         Other(OtherError(UnsupportedCriticalExtension))"
    );
}
