//! reqwest under the crate's layers: each kind of failure, from real sockets on 127.0.0.1,
//! classified from the `reqwest::Error` it comes as, and the preset stack's retry decisions
//! around a `reqwest::Client`.

use fortify_test_support::servers;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use reqwest::dns::{Name, Resolve, Resolving};
use tower::{Service, ServiceExt};

use tower_fortify::{
    classify::{classify_error, Failure, FailureKind, Stage},
    reqwest::{ClassifiedResolver, ReqwestService},
    retry::{error::RetryError, RetryPolicy},
    stack::ClientConfig,
};

/// A reqwest client with short timers, trusting only `roots`, that resolves every name to
/// 127.0.0.1 (no test asks real DNS).
fn client(roots: &[rustls::pki_types::CertificateDer<'static>]) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(servers::client_tls(roots))
        .connect_timeout(Duration::from_millis(200))
        .read_timeout(Duration::from_millis(600))
        .dns_resolver(Arc::new(ClassifiedResolver::new(Loopback)))
        .no_proxy()
}

/// Every name is 127.0.0.1.
struct Loopback;

impl Resolve for Loopback {
    fn resolve(&self, _name: Name) -> Resolving {
        let addrs: Vec<SocketAddr> = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        Box::pin(async move { Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs) })
    }
}

/// No name exists.
struct NoSuchHost;

impl Resolve for NoSuchHost {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no such host: {name}"),
            )
            .into())
        })
    }
}

fn get(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(uri).body(Full::default()).unwrap()
}

/// The kind of the error a plain `ReqwestService` (the test client, trusting `roots`)
/// returns for `uri`.
async fn kind_of(roots: &[rustls::pki_types::CertificateDer<'static>], uri: &str) -> FailureKind {
    kind_with(client(roots).build().unwrap(), uri).await
}

/// `https://localhost:port/`, to a TLS server on 127.0.0.1.
fn tls_uri(addr: SocketAddr) -> String {
    format!("https://localhost:{}/", addr.port())
}

async fn kind_with(client: reqwest::Client, uri: &str) -> FailureKind {
    let err = ReqwestService::new(client)
        .oneshot(get(uri))
        .await
        .expect_err("the request must fail");
    classify_error(&err, Stage::Request)
}

/// A certificate for `names` that expired on 2021-01-01.
fn expired(names: &[&str]) -> servers::SelfSigned {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    servers::SelfSigned {
        cert: cert.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

#[tokio::test]
async fn success_over_tls() {
    let cert = servers::self_signed(&["localhost"]);
    let addr = servers::tls_server(&cert).await;
    let client = client(std::slice::from_ref(&cert.cert)).build().unwrap();
    let response = ReqwestService::new(client)
        .oneshot(get(&tls_uri(addr)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
}

#[tokio::test]
async fn refused() {
    let addr = servers::refused().await;
    assert_eq!(
        kind_of(&[], &format!("http://{addr}/")).await,
        FailureKind::ConnectRefused
    );
}

#[tokio::test]
async fn connect_timeout_on_a_full_accept_queue() {
    let stalled = servers::stalled_connect().await;
    assert_eq!(
        kind_of(&[], &format!("http://{}/", stalled.addr)).await,
        FailureKind::ConnectTimeout
    );
}

#[tokio::test]
async fn dns_from_a_failing_resolver() {
    let client = client(&[])
        .dns_resolver(Arc::new(ClassifiedResolver::new(NoSuchHost)))
        .build()
        .unwrap();
    assert_eq!(
        kind_with(client, "http://api.invalid/").await,
        FailureKind::Dns
    );
}

/// reqwest's `connect_timeout` covers the TLS handshake: a stalled handshake is a connect
/// timeout (connect category, retried for any method, as a `TlsHandshake` would be).
#[tokio::test]
async fn stalled_handshake_is_a_connect_timeout() {
    let addr = servers::tls_stalls().await;
    assert_eq!(
        kind_of(&[], &tls_uri(addr)).await,
        FailureKind::ConnectTimeout
    );
}

#[tokio::test]
async fn untrusted_certificate() {
    let cert = servers::self_signed(&["localhost"]);
    let addr = servers::tls_server(&cert).await;
    let other_root = servers::self_signed(&["localhost"]).cert;
    assert_eq!(
        kind_of(&[other_root], &tls_uri(addr)).await,
        FailureKind::TlsCertificate
    );
}

#[tokio::test]
async fn expired_certificate() {
    let cert = expired(&["localhost"]);
    let addr = servers::tls_server(&cert).await;
    assert_eq!(
        kind_of(std::slice::from_ref(&cert.cert), &tls_uri(addr)).await,
        FailureKind::TlsCertificate
    );
}

#[tokio::test]
async fn wrong_host_name() {
    let cert = servers::self_signed(&["other.example"]);
    let addr = servers::tls_server(&cert).await;
    assert_eq!(
        kind_of(std::slice::from_ref(&cert.cert), &tls_uri(addr)).await,
        FailureKind::TlsCertificate
    );
}

#[tokio::test]
async fn read_timeout() {
    let addr = servers::never_answers().await;
    assert_eq!(
        kind_of(&[], &format!("http://{addr}/")).await,
        FailureKind::ReadTimeout
    );
}

#[tokio::test]
async fn reset_after_the_request() {
    let addr = servers::close_after_request().await;
    assert_eq!(
        kind_of(&[], &format!("http://{addr}/")).await,
        FailureKind::ConnectionClosed
    );
}

/// The preset stack around reqwest: a refused connect is retried for a POST (nothing was
/// sent), a connection closed after the request is retried for a GET and not for a POST.
#[tokio::test]
async fn preset_stack_retries_by_urllib3_rules() {
    let layer = ClientConfig::default()
        .retry(
            RetryPolicy::default()
                .total(Some(2))
                .backoff_factor(Duration::ZERO),
        )
        .build()
        .unwrap();
    type Stack = tower_fortify::stack::ClientStack<ReqwestService>;
    let stack = |client: reqwest::Client| -> Stack {
        tower::Layer::layer(&layer, ReqwestService::new(client))
    };
    async fn send(mut svc: Stack, request: http::Request<Full<Bytes>>) -> tower_fortify::BoxError {
        ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)
            .await
            .unwrap()
            .call(request)
            .await
            .expect_err("the request must fail")
    }

    // The kind, and the retries made: any failure after a retry comes as the retry
    // layer's error, which holds the history.
    let failure = |err: tower_fortify::BoxError| -> (FailureKind, usize) {
        let failure = err.downcast_ref::<Failure>().expect("a classified failure");
        let retries = failure
            .get_ref()
            .downcast_ref::<RetryError>()
            .map_or(0, |retry| retry.history().records().len());
        (failure.kind(), retries)
    };

    let refused = servers::refused().await;
    let post = http::Request::post(format!("http://{refused}/orders"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let err = send(stack(client(&[]).build().unwrap()), post).await;
    assert_eq!(failure(err), (FailureKind::ConnectRefused, 2));

    let closes = servers::close_after_request().await;
    let get = get(&format!("http://{closes}/"));
    let err = send(stack(client(&[]).build().unwrap()), get).await;
    assert_eq!(failure(err), (FailureKind::ConnectionClosed, 2));

    let post = http::Request::post(format!("http://{closes}/orders"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let err = send(stack(client(&[]).build().unwrap()), post).await;
    assert_eq!(failure(err), (FailureKind::ConnectionClosed, 0));
}

/// The service hands back the client it was given (its user agent tells it from a default
/// one), and says what it and its pieces are.
#[tokio::test]
async fn the_service_gives_back_its_own_client_and_says_what_it_holds() {
    let agent = "fortify-probe/1";
    let mut svc = ReqwestService::new(client(&[]).user_agent(agent).build().unwrap());
    assert!(format!("{:?}", svc.get_ref()).contains(agent));
    assert!(format!("{:?}", svc.get_mut()).contains(agent));
    assert!(format!("{:?}", svc.clone().into_inner()).contains(agent));
    assert!(format!("{svc:?}").contains(agent));
    let future = svc.call(get("http://127.0.0.1:9/"));
    assert!(format!("{future:?}").starts_with("ResponseFuture"));
    assert_eq!(
        format!("{:?}", ClassifiedResolver::system()),
        "ClassifiedResolver { system: true }"
    );
    assert_eq!(
        format!("{:?}", ClassifiedResolver::new(Loopback)),
        "ClassifiedResolver { system: false }"
    );
}
