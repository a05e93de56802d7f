//! Retries, the urllib3 way: [`RetryLayer`] and its parts.
//!
//! A Python engineer who writes `Retry(total=5, backoff_factor=0.5, status_forcelist=[502,
//! 503])` finds the same knobs under the same names on [`RetryPolicy`], and gets the same
//! attempts, sleeps and outcome:
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_fortify::retry::{RetryLayer, RetryPolicy};
//!
//! let layer = RetryLayer::builder()
//!     .policy(
//!         RetryPolicy::default()
//!             .total(Some(5))
//!             .backoff_factor(Duration::from_millis(500))
//!             .status_forcelist([502, 503]),
//!     )
//!     .name("search")
//!     .build()?;
//! let svc = ServiceBuilder::new().layer(layer).service_fn(|req: http::Request<String>| async move {
//!     Ok::<_, std::io::Error>(http::Response::new(req.into_body()))
//! });
//! # let _ = svc;
//! # Ok::<(), tower_fortify::InvalidConfig>(())
//! ```
//!
//! # The decision matrix
//!
//! Failures are classified through the crate's taxonomy
//! ([`FailureKind`](crate::classify::FailureKind)); each retry decrements `total` and the
//! counter of its [`Category`](crate::classify::Category), and a retry that would take a
//! counter below zero is not made.
//!
//! A first failure the layer never retries (a kind no counter covers, a read failure of a
//! POST: "the failure itself" below) comes back as the classified
//! [`Failure`](crate::classify::Failure) itself. A failure that stops the retries (its
//! counter or `total` exhausted, even one set to zero; the budget; the deadline), and any
//! failure after at least one retry, comes back as a [`RetryError`](error::RetryError)
//! holding that failure and the [`RetryHistory`], with [`stop`](error::RetryError::stop)
//! saying why the layer stopped, if it did. A response carries its history in its
//! extensions.
//!
//! | what happened | counter | idempotent request | POST, PATCH (not marked) | counter exhausted |
//! |---|---|---|---|---|
//! | connect failure (`Dns`, `ConnectRefused`, `ConnectTimeout`) | `connect` | retried | retried | [`RetryError`](error::RetryError) |
//! | other failure (`TlsHandshake`, `Other`) | `other` | retried | retried | [`RetryError`](error::RetryError) |
//! | read failure (`ReadTimeout`, `ConnectionClosed`, `Protocol`) | `read` | retried | the failure itself | [`RetryError`](error::RetryError) |
//! | `TlsCertificate`, `TlsNegotiation`, `PoolTimeout`, `PoolFull`, `CircuitOpen` | none | the failure itself | the failure itself | |
//! | status in `status_forcelist` | `status` | retried | returned | [`RetryError`](error::RetryError) or, with `raise_on_status(false)`, the response |
//! | 413/429/503 with `Retry-After` while `total > 0` | `status` | retried | returned | the response |
//!
//! "The failure itself" is the bare [`Failure`](crate::classify::Failure) when no retry was
//! made, else a [`RetryError`](error::RetryError) with no stop.
//!
//! "Idempotent" means the method is in `allowed_methods` (HEAD, GET, PUT, DELETE, OPTIONS,
//! TRACE by default; empty means every method) or the request carries the [`Idempotent`]
//! marker. A POST is never retried after it may have reached the server unless so marked.
//!
//! # Sleeps
//!
//! [`Backoff`]: the first retry is immediate, then `backoff_factor * 2^(k-1)` capped by
//! `backoff_max`, with urllib3's additive jitter or a [`Jitter`] strategy that keeps the
//! randomness below the cap. A `Retry-After` on a retried response replaces the backoff
//! ([`parse_retry_after`](crate::classify::parse_retry_after)), capped by `retry_after_max`;
//! a malformed one is treated as absent and counted. A response with several `Retry-After`
//! fields is read as urllib3 reads it: it joins them (`"5, 1"`), which is malformed, so the
//! retry backs off as if there were none (neither value can be trusted over the other).
//! Sleeps use tokio's clock, and a call that sleeps (or waits for its `deadline`) takes a
//! slot in one timer its layer shares (a task spawned on the runtime of the first call
//! that waits), woken no earlier than its instant and at most one tokio timer tick (1 ms)
//! after it, as with a `Sleep` of its own; a call that never waits holds no timer. A
//! sleep or a `deadline` too long to represent as an instant saturates: the wake (or the
//! deadline) never comes, nothing panics.
//!
//! # Deliberate deviations from urllib3
//!
//! | # | urllib3 | here |
//! |---|---|---|
//! | D1 | a malformed or empty `Retry-After` on a retried response (several fields included, joined as `"5, 1"`) raises `InvalidHeader` | treated as absent (backoff), counted in `fortify_retry_after_invalid_total` |
//! | D2 | follows redirects, with a `redirect` counter | a 3xx is an ordinary response (put tower-http's `FollowRedirectLayer` outside) |
//! | D3 | certificate failures are `other` and retried | `TlsCertificate` is never retried |
//! | D4 | a stalled TLS handshake is a read error | `TlsHandshake`, category other, retried for any method |
//! | D5 | `False` for a counter re-raises the raw error | `Some(0)` ends with a `RetryError` |
//! | D6 | no budget across requests | a [`RetryBudget`] shared by the layer's clones |
//! | D7 | a failed TLS negotiation (no common version or cipher suite, a fatal `protocol_version` or `handshake_failure` alert, plain HTTP on a TLS port) is an `SSLError`, category other, retried | `TlsNegotiation` is never retried; a stalled or reset handshake stays `TlsHandshake` and is retried |
//!
//! D7 because a retry sends the same hello to the same server, which gives the same answer:
//! retrying only delays the alarm (five times, with the production preset), as for a
//! certificate (D3). The circuit breaker still counts it as a failure of that host.
//!
//! # Beyond urllib3
//!
//! A [`RetryBudget`] shared by the layer's clones caps retries as a share of traffic; a
//! `deadline` bounds the whole call; [`ReplayBody`] makes any body replayable up to a limit;
//! the result carries a [`RetryHistory`] (in a response's extensions, in every
//! [`RetryError`](error::RetryError)) that says what was retried, after what, how long the layer slept and why it
//! stopped ([`Stop`]).
//!
//! # Metrics
//!
//! With the `metrics` feature, the layer records through the `metrics` facade. Its
//! handles are registered once, when the layer is built, so install the recorder before
//! building it. Names and labels are part of the API:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fortify_retry_requests_total` | counter | `name` (the layer's, static) |
//! | `fortify_retry_retried_requests_total` | counter | `name`: requests retried at least once |
//! | `fortify_retries_total` | counter | `name`, `category` (`connect`, `read`, `other`, `status`) |
//! | `fortify_retry_stopped_total` | counter | `name`, `stop` ([`Stop::as_str`]: `exhausted`, `budget`, `deadline`, `retry_after_too_long`, `not_replayable`) |
//! | `fortify_retry_after_invalid_total` | counter | `name`: malformed `Retry-After` headers treated as absent (D1) |
//!
//! Retries per request are `fortify_retries_total / fortify_retry_requests_total`; the
//! load an outage adds is bounded by the budget (see [`RetryBudget`]).
//!
//! # Tracing
//!
//! With the `tracing` feature, the layer emits `DEBUG` events with target
//! `tower_fortify::retry`:
//!
//! - `retrying`, before each retry, with fields `name`, `retry` (1 for the first retry),
//!   `category`, `cause` (the failure kind or the status) and `sleep_ms`;
//! - `stopped retrying`, when the layer stops before a result it could return as it is,
//!   with fields `name` and `stop` ([`Stop::as_str`]).

mod backoff;
mod body;
mod budget;
mod decision;
pub mod error;
pub mod future;
mod history;
mod layer;
#[cfg(feature = "metrics")]
mod metrics;
mod policy;
mod service;

pub use backoff::{Backoff, Jitter};
pub use body::{ReplayBody, TryCloneBody};
pub use budget::RetryBudget;
pub use history::{RetryCause, RetryHistory, RetryRecord, Stop};
pub use layer::{RetryBuilder, RetryLayer};
pub use policy::{Idempotent, NoRetry, RetryAfterOverMax, RetryPolicy};
pub use service::Retry;
// What the hedge layer shares with the retry layer: the rule for sending a request more
// than once, and the copy of a request it is sent again from.
#[cfg(feature = "hedge")]
pub(crate) use policy::AllowedMethods;
#[cfg(feature = "hedge")]
pub(crate) use service::Kept;
