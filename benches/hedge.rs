//! What the hedge layer costs a call answered before its hedge delay: side by side with the
//! bare service, in the same run.
//!
//! The service answers at the first poll, as a call answered before its delay does as far
//! as the layer can tell: no clock is read and no timer armed for it (a call that is
//! pending first reads the clock twice and arms tokio's timer, as a timeout does). Each
//! call is driven by one poll with `Waker::noop()` and no runtime.
//!
//! - `bare`: the service alone;
//! - `hedge_cold`: a GET to a host with fewer than `min_samples` answers (no hedge possible:
//!   its latency recorded, no copy kept);
//! - `hedge_warm`: a GET to a host with its delay (a copy of the request kept for the
//!   hedge, then dropped);
//! - `hedge_post`: a POST (never hedged: passed through);
//! - `retry_default`: the retry layer, which keeps the same copy, for scale.
//!
//! The group `hedge/paired` times `hedge_warm` against `bare`, a stack of retry and hedge
//! against the retry alone, and a real call answered before its delay: a hyper-util client
//! (keep-alive) to a hyper server on 127.0.0.1, with and without the hedge layer (warmed:
//! its delay is the 10 ms floor, the loopback answers in microseconds), one request at a
//! time on a current-thread runtime; there the layer also reads the clock twice and arms
//! its timer. Each pair is timed in alternating batches (`support/paired.rs`); the summary
//! prints their ratios.
//!
//! Run with `cargo bench --bench hedge`.

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{header, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    convert::Infallible,
    future::{ready, Future},
    hint::black_box,
    io,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, SystemTime},
};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    hedge::{Hedge, HedgeLayer},
    retry::RetryLayer,
};

// Only its `main` helper: the ratios here come from `paired`, not criterion's estimates.
#[allow(dead_code)]
#[path = "support/estimates.rs"]
mod estimates;
#[path = "support/paired.rs"]
mod paired;

use paired::paired;

type Req = Request<Full<Bytes>>;

const URI: &str = "https://api.example.com/v1/items?page=2";

/// One call: `poll_ready`, `call`, one poll of the future; `true` on `Ready(Ok)`.
fn call_once<S: Service<Req, Response = Response<()>>>(svc: &mut S, req: Req) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let fut = pin!(svc.call(req));
    matches!(fut.poll(&mut cx), Poll::Ready(Ok(_)))
}

fn ok_service(
) -> impl Service<Req, Response = Response<()>, Error = io::Error, Future: Send> + Clone + Send + 'static
{
    tower::service_fn(|_: Req| ready(Ok::<_, io::Error>(Response::new(()))))
}

/// A request a client would send.
fn request(method: Method) -> Req {
    Request::builder()
        .method(method)
        .uri(URI)
        .header(header::HOST, "api.example.com")
        .header(header::USER_AGENT, "tower-fortify-bench/0.1")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from_static(b"")))
        .expect("a valid request")
}

/// A hedge layer whose host has its delay (`warm`) or not.
fn hedge_layer(warm: bool) -> HedgeLayer {
    let layer = HedgeLayer::builder()
        .min_samples(if warm { 10 } else { 1024 })
        .build()
        .unwrap();
    let mut svc = layer.layer(ok_service());
    for _ in 0..10 {
        assert!(call_once(&mut svc, request(Method::GET)));
    }
    let delay = layer.hedge_delay(&Uri::from_static(URI));
    assert_eq!(delay.is_some(), warm);
    layer
}

fn hedged(
    warm: bool,
) -> Hedge<impl Service<Req, Response = Response<()>, Error = io::Error> + Clone> {
    hedge_layer(warm).layer(ok_service())
}

/// Registers `name`: calls of `svc` with a copy of `req` made in the loop (in every
/// variant alike, the bare one included, so it cancels out of the differences).
fn bench_one<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
    req: Req,
) where
    S: Service<Req, Response = Response<()>>,
{
    assert!(call_once(&mut svc, req.clone()));
    group.bench_function(name, |b| {
        b.iter(|| call_once(&mut svc, black_box(&req).clone()))
    });
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("hedge/success");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let get = request(Method::GET);
    bench_one(&mut group, "bare", ok_service(), get.clone());
    bench_one(&mut group, "hedge_cold", hedged(false), get.clone());
    bench_one(&mut group, "hedge_warm", hedged(true), get.clone());
    bench_one(
        &mut group,
        "hedge_post",
        hedged(true),
        request(Method::POST),
    );
    let retry = RetryLayer::builder().build().unwrap().layer(ok_service());
    bench_one(&mut group, "retry_default", retry, get);
    group.finish();
}

/// A call closure over its own service, for the paired group.
fn caller<S>(mut svc: S) -> impl FnMut()
where
    S: Service<Req, Response = Response<()>>,
{
    let req = request(Method::GET);
    assert!(call_once(&mut svc, req.clone()));
    move || {
        black_box(call_once(&mut svc, black_box(&req).clone()));
    }
}

/// The comparisons, each pair timed in alternating batches, its ratio printed in the
/// summary (see `support/paired.rs`).
fn bench_paired(c: &mut Criterion) {
    let mut group = c.benchmark_group("hedge/paired");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    paired(
        &mut group,
        "hedge_warm_vs_bare",
        caller(hedged(true)),
        caller(ok_service()),
    );
    let retry = || RetryLayer::builder().build().unwrap();
    paired(
        &mut group,
        "retry_hedge_vs_retry",
        caller(retry().layer(hedge_layer(true).layer(ok_service()))),
        caller(retry().layer(ok_service())),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(fortify_test_support::servers::serve_http(
        hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }),
    ));
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    let client = || Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let hedged = HedgeLayer::builder().min_samples(10).build().unwrap();
    let mut with_hedge = hedged.layer(client());
    for _ in 0..10 {
        rt.block_on(loopback_call(&mut with_hedge, &uri));
    }
    assert!(hedged.hedge_delay(&uri).is_some());
    let mut bare = client();
    paired(
        &mut group,
        "loopback_hedge_vs_bare",
        || rt.block_on(loopback_call(&mut with_hedge, &uri)),
        || rt.block_on(loopback_call(&mut bare, &uri)),
    );
    group.finish();
}

/// One GET to `uri` through `svc`, its body read to the end.
async fn loopback_call<S, B>(svc: &mut S, uri: &Uri)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::get(uri.clone())
        .body(Full::new(Bytes::from_static(b"")))
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    black_box(response.into_body().collect().await.unwrap());
}

/// The ratios of the paired group.
fn summary(_since: SystemTime) {
    paired::print_ratios();
}

criterion_group!(benches, bench, bench_paired);

fn main() {
    estimates::main_with_summary(benches, summary);
}
