//! HTTP/2 through ALPN (feature `http2`): one multiplexed connection per host.

use crate::servers::{self, SelfSigned};
use crate::support::{acceptor, config, Ca};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};
use tower::ServiceExt;
use tower_fortify::client::HttpsClient;

/// An HTTPS server that speaks HTTP/2 only (ALPN `h2`), and its accepted connections.
async fn h2_server(cert: &SelfSigned) -> (SocketAddr, Arc<AtomicUsize>) {
    let acceptor = acceptor(cert, &[b"h2"]);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let addr = servers::spawn_server(move |stream| {
        let acceptor = acceptor.clone();
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(|req: http::Request<_>| async move {
                let version = format!("{:?}", req.version());
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                    version,
                ))))
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    })
    .await;
    (addr, accepted)
}

#[tokio::test]
async fn http2_is_negotiated_and_multiplexed() {
    let ca = Ca::new();
    let (addr, accepted) = h2_server(&ca.leaf(&["localhost"])).await;
    let client = config(&ca).http2(true).https().expect("valid config");
    let uri = format!("https://localhost:{}/", addr.port());
    let get = |client: HttpsClient, uri: String| async move {
        let request = http::Request::get(uri)
            .body(Full::default())
            .expect("request");
        let response = client.oneshot(request).await.expect("200");
        let version = response.version();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (version, body)
    };
    // The first call learns through ALPN that the host speaks HTTP/2; then concurrent calls
    // share its one connection (HTTP/1.1 would open one each).
    assert_eq!(
        get(client.clone(), uri.clone()).await.0,
        http::Version::HTTP_2
    );
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        calls.spawn(get(client.clone(), uri.clone()));
    }
    while let Some(done) = calls.join_next().await {
        let (version, body) = done.expect("task");
        assert_eq!(version, http::Version::HTTP_2);
        assert_eq!(&body[..], b"HTTP/2.0");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_the_option_an_h2_only_server_is_refused_by_alpn() {
    let ca = Ca::new();
    let (addr, _) = h2_server(&ca.leaf(&["localhost"])).await;
    // The client offers http/1.1 only: rustls fails the handshake on no common protocol.
    let client = config(&ca).https().expect("valid config");
    let (kind, _) =
        crate::support::failure_kind(&client, &format!("https://localhost:{}/", addr.port())).await;
    // No common ALPN protocol: a failed negotiation, never retried.
    assert_eq!(kind, tower_fortify::classify::FailureKind::TlsNegotiation);
}
