//! The preset stack around a `reqwest::Client`, over TLS, against local servers on
//! 127.0.0.1: a healthy one, a refused port, and one that presents an expired certificate.
//!
//! ```sh
//! cargo run --example reqwest_client --features reqwest
//! ```

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::Failure,
    reqwest::{ClassifiedResolver, ReqwestService},
    stack::{ClientConfig, ClientStack},
};

/// Every name is 127.0.0.1: this example never asks real DNS.
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let addrs = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))];
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A TLS server for `localhost` on 127.0.0.1 with a certificate valid from `from` to `to`
/// (years), answering `200 OK`. Returns its port and its certificate, to trust.
async fn tls_server(from: i32, to: i32) -> (u16, rustls::pki_types::CertificateDer<'static>) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, der)
}

#[tokio::main]
async fn main() -> Result<(), tower_fortify::BoxError> {
    // reqwest is built here with `rustls-no-provider`: pick rustls's provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let (healthy, healthy_cert) = tls_server(2020, 2100).await;
    let (expired, expired_cert) = tls_server(2020, 2021).await;
    let refused = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?.port()
    };

    let mut roots = rustls::RootCertStore::empty();
    roots.add(healthy_cert)?;
    roots.add(expired_cert)?;
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = ClientConfig::default().name("reqwest");
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(1))
        .dns_resolver(Arc::new(ClassifiedResolver::new(Loopback)))
        .no_proxy()
        .build()?;
    // The whole preset around reqwest: a nameable, cloneable service.
    let http: ClientStack<ReqwestService> = config.build()?.layer(ReqwestService::new(client));

    for (what, port) in [
        ("healthy", healthy),
        ("refused port", refused),
        ("expired certificate", expired),
    ] {
        let request = http::Request::get(format!("https://localhost:{port}/"))
            .body(Full::<Bytes>::default())?;
        match http.clone().oneshot(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                println!("{what:<20} {status} {:?}", String::from_utf8_lossy(&body));
            }
            Err(err) => {
                let failure = err.downcast_ref::<Failure>().expect("classified");
                println!("{what:<20} {:?}: {err}", failure.kind());
            }
        }
    }
    Ok(())
}
