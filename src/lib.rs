//! Resilience middleware for [`tower`] services, built for HTTP clients and servers on
//! [hyper], hyper-util and axum.
//!
//! Production traffic meets refused and timed-out connections, TLS failures, dropped
//! connections, 5xx storms, slow backends and exhausted pools. Python services have
//! urllib3's `Retry` and connection pools to survive them; this crate brings the same
//! semantics to tower, with one shared answer to *what went wrong?* that every layer uses.
//!
//! # The failure taxonomy
//!
//! The [`classify`] module turns any error a tower or hyper stack produces into a
//! [`Failure`](classify::Failure) with a [`FailureKind`](classify::FailureKind): DNS, connect
//! refused, connect timeout, TLS handshake, TLS certificate, read timeout, connection closed,
//! protocol, pool timeout, pool full, circuit open, or other. Each kind belongs to one of
//! urllib3's retry categories ([`Category`](classify::Category)): connect, read, other, or
//! never retried.
//!
//! [`ErrorClassifyLayer`](classify::ErrorClassifyLayer) applies that classification to every
//! error of the service it wraps, and records metrics and tracing events.
//!
//! ```
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_fortify::classify::{ErrorClassifyLayer, Failure, FailureKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(ErrorClassifyLayer::new())
//!     .service_fn(|_req: ()| async {
//!         Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
//!     });
//!
//! let err = svc.oneshot(()).await.unwrap_err();
//! let failure = err.downcast_ref::<Failure>().unwrap();
//! assert_eq!(failure.kind(), FailureKind::ConnectRefused);
//! # }
//! ```
//!
//! # The layers, and the preset stack
//!
//! - [`retry`]: urllib3's `Retry` decision matrix attempt for attempt, jitter that stays
//!   below the cap, bounded `Retry-After`, a retry budget, an overall deadline, replayable
//!   bodies.
//! - [`circuit_breaker`]: count and time windows, slow calls, bounded half-open probes, a
//!   growing jittered open time, one breaker per host; the closed path takes no lock.
//! - [`hedge`]: a second attempt of an idempotent request after its host's latency
//!   percentile, the first answer taken, paid from the retry budget, never to an open
//!   breaker.
//! - [`pool`]: urllib3's pool semantics (`maxsize`, `block`, `pool_timeout`, overflow or
//!   fail fast), one pool per host, permits held until the response body ends, leak
//!   detection.
//! - [`stack`]: all of them in the order that makes them work together, from one
//!   [`ClientConfig`][stack-config] whose defaults follow production practice, for a
//!   hyper-util client or any HTTP service; [`ServiceBuilderExt`] adds each layer to a
//!   `ServiceBuilder`.
//! - `client` (feature `client`): the fortified HTTPS client in one call,
//!   `ClientConfig::default().https()?`, with each connection phase (resolve, connect,
//!   TLS handshake) classified, bounded and timed.
//!
#![cfg_attr(
    feature = "stack",
    doc = "[`ServiceBuilderExt::client_stack`] adds the whole preset stack in one call (see its \
           example)."
)]
//!
//! # Compared with tower and tower-resilience
//!
//! - **tower** has building blocks, not policies: no failure classification (errors are
//!   `BoxError`, and a `Policy` you write decides); `ConcurrencyLimit` waits without a
//!   timeout, frees its slot when the response head arrives, and has one limit for all
//!   hosts; no circuit breaker. Timeout, rate limit, load shed, buffer and balance are not
//!   duplicated here: the preset stack uses tower's `Timeout`.
//! - **tower-resilience** is a broad, protocol-agnostic toolkit (bulkhead, breaker, retry,
//!   rate limiter, cache, fallback, hedging, time limiter, coalescing, outlier detection,
//!   health checks, adaptive concurrency) with many patterns this crate lacks. It knows
//!   nothing of HTTP: no idempotency rules, no `Retry-After`, no taxonomy (its classifiers
//!   are closures over your error type), no per-host breakers or pools. Its services box
//!   every call and its breaker locks a mutex per call; the layers here allocate nothing
//!   per call on the success path, and the single breaker's closed path takes no lock.
//!
//! # Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `circuit-breaker` (default) | the [`circuit_breaker`] module |
//! | `pool` (default) | the [`pool`] module |
//! | `retry` (default) | the [`retry`] module: backoff strategies, `Retry-After` parsing, the retry budget |
//! | `hedge` (default) | the [`hedge`] module: hedged requests after a per-host latency percentile, paid from the retry budget (needs `retry` and `pool`) |
//! | `http` (default) | classification of HTTP responses by status and `Retry-After` |
//! | `hyper` (default) | classification of `hyper::Error` and hyper-util's legacy client errors |
//! | `rustls` (default) | classification of rustls errors (certificate vs handshake); no crypto provider is pulled in |
//! | `metrics` (default) | `fortify_*` metrics through the [`metrics`](https://docs.rs/metrics) facade |
//! | `tracing` (default) | [`tracing`](https://docs.rs/tracing) events |
//! | `reqwest` | the [`reqwest`] module: a `reqwest::Client` as an `http::Request` service for every layer, a classified resolver, classification of `reqwest::Error` |
//! | `stack` (default) | the [`stack`] module: the preset client stack of every layer (needs `retry`, `circuit-breaker`, `pool`) |
//! | `client` | the [`client`] module: the fortified HTTPS client in one call (rustls with `ring`, hyper-rustls, webpki roots, hyper-util's legacy client; implies `stack`) |
//! | `native-roots` | the operating system's root certificates for the client |
//! | `http2` | HTTP/2 through ALPN for the client |
//! | `diagnose` | the [`diagnose`] probe (DNS, TCP, TLS with the certificate chain, HTTP) and its report; pulls in rustls with ring, `x509-parser` and the webpki roots |
//! | `full` | all of the above |
//!
//! [hyper]: https://docs.rs/hyper
// A module behind a feature that is off is linked on docs.rs instead (a plain `cargo doc` stays
// warning-free); one that is on resolves by its name, `reqwest` by `mod@` (the crate has the
// same name).
#![cfg_attr(
    not(feature = "retry"),
    doc = "[`retry`]: https://docs.rs/tower-fortify/latest/tower_fortify/retry/index.html"
)]
#![cfg_attr(
    not(feature = "circuit-breaker"),
    doc = "[`circuit_breaker`]: https://docs.rs/tower-fortify/latest/tower_fortify/circuit_breaker/index.html"
)]
#![cfg_attr(
    not(feature = "hedge"),
    doc = "[`hedge`]: https://docs.rs/tower-fortify/latest/tower_fortify/hedge/index.html"
)]
#![cfg_attr(
    not(feature = "pool"),
    doc = "[`pool`]: https://docs.rs/tower-fortify/latest/tower_fortify/pool/index.html"
)]
#![cfg_attr(
    not(feature = "stack"),
    doc = "[`stack`]: https://docs.rs/tower-fortify/latest/tower_fortify/stack/index.html"
)]
#![cfg_attr(feature = "reqwest", doc = "[`reqwest`]: mod@reqwest")]
#![cfg_attr(
    not(feature = "reqwest"),
    doc = "[`reqwest`]: https://docs.rs/tower-fortify/latest/tower_fortify/reqwest/index.html"
)]
#![cfg_attr(
    not(feature = "client"),
    doc = "[`client`]: https://docs.rs/tower-fortify/latest/tower_fortify/client/index.html"
)]
#![cfg_attr(
    not(feature = "diagnose"),
    doc = "[`diagnose`]: https://docs.rs/tower-fortify/latest/tower_fortify/diagnose/index.html"
)]
#![cfg_attr(feature = "stack", doc = "[stack-config]: stack::ClientConfig")]
#![cfg_attr(
    not(feature = "stack"),
    doc = "[stack-config]: https://docs.rs/tower-fortify/latest/tower_fortify/stack/struct.ClientConfig.html"
)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
#[cfg(feature = "circuit-breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
pub mod circuit_breaker;
pub mod classify;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod config;
#[cfg(feature = "diagnose")]
#[cfg_attr(docsrs, doc(cfg(feature = "diagnose")))]
pub mod diagnose;
#[cfg(feature = "hedge")]
#[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
pub mod hedge;
mod internal;
#[cfg(any(feature = "pool", feature = "circuit-breaker"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "pool", feature = "circuit-breaker"))))]
pub mod key;
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub mod pool;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub mod retry;
#[cfg(feature = "stack")]
#[cfg_attr(docsrs, doc(cfg(feature = "stack")))]
pub mod stack;

pub use builder::ServiceBuilderExt;
pub use config::InvalidConfig;

/// Alias for a type-erased error type, as used by tower.
///
/// ```
/// let err: tower_fortify::BoxError = "boom".into();
/// assert_eq!(err.to_string(), "boom");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

// The README's examples are compiled and run as doc tests (they use every layer, and the
// HTTPS client).
#[cfg(all(
    doctest,
    feature = "client",
    feature = "stack",
    feature = "hyper",
    feature = "rustls",
    feature = "metrics",
    feature = "tracing"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
