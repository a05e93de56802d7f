//! One breaker per host: isolation, and the bound on tracked keys.

use crate::support::{assert_rejected, request_to, response};
use fortify_test_support::text::assert_shows;
use http::{Request, Response};
use std::{collections::HashSet, sync::Arc, sync::Mutex};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer, State},
    key::{ByAuthority, HostKey, RequestKey},
    BoxError,
};

/// The key of `http://{host}/`, as the layer computes it.
fn key(host: &str) -> HostKey {
    HostKey::from_uri(&format!("http://{host}/").parse().unwrap())
}

/// Every tracked key as printed, sorted.
fn keys(handle: &CircuitBreakerHandle) -> Vec<String> {
    let breakers = handle.breakers();
    breakers
        .iter()
        .map(|b| b.key().unwrap().to_owned())
        .collect()
}

/// Every tracked key as printed with its state.
fn states(handle: &CircuitBreakerHandle) -> Vec<(String, State)> {
    let breakers = handle.breakers();
    let key = |b: &tower_fortify::circuit_breaker::BreakerHandle| b.key().unwrap_or("").to_owned();
    breakers.iter().map(|b| (key(b), b.state())).collect()
}

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
    assert_eq!(handle.get(&key("bad.test")).unwrap().state(), State::Open);
    assert_eq!(
        handle.get(&key("good.test")).unwrap().state(),
        State::Closed
    );

    let err = send_to(&mut svc, "bad.test").await.unwrap_err();
    let open = assert_rejected(&err, State::Open);
    assert_eq!(open.key(), Some("http://bad.test:80"));
    assert!(err.to_string().contains("http://bad.test:80"), "{err}");
    assert_eq!(send_to(&mut svc, "good.test").await.unwrap().status(), 200);
    assert_eq!(
        states(&handle),
        [
            ("http://bad.test:80".to_owned(), State::Open),
            ("http://good.test:80".to_owned(), State::Closed)
        ]
    );
    assert_eq!(
        handle.get(&key("bad.test")).unwrap().key(),
        Some("http://bad.test:80"),
        "a keyed breaker's handle knows its key"
    );
    // The key of a request, as the pool computes it, finds the same breaker.
    let request = request_to("BAD.test");
    let by_request = handle.get(&ByAuthority.key(&request)).unwrap();
    assert_eq!(by_request.key(), Some("http://bad.test:80"));
    // A key's printed text is not a key.
    assert!(handle.get(&"http://bad.test:80".to_owned()).is_none());
}

#[tokio::test(start_paused = true)]
async fn spellings_of_one_host_share_its_breaker() {
    // The pool's per-host key: host case-insensitive, the default port implied, a port
    // written with leading zeros the same port.
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
    assert_eq!(
        states(&handle),
        [("http://bad.test:80".to_owned(), State::Open)]
    );
    // Another port (however written), or another scheme, is another key.
    for uri in [
        "http://bad.test:8080/",
        "http://bad.test:08080/",
        "https://bad.test:80/",
    ] {
        let request = Request::get(uri).body(()).unwrap();
        let _ = svc.ready().await.unwrap().call(request).await;
    }
    assert_eq!(
        keys(&handle),
        [
            "http://bad.test:80",
            "http://bad.test:8080",
            "https://bad.test:80"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn http_and_https_of_one_host_are_two_breakers_as_they_are_two_pools() {
    // urllib3 keys its pools by scheme, host and port, and so do the breakers: a host down
    // on https (say, a TLS fault) does not open its http breaker.
    let layer = CircuitBreakerLayer::builder()
        .minimum_calls(5)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(tower::service_fn(|req: Request<()>| {
        let status = if req.uri().scheme_str() == Some("https") {
            503
        } else {
            200
        };
        std::future::ready(Ok::<_, std::io::Error>(response(status)))
    }));
    let mut send = |uri: &'static str| {
        let request = Request::get(uri).body(()).unwrap();
        svc.call(request)
    };
    for _ in 0..5 {
        assert_eq!(send("https://h.test/").await.unwrap().status(), 503);
    }
    let err = send("https://h.test/").await.unwrap_err();
    assert_eq!(
        assert_rejected(&err, State::Open).key(),
        Some("https://h.test:443")
    );
    assert_eq!(send("http://h.test/").await.unwrap().status(), 200);
    assert_eq!(
        states(&handle),
        [
            ("http://h.test:80".to_owned(), State::Closed),
            ("https://h.test:443".to_owned(), State::Open)
        ]
    );
    // The same keys as the per-host pools'.
    let pool = tower_fortify::pool::PoolLimitLayer::builder(1)
        .build()
        .unwrap();
    let pool_svc = pool.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, std::io::Error>(Response::new(String::new()))
    }));
    for uri in ["https://h.test/", "http://h.test:80/x"] {
        pool_svc
            .clone()
            .oneshot(Request::get(uri).body(()).unwrap())
            .await
            .unwrap();
    }
    let mut pool_keys: Vec<_> = pool
        .handle()
        .snapshot()
        .pools
        .into_iter()
        .map(|p| p.key.unwrap())
        .collect();
    pool_keys.sort();
    assert_eq!(pool_keys, keys(&handle));
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
    assert_eq!(handle.get(&key("bad.test")).unwrap().state(), State::Open);

    for i in 0..1_000 {
        send_to(&mut svc, &format!("host{i}.test")).await.unwrap();
        assert!(handle.len() <= 8, "{} keys tracked", handle.len());
    }
    assert_eq!(handle.len(), 8);
    // Closed breakers went first: the open one is still there, still open.
    assert_eq!(handle.get(&key("bad.test")).unwrap().state(), State::Open);
    assert!(
        handle.get(&key("host999.test")).is_some(),
        "the newest key is tracked"
    );
    assert!(
        handle.get(&key("host0.test")).is_none(),
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
    let expected = ["a", "c", "d", "e"].map(|h| format!("http://{h}:80"));
    assert_eq!(keys(&handle), expected);
}

#[tokio::test(start_paused = true)]
async fn breakers_an_operator_holds_are_never_evicted() {
    let layer = CircuitBreakerLayer::builder().max_keys(4).build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(backend(Arc::default()));
    for host in ["held-open", "held-off", "c", "d"] {
        send_to(&mut svc, host).await.unwrap();
    }
    handle.get(&key("held-open")).unwrap().force_open();
    handle.get(&key("held-off")).unwrap().disable();
    // Eight new hosts through a full map: the held breakers are the least recently used,
    // yet only the closed ones go.
    for i in 0..8 {
        send_to(&mut svc, &format!("new{i}")).await.unwrap();
    }
    assert_eq!(
        handle.get(&key("held-open")).unwrap().state(),
        State::ForcedOpen
    );
    assert_eq!(
        handle.get(&key("held-off")).unwrap().state(),
        State::Disabled
    );
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
            let tenant = req.headers().get("x-tenant").and_then(|v| v.to_str().ok());
            tenant.unwrap_or("none").to_owned()
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
    assert_eq!(handle.get(&"acme".to_owned()).unwrap().state(), State::Open);
    assert!(handle.get(&"none".to_owned()).is_none());
    assert!(handle.get(&key("x")).is_none(), "a key of another type");
    assert_eq!(keys(&handle), ["\"acme\""], "printed with Debug");
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
    assert!(handle.get(&key("client0.example")).is_none());
    let no_host = ByAuthority.key(&Request::get("/").body(()).unwrap());
    assert_eq!(handle.get(&no_host).unwrap().state(), State::Closed);
    assert_eq!(keys(&handle), ["(no host)"]);
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
    assert_eq!(states(&handle), [(String::new(), State::Open)]);
    assert_eq!(handle.get(&key("anything")).unwrap().state(), State::Open);
}

#[test]
fn settings_that_need_per_host_are_rejected_without_it() {
    let field = |r: Result<(), tower_fortify::InvalidConfig>| r.unwrap_err().field();
    let b = CircuitBreakerLayer::builder;
    assert_eq!(
        field(b().per_host(false).max_keys(8).build().map(drop)),
        "max_keys"
    );
    fn by_path(req: &Request<()>) -> String {
        req.uri().path().to_owned()
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

/// A runtime of the calling thread's own.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A thread keeps its last breaker to find it without a lookup; once another thread's call
/// evicted it, the thread's next call to that host goes to a breaker in the map again (the
/// evicted one counts nothing more).
#[test]
fn a_threads_last_breaker_is_left_once_evicted() {
    let layer = CircuitBreakerLayer::builder().max_keys(1).build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend(Arc::default()));
    let here = runtime();
    // This thread's last breaker is `a`'s (the second call finds it kept).
    for _ in 0..2 {
        here.block_on(send_to(&mut svc.clone(), "a")).unwrap();
    }
    let evicted = handle.get(&key("a")).unwrap();
    assert_eq!(evicted.figures().calls(), 2);
    // Another thread's call to `b` evicts `a`'s closed breaker (the bound is one key).
    let mut other = svc.clone();
    std::thread::spawn(move || runtime().block_on(send_to(&mut other, "b")).unwrap())
        .join()
        .unwrap();
    assert_eq!(keys(&handle), ["http://b:80"]);
    here.block_on(send_to(&mut svc.clone(), "a")).unwrap();
    assert_eq!(keys(&handle), ["http://a:80"], "a breaker in the map again");
    assert_eq!(handle.get(&key("a")).unwrap().figures().calls(), 1);
    assert_eq!(
        evicted.figures().calls(),
        2,
        "the evicted one counts nothing more"
    );
}

/// Two breakers at most: a called on this thread, then b on another, then a `a_calls` times
/// more on this thread (its last breaker), then c on another, which evicts the least
/// recently used breaker. A map search stamps a breaker as used; a call through the
/// thread's last breaker does not, but one in 64 touches it: which breaker c evicts shows
/// which of a's calls did.
fn a_then_b_then_a_then_c(a_calls: u32) -> Vec<String> {
    let layer = CircuitBreakerLayer::builder().max_keys(2).build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend(Arc::default()));
    let elsewhere = |host: &'static str| {
        let mut other = svc.clone();
        std::thread::spawn(move || runtime().block_on(send_to(&mut other, host)).unwrap())
            .join()
            .unwrap();
    };
    let here = runtime();
    here.block_on(send_to(&mut svc.clone(), "a")).unwrap();
    elsewhere("b");
    for _ in 0..a_calls {
        here.block_on(send_to(&mut svc.clone(), "a")).unwrap();
    }
    elsewhere("c");
    keys(&handle)
}

#[test]
fn a_breaker_called_through_the_threads_last_breaker_stays_recently_used() {
    // One of a's calls through the thread's last breaker stamps it: b is evicted.
    assert_eq!(a_then_b_then_a_then_c(65), ["http://a:80", "http://c:80"]);
}

#[test]
fn calls_through_the_threads_last_breaker_search_no_map() {
    // Three calls through the thread's last breaker stamp nothing: a is evicted.
    assert_eq!(a_then_b_then_a_then_c(3), ["http://b:80", "http://c:80"]);
}

/// A handle says whether its layer keeps a breaker per key, how many it tracks and at most,
/// and shows them; a breaker's handle shows its breaker.
#[tokio::test(start_paused = true)]
async fn a_handle_says_its_mode_and_its_keys() {
    let layer = CircuitBreakerLayer::builder().max_keys(8).build().unwrap();
    let handle = layer.handle();
    assert_eq!(
        (handle.per_host(), handle.is_empty(), handle.max_keys()),
        (true, true, 8)
    );
    let mut svc = layer.layer(backend(Arc::default()));
    send_to(&mut svc, "a").await.unwrap();
    assert_eq!((handle.is_empty(), handle.len()), (false, 1));
    let text = format!("{handle:?}");
    assert_shows(
        &text,
        &["CircuitBreakerHandle", "KeyedMap", "keys: 1", "max_keys: 8"],
    );
    let one = format!("{:?}", handle.get(&key("a")).unwrap());
    assert_shows(&one, &["BreakerHandle", "http://a:80", "Closed"]);
    let single = CircuitBreakerLayer::builder()
        .per_host(false)
        .build()
        .unwrap()
        .handle();
    assert_eq!((single.per_host(), single.max_keys()), (false, 1));
}
