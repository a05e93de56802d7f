//! Hedged requests: [`HedgeLayer`] sends a second attempt of an idempotent request when
//! the first has not answered after its host's usual latency, and takes the first answer.
//!
//! A few slow answers make most of a client's tail latency: a backend that answers in
//! 20 ms at p95 and in a second at p99 (a garbage collection, a cold cache, a lost packet)
//! costs its callers a second once in a hundred requests. A hedge, sent after the p95,
//! usually reaches a replica or a connection that is not stuck, and answers in the usual
//! 20 ms: the p99 falls to about the p95 plus the p95, for about 5% more requests
//! ("The Tail at Scale", Dean and Barroso; gRPC's and Finagle's backup requests).
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_fortify::hedge::HedgeLayer;
//! use tower_fortify::retry::{RetryBudget, RetryLayer, RetryPolicy};
//!
//! // Retries and hedges paid from one budget: 20% of the requests, plus 10 per second.
//! let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
//! let client = ServiceBuilder::new()
//!     .layer(
//!         RetryLayer::builder()
//!             .policy(RetryPolicy::production().budget(budget.clone()))
//!             .build()?,
//!     )
//!     .layer(HedgeLayer::builder().percentile(95.0).budget(budget).build()?)
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::io::Error>(http::Response::new(String::from("ok")))
//!     });
//! # let _ = client;
//! # Ok::<(), tower_fortify::InvalidConfig>(())
//! ```
//!
//! # When a hedge is sent
//!
//! - **Only a request that may be sent twice**: the retry layer's rule, from the same code.
//!   Its method is in `allowed_methods` (HEAD, GET, PUT, DELETE, OPTIONS, TRACE by default)
//!   or it carries the [`Idempotent`](crate::retry::Idempotent) marker, it does not carry
//!   [`NoRetry`](crate::retry::NoRetry), and its body can be copied
//!   ([`TryCloneBody`](crate::retry::TryCloneBody); wrap a streaming body in
//!   [`ReplayBody`](crate::retry::ReplayBody)). A POST without the marker is never
//!   duplicated.
//! - **After the host's latency percentile**: `percentile` (p95 by default) of the host's
//!   recent latencies, at least `min_delay` (10 ms), once the host has answered
//!   `min_samples` times (50). Hosts are keyed by the request URI's authority (scheme, host
//!   and port, [`HostKey`](crate::key::HostKey)), never by the `Host` header.
//! - **Within bounds**: at most `max_in_flight` hedges in flight per host (4), one hedge
//!   per request, none after the first attempt failed (trying again after a failure is the
//!   retry layer's decision).
//! - **Paid from the retry budget**: each hedge [withdraws](crate::retry::RetryBudget::withdraw)
//!   one retry from the [`budget`](HedgeBuilder::budget), the one the retry layer's policy
//!   uses; no hedge when it refuses.
//! - **Never to a breaker that is not closed**: with the breaker layer's
//!   [handle][hedge-breaker], no hedge goes to a host whose breaker is open,
//!   half-open or forced open.
//!
//! The first answer (a response, whatever its status) is taken and the other attempt is
//! dropped at once, which cancels it: its connection, its pool permit and its breaker
//! call are given back, and the breaker records nothing for it. When one attempt fails
//! while the other runs, the other's answer is awaited; when both fail, the first
//! attempt's failure is returned.
//!
//! # Where it goes in a stack
//!
//! Inside the retry layer, outside the breaker and the pool limit:
//!
//! ```text
//! ErrorClassify -> Retry -> Hedge -> CircuitBreaker -> PoolLimit -> Timeout -> client
//! ```
//!
//! - Inside the retry, so that each attempt the retry layer makes may be hedged, the retry
//!   layer sees one answer per attempt, and it deposits into the budget for every request
//!   the hedges withdraw from.
//! - Outside the breaker, so that the hedge is admitted (and counted) by the breaker as any
//!   call is, and the losing attempt, dropped, records nothing.
//! - Outside the pool, so that each attempt takes its own permit and the loser's is given
//!   back when it is dropped; a hedge waits for its permit like any call.
//! - Outside the per-attempt timeout, so that the timeout bounds each attempt.
//!
//! # The latency tracker
//!
//! Per host, a small rotating histogram: log-linear buckets of 12.5% (exact below 16 µs,
//! up to 67 s), two windows of 512 samples; the delay is computed from the last 512 to
//! 1024 samples (fewer at first) once every 128 samples, by the call that records the
//! 128th. A call finds its host in a
//! fixed table of `max_keys` slots (64) with a few atomic loads: no lock, no allocation. A
//! new host takes the slot of one of the least recently active when the slots it may use
//! are taken. A percentile is read as the largest latency of its bucket: never below the
//! true value, at most 12.5% above.
//!
//! A latency is recorded for tracked attempts that answer with a response (failures are
//! not latencies of the backend's answers): for every one until the host has its delay.
//! After that, one call in two on each thread, drawn at random, is recorded, counting
//! twice (as the adaptive pool limit times its calls): an answer at the first poll as zero
//! (no clock read), a pending call timed; the other pending call reads the clock only for
//! its hedge deadline, and neither writes the histogram. The counts above (windows of 512, every 128, `min_samples`) count answers so
//! weighted. When a hedge wins, the hedge's latency and the first attempt's time so far
//! are recorded once each: the latter a lower bound of its latency, which keeps slow
//! answers in the tail.
//!
//! # Cost
//!
//! A request that may not be hedged costs a few branches, its one attempt polled straight
//! through (its future holds no reference to the layer). One that may costs its host's
//! slot: the thread's last one when the URI's scheme and authority are the last call's
//! (a byte comparison and one atomic load to check the slot still holds the host), else
//! the host's key, read and hashed in place from the URI, and a slot lookup (atomic
//! loads). Once the host has its delay, it costs a copy of the request (the retry layer's
//! copy: one allocation for the header fields when there are any) and a reference to the
//! service hedges are cloned from (the clone is made for a hedge only, as is the room
//! for the hedge's future and what goes with it). An answer ready at the first poll reads
//! no clock and waits for no timer; one that is pending reads the clock when first
//! pending, takes a slot among the layer's waiting calls until it answers, and reads the
//! clock again then if it is timed (every call of a host without a delay yet, one in two
//! after: see the latency tracker above).
//!
//! No call arms a timer of its own: the layer's pending calls share one, a task (the
//! ticker) spawned on the runtime of the first call that waits, which sleeps until the
//! earliest deadline among them, wakes the calls that are due and sleeps again; a call
//! answered first gives its slot back and never touches tokio's timer wheel. The ticker
//! sleeps on tokio's timer, so a hedge goes out at its delay as precisely as with a timer
//! per call (tokio's millisecond). At most 4096 calls of a layer wait at once; a call that
//! finds them all taken, or runs outside a tokio runtime, is not hedged. The runtime must
//! have its timer enabled (as for tokio's `sleep`: the first call that waits panics
//! otherwise). If the ticker's runtime shuts down, the calls waiting on it are woken and
//! the next one polled starts a ticker on its own runtime.
//! `benches/hedge.rs` measures the cost.
//!
//! # Metrics
//!
//! With the `metrics` feature, the layer records through the `metrics` facade. Its handles
//! are registered once, when the layer is built, so install the recorder before building
//! it. Names and labels are part of the API:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fortify_hedges_sent_total` | counter | `name` (the layer's, static): hedges sent |
//! | `fortify_hedges_won_total` | counter | `name`: hedges whose answer was taken |
//!
//! Hedges that won per hedge sent says whether the delay is right: few wins mean the
//! hedges mostly add load.
//!
//! # Tracing
//!
//! With the `tracing` feature, the layer emits `DEBUG` events with target
//! `tower_fortify::hedge`:
//!
//! - `hedging`, when a hedge is sent, with fields `name`, `key` (the host) and `delay_ms`;
//! - `hedge won`, when the hedge's answer is taken, with field `name`;
//! - `hedge not sent`, when the delay passed but the hedge was refused, with fields
//!   `name`, `delay_ms` and `reason` (`max_in_flight`, `not_replayable`, `breaker`,
//!   `budget`, `not_ready`: the inner service failed to get ready).
//!
//! # Cancel safety
//!
//! Dropping the [response future](future::ResponseFuture) drops both attempts, gives back
//! its place among the waiting calls and the hedge's place in `max_in_flight`; no latency
//! is recorded for it. A hedge taken from the budget is not given back, as a retry's is not.
//!
#![cfg_attr(
    feature = "circuit-breaker",
    doc = "[hedge-breaker]: HedgeBuilder::breaker"
)]
#![cfg_attr(
    not(feature = "circuit-breaker"),
    doc = "[hedge-breaker]: https://docs.rs/tower-fortify/latest/tower_fortify/hedge/struct.HedgeBuilder.html#method.breaker"
)]

pub mod future;
mod host_cache;
mod layer;
#[cfg(feature = "metrics")]
mod metrics;
mod service;
mod shared;
#[cfg(test)]
mod sizes;
mod tracker;

pub use layer::{HedgeBuilder, HedgeLayer};
pub use service::Hedge;
