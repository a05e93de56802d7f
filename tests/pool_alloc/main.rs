//! Heap allocations per call through the pool limit, counted exactly with a counting
//! global allocator: none on the uncontended path.

use bytes::Bytes;
use http_body_util::Full;
use std::{
    future::Future,
    io,
    pin::pin,
    task::{Context, Poll, Waker},
};
use tower::{Layer, Service};
use tower_fortify::pool::{AdaptiveLimit, PoolLimitBuilder, PoolLimitLayer};

use fortify_test_support::counting_alloc::{self, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

type Req = http::Request<()>;
type Res = http::Response<Full<Bytes>>;
type Mode = (&'static str, fn() -> PoolLimitBuilder);

fn request() -> Req {
    // A static URI: building the request allocates nothing, so only the layer is counted.
    let mut request = http::Request::new(());
    *request.uri_mut() = http::Uri::from_static("http://api.example.com/items");
    request
}

fn inner() -> impl Service<
    Req,
    Response = Res,
    Error = io::Error,
    Future = std::future::Ready<Result<Res, io::Error>>,
> + Clone {
    tower::service_fn(|_: Req| {
        std::future::ready(Ok(http::Response::new(Full::new(Bytes::from_static(
            b"body",
        )))))
    })
}

/// `n` calls, each response (and its permit) dropped: the successes and the allocations.
fn drive<S: Service<Req>>(svc: &mut S, n: u32) -> (u32, u64) {
    counting_alloc::drive(svc, n, |_| request())
}

/// One call whose response (and permit) the caller keeps.
fn first_call<S: Service<Req>>(svc: &mut S) -> S::Response {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(request()));
    let Poll::Ready(Ok(response)) = fut.as_mut().poll(&mut cx) else {
        panic!("the first call completes");
    };
    response
}

fn per_call(builder: PoolLimitBuilder) -> f64 {
    let layer = builder.build().unwrap();
    let mut svc = layer.layer(inner());
    drive(&mut svc, 10);
    let (ok, allocated) = drive(&mut svc, 10_000);
    assert_eq!(ok, 10_000);
    allocated as f64 / 10_000.0
}

#[test]
fn the_uncontended_path_allocates_nothing() {
    let modes: [Mode; 4] = [
        ("block", || PoolLimitLayer::builder(8).block(true)),
        ("block with pool_timeout", || {
            PoolLimitLayer::builder(8)
                .block(true)
                .pool_timeout(Some(std::time::Duration::from_secs(1)))
        }),
        ("block=False", || PoolLimitLayer::builder(8)),
        ("fail fast", || PoolLimitLayer::builder(8).fail_fast()),
    ];
    for (name, builder) in modes {
        assert_eq!(per_call(builder().per_host(false)), 0.0, "one pool, {name}");
        // Per host, once the host's pool exists: the lookup allocates nothing either.
        assert_eq!(per_call(builder()), 0.0, "per host, {name}");
    }
}

#[test]
fn per_host_keys_of_parsed_uris_allocate_nothing() {
    // A URI parsed from a string, as a client builds it: parsing allocates (outside what is
    // counted below); the key shares the URI's bytes.
    let parsed = || {
        let mut request = http::Request::new(());
        *request.uri_mut() = "http://api.example.com:8080/items?page=2".parse().unwrap();
        request
    };
    let layer = PoolLimitLayer::builder(8).block(true).build().unwrap();
    let mut svc = layer.layer(inner());
    for n in [10, 1000] {
        let mut batch = (0..n).map(|_| parsed()).collect::<Vec<_>>().into_iter();
        let (ok, allocated) = counting_alloc::drive(&mut svc, n, |_| batch.next().unwrap());
        assert_eq!(ok, n);
        if n == 1000 {
            assert_eq!(allocated, 0);
        }
    }
}

#[test]
fn a_server_request_allocates_nothing() {
    // A server's request: no authority in the URI, the host in a `Host` header. The key
    // does not read the header (it used to copy it, once per call).
    let server = || {
        let mut request = http::Request::new(());
        *request.uri_mut() = http::Uri::from_static("/items");
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("api.example.com"),
        );
        request
    };
    let layer = PoolLimitLayer::builder(8).fail_fast().build().unwrap();
    let mut svc = layer.layer(inner());
    for n in [10, 1000] {
        let mut batch = (0..n).map(|_| server()).collect::<Vec<_>>().into_iter();
        let (ok, allocated) = counting_alloc::drive(&mut svc, n, |_| batch.next().unwrap());
        assert_eq!(ok, n);
        if n == 1000 {
            assert_eq!(allocated, 0);
        }
    }
}

#[test]
fn overflowing_allocates_nothing_either() {
    // block=False at the limit: the extra call goes through without allocating.
    let layer = PoolLimitLayer::builder(1).per_host(false).build().unwrap();
    let mut svc = layer.layer(inner());
    let held = first_call(&mut svc);
    drive(&mut svc, 10);
    assert_eq!(drive(&mut svc, 1000), (1000, 0));
    assert_eq!(layer.handle().snapshot().total.overflowed, 1010);
    drop(held);
}

#[test]
fn an_adaptive_pool_allocates_nothing_even_when_its_limit_moves() {
    // Windows of a microsecond close every few calls: the samples, the window's close, and
    // (with 503s) the limit's fall and the parked permits, all without allocating.
    let adaptive = || AdaptiveLimit::gradient().window(std::time::Duration::from_micros(1));
    let modes: [Mode; 2] = [
        ("block", || PoolLimitLayer::builder(8).block(true)),
        ("fail fast", || PoolLimitLayer::builder(8).fail_fast()),
    ];
    for (name, builder) in modes {
        assert_eq!(
            per_call(builder().adaptive(adaptive())),
            0.0,
            "per host, {name}"
        );
        let one = builder().per_host(false).adaptive(adaptive());
        assert_eq!(per_call(one), 0.0, "one pool, {name}");
        let layer = builder().adaptive(adaptive()).build().unwrap();
        let mut svc = layer.layer(tower::service_fn(|_: Req| {
            let mut response = http::Response::new(Full::new(Bytes::from_static(b"busy")));
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            std::future::ready(Ok::<_, io::Error>(response))
        }));
        drive(&mut svc, 10);
        assert_eq!(drive(&mut svc, 1000), (1000, 0), "503s, {name}");
        assert_eq!(layer.handle().snapshot().total.limit, 1, "503s, {name}");
    }
}

#[test]
fn the_counter_sees_allocations() {
    // The checks above can fail: a rejected call allocates its error.
    let layer = PoolLimitLayer::builder(1)
        .fail_fast()
        .per_host(false)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner());
    let held = first_call(&mut svc);
    let (ok, allocated) = drive(&mut svc, 100);
    assert_eq!(ok, 0);
    assert!(allocated >= 100);
    drop(held);
}
