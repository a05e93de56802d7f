//! A local certificate authority, TLS servers that misbehave after the handshake, and the
//! client configuration of the tests.

use crate::servers::{self, SelfSigned};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::{
    error::Error,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::io::AsyncReadExt;
use tower::ServiceExt;
use tower_fortify::{
    classify::{Failure, FailureKind},
    client::{HttpsClient, TlsRoots},
    retry::RetryPolicy,
    stack::ClientConfig,
    BoxError,
};

pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1200);

/// A certificate authority made for one test.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert: CertificateDer<'static>,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: rcgen's default one is shared with every self-signed
        // certificate, which would then look issued by this CA (with a bad signature).
        params
            .distinguished_name
            .push(DnType::CommonName, "tower-fortify test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            issuer: Issuer::new(params, key),
            cert: cert.der().clone(),
        }
    }

    /// A server certificate for `names`, valid now.
    pub fn leaf(&self, names: &[&str]) -> SelfSigned {
        self.issue(names, false)
    }

    /// A server certificate for `names` that expired long ago.
    pub fn expired_leaf(&self, names: &[&str]) -> SelfSigned {
        self.issue(names, true)
    }

    fn issue(&self, names: &[&str], expired: bool) -> SelfSigned {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        SelfSigned {
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    /// The roots a client trusting this authority uses.
    pub fn roots(&self) -> TlsRoots {
        let mut store = rustls::RootCertStore::empty();
        store.add(self.cert.clone()).expect("CA root");
        TlsRoots::Custom(store)
    }
}

/// What a TLS server does once the handshake is done.
#[derive(Clone, Copy, Debug)]
pub enum After {
    /// Serves HTTP/1.1 with keep-alive, `200 ok` to every request.
    Answers,
    /// Reads the request and never answers.
    NeverAnswers,
    /// Reads the request, then resets the connection (RST, no close_notify).
    ResetsAfterRequest,
}

/// A TLS server on 127.0.0.1 presenting `cert`, and how many TCP connections it accepted.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

/// A TLS acceptor presenting `cert` and offering the ALPN protocols `alpn`.
pub fn acceptor(cert: &SelfSigned, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.clone()], cert.key.clone_key())
    .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

pub async fn tls_server(cert: &SelfSigned, after: After) -> TlsServer {
    let acceptor = acceptor(cert, &[]);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let addr = servers::spawn_server(move |stream| {
        let acceptor = acceptor.clone();
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            match after {
                After::Answers => {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                }
                After::NeverAnswers => {
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    std::future::pending::<()>().await;
                }
                After::ResetsAfterRequest => {
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let (tcp, _) = tls.into_inner();
                    // SO_LINGER 0: closing sends a RST at once (it never blocks).
                    tcp.set_zero_linger().expect("SO_LINGER 0");
                    drop(tcp);
                }
            }
        }
    })
    .await;
    TlsServer { addr, accepted }
}

/// The configuration of the tests: one attempt (the failure as the connection met it),
/// short timeouts, the test's CA as the only root, every name resolved to 127.0.0.1.
pub fn config(ca: &Ca) -> ClientConfig {
    ClientConfig::default()
        .retry(RetryPolicy::production().total(Some(0)))
        .connect_timeout(CONNECT_TIMEOUT)
        .tls_handshake_timeout(TLS_HANDSHAKE_TIMEOUT)
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .tls_roots(ca.roots())
        .resolver(servers::loopback_resolver())
}

/// Sends a GET to `uri` and reads the whole body: the status, or the failure.
pub async fn get(client: &HttpsClient, uri: &str) -> Result<http::StatusCode, BoxError> {
    let request = http::Request::get(uri).body(Full::default())?;
    let response = client.clone().oneshot(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// The kind of the failure `get` returned; panics on a response.
pub async fn failure_kind(client: &HttpsClient, uri: &str) -> (FailureKind, BoxError) {
    let err = get(client, uri).await.expect_err("the request must fail");
    let kind = err
        .downcast_ref::<Failure>()
        .unwrap_or_else(|| panic!("not a Failure: {err:?}"))
        .kind();
    (kind, err)
}

/// The first rustls error in `err`'s chain (looking inside `io::Error`s, whose `source`
/// skips the error they wrap).
pub fn rustls_error<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => err.source(),
        };
    }
    None
}
