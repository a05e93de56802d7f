//! Overhead of `ErrorClassify` per call, side by side with the bare service and with
//! tower's `MapErr` boxing the error (what a stack without classification does).
//!
//! Run with `cargo bench --bench classify`; criterion prints ns per call for each, the
//! ratios are read off the same run.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::{
    future::Future,
    hint::black_box,
    io,
    pin::pin,
    task::{Context, Poll, Waker},
};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{classify::ErrorClassifyLayer, BoxError};

fn call_once<S: Service<u32>>(svc: &mut S, req: u32) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let _ = svc.poll_ready(&mut cx);
    let fut = pin!(svc.call(req));
    matches!(fut.poll(&mut cx), Poll::Ready(Ok(_)))
}

fn ok_service() -> impl Service<u32, Response = u32, Error = io::Error> + Clone {
    tower::service_fn(|x: u32| std::future::ready(Ok::<_, io::Error>(x)))
}

fn err_service() -> impl Service<u32, Response = u32, Error = io::Error> + Clone {
    tower::service_fn(|_: u32| {
        // A chain like hyper-util's: io::Error wrapping a timeout.
        std::future::ready(Err::<u32, _>(io::Error::new(
            io::ErrorKind::TimedOut,
            tower::timeout::error::Elapsed::new(),
        )))
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify/success");
    group.bench_function("bare", |b| {
        let mut svc = ok_service();
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    group.bench_function("tower_map_err_boxed", |b| {
        let mut svc = ok_service().map_err(BoxError::from);
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    group.bench_function("error_classify", |b| {
        let mut svc = ErrorClassifyLayer::new().layer(ok_service());
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    group.finish();

    let mut group = c.benchmark_group("classify/error");
    group.bench_function("tower_map_err_boxed", |b| {
        let mut svc = err_service().map_err(BoxError::from);
        b.iter_batched(
            || (),
            |()| call_once(&mut svc, black_box(1)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("error_classify", |b| {
        let mut svc = ErrorClassifyLayer::new().layer(err_service());
        b.iter_batched(
            || (),
            |()| call_once(&mut svc, black_box(1)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
