//! Circuit breakers: stop calling a backend that is failing, fail fast, and probe carefully
//! until it recovers.
//!
//! When a backend is down, retrying into it makes things worse: every caller waits for its
//! timeouts, and the retries add load to a service that is already struggling.
//! [`CircuitBreakerLayer`] measures the calls that go through it and, once too many fail (or
//! are too slow), *opens*: calls are rejected at once, without calling the service, with a
//! [`Failure`](crate::classify::Failure) of kind
//! [`CircuitOpen`](crate::classify::FailureKind::CircuitOpen) that says how long until the
//! next probe. After a while a few probe calls go through; if they succeed the breaker
//! closes again.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt};
//! use tower_fortify::circuit_breaker::{error::Open, CircuitBreakerLayer, State};
//! use tower_fortify::classify::{Failure, FailureKind};
//! use tower_fortify::key::HostKey;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_fortify::BoxError> {
//! // One breaker per host (the request URI's authority).
//! let layer = CircuitBreakerLayer::builder()
//!     .minimum_calls(5)
//!     .open_duration(Duration::from_secs(10))
//!     .open_duration_jitter(0.0)
//!     .build()?;
//! let handle = layer.handle();
//! let svc = layer.layer(tower::service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::io::Error>(http::Response::builder().status(503).body(()).unwrap())
//! }));
//! let request = || http::Request::get("http://inventory.test/items").body(());
//!
//! // Five 503s: 100% failures once the window holds the minimum of 5 calls.
//! for _ in 0..5 {
//!     let response = svc.clone().oneshot(request()?).await?;
//!     assert_eq!(response.status(), 503);
//! }
//! let key = HostKey::from_uri(&http::Uri::from_static("http://inventory.test"));
//! assert_eq!(handle.get(&key).unwrap().state(), State::Open);
//!
//! // Now calls to that host fail fast, without reaching the service.
//! let err = svc.clone().oneshot(request()?).await.unwrap_err();
//! let failure = err.downcast_ref::<Failure>().unwrap();
//! assert_eq!(failure.kind(), FailureKind::CircuitOpen);
//! let open = failure.get_ref().downcast_ref::<Open>().unwrap();
//! assert_eq!(open.retry_in(), Some(Duration::from_secs(10)));
//! # Ok(())
//! # }
//! ```
//!
//! # Building
//!
//! | you want | write | you get |
//! |---|---|---|
//! | one breaker per host (HTTP) | `CircuitBreakerLayer::builder()...build()` or [`CircuitBreakerLayer::new`] | [`CircuitBreakerLayer`], [`CircuitBreakerHandle`] |
//! | one breaker for every HTTP request | `...per_host(false).build()` | the same types; no key is computed, no map searched |
//! | one breaker per key of your own | `...key_fn(f).build()` or `...key(k).build()` | the same types |
//! | one breaker, any request type | `...build_generic()` or [`GenericCircuitBreakerLayer::new`] | [`GenericCircuitBreakerLayer`], [`BreakerHandle`] |
//!
//! # States
//!
//! | state | calls | leaves it |
//! |---|---|---|
//! | [`Closed`](State::Closed) | go through, measured in the window | to open, when a rate reaches its threshold |
//! | [`Open`](State::Open) | rejected at once (`CircuitOpen`, [`Open::retry_in`](error::Open::retry_in)) | to half-open, with the first call after the open duration |
//! | [`HalfOpen`](State::HalfOpen) | up to `half_open_max_probes` probes at a time, the rest rejected | to closed after `half_open_successes` successful probes; to open (for longer) at the first failed one |
//! | [`ForcedOpen`](State::ForcedOpen) | rejected | [`reset`](BreakerHandle::reset) |
//! | [`Disabled`](State::Disabled) | go through, measured; never trips | [`reset`](BreakerHandle::reset) |
//!
//! The last two are operator states, set through a [`BreakerHandle`] (from
//! [`CircuitBreakerHandle::get`] for a host, or [`GenericCircuitBreakerLayer::handle`]),
//! which also reads the state and the window's figures.
//!
//! Every transition increments a generation number. A call records the generation it
//! started in, and its result is ignored if the generation has changed since: a slow call
//! from before a trip cannot close a breaker that tripped after it started, nor fill the
//! fresh window of a breaker that has just closed.
//!
//! # Windows
//!
//! The failure rate and the slow-call rate are computed over a sliding [`Window`]:
//!
//! - [`Window::Count(n)`](Window::Count): the last `n` calls, a real ring in which each call
//!   replaces the oldest. After 10 000 successes, a backend that dies is detected within
//!   `n × threshold` failures, not 10 000 (a window that only resets on state changes would
//!   need as many failures as it saw successes).
//! - [`Window::Time(t)`](Window::Time): the calls of the last `t`, in 10 buckets of `t / 10`
//!   on tokio's clock. A call leaves the window with its bucket, between 0.9 `t` and `t`
//!   after it completed.
//!
//! The breaker trips when the window holds at least `minimum_calls` calls and the failure
//! rate reaches `failure_rate_threshold`, or the slow-call rate reaches
//! `slow_call_rate_threshold` (with
//! [`slow_call_duration`](CircuitBreakerBuilder::slow_call_duration) set: a call that takes
//! that long or longer is slow, whether it failed or not). The rates are evaluated
//! each time a failure or a slow call is recorded.
//!
//! # Defaults
//!
//! [`CircuitBreakerLayer::new`], [`GenericCircuitBreakerLayer::new`], and the builder's
//! starting point:
//!
//! | setting | default | why |
//! |---|---|---|
//! | [`window`](CircuitBreakerBuilder::window) | `Window::Count(100)` | a count window never empties, so a client that sends few requests trips as surely as a busy one; no clock read per call |
//! | [`minimum_calls`](CircuitBreakerBuilder::minimum_calls) | 10 | ten calls trip a client that just started, or that sends one request a minute |
//! | [`failure_rate_threshold`](CircuitBreakerBuilder::failure_rate_threshold) | 0.5 | |
//! | [`slow_call_duration`](CircuitBreakerBuilder::slow_call_duration) | off | it costs two clock reads per call |
//! | [`slow_call_rate_threshold`](CircuitBreakerBuilder::slow_call_rate_threshold) | 0.5 | |
//! | [`open_duration`](CircuitBreakerBuilder::open_duration) | 5 s | |
//! | [`open_duration_multiplier`](CircuitBreakerBuilder::open_duration_multiplier) | 2.0 | per failed probe |
//! | [`open_duration_max`](CircuitBreakerBuilder::open_duration_max) | 120 s | |
//! | [`open_duration_jitter`](CircuitBreakerBuilder::open_duration_jitter) | 0.2 | waits drawn from `[0.8 d, d]` |
//! | [`recovery_period`](CircuitBreakerBuilder::recovery_period) | 60 s | closed this long undoes one growth step |
//! | [`half_open_max_probes`](CircuitBreakerBuilder::half_open_max_probes) | 1 | |
//! | [`half_open_successes`](CircuitBreakerBuilder::half_open_successes) | 2 | |
//! | [`probe_timeout`](CircuitBreakerBuilder::probe_timeout) | 30 s | |
//! | [`retry_after_open`](CircuitBreakerBuilder::retry_after_open) | off | |
//! | [`per_host`](CircuitBreakerBuilder::per_host) | `true` (for [`build`](CircuitBreakerBuilder::build)) | one failing host must not open the circuit for the others |
//! | [`max_keys`](CircuitBreakerBuilder::max_keys) (per host) | 1024 | |
//!
//! Durations never overflow a clock. `open_duration_max` and `retry_after_open` over 100
//! years, and a time window over 500 years, are refused by `build` (an
//! [`InvalidConfig`](crate::InvalidConfig) naming the field); a `probe_timeout`,
//! `recovery_period` or `slow_call_duration` too long for the clock means "never" (no probe
//! times out, no step is undone, no call is slow). The breaker keeps time in microseconds:
//! an open duration or probe timeout under a microsecond counts as one.
//!
//! # What counts
//!
//! A [`Classify`] implementation decides; the default, [`HttpStatus`], works for
//! `http::Response` and follows the crate's [taxonomy](crate::classify):
//!
//! | result | counts as |
//! |---|---|
//! | a 5xx response | failure |
//! | any other response (4xx included: the request was wrong, not the server) | success |
//! | a connect, read or other failure, a TLS failure, a protocol error | failure |
//! | `CircuitOpen`, `PoolTimeout`, `PoolFull` (the crate's own rejections: the backend was never called) | nothing |
//! | a cancelled call (its future dropped) | nothing |
//!
//! [`HttpStatus::failure_if`] changes what counts for responses; [`ErrorsOnly`] makes the
//! breaker work with any response type, counting only errors; [`Classify::classify_failure`]
//! changes what counts for errors. Errors of the inner service come back classified, as a
//! boxed [`Failure`](crate::classify::Failure).
//!
//! # Half-open
//!
//! The first call after the open duration moves the breaker to half-open and is a probe. At
//! most `half_open_max_probes` probes are in flight at once; other calls are rejected. After
//! `half_open_successes` successful probes the breaker closes with an empty window; the
//! first failed (or slow) probe opens it again, for longer. A probe holds its slot until it
//! answers, even if another probe's result has moved the breaker on (so the backend never
//! sees more than `half_open_max_probes` probes at once), and a probe whose future is
//! dropped gives its slot back. The inner service can tell a probe from other calls with
//! [`is_probe_call`] (during its `call`). Probes that hold every slot and do not answer within
//! `probe_timeout` count as failed: the next call after that reopens the breaker, and their
//! late results are ignored (generation tagging).
//!
//! # Open duration
//!
//! The first trip opens the breaker for `open_duration`. Each failed probe multiplies the
//! wait by `open_duration_multiplier`, up to `open_duration_max`
//! ([`CircuitBreakerLayer::open_duration`] is the formula); each `recovery_period` the
//! breaker then spends closed undoes one step. Each wait is jittered: drawn from
//! `[d × (1 − jitter), d]`, so that clients that tripped on the same outage do not all
//! probe at the same instant.
//!
//! With [`retry_after_open(max)`](CircuitBreakerBuilder::retry_after_open), a 503 or 429
//! with a valid `Retry-After` opens the breaker for that long, at most `max`: the server
//! said when to come back (delta-seconds or an HTTP-date; a malformed value is ignored).
//!
//! # Readiness
//!
//! `poll_ready` is the inner service's, whatever the state; rejections happen in `call`.
//! This keeps `tower::buffer::Buffer` and `tower::balance` working: see
//! [`CircuitBreaker`]'s docs.
//!
//! # Per host
//!
//! [`CircuitBreakerLayer`] (from [`CircuitBreakerBuilder::build`]) keeps one breaker per
//! scheme, host and port of the request URI's authority
//! ([`key::ByAuthority`](crate::key::ByAuthority), a [`HostKey`](crate::key::HostKey) per
//! request), or per key of your own [`RequestKey`](crate::key::RequestKey)
//! ([`key`](CircuitBreakerBuilder::key)) or [`key_fn`](CircuitBreakerBuilder::key_fn), so
//! that one failing host does not open the circuit for the others. The per-host pools key
//! their pools with the same trait and the same default, so one request maps to the same key
//! in both. As urllib3 keeps one pool per scheme too, `http://h` and `https://h` are two
//! keys: two breakers, which trip apart (a TLS fault on `https://h` does not open
//! `http://h`). Handles and rejections name a key by its `Debug` form
//! (`https://h:443`); [`CircuitBreakerHandle::get`] takes the key itself
//! ([`HostKey::from_uri`](crate::key::HostKey::from_uri)). It tracks at most `max_keys` keys, evicting least recently used
//! closed breakers first, so a scan of a million hosts cannot exhaust memory. Finding a
//! key's breaker takes a read lock on one of up to 16 shards of the map; a thread's calls
//! to the host it called last skip the lookup (it keeps that host's breaker, compared by
//! the URI's scheme and authority bytes, while no eviction has run since), and once every
//! 64 calls stamp it as used in the map (its read lock, no key made) to stay recently used.
//!
//! The default key never reads the `Host` header: on a server, where URIs have no
//! authority, a remote client writes it, and could otherwise create a breaker per request.
//! Requests without an authority share one breaker (printed `(no host)`); on a server, use
//! [`per_host(false)`](CircuitBreakerBuilder::per_host) or a key function of your own.
//!
//! # Cost
//!
//! While closed, a call of a single breaker (generic, or `per_host(false)`) takes no lock and allocates nothing, and with
//! a count window it usually makes no atomic read-modify-write (a time window adds its
//! bucket's counters). It loads the state word. Its future holds a reference to the breaker,
//! which the thread then keeps for its next call instead of cloning a new one. Its success
//! is counted in the thread's *lane*: each thread claims one of a few lanes (one per CPU and
//! one more, up to 16) for its lifetime and is the only one to write it, with a plain
//! store; threads beyond that share one more lane, with atomic updates. Successes reach the
//! count ring in batches (a lane holds back at most `n / (4 × (lanes + 1))` of them, 32 at
//! most; a failure or a slow call pushes its own lane's successes in first, in order), and
//! while the window holds only successes a batch does not even write the ring (it would
//! change nothing). So threads calling one breaker do not write a shared cache line. A time
//! window keeps buckets per lane. A count window reads no clock; a time window reads tokio's
//! clock once per call; slow-call detection reads it when a call starts and when it ends,
//! and with a time window that last reading serves the window too.
//!
//! The price: with several threads, the window may lack recent successes still held in
//! other threads' lanes (less than a quarter of the window in all), which only ever makes
//! it trip earlier, never later; a single thread's window is exact. And a thread keeps the
//! last breaker it called alive until it calls another one or exits.
//!
//! # Metrics
//!
//! With the `metrics` feature. Handles are registered once, when the layer is built (so
//! install the recorder first); the per-host breakers of a layer share them. Names and labels are
//! part of the API; no label ever holds a host or a key.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fortify_circuit_state` | gauge: breakers in each state (0 or 1 for a single breaker) | `name`, `state` ([`State::as_str`]) |
//! | `fortify_circuit_transitions_total` | counter | `name`, `from`, `to` |
//! | `fortify_circuit_rejected_total` | counter | `name` |
//! | `fortify_circuit_calls_total` | counter (successes are added in batches per thread) | `name`, `outcome`: `success`, `failure`, `slow_success`, `slow_failure`, `ignored` |
//! | `fortify_circuit_keys` | gauge (per-host layers) | `name` |
//! | `fortify_circuit_evictions_total` | counter (per-host layers) | `name` |
//!
//! # Tracing
//!
//! With the `tracing` feature, every transition is an `INFO` event with target
//! `tower_fortify::circuit_breaker` and fields `name`, `key` (the per-host breaker's key as its
//! `Debug` form prints it, `scheme://host:port` by default; empty for a single breaker), `from`, `to`, `reason` (`failure_rate`, `slow_call_rate`,
//! `open_duration_elapsed`, `probes_succeeded`, `probe_failed`, `probe_slow`,
//! `probe_timeout`, `retry_after`, `forced_open`, `disabled`, `reset`), `open_ms`, and for a
//! trip `calls`, `failure_rate` and `slow_call_rate`.

mod admission;
mod breaker;
mod builder;
mod classify;
mod config;
pub mod error;
pub mod future;
mod handle;
mod keyed;
mod lanes;
mod layer;
mod local;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(test)]
mod mutants_tests;
mod service;
mod settings;
mod state;
mod ticket;
mod transitions;
mod window;
#[cfg(all(test, fortify_loom))]
mod window_loom;

pub use admission::is_probe_call;
pub use builder::CircuitBreakerBuilder;
pub use classify::{Classify, ClassifyFn, ErrorsOnly, HttpStatus, Outcome};
pub use config::Window;
pub use handle::{BreakerHandle, CircuitBreakerHandle};
pub use layer::{CircuitBreakerLayer, GenericCircuitBreakerLayer};
pub use service::{CircuitBreaker, GenericCircuitBreaker};
pub use state::State;
pub use window::WindowFigures;
#[cfg(feature = "stack")]
pub(crate) use {
    admission::{Admission, ProbeCall, Shared},
    keyed::{Breakers, KeptBreaker},
    ticket::Ticket,
};
