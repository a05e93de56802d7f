//! Closed-path overhead of `tower_fortify::circuit_breaker` per call, side by side with the
//! bare service and tower-resilience's circuit breaker (count-based window of 100, its
//! default), single-threaded and with two threads sharing one breaker.
//!
//! Every call is `poll_ready`, `call` and one poll of the response future with
//! `Waker::noop()`, outside any runtime: all the futures here (tower-resilience's boxed one
//! included: its async mutex is uncontended or, with two threads, briefly contended and then
//! re-polled) are ready at their first poll or after a few, so the figures hold no executor.
//! The request is built from a URI parsed once, which allocates nothing, for every variant
//! alike.
//!
//! `closed/1_thread/*`: ns per call. `closed/2_threads/*`: two threads, each with a clone of
//! one service (one breaker), making half of the calls: ns per call of their combined
//! throughput, so `1_thread / 2_threads` is the speed-up (2.0 is perfect scaling).
//!
//! Run with `cargo bench --bench circuit_breaker`; the overhead of a breaker is its figure
//! minus `bare`, read off the same run.

use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response, Uri};
use std::{
    future::{ready, Future},
    hint::black_box,
    io,
    pin::pin,
    sync::{Arc, Barrier, OnceLock},
    task::{Context, Poll, Waker},
    thread,
    time::{Duration, Instant},
};
use tower::{Layer, Service};
use tower_fortify::circuit_breaker::{
    CircuitBreakerLayer, GenericCircuitBreakerLayer, State, Window,
};

type Req = Request<()>;

fn request() -> Req {
    // Parsed once: `Uri::from_static` parses on every call. A clone of a URI made of static
    // bytes copies pointers.
    static URI: OnceLock<Uri> = OnceLock::new();
    let mut request = Request::new(());
    *request.uri_mut() = URI
        .get_or_init(|| Uri::from_static("http://api.example.com/v1/items"))
        .clone();
    request
}

/// One call: `poll_ready`, `call`, the response future polled until ready.
fn call_once<S: Service<Req, Response = Response<()>>>(svc: &mut S, req: Req) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = pin!(svc.call(req));
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(result) => return result.is_ok(),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
}

fn ok_service(
) -> impl Service<Req, Response = Response<()>, Error = io::Error, Future: Send> + Clone + Send + 'static
{
    tower::service_fn(|_: Req| ready(Ok::<_, io::Error>(Response::new(()))))
}

/// `iters` calls shared by two threads, each with its own clone of `svc`: the wall time.
fn two_threads<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<Req, Response = Response<()>> + Clone + Send + 'static,
{
    let start = Arc::new(Barrier::new(3));
    let workers: Vec<_> = [iters / 2, iters - iters / 2]
        .into_iter()
        .map(|n| {
            let mut svc = svc.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                // A first call outside the timing (this thread's lane, warm caches).
                assert!(call_once(&mut svc, request()));
                start.wait();
                for _ in 0..n {
                    black_box(call_once(&mut svc, black_box(request())));
                }
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    for worker in workers {
        worker.join().expect("a bench thread panicked");
    }
    started.elapsed()
}

fn resilience_layer() -> tower_resilience::circuitbreaker::CircuitBreakerLayer {
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .expect("valid defaults")
}

fn time_window_layer() -> GenericCircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .window(Window::Time(Duration::from_secs(10)))
        .build_generic()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("closed/1_thread");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("bare", |b| {
        let mut svc = ok_service();
        b.iter(|| call_once(&mut svc, black_box(request())))
    });
    group.bench_function("tower_resilience", |b| {
        let mut svc = resilience_layer().layer(ok_service());
        assert!(call_once(&mut svc, request()));
        b.iter(|| call_once(&mut svc, black_box(request())))
    });
    group.bench_function("fortify_count", |b| {
        let layer = GenericCircuitBreakerLayer::new();
        let mut svc = layer.layer(ok_service());
        assert!(call_once(&mut svc, request()));
        b.iter(|| call_once(&mut svc, black_box(request())));
        assert_eq!(layer.handle().state(), State::Closed);
    });
    group.bench_function("fortify_time", |b| {
        let mut svc = time_window_layer().layer(ok_service());
        assert!(call_once(&mut svc, request()));
        b.iter(|| call_once(&mut svc, black_box(request())))
    });
    group.bench_function("fortify_slow_calls", |b| {
        let layer = CircuitBreakerLayer::builder()
            .slow_call_duration(Duration::from_secs(1))
            .build_generic()
            .unwrap();
        let mut svc = layer.layer(ok_service());
        assert!(call_once(&mut svc, request()));
        b.iter(|| call_once(&mut svc, black_box(request())))
    });
    group.bench_function("fortify_keyed", |b| {
        let layer = CircuitBreakerLayer::builder().build().unwrap();
        let mut svc = layer.layer(ok_service());
        assert!(call_once(&mut svc, request()));
        b.iter(|| call_once(&mut svc, black_box(request())));
        assert_eq!(layer.handle().len(), 1);
    });
    group.finish();

    let mut group = c.benchmark_group("closed/2_threads");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("bare", |b| {
        let svc = ok_service();
        b.iter_custom(|iters| two_threads(&svc, iters))
    });
    group.bench_function("tower_resilience", |b| {
        let svc = resilience_layer().layer(ok_service());
        b.iter_custom(|iters| two_threads(&svc, iters))
    });
    group.bench_function("fortify_count", |b| {
        let svc = GenericCircuitBreakerLayer::new().layer(ok_service());
        b.iter_custom(|iters| two_threads(&svc, iters))
    });
    group.bench_function("fortify_time", |b| {
        let svc = time_window_layer().layer(ok_service());
        b.iter_custom(|iters| two_threads(&svc, iters))
    });
    group.bench_function("fortify_keyed", |b| {
        let svc = CircuitBreakerLayer::builder()
            .build()
            .unwrap()
            .layer(ok_service());
        b.iter_custom(|iters| two_threads(&svc, iters))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Fewer bootstrap resamples than the default 100 000: the analysis of 11 benchmarks
    // would otherwise take longer than their measurement.
    config = Criterion::default().nresamples(10_000);
    targets = bench
}
criterion_main!(benches);
