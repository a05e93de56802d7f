//! The chaos suite: the preset client stack ([`ClientConfig`] around hyper-util's legacy
//! `Client` with `HttpConnector::new_with_resolver(backend.resolver())`) against the
//! fault-injecting loopback backend of `fortify_test_support::flaky` (real refused connects,
//! real RSTs after the request head was read, 503s, slow answers, total outages).
//!
//! | test | scenario | bounds asserted |
//! |---|---|---|
//! | [`transient_faults_are_absorbed`] | 3% transient connection failures, 6 000 GETs and keyed POSTs | stack failure rate <= 0.02% (at most 1 failure); injected faults 1.5%..4.5% of connection attempts; a bare client fails > 1% |
//! | [`unkeyed_posts_are_never_sent_twice`] | unkeyed POSTs (and keyed ones as a control) under 5% refusals, 5% resets, 5% 503s | no unkeyed POST arrives twice; unkeyed failures are all read-category (`ConnectionClosed` = one per reset); every refusal retried, some retried POSTs succeed; keyed POSTs retried after resets; the calls' retry histories hold every retry the metrics counted |
//! | [`outage_is_bounded_by_budget_and_breaker`] | every request 503 | budget alone: backend load <= issued + 20% + reserve; breaker opens once, then >= 99% of calls fail with `CircuitOpen` and the backend sees no new request |
//! | [`breaker_closes_after_the_outage`] | outage, then healthy again | within 5 s of the outage's end a window of 200 consecutive calls succeeds >= 99%, and the breaker is closed |
//! | [`every_permit_and_probe_comes_back`] | all faults, slow answers past the attempt timeout, a small pool, cancelled calls, dropped bodies, an outage with probes | pool `in_use == 0`, `waiting == 0`, every breaker's `probes_in_flight() == 0` |
//!
//! Every test also ends with the last check. Real sockets mean real time: the tests run on
//! a multi-thread runtime, each with its own backend and stack, at most 32 calls in flight.
//! Assertions are on counts and rates, never on speed; the only time bound is scenario 4's
//! recovery window, which the issue asks for.

use fortify_test_support::{flaky, recorded};

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    ops::Range,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use flaky::{BackendStats, Faults, FlakyBackend, FlakyResolver, Outage, HOST};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{Layer, ServiceExt};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerLayer, State, Window},
    classify::{Category, Failure, FailureKind},
    retry::{
        error::RetryError, Idempotent, RetryBudget, RetryCause, RetryHistory, RetryPolicy, Stop,
    },
    stack::{ClientConfig, ClientStack, ClientStackLayer},
    BoxError,
};

type Body = Full<Bytes>;
type Hyper = Client<HttpConnector<FlakyResolver>, Body>;
type Stack = ClientStack<Hyper>;

/// Calls in flight per test (the tests of this binary run in parallel).
const CONCURRENCY: usize = 32;
/// The stack's `name` (metrics label).
const NAME: &str = "chaos";

// ===== the client =====

/// A stack under test, with the layer (for its handles) and its metrics.
struct Harness {
    layer: ClientStackLayer,
    stack: Stack,
    metrics: Metrics,
}

/// The configuration every test starts from: the defaults, with a loopback-sized connect
/// timeout.
fn config() -> ClientConfig {
    ClientConfig::default()
        .name(NAME)
        .connect_timeout(Duration::from_secs(1))
}

/// hyper-util's legacy client over the backend's resolver, with the config's connect
/// timeout. No idle connections are kept: the backend closes each one after its answer.
fn hyper_client(backend: &FlakyBackend, config: &ClientConfig) -> Hyper {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(backend.connector(config.build().expect("valid config").connect_timeout()))
}

fn harness(backend: &FlakyBackend, config: ClientConfig) -> Harness {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The layers register their metric handles when they are built.
    let layer = metrics::with_local_recorder(&recorder, || config.build()).expect("valid config");
    let stack = layer.layer(hyper_client(backend, &config));
    Harness {
        layer,
        stack,
        metrics: Metrics::new(snapshotter),
    }
}

/// A metric's name and sorted labels.
type MetricKey = (String, recorded::Labels);

/// Counter totals of one stack's metrics (the debugging snapshot drains counters, so they
/// are summed here).
struct Metrics {
    snapshotter: Snapshotter,
    totals: Mutex<HashMap<MetricKey, u64>>,
}

impl Metrics {
    fn new(snapshotter: Snapshotter) -> Self {
        Metrics {
            snapshotter,
            totals: Mutex::new(HashMap::new()),
        }
    }

    /// The sum of the counters named `name` whose labels include `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut totals = self.totals.lock().unwrap();
        for (metric, mut l, value) in recorded::snapshot(&self.snapshotter) {
            if let DebugValue::Counter(v) = value {
                l.sort();
                *totals.entry((metric, l)).or_default() += v;
            }
        }
        totals
            .iter()
            .filter(|((n, l), _)| n == name && recorded::has_labels(l, labels))
            .map(|(_, v)| *v)
            .sum()
    }

    fn transitions(&self, from: State, to: State) -> u64 {
        self.counter(
            "fortify_circuit_transitions_total",
            &[("from", from.as_str()), ("to", to.as_str())],
        )
    }
}

// ===== the workload =====

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Get,
    KeyedPost,
    Post,
}

/// One logical request and what to do with it.
struct Call {
    op: Op,
    id: u64,
    /// Drop the response without reading its body.
    drop_body: bool,
    /// Drop the whole call (cancel it) if it has not finished after this long.
    cancel_after: Option<Duration>,
}

impl Call {
    fn new(op: Op, id: u64) -> Self {
        Call {
            op,
            id,
            drop_body: false,
            cancel_after: None,
        }
    }
}

/// The request of `op` number `id`: `x-request-id` on every request, `idempotency-key` and
/// the [`Idempotent`] marker on keyed POSTs.
fn request(backend: &FlakyBackend, op: Op, id: u64) -> http::Request<Body> {
    let (method, path, body) = match op {
        Op::Get => (http::Method::GET, format!("/item/{id}"), Bytes::new()),
        Op::KeyedPost | Op::Post => (
            http::Method::POST,
            "/orders".to_owned(),
            Bytes::from(format!("{{\"order\":{id}}}")),
        ),
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(backend.uri(&path))
        .header(flaky::REQUEST_ID, id.to_string());
    if op == Op::KeyedPost {
        builder = builder.header(flaky::IDEMPOTENCY_KEY, id.to_string());
    }
    let mut request = builder.body(Full::new(body)).expect("a valid request");
    if op == Op::KeyedPost {
        request.extensions_mut().insert(Idempotent);
    }
    request
}

/// How a call ended.
#[derive(Debug, Clone)]
enum End {
    /// A response, whose body was read to its end (or dropped, when asked).
    Response(StatusCode),
    /// An error of the stack, or of the response body.
    Failed {
        kind: Option<FailureKind>,
        /// The status of a `RetryError` that ran out of status retries.
        status: Option<StatusCode>,
        message: String,
    },
    /// Dropped by the caller before it ended.
    Cancelled,
}

#[derive(Debug, Clone)]
struct Outcome {
    op: Op,
    id: u64,
    end: End,
    /// What each retry was made after (from the `RetryHistory`).
    retries: Vec<RetryCause>,
    stop: Option<Stop>,
    started: Instant,
    finished: Instant,
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self.end, End::Response(status) if status.is_success())
    }

    fn status(&self) -> Option<StatusCode> {
        match self.end {
            End::Response(status) => Some(status),
            _ => None,
        }
    }

    fn kind(&self) -> Option<FailureKind> {
        match self.end {
            End::Failed { kind, .. } => kind,
            _ => None,
        }
    }

    fn failed(&self) -> bool {
        matches!(self.end, End::Failed { .. })
    }

    fn retried_after(&self, kind: FailureKind) -> usize {
        self.retries
            .iter()
            .filter(|c| c.failure_kind() == Some(kind))
            .count()
    }

    /// A short label for tallies: `201`, `failed:connection_closed`, `cancelled`, ...
    fn label(&self) -> String {
        match &self.end {
            End::Response(status) => status.as_str().to_owned(),
            End::Failed { kind, status, .. } => match (kind, status) {
                (Some(kind), _) => format!("failed:{}", kind.as_str()),
                (None, Some(status)) => format!("failed:status_{}", status.as_str()),
                (None, None) => "failed:unclassified".to_owned(),
            },
            End::Cancelled => "cancelled".to_owned(),
        }
    }
}

/// The kind, status and history of a stack error: a `RetryError` (inside the stack's
/// `Failure`) whenever a retry was made, or a `Failure` never retried (no history).
fn describe(
    err: &BoxError,
) -> (
    Option<FailureKind>,
    Option<StatusCode>,
    Option<RetryHistory>,
) {
    let retry = err.downcast_ref::<RetryError>().or_else(|| {
        err.downcast_ref::<Failure>()
            .and_then(|f| f.get_ref().downcast_ref::<RetryError>())
    });
    if let Some(retry) = retry {
        return (
            retry.failure().map(Failure::kind),
            retry.status(),
            Some(retry.history().clone()),
        );
    }
    let failure = err.downcast_ref::<Failure>();
    (failure.map(Failure::kind), None, None)
}

/// Sends one call through the stack and reads (or drops) the response body.
async fn execute(stack: Stack, backend: FlakyBackend, call: Call) -> Outcome {
    let Call {
        op,
        id,
        drop_body,
        cancel_after,
    } = call;
    let started = Instant::now();
    let work = async move {
        match stack.oneshot(request(&backend, op, id)).await {
            Ok(response) => {
                let status = response.status();
                let history = response.extensions().get::<RetryHistory>().cloned();
                let body = if drop_body {
                    drop(response);
                    Ok(())
                } else {
                    response.into_body().collect().await.map(drop)
                };
                let end = match body {
                    Ok(()) => End::Response(status),
                    Err(err) => End::Failed {
                        kind: Some(
                            Failure::classify(err, tower_fortify::classify::Stage::Request).kind(),
                        ),
                        status: None,
                        message: "response body failed".to_owned(),
                    },
                };
                (end, history)
            }
            Err(err) => {
                let (kind, status, history) = describe(&err);
                let end = End::Failed {
                    kind,
                    status,
                    message: err.to_string(),
                };
                (end, history)
            }
        }
    };
    let (end, history) = match cancel_after {
        Some(after) => match tokio::time::timeout(after, work).await {
            Ok(ended) => ended,
            Err(_) => (End::Cancelled, None),
        },
        None => work.await,
    };
    Outcome {
        op,
        id,
        end,
        retries: history
            .as_ref()
            .map(|h| h.records().iter().map(|r| r.cause()).collect())
            .unwrap_or_default(),
        stop: history.and_then(|h| h.stop()),
        started,
        finished: Instant::now(),
    }
}

/// Runs `task(id)` for every id of `ids`, `concurrency` at a time, and returns the results
/// (in no particular order).
async fn run_with<T, F, Fut>(ids: Range<u64>, concurrency: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let next = Arc::new(AtomicU64::new(ids.start));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let task = task.clone();
            let end = ids.end;
            tokio::spawn(async move {
                let mut results = Vec::new();
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= end {
                        return results;
                    }
                    results.push(task(id).await);
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity((ids.end - ids.start) as usize);
    for worker in workers {
        results.extend(worker.await.expect("a workload task panicked"));
    }
    results
}

/// Runs the calls `plan(id)` for every id of `ids` through the stack.
async fn run<P>(
    stack: &Stack,
    backend: &FlakyBackend,
    ids: Range<u64>,
    concurrency: usize,
    plan: P,
) -> Vec<Outcome>
where
    P: Fn(u64) -> Call + Clone + Send + Sync + 'static,
{
    let stack = stack.clone();
    let backend = backend.clone();
    run_with(ids, concurrency, move |id| {
        execute(stack.clone(), backend.clone(), plan(id))
    })
    .await
}

/// Calls per label, for assertion messages.
fn tally(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for outcome in outcomes {
        *tally.entry(outcome.label()).or_default() += 1;
    }
    tally
}

/// The first error messages of failed calls, for assertion messages.
fn some_errors(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.end {
            End::Failed { message, .. } => Some(format!("{:?} #{}: {message}", o.op, o.id)),
            _ => None,
        })
        .take(5)
        .collect()
}

fn count(outcomes: &[Outcome], f: impl Fn(&Outcome) -> bool) -> usize {
    outcomes.iter().filter(|o| f(o)).count()
}

/// The share of connection attempts (accepted or refused) that failed.
fn injected_rate(stats: &BackendStats) -> f64 {
    let attempts = stats.connections + stats.refused;
    (stats.refused + stats.resets) as f64 / attempts.max(1) as f64
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `deadline`.
async fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "gave up after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Scenario 5: every pool permit and every breaker probe slot is back.
fn assert_everything_returned(harness: &Harness, label: &str) {
    let snapshot = harness.layer.pool_handle().snapshot();
    assert_eq!(
        (snapshot.total.in_use, snapshot.total.waiting),
        (0, 0),
        "{label}: pool permits still in use or callers still waiting after every call \
         ended: {snapshot:?}"
    );
    let breakers = harness.layer.breaker_handle();
    let states = breakers.states();
    assert!(!states.is_empty(), "{label}: no breaker was created");
    for (key, state) in states {
        let probes = breakers
            .get(&key)
            .unwrap_or_else(|| panic!("{label}: breaker {key} is listed but not found"))
            .probes_in_flight();
        assert_eq!(
            probes, 0,
            "{label}: breaker {key} ({state}) still counts {probes} probes in flight"
        );
    }
}

/// Calls running in the background until stopped, each outcome logged in completion order.
struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` loops, each sending one call at a time with a short pause between calls (so
    /// that calls failing fast on an open breaker do not spin).
    fn start<P>(
        stack: &Stack,
        backend: &FlakyBackend,
        first_id: u64,
        workers: usize,
        plan: P,
    ) -> Load
    where
        P: Fn(u64) -> Call + Clone + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU64::new(first_id));
        let workers = (0..workers)
            .map(|_| {
                let (stop, log, next) = (stop.clone(), log.clone(), next.clone());
                let (stack, backend, plan) = (stack.clone(), backend.clone(), plan.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        let outcome = execute(stack.clone(), backend.clone(), plan(id)).await;
                        log.lock().unwrap().push(outcome);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Load { stop, log, workers }
    }

    fn calls(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("a load task panicked");
        }
        let log = self.log.lock().unwrap();
        log.clone()
    }
}

// ===== scenario 1 =====

/// 3% transient connection failures (2/3 refused, 1/3 reset after the request head was
/// read): the stack turns them into a failure rate of at most 0.02%, while a bare client
/// fails well over 1% of its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_absorbed() {
    const BARE: u64 = 1_500;
    const CALLS: u64 = 6_000;
    let backend = FlakyBackend::start(Faults::transient(0.03).seed(0x5eed_0001)).await;

    // A bare client: the faults reach it.
    let bare = hyper_client(&backend, &config());
    let bare_results = {
        let backend = backend.clone();
        run_with(0..BARE, CONCURRENCY, move |id| {
            let (bare, backend) = (bare.clone(), backend.clone());
            async move {
                let op = if id % 2 == 0 { Op::Get } else { Op::KeyedPost };
                match bare.request(request(&backend, op, id)).await {
                    Ok(response) => response.into_body().collect().await.map(drop).map_err(|e| {
                        Failure::classify(e, tower_fortify::classify::Stage::Request).kind()
                    }),
                    Err(err) => {
                        Err(Failure::classify(err, tower_fortify::classify::Stage::Request).kind())
                    }
                }
            }
        })
        .await
    };
    let bare_stats = backend.stats();
    let mut bare_failures: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in bare_results.iter().filter_map(|r| r.as_ref().err()) {
        *bare_failures.entry(kind.as_str()).or_default() += 1;
    }
    let bare_failed: usize = bare_failures.values().sum();
    let bare_rate = bare_failed as f64 / BARE as f64;
    println!(
        "bare client: {bare_failed}/{BARE} failed ({:.2}%), {bare_failures:?}; injected \
         {:.2}% of connection attempts",
        bare_rate * 100.0,
        injected_rate(&bare_stats) * 100.0
    );
    assert!(
        bare_rate > 0.01,
        "the faults must reach a client without the stack: only {bare_failed}/{BARE} \
         bare calls failed ({bare_failures:?}), backend {bare_stats:?}"
    );

    // The stack, on the same backend: GETs and keyed POSTs.
    let h = harness(&backend, config());
    let outcomes = run(&h.stack, &backend, BARE..BARE + CALLS, CONCURRENCY, |id| {
        Call::new(if id % 2 == 0 { Op::Get } else { Op::KeyedPost }, id)
    })
    .await;
    let stats = backend.stats() - bare_stats;
    let failed = count(&outcomes, |o| !o.ok());
    let retried = count(&outcomes, |o| o.ok() && !o.retries.is_empty());
    let injected = injected_rate(&stats);
    println!(
        "stack: {failed}/{CALLS} failed ({:.3}%), {retried} succeeded after retries; \
         injected {:.2}% of {} connection attempts ({} refused, {} reset); {:?}",
        failed as f64 * 100.0 / CALLS as f64,
        injected * 100.0,
        stats.connections + stats.refused,
        stats.refused,
        stats.resets,
        tally(&outcomes),
    );
    assert!(
        (0.015..=0.045).contains(&injected),
        "the backend must inject ~3% connection faults: {:.2}% ({stats:?})",
        injected * 100.0
    );
    // 0.02% of 6 000 calls is 1.2: at most one failure.
    assert!(
        failed as f64 <= CALLS as f64 * 0.0002,
        "the stack's failure rate must be <= 0.02%: {failed}/{CALLS} failed; {:?}; {:?}",
        tally(&outcomes),
        some_errors(&outcomes)
    );
    assert!(
        retried as u64 >= (stats.refused + stats.resets) / 2,
        "the faults must have been retried: {retried} calls succeeded after a retry, \
         {} faults injected",
        stats.refused + stats.resets
    );
    assert_everything_returned(&h, "transient faults");
}

// ===== scenario 2 =====

/// Unkeyed POSTs under refusals, resets (after the request head was read) and 503s: none
/// reaches the server twice; their only failures are the resets (read category, the
/// request may have been processed); refused attempts are retried. Keyed POSTs are the
/// control: they are retried after resets, and the backend sees those duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_posts_are_never_sent_twice() {
    const CALLS: u64 = 2_400;
    let faults = Faults {
        refuse: 0.05,
        reset: 0.05,
        unavailable: 0.05,
        ..Faults::none()
    }
    .seed(0x5eed_0002);
    let backend = FlakyBackend::start(faults).await;
    let h = harness(&backend, config());
    // Three unkeyed POSTs for every keyed one.
    let outcomes = run(&h.stack, &backend, 0..CALLS, CONCURRENCY, |id| {
        Call::new(if id % 4 == 3 { Op::KeyedPost } else { Op::Post }, id)
    })
    .await;
    let stats = backend.stats();
    let (posts, keyed): (Vec<Outcome>, Vec<Outcome>) =
        outcomes.into_iter().partition(|o| o.op == Op::Post);
    println!(
        "unkeyed POSTs: {:?}; keyed POSTs: {:?}; backend {stats:?}",
        tally(&posts),
        tally(&keyed)
    );

    assert_eq!(
        stats.posts_without_key_duplicates,
        0,
        "an unkeyed POST reached the server twice; {:?}",
        tally(&posts)
    );

    // Failures of unkeyed POSTs: only kinds after which the request may have been
    // processed. Connect failures must have been retried instead.
    let failure_kinds: BTreeMap<String, usize> = tally(&posts)
        .into_iter()
        .filter(|(label, _)| label.starts_with("failed"))
        .collect();
    let not_read = count(&posts, |o| {
        o.failed() && o.kind().and_then(FailureKind::category) != Some(Category::Read)
    });
    assert_eq!(
        not_read,
        0,
        "unkeyed POSTs failed with kinds that were safe to retry: {failure_kinds:?}; {:?}",
        some_errors(&posts)
    );
    // Each reset surfaces exactly once: as the failure of an unkeyed POST (not retried),
    // or as a read retry of a keyed POST.
    let read_retries = h
        .metrics
        .counter("fortify_retries_total", &[("category", "read")]);
    let connect_retries = h
        .metrics
        .counter("fortify_retries_total", &[("category", "connect")]);
    // Every call returned a history of its retries (a failure returned as it is after
    // retries carries one too) and none was cancelled: the histories account for every
    // retry the metrics counted.
    let in_histories = |category: Category| {
        posts
            .iter()
            .chain(&keyed)
            .flat_map(|o| o.retries.iter())
            .filter(|c| c.failure_kind().and_then(FailureKind::category) == Some(category))
            .count() as u64
    };
    assert_eq!(
        (
            in_histories(Category::Connect),
            in_histories(Category::Read)
        ),
        (connect_retries, read_retries),
        "retries in the calls' histories (connect, read) against the metrics"
    );
    let closed = |o: &Outcome| o.kind() == Some(FailureKind::ConnectionClosed);
    let posts_closed = count(&posts, closed);
    let keyed_closed = count(&keyed, closed);
    assert!(posts_closed > 0, "no unkeyed POST met a reset: {stats:?}");
    assert_eq!(
        posts_closed as u64 + keyed_closed as u64 + read_retries,
        stats.resets,
        "every reset must surface exactly once: {posts_closed} unkeyed and {keyed_closed} \
         keyed POSTs failed with ConnectionClosed, {read_retries} read retries"
    );
    // No unkeyed POST was retried after anything but a connect failure.
    let bad_retries: Vec<_> = posts
        .iter()
        .flat_map(|o| o.retries.iter())
        .filter(|c| c.failure_kind().and_then(FailureKind::category) != Some(Category::Connect))
        .collect();
    assert!(
        bad_retries.is_empty(),
        "unkeyed POSTs were retried after {bad_retries:?}"
    );
    // Every refused connection was retried, and some unkeyed POSTs succeeded thanks to it.
    assert_eq!(
        connect_retries, stats.refused,
        "every refused connection must have been retried"
    );
    let posts_saved = count(&posts, |o| {
        o.ok() && o.retried_after(FailureKind::ConnectRefused) > 0
    });
    assert!(
        posts_saved > 0,
        "no unkeyed POST was retried after a refused connection and succeeded"
    );
    // 503s of unkeyed POSTs are returned, not retried.
    let posts_503 = count(&posts, |o| {
        o.status() == Some(StatusCode::SERVICE_UNAVAILABLE)
    });
    assert!(posts_503 > 0, "no unkeyed POST met a 503: {stats:?}");
    // The control: keyed POSTs are retried after resets and 503s, the backend sees the
    // duplicates, and every keyed POST succeeds.
    assert!(
        stats.keyed_post_duplicates > 0 && read_retries > 0,
        "keyed POSTs must be retried after resets: {read_retries} read retries, {stats:?}"
    );
    let keyed_failed = count(&keyed, |o| !o.ok());
    assert_eq!(
        keyed_failed,
        0,
        "keyed POSTs must all succeed: {:?}; {:?}",
        tally(&keyed),
        some_errors(&keyed)
    );
    println!(
        "unkeyed POSTs: {posts_closed} failed on resets, {posts_saved} saved by retries \
         after refusals, {posts_503} answered 503; keyed: {read_retries} retried after \
         resets, {} duplicates seen by the backend; {connect_retries} connect retries",
        stats.keyed_post_duplicates
    );
    assert_everything_returned(&h, "unkeyed POSTs");
}

// ===== scenario 3 =====

/// A total outage (every request 503): the retry budget caps the extra load at 20% of the
/// requests plus the reserve, the breaker opens, and then calls fail fast with
/// `CircuitOpen` without reaching the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_bounded_by_budget_and_breaker() {
    const WINDOW: Duration = Duration::from_secs(10);
    const RESERVE_PER_SEC: u32 = 2;
    const RATIO: f32 = 0.2;
    // The budget counts deposits and withdrawals for WINDOW: the whole test fits in it, so
    // nothing ages out and the reserve is spent once.
    let reserve = f64::from(RESERVE_PER_SEC) * WINDOW.as_secs_f64();
    let bound = |issued: u64| issued as f64 * (1.0 + f64::from(RATIO)) + reserve;
    const N0: u64 = 200;
    const N1: u64 = 200;
    const N2: u64 = 400;

    let backend = FlakyBackend::start(Faults::none()).await;
    let budget = RetryBudget::new(WINDOW, RESERVE_PER_SEC, RATIO).expect("valid budget");
    let config = config()
        .retry(
            RetryPolicy::production()
                .budget(budget)
                .deadline(Some(Duration::from_secs(10))),
        )
        .circuit_breaker(
            CircuitBreakerLayer::builder()
                .window(Window::Count(20))
                .minimum_calls(10)
                .failure_rate_threshold(0.5)
                // Long enough that the breaker stays open for the rest of the test.
                .open_duration(Duration::from_secs(30))
                .open_duration_jitter(0.0),
        );
    let h = harness(&backend, config);
    let retries = || h.metrics.counter("fortify_retries_total", &[]);
    let budget_stops = || {
        h.metrics
            .counter("fortify_retry_stopped_total", &[("stop", "budget")])
    };

    // One healthy call creates the host's breaker (its deposit counts in the bound).
    let warm = run(&h.stack, &backend, 0..1, 1, |id| Call::new(Op::Get, id)).await;
    assert!(warm[0].ok(), "warm-up call failed: {:?}", warm[0]);
    let breaker = h
        .layer
        .breaker_handle()
        .get(HOST)
        .expect("the host's breaker");
    backend.set_outage(Outage::Unavailable);

    // Phase 0: the budget alone (the breaker is disabled: it measures but never trips).
    breaker.disable();
    let p0 = run(&h.stack, &backend, 1..1 + N0, CONCURRENCY, |id| {
        Call::new(Op::Get, id)
    })
    .await;
    let s0 = backend.stats();
    let (retries0, stops0) = (retries(), budget_stops());
    let stopped0 = count(&p0, |o| o.stop == Some(Stop::Budget));
    println!(
        "outage, budget only: {N0} calls -> {} backend requests ({retries0} retries, \
         {stops0} refused by the budget, {stopped0} calls stopped by it, bound {:.0}); {:?}",
        s0.outage_requests,
        bound(1 + N0),
        tally(&p0)
    );
    assert!(
        s0.outage_requests >= N0,
        "every call must reach the backend once: {s0:?}"
    );
    assert!(
        s0.outage_requests as f64 <= bound(1 + N0),
        "retries beyond the budget: {} backend requests for {N0} calls, bound {:.0} \
         ({RATIO} x calls + {reserve} reserve)",
        s0.outage_requests,
        bound(1 + N0)
    );
    assert!(
        retries0 > 0 && stops0 > 0 && stopped0 > 0,
        "the budget must have allowed some retries and refused others: {retries0} \
         retries, {stops0} refused, {stopped0} calls stopped by the budget"
    );

    // Phase 1: the breaker armed again; it opens.
    breaker.reset();
    let p1 = run(&h.stack, &backend, 1 + N0..1 + N0 + N1, CONCURRENCY, |id| {
        Call::new(Op::Get, id)
    })
    .await;
    let s1 = backend.stats();
    let open1 = count(&p1, |o| o.kind() == Some(FailureKind::CircuitOpen));
    println!(
        "outage, breaker armed: {N1} calls -> {} backend requests, {open1} CircuitOpen; {:?}",
        s1.outage_requests - s0.outage_requests,
        tally(&p1)
    );
    assert_eq!(
        breaker.state(),
        State::Open,
        "the breaker must be open after {N1} calls into an outage; figures {:?}",
        breaker.figures()
    );
    assert_eq!(
        h.metrics.transitions(State::Closed, State::Open),
        1,
        "the breaker must have opened once"
    );
    assert!(
        open1 as u64 >= N1 / 2,
        "most calls after the trip must fail fast: {open1}/{N1} CircuitOpen"
    );

    // Phase 2: while open, calls fail fast and the backend sees nothing.
    let p2 = run(
        &h.stack,
        &backend,
        1 + N0 + N1..1 + N0 + N1 + N2,
        CONCURRENCY,
        |id| Call::new(Op::Get, id),
    )
    .await;
    let s2 = backend.stats();
    let open2 = count(&p2, |o| o.kind() == Some(FailureKind::CircuitOpen));
    println!(
        "outage, breaker open: {N2} calls -> {} backend requests, {open2} CircuitOpen",
        s2.outage_requests - s1.outage_requests
    );
    assert!(
        open2 as f64 >= N2 as f64 * 0.99,
        "calls on an open breaker must fail fast with CircuitOpen: {open2}/{N2}; {:?}",
        tally(&p2)
    );
    assert_eq!(
        s2.outage_requests, s1.outage_requests,
        "the backend must see no request while the breaker is open"
    );
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        h.metrics.transitions(State::Open, State::HalfOpen),
        0,
        "the breaker must have stayed open"
    );

    let issued = N0 + N1 + N2;
    println!(
        "outage total: {issued} calls -> {} backend requests (bound {:.0})",
        s2.outage_requests,
        bound(1 + issued)
    );
    assert!(
        s2.outage_requests as f64 <= bound(1 + issued),
        "the backend got more than the budgeted load: {} requests for {issued} calls",
        s2.outage_requests
    );
    assert_everything_returned(&h, "outage");
}

// ===== scenario 4 =====

/// After an outage ends, the breaker (short open duration) probes, closes, and the success
/// rate recovers: within 5 s a window of 200 consecutive calls succeeds >= 99%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_closes_after_the_outage() {
    const WINDOW: usize = 200;
    const RECOVERY: Duration = Duration::from_secs(5);
    let backend = FlakyBackend::start(Faults::none()).await;
    let config = config()
        .retry(RetryPolicy::production().deadline(Some(Duration::from_secs(5))))
        .circuit_breaker(
            CircuitBreakerLayer::builder()
                .window(Window::Count(20))
                .minimum_calls(10)
                .open_duration(Duration::from_millis(300))
                .open_duration_max(Duration::from_secs(1))
                .half_open_successes(2),
        );
    let h = harness(&backend, config);

    let warm = run(&h.stack, &backend, 0..200, CONCURRENCY, |id| {
        Call::new(Op::Get, id)
    })
    .await;
    assert_eq!(
        count(&warm, |o| !o.ok()),
        0,
        "healthy backend: {:?}",
        tally(&warm)
    );

    let load = Load::start(&h.stack, &backend, 1_000, 8, |id| Call::new(Op::Get, id));
    backend.set_outage(Outage::Unavailable);
    wait_for(
        "the breaker to open in the outage",
        Duration::from_secs(10),
        || h.metrics.transitions(State::Closed, State::Open) > 0,
    )
    .await;
    // Let a probe fail during the outage, so the breaker reopens for longer.
    wait_for(
        "a probe to fail in the outage",
        Duration::from_secs(10),
        || h.metrics.transitions(State::HalfOpen, State::Open) > 0,
    )
    .await;
    backend.set_outage(Outage::None);
    let ended = Instant::now();
    let calls_in_outage = load.calls();

    // The first window of WINDOW consecutive calls (in completion order, all started after
    // the outage ended) with >= 99% successes.
    let recovered = || {
        let log = load.log.lock().unwrap();
        let after: Vec<&Outcome> = log.iter().filter(|o| o.started >= ended).collect();
        after.windows(WINDOW).find_map(|w| {
            let ok = w.iter().filter(|o| o.ok()).count();
            (ok * 100 >= WINDOW * 99).then(|| (w[WINDOW - 1].finished, ok))
        })
    };
    let mut found = None;
    wait_for(
        "a window of consecutive successful calls after the outage",
        RECOVERY + Duration::from_secs(5),
        || {
            found = recovered();
            found.is_some()
        },
    )
    .await;
    let outcomes = load.stop().await;
    let (at, ok) = found.expect("found");
    let took = at.duration_since(ended);
    let after: Vec<Outcome> = outcomes
        .iter()
        .filter(|o| o.started >= ended)
        .cloned()
        .collect();
    println!(
        "recovery: {ok}/{WINDOW} consecutive successes completed {took:?} after the \
         outage ended; {calls_in_outage} calls before, {:?} after; transitions \
         closed->open {}, open->half_open {}, half_open->open {}, half_open->closed {}",
        tally(&after),
        h.metrics.transitions(State::Closed, State::Open),
        h.metrics.transitions(State::Open, State::HalfOpen),
        h.metrics.transitions(State::HalfOpen, State::Open),
        h.metrics.transitions(State::HalfOpen, State::Closed),
    );
    assert!(
        took <= RECOVERY,
        "the success rate must recover within {RECOVERY:?} of the outage's end: the first \
         window of {WINDOW} calls with >= 99% successes completed after {took:?}"
    );
    let breaker = h
        .layer
        .breaker_handle()
        .get(HOST)
        .expect("the host's breaker");
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the breaker must be closed after the recovery"
    );
    assert!(h.metrics.transitions(State::HalfOpen, State::Closed) >= 1);
    assert_everything_returned(&h, "recovery");
}

// ===== scenario 5 =====

/// Every way a call can end (success, failure, retry, read timeout, pool wait, pool timeout,
/// cancellation at any point, a body read or dropped unread, breaker rejection, half-open
/// probes cancelled or not) gives its pool permit and probe slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_permit_and_probe_comes_back() {
    const CALLS: u64 = 1_500;
    const POOL: usize = 8;
    let faults = Faults {
        refuse: 0.05,
        reset: 0.05,
        unavailable: 0.02,
        slow: 0.1,
        // Past the attempt timeout: the attempt is abandoned (ReadTimeout).
        slow_delay: Duration::from_millis(300),
        seed: 0x5eed_0005,
    };
    let backend = FlakyBackend::start(faults).await;
    let config = config()
        .pool_maxsize(POOL)
        .pool_timeout(Some(Duration::from_secs(2)))
        .attempt_timeout(Duration::from_millis(150))
        .retry(RetryPolicy::production().deadline(Some(Duration::from_secs(3))))
        .circuit_breaker(
            // A window wide enough that ~22% failed attempts do not trip it (phase A goes
            // through); the outage does.
            CircuitBreakerLayer::builder()
                .window(Window::Count(100))
                .minimum_calls(20)
                .open_duration(Duration::from_millis(200))
                .open_duration_max(Duration::from_millis(400))
                .half_open_max_probes(2),
        );
    let h = harness(&backend, config);
    // A third of the calls drop their body unread; one in eight is cancelled after 0-49 ms.
    let plan = |id: u64| {
        let r = flaky::splitmix(id);
        let op = [Op::Get, Op::KeyedPost, Op::Post][(r % 3) as usize];
        Call {
            op,
            id,
            drop_body: (r >> 8).is_multiple_of(3),
            cancel_after: (r >> 16)
                .is_multiple_of(8)
                .then(|| Duration::from_millis((r >> 24) % 50)),
        }
    };

    // Watch the pool while it is contended.
    let pool = h.layer.pool_handle();
    let (max_in_use, max_waiting) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (max_in_use, max_waiting, watching) =
            (max_in_use.clone(), max_waiting.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let total = pool.snapshot().total;
                max_in_use.fetch_max(total.in_use, Ordering::Relaxed);
                max_waiting.fetch_max(total.waiting, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // Phase A: every fault at once.
    let outcomes = run(&h.stack, &backend, 0..CALLS, CONCURRENCY, plan).await;
    let rejected = count(&outcomes, |o| o.kind() == Some(FailureKind::CircuitOpen));
    println!("permits, phase A: {:?}", tally(&outcomes));
    assert!(
        rejected * 10 < outcomes.len(),
        "the faults alone must not keep the breaker open: {:?}",
        tally(&outcomes)
    );
    // Phase B: an outage, so the breaker opens and probes (some probes are cancelled), then
    // the end of the outage, until the breaker closes.
    let load = Load::start(&h.stack, &backend, CALLS, 16, plan);
    backend.set_outage(Outage::Unavailable);
    wait_for(
        "half-open probes in the outage",
        Duration::from_secs(10),
        || h.metrics.transitions(State::HalfOpen, State::Open) >= 2,
    )
    .await;
    backend.set_outage(Outage::None);
    let breaker = h
        .layer
        .breaker_handle()
        .get(HOST)
        .expect("the host's breaker");
    wait_for(
        "the breaker to close after the outage",
        Duration::from_secs(10),
        || {
            breaker.state() == State::Closed
                && h.metrics.transitions(State::HalfOpen, State::Closed) >= 1
        },
    )
    .await;
    let more = load.stop().await;
    watching.store(false, Ordering::Relaxed);
    watcher.await.expect("the pool watcher panicked");

    let all: Vec<Outcome> = outcomes.into_iter().chain(more).collect();
    let stats = backend.stats();
    let snapshot = h.layer.pool_handle().snapshot();
    let (max_in_use, max_waiting) = (
        max_in_use.load(Ordering::Relaxed),
        max_waiting.load(Ordering::Relaxed),
    );
    println!(
        "permits: {} calls {:?}; pool max in use {max_in_use}/{POOL}, max waiting \
         {max_waiting}, timed out {}; half-open probes {}; backend {stats:?}",
        all.len(),
        tally(&all),
        snapshot.total.timed_out,
        h.metrics.transitions(State::Open, State::HalfOpen),
    );
    // The workload did exercise what it claims to.
    let cancelled = count(&all, |o| matches!(o.end, End::Cancelled));
    let read_timeouts: usize = all
        .iter()
        .map(|o| {
            o.retried_after(FailureKind::ReadTimeout)
                + usize::from(o.kind() == Some(FailureKind::ReadTimeout))
        })
        .sum();
    assert!(cancelled > 0, "no call was cancelled");
    assert!(read_timeouts > 0, "no attempt timed out");
    assert!(
        max_waiting > 0 && max_in_use <= POOL,
        "the pool must have been full with callers waiting, never over its size: max in \
         use {max_in_use}/{POOL}, max waiting {max_waiting}"
    );
    assert!(stats.resets > 0 && stats.refused > 0 && stats.slow > 0);
    assert_eq!(
        stats.posts_without_key_duplicates, 0,
        "an unkeyed POST reached the server twice"
    );
    assert_everything_returned(&h, "all faults");
}
