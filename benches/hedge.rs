//! What the hedge layer costs a call answered before its hedge delay: side by side with the
//! bare service, in the same run.
//!
//! The service answers at the first poll, as a call answered before its delay does as far
//! as the layer can tell: no clock is read and no slot taken among the calls waiting for
//! their delay (a call that is pending reads the clock once or twice and takes one). Each
//! call is driven by one poll with `Waker::noop()` and no runtime.
//!
//! - `bare`: the service alone;
//! - `hedge_cold`: a GET to a host with fewer than `min_samples` (1024) answers (no hedge
//!   possible: its latency recorded, no copy kept), until its 1024th answer: warm after;
//! - `hedge_warm`: a GET to a host with its delay (a copy of the request kept for the
//!   hedge, then dropped);
//! - `hedge_post`: a POST (never hedged: passed through);
//! - `retry_default`: the retry layer, which keeps the same copy, for scale.
//!
//! The group `hedge/paired` times `hedge_warm` against `bare`, a stack of retry and hedge
//! against the retry alone, and a real call answered before its delay: a hyper-util client
//! (keep-alive) to a hyper server on 127.0.0.1, with and without the hedge layer (warmed:
//! its delay is the 10 ms floor, the loopback answers in microseconds), and the preset
//! with `ClientConfig::hedge` against the preset without, over the same client (and, for
//! scale, [`Floor`] with its `sleep` against the bare client: a hedge's two duties written
//! plainly, the least any hedge adds to such a call; and [`Floor`] without it: the request
//! copy alone, which any hedge and any retry keeps; and, first, a control: two bare
//! clients, which must come out at 1.000); one request at a time on a current-thread runtime; there a call reads the clock when first
//! pending (and again when it answers, if timed: one call in two), and waits in the
//! layer's table of pending calls (the runtime's timer holds the layer's one deadline
//! meanwhile). Each pair is timed in alternating batches (`support/paired.rs`); the
//! summary prints their ratios.
//!
//! For instruction counts (repeatable on a loaded machine), `FORTIFY_BENCH_CALLS=n` with
//! `FORTIFY_BENCH_ONLY=name` runs `n` calls of one variant without criterion (`bare`,
//! `hedge_warm`, ... or `loopback_hedge` / `loopback_bare`, or the preset without and with
//! `ClientConfig::hedge`: `loopback_preset` / `loopback_preset_hedged`; the counted loopback's floor
//! is 500 ms, not 10 ms, as a call runs about fifty times slower there): run it under
//! `valgrind --tool=callgrind` with two values of `n`, and divide the difference of the
//! totals by the difference of the calls. With `FORTIFY_BENCH_TIMER=1`, the loopback
//! runtime also holds a timer of its own (an hour's sleep), as an application's usually
//! does: the bare client's runtime then parks with a timer armed too, which a runtime with
//! no timer but the hedge layer's does not (about two fifths of the layer's cost there).
//!
//! # What a call answered before its delay costs, and what any hedge must pay
//!
//! Counted over the loopback with an application timer (`FORTIFY_BENCH_TIMER=1`), the
//! layer adds about 1,300 instructions per call to the bare client's 37,300, in these
//! parts (callgrind, each function's own instructions, `loopback_hedge` less
//! `loopback_bare`):
//!
//! - the request copy and its drop, and the reference to the service hedges are cloned
//!   from: about 210 (the URI's two shared buffers counted up and down; a request with
//!   header fields adds an allocation for them and two counts per field);
//! - the hedge's timer: a slot among the layer's waiting calls, taken when first pending
//!   and given back at the answer, with the task's waker: about 185;
//! - the clock: read when first pending (for the deadline) and, one call in two, at the
//!   answer (its latency): about 150, the reads themselves about 60 (the vDSO's
//!   `clock_gettime`, and tokio's check for a paused clock, which takes no lock while no
//!   clock in the process was ever paused), std's `Instant` arithmetic turning each into
//!   nanoseconds since the process's base about 90;
//! - the host's slot (the thread's last host, compared byte for byte): about 90;
//! - moves of the 256-byte future (two in `call`, one of the response, two in the
//!   caller): about 120;
//! - the rest of `call` and `poll` (the decisions, the draw, the latency record, the
//!   deadline's arithmetic, the reference to the layer): about 550.
//!
//! Without any other timer in the runtime (the default counted run), add about 980: the
//! runtime's own cost of parking with a timer armed (its timer wheel and three more clock
//! reads per call), which the layer's one timer (the ticker's) brings and any hedge must:
//! a hedge's deadline has to be on a timer.
//!
//! For scale, `loopback_copy_sleep` counts a hedge's two duties written plainly
//! ([`Floor`]: the request's parts copied, a tokio `sleep` armed when first pending,
//! nothing else): about 1,640 with an application timer, 2,570 without, more than the
//! whole layer, whose calls share one timer instead of each entering tokio's wheel.
//! `loopback_copy` counts the copy alone.
//!
//! Run with `cargo bench --bench hedge`.

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{header, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    convert::Infallible,
    hint::black_box,
    io,
    time::{Duration, SystemTime},
};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    hedge::{Hedge, HedgeLayer},
    retry::RetryLayer,
    stack::{ClientConfig, ClientStack, Hedged},
};

#[path = "support/calls.rs"]
mod calls;
// Only its `main` helper: the ratios here come from `paired`, not criterion's estimates.
#[allow(dead_code)]
#[path = "support/estimates.rs"]
mod estimates;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/paired.rs"]
mod paired;

use calls::{call_once, caller, ok_service, Req};
use floor::Floor;
use paired::paired;

const URI: &str = "https://api.example.com/v1/items?page=2";

/// The loopback's hedge delay: the default floor (the loopback answers in microseconds).
const FLOOR: Duration = Duration::from_millis(10);
/// How much slower a call runs under callgrind: the counted loopback's floor is this many
/// times `FLOOR`, so that the layer's timer task wakes (and a slow call is hedged) about
/// as often per call as in a native run, not fifty times as often.
const COUNTED_SLOWDOWN: u32 = 50;

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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("hedge/success");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, mut call) in in_process() {
        group.bench_function(name, |b| b.iter(&mut call));
    }
    group.finish();
}

/// One call of a variant, on its own service.
type Call = Box<dyn FnMut()>;

/// The variants of `hedge/success`: each a call closure over its own service, with a copy
/// of the request made in the closure (in every variant alike, the bare one included, so
/// that it cancels out of the differences).
fn in_process() -> Vec<(&'static str, Call)> {
    let get = || request(Method::GET);
    let retry = RetryLayer::builder().build().unwrap().layer(ok_service());
    vec![
        ("bare", Box::new(caller(ok_service(), get()))),
        ("hedge_cold", Box::new(caller(hedged(false), get()))),
        ("hedge_warm", Box::new(caller(hedged(true), get()))),
        (
            "hedge_post",
            Box::new(caller(hedged(true), request(Method::POST))),
        ),
        ("retry_default", Box::new(caller(retry, get()))),
    ]
}

/// The comparisons, each pair timed in alternating batches, its ratio printed in the
/// summary (see `support/paired.rs`).
fn bench_paired(c: &mut Criterion) {
    let mut group = c.benchmark_group("hedge/paired");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let get = || request(Method::GET);
    paired(
        &mut group,
        "hedge_warm_vs_bare",
        caller(hedged(true), get()),
        caller(ok_service(), get()),
    );
    let retry = || RetryLayer::builder().build().unwrap();
    paired(
        &mut group,
        "retry_hedge_vs_retry",
        caller(retry().layer(hedge_layer(true).layer(ok_service())), get()),
        caller(retry().layer(ok_service()), get()),
    );
    let loopback = Loopback::start();
    // Two bare clients (each with its own connection): must come out at 1.000, or the
    // harness favours one side; the other loopback ratios are read against its spread.
    let (mut one, mut other) = (loopback.bare(), loopback.bare());
    paired(
        &mut group,
        "loopback_control_bare_vs_bare",
        || loopback.call(&mut one),
        || loopback.call(&mut other),
    );
    let (mut with_hedge, mut bare) = (loopback.hedged(FLOOR), loopback.bare());
    paired(
        &mut group,
        "loopback_hedge_vs_bare",
        || loopback.call(&mut with_hedge),
        || loopback.call(&mut bare),
    );
    // For scale: a hedge's two duties written plainly (the request copied, a tokio `sleep`
    // armed when first pending), the least any hedge does for such a call.
    let (mut floor, mut bare) = (loopback.floor(Some(FLOOR)), loopback.bare());
    paired(
        &mut group,
        "loopback_copy_sleep_vs_bare",
        || loopback.call(&mut floor),
        || loopback.call(&mut bare),
    );
    // The first of the two alone: the copy that any hedge (and any retry) keeps of a request
    // until its answer, without a timer.
    let (mut copy, mut bare) = (loopback.floor(None), loopback.bare());
    paired(
        &mut group,
        "loopback_copy_vs_bare",
        || loopback.call(&mut copy),
        || loopback.call(&mut bare),
    );
    let (mut hedged, mut preset) = (loopback.preset_hedged(FLOOR), loopback.preset());
    paired(
        &mut group,
        "loopback_preset_hedged_vs_preset",
        || loopback.call(&mut hedged),
        || loopback.call(&mut preset),
    );
    group.finish();
}

/// A hyper server on 127.0.0.1 and a current-thread runtime that serves it and drives the
/// client's calls.
struct Loopback {
    rt: tokio::runtime::Runtime,
    uri: Uri,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

impl Loopback {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = rt.block_on(fortify_test_support::servers::serve_http(
            hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }),
        ));
        let uri = format!("http://{addr}/").parse().unwrap();
        if std::env::var_os("FORTIFY_BENCH_TIMER").is_some() {
            // A timer the runtime holds anyway, as most applications' runtimes do (an
            // interval, a pool's idle timer, a per-attempt timeout): parking then costs the
            // same with the hedge layer's timer or without it.
            rt.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
        }
        Loopback { rt, uri }
    }

    /// The client alone (keep-alive), its connection made.
    fn bare(&self) -> HttpClient {
        let mut client = Client::builder(TokioExecutor::new()).build_http();
        self.call(&mut client);
        client
    }

    /// The hedge layer around the client, warmed: its delay is the floor `min_delay`.
    fn hedged(&self, min_delay: Duration) -> Hedge<HttpClient> {
        let layer = HedgeLayer::builder()
            .min_samples(10)
            .min_delay(min_delay)
            .build()
            .unwrap();
        let mut svc = layer.layer(Client::builder(TokioExecutor::new()).build_http());
        for _ in 0..10 {
            self.call(&mut svc);
        }
        assert!(layer.hedge_delay(&self.uri).is_some());
        svc
    }

    /// The preset (`ClientConfig::default()`) around the client, its connection made.
    fn preset(&self) -> ClientStack<HttpClient> {
        let mut svc = ClientConfig::default()
            .build()
            .unwrap()
            .layer(Client::builder(TokioExecutor::new()).build_http());
        self.call(&mut svc);
        svc
    }

    /// The preset with `ClientConfig::hedge` around the client, warmed: its hedge delay is
    /// the floor `min_delay`.
    fn preset_hedged(&self, min_delay: Duration) -> ClientStack<HttpClient, Hedged> {
        let layer = ClientConfig::default()
            .hedge(HedgeLayer::builder().min_samples(10).min_delay(min_delay))
            .build()
            .unwrap();
        let mut svc = layer.layer(Client::builder(TokioExecutor::new()).build_http());
        for _ in 0..10 {
            self.call(&mut svc);
        }
        assert!(layer.hedge().hedge_delay(&self.uri).is_some());
        svc
    }

    /// The client under [`Floor`], its connection made.
    fn floor(&self, sleep: Option<Duration>) -> Floor<HttpClient> {
        let mut svc = Floor {
            inner: Client::builder(TokioExecutor::new()).build_http(),
            sleep,
        };
        self.call(&mut svc);
        svc
    }

    /// One GET through `svc`, its body read to the end.
    fn call<S, B>(&self, svc: &mut S)
    where
        S: Service<Req, Response = Response<B>>,
        S::Error: std::fmt::Debug,
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        self.rt.block_on(async {
            let request = Request::get(self.uri.clone())
                .body(Full::new(Bytes::from_static(b"")))
                .unwrap();
            let response = svc.ready().await.unwrap().call(request).await.unwrap();
            black_box(response.into_body().collect().await.unwrap());
        })
    }
}

/// `FORTIFY_BENCH_CALLS=n FORTIFY_BENCH_ONLY=name`: `n` calls of one variant without
/// criterion, for callgrind: one of `in_process`'s names, or `loopback_hedge` /
/// `loopback_bare`, or the preset over the same client without and with hedging
/// (`loopback_preset` / `loopback_preset_hedged`), or the client under [`Floor`]
/// (`loopback_copy`: the request copy alone; `loopback_copy_sleep`: and a tokio `sleep`
/// per call). Run it with two values of `n` and divide the difference of the totals
/// by the difference of the calls.
fn counted(calls: &str) {
    let calls: u64 = calls.parse().expect("FORTIFY_BENCH_CALLS is a number");
    let only = std::env::var("FORTIFY_BENCH_ONLY").unwrap_or_default();
    if let Some(side) = only.strip_prefix("loopback_") {
        let loopback = Loopback::start();
        let mut call: Call = match side {
            "hedge" => {
                let mut svc = loopback.hedged(FLOOR * COUNTED_SLOWDOWN);
                Box::new(move || loopback.call(&mut svc))
            }
            "bare" => {
                let mut svc = loopback.bare();
                Box::new(move || loopback.call(&mut svc))
            }
            "preset" => {
                let mut svc = loopback.preset();
                Box::new(move || loopback.call(&mut svc))
            }
            "preset_hedged" => {
                let mut svc = loopback.preset_hedged(FLOOR * COUNTED_SLOWDOWN);
                Box::new(move || loopback.call(&mut svc))
            }
            "copy" => {
                let mut svc = loopback.floor(None);
                Box::new(move || loopback.call(&mut svc))
            }
            "copy_sleep" => {
                let mut svc = loopback.floor(Some(FLOOR * COUNTED_SLOWDOWN));
                Box::new(move || loopback.call(&mut svc))
            }
            _ => panic!(
                "FORTIFY_BENCH_ONLY={only}: loopback_hedge, loopback_bare, loopback_preset, \
                 loopback_preset_hedged, loopback_copy or loopback_copy_sleep"
            ),
        };
        (0..calls).for_each(|_| call());
        return;
    }
    let (_, mut call) = in_process()
        .into_iter()
        .find(|(name, _)| *name == only)
        .unwrap_or_else(|| panic!("FORTIFY_BENCH_ONLY={only}: no such variant"));
    (0..calls).for_each(|_| call());
}

/// The ratios of the paired group.
fn summary(_since: SystemTime) {
    paired::print_ratios();
}

criterion_group!(benches, bench, bench_paired);

fn main() {
    match std::env::var("FORTIFY_BENCH_CALLS") {
        Ok(calls) => counted(&calls),
        Err(_) => estimates::main_with_summary(benches, summary),
    }
}
