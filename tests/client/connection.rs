//! What the connector's connections tell hyper-util: the peer for the response's
//! `HttpInfo`, over TLS and plain TCP, and one kept-alive connection for many requests.

use crate::servers;
use crate::support::{config, tls_server, After, Ca};
use bytes::Bytes;
use fortify_test_support::text::assert_shows;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpInfo;
use std::{net::SocketAddr, sync::atomic::Ordering};
use tower::ServiceExt;
use tower_fortify::client::HttpsClient;

/// GETs `uri` through a clone of `client`, reads the body, and hands back the peer and local
/// addresses hyper-util recorded for the response's connection.
async fn peer(client: &HttpsClient, uri: &str) -> (SocketAddr, SocketAddr) {
    let request = http::Request::get(uri)
        .body(Full::default())
        .expect("request");
    let response = client.clone().oneshot(request).await.expect("200");
    assert_eq!(response.status(), 200);
    let info = response
        .extensions()
        .get::<HttpInfo>()
        .expect("hyper-util's HttpInfo on the response")
        .clone();
    response.into_body().collect().await.expect("body");
    (info.remote_addr(), info.local_addr())
}

#[tokio::test]
async fn tls_responses_name_the_server_and_share_one_connection() {
    let ca = Ca::new();
    let server = tls_server(&ca.leaf(&["localhost"]), After::Answers).await;
    let client = config(&ca).https().expect("valid config");
    let uri = format!("https://localhost:{}/", server.addr.port());
    let (remote, local) = peer(&client, &uri).await;
    assert_eq!(remote, server.addr);
    assert!(local.ip().is_loopback() && local.port() != 0, "{local}");
    // Kept alive: the same local port, one connection accepted.
    for _ in 0..3 {
        assert_eq!(peer(&client, &uri).await, (remote, local));
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn plain_responses_name_the_server_and_share_one_connection() {
    let ca = Ca::new();
    let client = config(&ca).https().expect("valid config");
    let addr = servers::serve_http(hyper::service::service_fn(|_request| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    }))
    .await;
    let uri = format!("http://127.0.0.1:{}/", addr.port());
    let (remote, local) = peer(&client, &uri).await;
    assert_eq!(remote, addr);
    assert!(local.ip().is_loopback() && local.port() != 0, "{local}");
    assert_eq!(peer(&client, &uri).await, (remote, local));
}

/// The connector says its name and its two timeouts, as configured, and shows them; a
/// connection's set-up says what it is.
#[tokio::test]
async fn the_connector_says_its_settings() {
    use std::time::Duration;
    use tower::Service;
    let client = tower_fortify::stack::ClientConfig::default()
        .name("billing")
        .connect_timeout(Duration::from_millis(700))
        .tls_handshake_timeout(Duration::from_millis(900))
        .https::<Full<Bytes>>()
        .expect("valid config");
    let connector = client.connector();
    assert_eq!(
        (
            connector.name(),
            connector.connect_timeout(),
            connector.tls_handshake_timeout()
        ),
        (
            "billing",
            Duration::from_millis(700),
            Duration::from_millis(900)
        )
    );
    assert_shows(
        &format!("{connector:?}"),
        &[
            "Connector",
            "name: \"billing\"",
            "resolver: Resolver(GaiResolver)",
            "connect_timeout: 700ms",
            "tls_handshake_timeout: 900ms",
        ],
    );
    // A resolver of the user's is named as one.
    let custom = tower_fortify::stack::ClientConfig::default()
        .resolver(servers::loopback_resolver())
        .https::<Full<Bytes>>()
        .expect("valid config");
    assert_shows(
        &format!("{:?}", custom.connector()),
        &["resolver: Resolver(custom)"],
    );
    let shared = client.get_ref().get_ref();
    assert_shows(
        &format!("{shared:?}"),
        &["SharedClient", "Connector", "billing"],
    );
    assert_shows(
        &format!("{client:?}"),
        &[
            "HttpsClient",
            "Connector",
            "billing",
            "connect_timeout: 700ms",
        ],
    );
    let addr = servers::refused().await;
    let mut connector = connector.clone();
    let connecting = connector
        .ready()
        .await
        .unwrap()
        .call(format!("http://{addr}/").parse().unwrap());
    assert_eq!(format!("{connecting:?}"), "Connecting { .. }");
    assert!(connecting.await.is_err(), "nothing listens at {addr}");
}
