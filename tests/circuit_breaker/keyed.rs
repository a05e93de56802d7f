//! One breaker per host: isolation, and the bound on tracked keys.

use crate::support::{assert_rejected, request_to, response};
use http::{Request, Response};
use std::{borrow::Cow, collections::HashSet, sync::Arc, sync::Mutex};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, State},
    BoxError,
};

/// A backend on which the hosts in `down` answer 503.
fn backend(
    down: Arc<Mutex<HashSet<String>>>,
) -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = std::io::Error,
    Future = std::future::Ready<Result<Response<()>, std::io::Error>>,
> + Clone {
    tower::service_fn(move |req: Request<()>| {
        let host = req.uri().host().unwrap_or("").to_ascii_lowercase();
        let status = if down.lock().unwrap().contains(&host) {
            503
        } else {
            200
        };
        std::future::ready(Ok(response(status)))
    })
}

async fn send_to<S>(svc: &mut S, host: &str) -> Result<Response<()>, BoxError>
where
    S: Service<Request<()>, Response = Response<()>, Error = BoxError>,
{
    svc.ready().await?.call(request_to(host)).await
}

#[tokio::test(start_paused = true)]
async fn one_failing_host_opens_only_its_own_breaker() {
    let down = Arc::new(Mutex::new(HashSet::from(["bad.test".to_owned()])));
    let layer = CircuitBreakerLayer::builder()
        .minimum_calls(5)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend(down.clone()));
    for _ in 0..5 {
        assert_eq!(send_to(&mut svc, "bad.test").await.unwrap().status(), 503);
        assert_eq!(send_to(&mut svc, "good.test").await.unwrap().status(), 200);
    }
    assert_eq!(handle.get("bad.test").unwrap().state(), State::Open);
    assert_eq!(handle.get("good.test").unwrap().state(), State::Closed);

    let err = send_to(&mut svc, "bad.test").await.unwrap_err();
    let open = assert_rejected(&err, State::Open);
    assert_eq!(open.key(), Some("bad.test"));
    assert!(err.to_string().contains("bad.test"), "{err}");
    assert_eq!(send_to(&mut svc, "good.test").await.unwrap().status(), 200);
    assert_eq!(
        handle.states(),
        [
            ("bad.test".to_owned(), State::Open),
            ("good.test".to_owned(), State::Closed)
        ]
    );
    assert_eq!(
        handle.get("bad.test").unwrap().key(),
        Some("bad.test"),
        "a keyed breaker's handle knows its key"
    );
}

#[tokio::test(start_paused = true)]
async fn spellings_of_one_host_share_its_breaker() {
    // As the pool's per-host key reads them: host case-insensitive, the default port
    // implied, a port written with leading zeros the same port.
    let down = Arc::new(Mutex::new(HashSet::from(["bad.test".to_owned()])));
    let layer = CircuitBreakerLayer::builder()
        .minimum_calls(5)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend(down));
    for uri in [
        "http://bad.test/a",
        "http://BAD.test/b",
        "http://bad.test:80/c",
        "http://user@Bad.Test:80/d",
        "http://bad.test:0080/e",
    ] {
        let request = Request::get(uri).body(()).unwrap();
        let response = svc.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 503, "{uri}");
    }
    assert_eq!(handle.states(), [("bad.test".to_owned(), State::Open)]);
    // The scheme is not part of the key: https to its default port is the same host.
    let request = Request::get("https://bad.test/").body(()).unwrap();
    let err = svc.ready().await.unwrap().call(request).await.unwrap_err();
    assert_rejected(&err, State::Open);
    // Another port (however written), or another scheme's default port, is another key.
    for uri in [
        "http://bad.test:8080/",
        "http://bad.test:08080/",
        "https://bad.test:80/",
    ] {
        let request = Request::get(uri).body(()).unwrap();
        let _ = svc.ready().await.unwrap().call(request).await;
    }
    let keys: Vec<String> = handle.states().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["bad.test", "bad.test:80", "bad.test:8080"]);
}

#[tokio::test(start_paused = true)]
async fn the_key_bound_holds_and_open_breakers_are_kept() {
    let down = Arc::new(Mutex::new(HashSet::from(["bad.test".to_owned()])));
    let layer = CircuitBreakerLayer::builder()
        .minimum_calls(5)
        .max_keys(8)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend(down));
    for _ in 0..5 {
        send_to(&mut svc, "bad.test").await.unwrap();
    }
    assert_eq!(handle.get("bad.test").unwrap().state(), State::Open);

    for i in 0..1_000 {
        send_to(&mut svc, &format!("host{i}.test")).await.unwrap();
        assert!(handle.len() <= 8, "{} keys tracked", handle.len());
    }
    assert_eq!(handle.len(), 8);
    // Closed breakers went first: the open one is still there, still open.
    assert_eq!(handle.get("bad.test").unwrap().state(), State::Open);
    assert!(
        handle.get("host999.test").is_some(),
        "the newest key is tracked"
    );
    assert!(
        handle.get("host0.test").is_none(),
        "the oldest closed key was evicted"
    );
}

#[tokio::test(start_paused = true)]
async fn least_recently_used_keys_are_evicted_first() {
    let layer = CircuitBreakerLayer::builder().max_keys(4).build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend(Arc::default()));
    for host in ["a", "b", "c", "d"] {
        send_to(&mut svc, host).await.unwrap();
    }
    // Use "a" again: "b" is now the least recently used.
    send_to(&mut svc, "a").await.unwrap();
    send_to(&mut svc, "e").await.unwrap();
    let keys: Vec<String> = handle.states().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "c", "d", "e"]);
}

#[tokio::test(start_paused = true)]
async fn breakers_an_operator_holds_are_never_evicted() {
    let layer = CircuitBreakerLayer::builder().max_keys(4).build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend(Arc::default()));
    for host in ["held-open", "held-off", "c", "d"] {
        send_to(&mut svc, host).await.unwrap();
    }
    handle.get("held-open").unwrap().force_open();
    handle.get("held-off").unwrap().disable();
    // Eight new hosts through a full map: the held breakers are the least recently used,
    // yet only the closed ones go.
    for i in 0..8 {
        send_to(&mut svc, &format!("new{i}")).await.unwrap();
    }
    assert_eq!(handle.get("held-open").unwrap().state(), State::ForcedOpen);
    assert_eq!(handle.get("held-off").unwrap().state(), State::Disabled);
    assert_rejected(
        &send_to(&mut svc, "held-open").await.unwrap_err(),
        State::ForcedOpen,
    );
    assert_eq!(handle.len(), 4, "the bound holds for the others");
}

#[tokio::test(start_paused = true)]
async fn a_scan_of_many_hosts_stays_within_max_keys() {
    let layer = CircuitBreakerLayer::builder()
        .max_keys(1024)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend(Arc::default()));
    for i in 0..100_000u32 {
        send_to(
            &mut svc,
            &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
        )
        .await
        .unwrap();
        if i.is_multiple_of(1_000) {
            assert!(handle.len() <= 1024, "{} keys", handle.len());
        }
    }
    assert!(handle.len() <= 1024);
    assert!(handle.len() >= 1024 * 7 / 8 - 16, "{} keys", handle.len());
}

#[tokio::test(start_paused = true)]
async fn a_custom_key_may_read_a_header() {
    // By tenant header.
    let layer = CircuitBreakerLayer::builder()
        .minimum_calls(1)
        .key_fn(|req: &Request<()>| {
            Cow::Borrowed(
                req.headers()
                    .get("x-tenant")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none"),
            )
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::io::Error>(response(500))
    }));
    let req = Request::get("http://x/")
        .header("x-tenant", "acme")
        .body(())
        .unwrap();
    svc.clone().oneshot(req).await.unwrap();
    assert_eq!(handle.get("acme").unwrap().state(), State::Open);
    assert!(handle.get("none").is_none());
}

#[tokio::test(start_paused = true)]
async fn distinct_host_headers_without_an_authority_share_one_breaker() {
    // A server sees relative URIs, and a remote client writes the Host header: it must not
    // be able to create a breaker per request (filling the map, evicting the others).
    let layer = CircuitBreakerLayer::builder()
        .max_keys(4096)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc: CircuitBreaker<_> = layer.layer(backend(Arc::default()));
    for i in 0..200 {
        let req = Request::get("/path")
            .header("host", format!("client{i}.example"))
            .body(())
            .unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    assert_eq!(handle.len(), 1, "one breaker per Host header");
    assert!(handle.get("client0.example").is_none());
    assert_eq!(handle.get("").unwrap().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn one_breaker_for_every_host_with_per_host_false() {
    let down = Arc::new(Mutex::new(HashSet::from(["bad.test".to_owned()])));
    let layer = CircuitBreakerLayer::builder()
        .per_host(false)
        .minimum_calls(5)
        .build()
        .unwrap();
    let handle = layer.handle();
    assert!(!handle.per_host());
    let mut svc = layer.layer(backend(down));
    for _ in 0..5 {
        assert_eq!(send_to(&mut svc, "bad.test").await.unwrap().status(), 503);
    }
    // The failing host opened the one breaker: every host is rejected.
    let err = send_to(&mut svc, "good.test").await.unwrap_err();
    let open = assert_rejected(&err, State::Open);
    assert_eq!(open.key(), None);
    assert_eq!(handle.len(), 1);
    assert_eq!(handle.states(), [(String::new(), State::Open)]);
    assert_eq!(handle.get("anything").unwrap().state(), State::Open);
}

#[test]
fn settings_that_need_per_host_are_rejected_without_it() {
    let field = |r: Result<(), tower_fortify::InvalidConfig>| r.unwrap_err().field();
    let b = CircuitBreakerLayer::builder;
    assert_eq!(
        field(b().per_host(false).max_keys(8).build().map(drop)),
        "max_keys"
    );
    fn by_path(req: &Request<()>) -> Cow<'_, str> {
        Cow::Borrowed(req.uri().path())
    }
    assert_eq!(
        field(b().per_host(false).key_fn(by_path).build().map(drop)),
        "key_fn"
    );
    assert_eq!(
        field(b().per_host(true).build_generic().map(drop)),
        "per_host"
    );
    assert_eq!(field(b().max_keys(8).build_generic().map(drop)), "max_keys");
    assert_eq!(
        field(b().key_fn(by_path).build_generic().map(drop)),
        "key_fn"
    );
    assert!(b().per_host(false).build_generic().is_ok());
}
