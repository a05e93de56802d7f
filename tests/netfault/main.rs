//! Faults from the kernel, not from a backend this project wrote.
//!
//! Each scenario runs in a network namespace of its own, made for it with `ip netns`: the
//! server and the preset client talk over that namespace's loopback, and nftables rules in
//! it reject connects with a reset, drop SYNs (connect timeouts), reset established
//! connections, and drop packets (TCP then retransmits them, as under loss). The kernel
//! counts what it injected; the server counts what it received; the scenario asserts the
//! case study's figures on both.
//!
//! The harness is the test's own (`harness = false`): the outer process makes a namespace
//! per scenario and runs this same binary inside it (`ip netns exec`), where the scenario
//! runs and can change its rules as it goes. It needs root, `ip` (iproute2) and `nft`
//! (nftables); `.ci/run` installs them. Without them it fails under CI (`CI` set) and skips,
//! saying why, elsewhere. The kernel's `netem` qdisc (delay, loss, reordering) is not used:
//! the kernels this runs on are built without it (`CONFIG_NET_SCH_NETEM` is not set), so
//! loss comes from nftables' `drop` and delay from the token-bucket shaper (`tc` qdisc
//! `tbf`, which they have): a slow link, where packets wait in the kernel's queue.
//! Reordering has no other source in the kernel and is not injected.
//!
//! Arguments: a scenario name (or part of one) runs only the matching scenarios; flags
//! that `cargo test` passes (`--nocapture`, ...) are ignored.

use std::{
    collections::HashMap,
    io::Write,
    process::{Command, ExitCode, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::CircuitBreakerLayer,
    classify::{Failure, FailureKind},
    retry::{Idempotent, RetryPolicy},
    stack::{ClientConfig, ClientStack},
};

const INNER: &str = "FORTIFY_NETFAULT_SCENARIO";
const TABLE: &str = "fortify";

/// A scenario: its name and its body, run inside its namespace.
struct Scenario {
    name: &'static str,
    run: fn(&Rt) -> Result<(), String>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "connect_faults",
        run: connect_faults,
    },
    Scenario {
        name: "established_resets",
        run: established_resets,
    },
    Scenario {
        name: "lost_responses",
        run: lost_responses,
    },
    Scenario {
        name: "slow_link",
        run: slow_link,
    },
    Scenario {
        name: "outage",
        run: outage,
    },
    Scenario {
        name: "outage_budget_only",
        run: outage_budget_only,
    },
];

fn main() -> ExitCode {
    if let Ok(name) = std::env::var(INNER) {
        return inner(&name);
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        println!("netfault: no scenario matches the filter");
        println!("netfault: 0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    if let Err(why) = can_run() {
        if std::env::var_os("CI").is_some() {
            eprintln!("netfault: cannot run under CI: {why}");
            println!("netfault: 0 passed, {} failed", chosen.len());
            return ExitCode::FAILURE;
        }
        println!("netfault: skipped (not under CI): {why}");
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let (mut passed, mut failed) = (0, 0);
    for scenario in chosen {
        println!("\n== netfault::{} ==", scenario.name);
        let ns = Namespace::new(scenario.name);
        let status = ns.and_then(|ns| {
            let status = Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .arg(&exe)
                .env(INNER, scenario.name)
                .status()
                .map_err(|e| format!("ip netns exec: {e}"))?;
            Ok(status.success())
        });
        match status {
            Ok(true) => {
                println!("netfault::{} ... ok", scenario.name);
                passed += 1;
            }
            Ok(false) => {
                println!("netfault::{} ... FAILED", scenario.name);
                failed += 1;
            }
            Err(why) => {
                println!("netfault::{} ... FAILED ({why})", scenario.name);
                failed += 1;
            }
        }
    }
    println!("\nnetfault: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether namespaces and nftables can be used here.
fn can_run() -> Result<(), String> {
    for (tool, arg) in [("ip", "-V"), ("nft", "--version"), ("tc", "-V")] {
        match Command::new(tool).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "`{tool} {arg}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "`{tool}` cannot be run ({e}); install iproute2 and nftables"
                ))
            }
        }
    }
    let probe = Namespace::new("probe")?;
    drop(probe);
    Ok(())
}

/// A network namespace with its loopback up, deleted on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    fn new(scenario: &str) -> Result<Self, String> {
        let name = format!("fortify-{}-{}", std::process::id(), scenario);
        run("ip", &["netns", "add", &name])?;
        let ns = Namespace { name };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("`{cmd}` cannot be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Loads an nftables script (inside the namespace this process runs in).
fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft rejected the rules: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loads the scenario's table: named `counters`, and `rules` in an input chain that accepts
/// everything else.
fn table(counters: &[&str], rules: &[String]) {
    let counters: String = counters
        .iter()
        .map(|name| format!("counter {name} {{}}\n"))
        .collect();
    let rules = rules.join("\n");
    nft(&format!(
        "table inet {TABLE} {{
           {counters}
           chain input {{
             type filter hook input priority 0; policy accept;
             {rules}
           }}
         }}"
    ));
}

/// The packets a named counter has seen.
fn counter(name: &str) -> u64 {
    let out = run("nft", &["list", "counter", "inet", TABLE, name]).expect("nft list counter");
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {out}"))
}

/// Inside the namespace: runs one scenario on a fresh runtime.
fn inner(name: &str) -> ExitCode {
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .expect("a known scenario");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match (scenario.run)(&Rt(rt)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("netfault::{name}: {why}");
            ExitCode::FAILURE
        }
    }
}

struct Rt(tokio::runtime::Runtime);

// ===== the server =====

/// What the server received: requests per id, and the POSTs without key among them.
#[derive(Default)]
struct Received {
    by_id: Mutex<HashMap<u64, u32>>,
    total: AtomicU64,
}

impl Received {
    /// Ids of requests without an idempotency key that arrived more than once.
    fn duplicated_unkeyed(&self, unkeyed: &[u64]) -> Vec<u64> {
        let by_id = self.by_id.lock().unwrap();
        unkeyed
            .iter()
            .copied()
            .filter(|id| by_id.get(id).copied().unwrap_or(0) > 1)
            .collect()
    }
}

/// A hyper server on 127.0.0.1 that answers 200 to everything and counts what it received.
async fn server(keep_alive: bool) -> (u16, Arc<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Received::default());
    let counts = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counts = counts.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let counts = counts.clone();
                    async move {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(u64::MAX);
                        let _ = req.into_body().collect().await;
                        counts.total.fetch_add(1, Ordering::Relaxed);
                        *counts.by_id.lock().unwrap().entry(id).or_default() += 1;
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(&[b'x'; 512]),
                        )))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, received)
}

// ===== the client =====

type Fortified = ClientStack<Client<HttpConnector, Full<Bytes>>>;

fn fortified(config: ClientConfig) -> (Fortified, tower_fortify::stack::ClientStackLayer) {
    let layer = config.build().expect("a valid configuration");
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(layer.connect_timeout()));
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    (tower::Layer::layer(&layer, client), layer)
}

/// What a request is, for the retry rules.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Get,
    KeyedPost,
    UnkeyedPost,
}

impl Class {
    /// 60% GETs, 25% POSTs with an idempotency key, 15% without.
    fn of(id: u64) -> Class {
        match splitmix(id) % 100 {
            0..=59 => Class::Get,
            60..=84 => Class::KeyedPost,
            _ => Class::UnkeyedPost,
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn request(port: u16, id: u64) -> http::Request<Full<Bytes>> {
    let uri = format!("http://127.0.0.1:{port}/item/{id}");
    let builder = http::Request::builder()
        .uri(uri)
        .header("x-request-id", id.to_string());
    let mut req = match Class::of(id) {
        Class::Get => builder.method("GET").body(Full::default()),
        Class::KeyedPost => builder
            .method("POST")
            .header("idempotency-key", format!("key-{id}"))
            .body(Full::new(Bytes::from_static(b"{\"order\":1}"))),
        Class::UnkeyedPost => builder
            .method("POST")
            .body(Full::new(Bytes::from_static(b"{\"order\":1}"))),
    }
    .expect("a valid request");
    if Class::of(id) == Class::KeyedPost {
        req.extensions_mut().insert(Idempotent);
    }
    req
}

/// The outcome of one request.
#[derive(Debug)]
struct Outcome {
    id: u64,
    /// When the call ended, and how long it took.
    at: Instant,
    took: Duration,
    result: Result<(), FailureKind>,
}

async fn send(client: &Fortified, port: u16, id: u64) -> Outcome {
    let start = Instant::now();
    let mut client = client.clone();
    let result = async {
        let response = client.ready().await?.call(request(port, id)).await?;
        response.into_body().collect().await?;
        Ok::<_, tower_fortify::BoxError>(())
    }
    .await
    .map_err(|e| {
        e.downcast_ref::<Failure>()
            .map(Failure::kind)
            .unwrap_or(FailureKind::Other)
    });
    Outcome {
        id,
        at: Instant::now(),
        took: start.elapsed(),
        result,
    }
}

/// Sends `ids` from `concurrency` tasks, each taking the next id when its last request ends.
async fn send_all(
    client: &Fortified,
    port: u16,
    ids: std::ops::Range<u64>,
    concurrency: usize,
) -> Vec<Outcome> {
    let next = Arc::new(AtomicU64::new(ids.start));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, end) = (client.clone(), next.clone(), ids.end);
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= end {
                    return out;
                }
                out.push(send(&client, port, id).await);
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(out) = workers.join_next().await {
        outcomes.extend(out.expect("a worker"));
    }
    outcomes
}

/// Failures by class, and the kinds seen.
struct Tally {
    sent: [u64; 3],
    failed: [u64; 3],
    kinds: HashMap<FailureKind, u64>,
}

impl Tally {
    fn of(outcomes: &[Outcome]) -> Tally {
        let mut t = Tally {
            sent: [0; 3],
            failed: [0; 3],
            kinds: HashMap::new(),
        };
        for o in outcomes {
            let i = Class::of(o.id) as usize;
            t.sent[i] += 1;
            if let Err(kind) = o.result {
                t.failed[i] += 1;
                *t.kinds.entry(kind).or_default() += 1;
            }
        }
        t
    }

    fn retryable(&self) -> (u64, u64) {
        (
            self.sent[Class::Get as usize] + self.sent[Class::KeyedPost as usize],
            self.failed[Class::Get as usize] + self.failed[Class::KeyedPost as usize],
        )
    }

    fn print(&self) {
        for (class, i) in [("GET", 0), ("POST with key", 1), ("POST without key", 2)] {
            println!(
                "  {class:<17} {:>5} sent, {:>3} failed",
                self.sent[i], self.failed[i]
            );
        }
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by_key(|(k, _)| format!("{k:?}"));
        if !kinds.is_empty() {
            println!("  failures by kind: {kinds:?}");
        }
    }
}

fn check(cond: bool, what: String) -> Result<(), String> {
    if cond {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(what)
    }
}

/// The common end of a scenario: steady-state failures of retryable requests at most
/// 0.02%, no POST without key received twice, every pool permit returned.
fn verdict(
    tally: &Tally,
    received: &Received,
    outcomes: &[Outcome],
    layer: &tower_fortify::stack::ClientStackLayer,
) -> Result<(), String> {
    let (retryable, failed) = tally.retryable();
    let unkeyed: Vec<u64> = outcomes
        .iter()
        .filter(|o| Class::of(o.id) == Class::UnkeyedPost)
        .map(|o| o.id)
        .collect();
    let duplicated = received.duplicated_unkeyed(&unkeyed);
    let pools = layer.pool_handle().snapshot().total;
    check(
        failed as f64 <= retryable as f64 * 0.0002,
        format!(
            "retryable requests failed: {failed} of {retryable} ({:.3}%, at most 0.02%)",
            failed as f64 * 100.0 / retryable.max(1) as f64
        ),
    )?;
    check(
        duplicated.is_empty(),
        format!(
            "POSTs without key received twice: {} of {} ({duplicated:?})",
            duplicated.len(),
            unkeyed.len()
        ),
    )?;
    check(
        pools.in_use == 0 && pools.waiting == 0,
        format!(
            "pool permits returned: {} in use, {} waiting",
            pools.in_use, pools.waiting
        ),
    )
}

fn base_config() -> ClientConfig {
    ClientConfig::default()
        .name("netfault")
        .connect_timeout(Duration::from_millis(250))
        .attempt_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::production().deadline(Some(Duration::from_secs(10))))
}

// ===== scenarios =====

/// About 3% of connects fail: half refused with a reset, half dropped (connect timeouts).
/// The server closes every connection after its answer, so every request connects.
fn connect_faults(rt: &Rt) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(false).await;
        table(
            &["syns", "refused", "dropped"],
            &[
            format!("tcp dport {port} tcp flags syn counter name syns"),
            format!("tcp dport {port} tcp flags syn numgen random mod 1000 < 15 counter name refused reject with tcp reset"),
            format!("tcp dport {port} tcp flags syn numgen random mod 1000 < 15 counter name dropped drop"),
            ],
        );
        let (client, layer) = fortified(base_config());
        let outcomes = send_all(&client, port, 0..3000, 16).await;
        let tally = Tally::of(&outcomes);
        let (syns, refused, dropped) = (counter("syns"), counter("refused"), counter("dropped"));
        println!(
            "  kernel: {syns} connects attempted, {refused} refused with a reset, {dropped} SYNs dropped ({:.2}% of connects failed)",
            (refused + dropped) as f64 * 100.0 / syns.max(1) as f64
        );
        println!(
            "  server: {} requests received for 3000 sent",
            received.total.load(Ordering::Relaxed)
        );
        tally.print();
        check(
            refused > 0 && dropped > 0,
            format!("faults were injected: {refused} refused, {dropped} dropped"),
        )?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}

/// 2% of the requests written on an established connection are answered by the kernel
/// with a reset (the request never reaches the server): GETs and keyed POSTs are retried,
/// POSTs without key fail and are never sent twice.
fn established_resets(rt: &Rt) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(true).await;
        table(
            &["resets"],
            &[
            format!("tcp dport {port} ct state established meta length > 120 numgen random mod 1000 < 20 counter name resets reject with tcp reset"),
            ],
        );
        let (client, layer) = fortified(base_config());
        let outcomes = send_all(&client, port, 0..3000, 16).await;
        let tally = Tally::of(&outcomes);
        println!(
            "  kernel: {} requests reset on established connections",
            counter("resets")
        );
        tally.print();
        check(counter("resets") > 0, "resets were injected".into())?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}

/// 2% of the server's answers are dropped: TCP retransmits them after its minimum
/// retransmission timeout (200 ms on Linux), longer than the attempt timeout here, so the
/// attempt times out after the server handled the request. GETs and keyed POSTs are
/// retried; POSTs without key fail, and none reaches the server twice.
fn lost_responses(rt: &Rt) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(true).await;
        table(
            &["lost"],
            &[
            format!("tcp sport {port} meta length > 400 numgen random mod 1000 < 20 counter name lost drop"),
            ],
        );
        let config = base_config().attempt_timeout(Duration::from_millis(120));
        let (client, layer) = fortified(config);
        let outcomes = send_all(&client, port, 0..3000, 16).await;
        let tally = Tally::of(&outcomes);
        println!("  kernel: {} answers dropped", counter("lost"));
        tally.print();
        check(counter("lost") > 0, "losses were injected".into())?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}

/// A slow link: the namespace's loopback shaped by the kernel's token bucket (`tc qdisc add
/// dev lo root tbf rate 2mbit`, packets of at most 1,500 bytes), so that the 16 concurrent
/// calls queue behind each other's packets in the kernel and every answer comes tens of
/// milliseconds late (a median of about 50 ms, against about 3 ms with the shaper at
/// 10 Gbit/s, in a debug build). No attempt times out (the attempt timeout is 2 s): nothing
/// fails, nothing is sent twice, and the shaper's own statistics show that it held packets
/// back (`overlimits`).
fn slow_link(rt: &Rt) -> Result<(), String> {
    run("ip", &["link", "set", "lo", "mtu", "1500"])?;
    run(
        "tc",
        &[
            "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "2mbit", "burst", "16kb",
            "latency", "1s",
        ],
    )?;
    rt.0.block_on(async {
        let (port, received) = server(true).await;
        let (client, layer) = fortified(base_config());
        let outcomes = send_all(&client, port, 0..600, 16).await;
        let tally = Tally::of(&outcomes);
        let stats = run("tc", &["-s", "qdisc", "show", "dev", "lo"])?;
        let overlimits = tc_stat(&stats, "overlimits");
        let mut took: Vec<Duration> = outcomes.iter().map(|o| o.took).collect();
        took.sort();
        let median = took[took.len() / 2];
        println!(
            "  kernel: {overlimits} packets held back by the shaper ({} dropped)",
            tc_stat(&stats, "dropped")
        );
        println!(
            "  calls: median {:.1} ms, slowest {:.1} ms",
            median.as_secs_f64() * 1e3,
            took[took.len() - 1].as_secs_f64() * 1e3
        );
        tally.print();
        check(
            overlimits > 0,
            format!("the shaper held packets back: {overlimits}"),
        )?;
        check(
            median >= Duration::from_millis(10),
            format!(
                "the link was slow: median call {:.1} ms (at least 10 ms)",
                median.as_secs_f64() * 1e3
            ),
        )?;
        check(
            tally.failed.iter().sum::<u64>() == 0,
            format!("no call failed: {:?}", tally.kinds),
        )?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}

/// A counter from `tc -s qdisc show`'s first statistics line: `(dropped 0, overlimits 12 ...`.
fn tc_stat(stats: &str, name: &str) -> u64 {
    stats
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .skip_while(|w| *w != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in {stats}"))
}

/// A total outage: every connect is refused for 2 s, at 200 requests a second, through the
/// whole preset. The kernel counts the connects the client attempted: the breaker opens
/// within the first calls, so the failing host sees a fraction of the requests. After the
/// outage the breaker closes again.
fn outage(rt: &Rt) -> Result<(), String> {
    let breaker = CircuitBreakerLayer::builder()
        .open_duration(Duration::from_millis(500))
        .open_duration_max(Duration::from_secs(1));
    total_outage(rt, breaker, 200)
}

/// The same outage with a breaker that never opens (its window is longer than the run), so
/// that only the retry budget bounds the load. The production budget allows, over its 10 s
/// window, 20% of the requests in the window plus a reserve of 10 retries a second: with the
/// 200 healthy requests and the 400 of the outage in the window, at most
/// 400 + 0.2 * 600 + 100 = 620 attempts reach the host, 1.55 per request of the outage.
fn outage_budget_only(rt: &Rt) -> Result<(), String> {
    let breaker = CircuitBreakerLayer::builder()
        .window(tower_fortify::circuit_breaker::Window::Count(10_000))
        .minimum_calls(10_000);
    total_outage(rt, breaker, 400 + 600 / 5 + 10 * 10)
}

fn total_outage(
    rt: &Rt,
    breaker: tower_fortify::circuit_breaker::CircuitBreakerBuilder,
    max_attempts: u64,
) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(false).await;
        table(
            &["syns"],
            &[
            format!("tcp dport {port} tcp flags syn counter name syns"),
            ],
        );
        let config = base_config().circuit_breaker(breaker);
        let (client, layer) = fortified(config);
        let rate = Duration::from_millis(5); // 200 requests a second
        let phase = |from: u64, count: u64| {
            let client = client.clone();
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                let mut tick = tokio::time::interval(rate);
                for id in from..from + count {
                    tick.tick().await;
                    let client = client.clone();
                    tasks.spawn(async move { send(&client, port, id).await });
                }
                let mut out = Vec::new();
                while let Some(o) = tasks.join_next().await {
                    out.push(o.expect("a request task"));
                }
                out
            }
        };
        // Healthy, then the outage, then the recovery.
        let before = phase(0, 200).await;
        let syns_before = counter("syns");
        nft(&format!(
            "add rule inet {TABLE} input tcp dport {port} tcp flags syn reject with tcp reset"
        ));
        let outage_started = Instant::now();
        let during = phase(200, 400).await;
        let outage_syns = counter("syns") - syns_before;
        nft(&format!("flush chain inet {TABLE} input"));
        let healed = Instant::now();
        let after = phase(600, 600).await;

        let amplification = outage_syns as f64 / 400.0;
        let failed_during = during.iter().filter(|o| o.result.is_err()).count();
        let open = during
            .iter()
            .filter(|o| o.result == Err(FailureKind::CircuitOpen))
            .count();
        let late: Vec<bool> = after
            .iter()
            .filter(|o| o.at >= healed + Duration::from_secs(2))
            .map(|o| o.result.is_err())
            .collect();
        let late_failures = late.iter().filter(|failed| **failed).count();
        println!(
            "  outage of {:.1} s: 400 requests, {outage_syns} connects reached the kernel ({amplification:.2}x), {failed_during} failed ({open} rejected by the open breaker)",
            healed.duration_since(outage_started).as_secs_f64()
        );
        println!(
            "  after the outage: {} of the requests sent from 2 s after healing, {late_failures} failed",
            late.len()
        );
        let mut all = before;
        all.extend(after);
        let tally = Tally::of(&all);
        tally.print();
        check(
            outage_syns <= max_attempts,
            format!(
                "connects during the outage: {outage_syns} for 400 requests (at most {max_attempts}, {:.2}x)",
                max_attempts as f64 / 400.0
            ),
        )?;
        check(
            !late.is_empty() && late_failures == 0,
            format!(
                "the host is served again (an opened breaker closed): {late_failures} failures among {} requests sent 2 s after healing",
                late.len()
            ),
        )?;
        let pools = layer.pool_handle().snapshot().total;
        check(
            pools.in_use == 0 && pools.waiting == 0,
            format!(
                "pool permits returned: {} in use, {} waiting",
                pools.in_use, pools.waiting
            ),
        )?;
        let _ = received;
        Ok(())
    })
}
