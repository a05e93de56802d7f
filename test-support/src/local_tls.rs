//! A certificate authority made at start-up, and HTTPS servers on 127.0.0.1 presenting a
//! certificate it issued: the examples' clients trust it and nothing else, so that no
//! example needs the network or a certificate on disk.

use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::PrivateKeyDer;
use std::{io, net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;
use tower::BoxError;

use crate::servers;

/// The local certificate authority and a server certificate for 127.0.0.1 and localhost.
pub struct LocalTls {
    roots: rustls::RootCertStore,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl LocalTls {
    pub fn new() -> Result<Self, BoxError> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        ca.distinguished_name
            .push(DnType::CommonName, "tower-fortify example CA");
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        leaf.use_authority_key_identifier_extension = true;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone())?;
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )?;
        Ok(LocalTls {
            roots,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// The roots a client of these servers trusts: the local CA only (for
    /// `TlsRoots::Custom`).
    pub fn roots(&self) -> rustls::RootCertStore {
        self.roots.clone()
    }

    /// Serves `service` over HTTPS (HTTP/1.1, a clone of `service` per connection) on a
    /// fresh port of 127.0.0.1.
    pub async fn serve<S, B>(&self, service: S) -> io::Result<SocketAddr>
    where
        S: hyper::service::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<B>,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = self.acceptor.clone();
        servers::spawn_accepting(listener, move |stream| {
            let acceptor = acceptor.clone();
            let service = service.clone();
            async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            }
        });
        Ok(addr)
    }
}
