//! Real failures from real sockets on 127.0.0.1, through a hyper-util legacy client whose
//! every stage is classified (see `servers::connector`).

use crate::servers::{self, Timeouts};
use tower::ServiceExt;
use tower_fortify::{
    classify::{ErrorClassify, Failure, FailureKind, Stage},
    BoxError,
};

#[track_caller]
fn kind_of(result: Result<servers::Response, BoxError>) -> FailureKind {
    let err = match result {
        Ok(response) => panic!("expected a failure, got {}", response.status()),
        Err(err) => err,
    };
    match err.downcast_ref::<Failure>() {
        Some(failure) => failure.kind(),
        None => panic!("error is not a classified Failure: {err:?}"),
    }
}

#[tokio::test]
async fn refused_port_is_connect_refused() {
    let addr = servers::refused().await;
    let stack = servers::default_stack(&[]);
    let kind = kind_of(servers::get(&stack, &format!("http://{addr}/")).await);
    assert_eq!(kind, FailureKind::ConnectRefused);
}

#[tokio::test]
async fn full_accept_queue_is_connect_timeout() {
    let stalled = servers::stalled_connect().await;
    let stack = servers::default_stack(&[]);
    let started = std::time::Instant::now();
    let kind = kind_of(servers::get(&stack, &format!("http://{}/", stalled.addr)).await);
    assert_eq!(kind, FailureKind::ConnectTimeout);
    // The connect timeout, not the request or handshake timeout, ended the call.
    assert!(
        started.elapsed() < Timeouts::default().handshake,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn failing_resolver_is_dns() {
    let timeouts = Timeouts::default();
    let connector = servers::connector(
        servers::failing_resolver(),
        servers::client_tls(&[]),
        timeouts,
    );
    let stack = servers::stack(connector, timeouts);
    let kind = kind_of(servers::get(&stack, "http://no-such-host.invalid/").await);
    assert_eq!(kind, FailureKind::Dns);
}

#[tokio::test]
async fn close_before_answering_is_connection_closed() {
    let addr = servers::close_after_request().await;
    let stack = servers::default_stack(&[]);
    let kind = kind_of(servers::get(&stack, &format!("http://{addr}/")).await);
    assert_eq!(kind, FailureKind::ConnectionClosed);
}

#[tokio::test]
async fn no_answer_is_read_timeout() {
    let addr = servers::never_answers().await;
    let stack = servers::default_stack(&[]);
    let kind = kind_of(servers::get(&stack, &format!("http://{addr}/")).await);
    assert_eq!(kind, FailureKind::ReadTimeout);
}

#[tokio::test]
async fn garbage_response_is_protocol() {
    let addr = servers::garbage().await;
    let stack = servers::default_stack(&[]);
    let kind = kind_of(servers::get(&stack, &format!("http://{addr}/")).await);
    assert_eq!(kind, FailureKind::Protocol);
}

#[tokio::test]
async fn untrusted_certificate_is_tls_certificate() {
    let cert = servers::self_signed(&["localhost"]);
    let addr = servers::tls_server(&cert).await;
    // The client trusts nothing: the self-signed certificate has an unknown issuer.
    let stack = servers::default_stack(&[]);
    let kind = kind_of(servers::get(&stack, &format!("https://localhost:{}/", addr.port())).await);
    assert_eq!(kind, FailureKind::TlsCertificate);
}

#[tokio::test]
async fn wrong_host_name_is_tls_certificate() {
    let cert = servers::self_signed(&["api.example.test"]);
    let addr = servers::tls_server(&cert).await;
    // Trusted issuer, but the certificate is for another name.
    let stack = servers::default_stack(std::slice::from_ref(&cert.cert));
    let kind = kind_of(servers::get(&stack, &format!("https://localhost:{}/", addr.port())).await);
    assert_eq!(kind, FailureKind::TlsCertificate);
}

#[tokio::test]
async fn trusted_certificate_succeeds() {
    // The same server and client as above, with the certificate trusted: the TLS plumbing
    // works, so the failures above come from verification and nothing else.
    let cert = servers::self_signed(&["localhost"]);
    let addr = servers::tls_server(&cert).await;
    let stack = servers::default_stack(std::slice::from_ref(&cert.cert));
    let response = servers::get(&stack, &format!("https://localhost:{}/", addr.port()))
        .await
        .expect("trusted TLS request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn stalled_handshake_is_tls_handshake() {
    let addr = servers::tls_stalls().await;
    let stack = servers::default_stack(&[]);
    let started = std::time::Instant::now();
    let kind = kind_of(servers::get(&stack, &format!("https://localhost:{}/", addr.port())).await);
    assert_eq!(kind, FailureKind::TlsHandshake);
    // The handshake timeout ended the call, not the request timeout.
    assert!(
        started.elapsed() < Timeouts::default().request,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn plain_http_answer_to_tls_hello_is_tls_negotiation() {
    // Speaking TLS to a plain HTTP server: the handshake reads an HTTP response and fails,
    // at once rather than by the handshake timeout.
    let addr = servers::speaks_http_first().await;
    let stack = servers::default_stack(&[]);
    let started = std::time::Instant::now();
    let result = servers::get(&stack, &format!("https://localhost:{}/", addr.port())).await;
    assert!(
        started.elapsed() < Timeouts::default().handshake,
        "{:?}",
        started.elapsed()
    );
    let err = result.as_ref().map(|_| ()).unwrap_err();
    // rustls itself rejected the bytes: the cause is a rustls error, not a timeout.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&**err);
    let mut saw_rustls = false;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            saw_rustls |= io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>());
            source = io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static));
            continue;
        }
        source = e.source();
    }
    assert!(saw_rustls, "no rustls error in {err:?}");
    // The peer does not speak TLS: a retry meets the same port, never retried.
    assert_eq!(kind_of(result), FailureKind::TlsNegotiation);
}

#[tokio::test]
async fn success_passes_through() {
    let addr = servers::ok().await;
    let stack = servers::default_stack(&[]);
    let response = servers::get(&stack, &format!("http://{addr}/"))
        .await
        .expect("200");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn server_error_is_a_response_not_a_failure() {
    let addr = servers::answers(
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let stack = servers::default_stack(&[]);
    let response = servers::get(&stack, &format!("http://{addr}/"))
        .await
        .expect("a response");
    let class = tower_fortify::classify::ResponseClass::of(&response);
    assert!(class.is_server_error());
    assert!(class.asks_retry_after());
}

#[tokio::test]
async fn display_names_kind_and_cause() {
    let addr = servers::refused().await;
    let stack = servers::default_stack(&[]);
    let err = servers::get(&stack, &format!("http://{addr}/"))
        .await
        .unwrap_err();
    let failure = err.downcast_ref::<Failure>().expect("a Failure");
    let short = failure.to_string();
    assert!(short.starts_with("connect refused: "), "{short}");
    let chain = format!("{failure:#}");
    assert!(chain.len() > short.len(), "{chain}");
    // The original error stays reachable: the io::Error at the bottom of the chain.
    let mut source = std::error::Error::source(failure);
    let mut found_io = false;
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            found_io = io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = err.source();
    }
    assert!(found_io, "no ConnectionRefused io::Error in {chain}");
}

type Plain<C> = hyper_util::client::legacy::Client<C, http_body_util::Empty<bytes::Bytes>>;

/// A hyper-util client over `connector`, nothing classified inside.
fn client_over<C>(connector: C) -> Plain<C>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// A hyper-util client with its own connector (no classification inside), classified as a
/// whole at the request stage: its connect errors are still told apart from the request's.
fn plain_client() -> ErrorClassify<Plain<hyper_util::client::legacy::connect::HttpConnector>> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_connect_timeout(Some(Timeouts::default().connect));
    ErrorClassify::new(client_over(http))
}

/// The error of a GET to `uri` through `svc`; fails the test if it answered.
async fn failed_get<S>(svc: S, uri: String) -> BoxError
where
    S: tower::Service<http::Request<http_body_util::Empty<bytes::Bytes>>>,
    S::Error: Into<BoxError>,
{
    let request = http::Request::get(uri)
        .body(http_body_util::Empty::new())
        .expect("request");
    match svc.oneshot(request).await {
        Ok(_) => panic!("answered"),
        Err(err) => err.into(),
    }
}

/// `err` as the `Failure` it was classified as.
fn classified(err: BoxError) -> Box<Failure> {
    err.downcast::<Failure>()
        .unwrap_or_else(|err| panic!("not classified: {err:?}"))
}

async fn plain_get(uri: String) -> FailureKind {
    classified(failed_get(plain_client(), uri).await).kind()
}

#[tokio::test]
async fn a_plain_clients_connect_timeout_is_connect_timeout() {
    let stalled = servers::stalled_connect().await;
    assert_eq!(
        plain_get(format!("http://{}/", stalled.addr)).await,
        FailureKind::ConnectTimeout
    );
}

#[tokio::test]
async fn a_plain_clients_connection_closed_before_the_response_is_connection_closed() {
    let addr = servers::close_after_request().await;
    assert_eq!(
        plain_get(format!("http://{addr}/")).await,
        FailureKind::ConnectionClosed
    );
}

/// A TLS client classified as a whole at the request stage (hyper-rustls inside, nothing
/// classified there): a certificate the client does not trust is a certificate failure,
/// met at the TLS handshake, the kind's own stage, not the stage it was classified at.
#[tokio::test]
async fn a_certificate_failure_classified_at_the_request_is_at_the_handshake() {
    let cert = servers::self_signed(&["localhost"]);
    let addr = servers::tls_server(&cert).await;
    // The name resolves to 127.0.0.1 in the test's own resolver, not the system's.
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(
        servers::loopback_resolver(),
    );
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(servers::client_tls(&[]))
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let uri = format!("https://localhost:{}/", addr.port());
    let failure = classified(failed_get(ErrorClassify::new(client_over(https)), uri).await);
    assert_eq!(failure.kind(), FailureKind::TlsCertificate);
    assert_eq!(failure.stage(), Stage::TlsHandshake);
}

/// A response that is not HTTP, from a real peer: hyper's parse error is a protocol
/// failure, met at the request stage (the kind's own) even when classified as if it came
/// during the connect.
#[tokio::test]
async fn a_protocol_failure_is_at_the_request_whatever_stage_it_is_classified_at() {
    let addr = servers::garbage().await;
    let client = client_over(hyper_util::client::legacy::connect::HttpConnector::new());
    let err = failed_get(client, format!("http://{addr}/")).await;
    let failure = Failure::classify(err, Stage::Connect);
    assert_eq!(failure.kind(), FailureKind::Protocol);
    assert_eq!(failure.stage(), Stage::Request);
}
