//! One taxonomy of failures, and a layer that applies it.
//!
//! Every layer of this crate decides from the same answer to *what went wrong?*: a
//! [`FailureKind`], carried with the original error in a [`Failure`]. This module
//! computes that answer from the errors a tower / hyper stack really produces, by walking
//! the error's `source()` chain with `downcast_ref` ([`classify_error`]); it never looks at
//! message text.
//!
//! # Why classify by stage
//!
//! The retry decision hinges on whether the request may have reached the server: a
//! refused connection or a failed handshake can be retried for a POST, a read timeout
//! cannot. The same `io::ErrorKind::TimedOut` means one or the other depending on where it
//! happened, so classification knows a [`Stage`]: hyper-util's client error says when it
//! failed while connecting, and an [`ErrorClassifyLayer`] placed around a resolver or a
//! connector says so itself. A client that wants every failure named where it happens
//! wraps each part of its connector:
//!
//! ```
//! use std::time::Duration;
//! use hyper_util::client::legacy::{connect::{dns::GaiResolver, HttpConnector}, Client};
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Layer, ServiceBuilder};
//! use tower_fortify::classify::ErrorClassifyLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // DNS failures are `Dns`, whatever error type the resolver uses.
//! let resolver = ErrorClassifyLayer::resolver().layer(GaiResolver::new());
//! let mut http = HttpConnector::new_with_resolver(resolver);
//! // A TCP connect that does not finish in 3 s is a `ConnectTimeout`.
//! http.set_connect_timeout(Some(Duration::from_secs(3)));
//! let connector = ErrorClassifyLayer::connector().layer(http);
//!
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
//! // Failures after the connection was made are classified at the request stage.
//! let svc = ServiceBuilder::new()
//!     .layer(ErrorClassifyLayer::new())
//!     .timeout(Duration::from_secs(10))
//!     .service(client);
//! # let _ = svc;
//! # }
//! ```
//!
//! A TLS connector (hyper-rustls's `HttpsConnector`) goes around the TCP connector, and an
//! [`ErrorClassifyLayer::tls_handshake`] with a timeout around it makes a stalled handshake a
//! [`TlsHandshake`](FailureKind::TlsHandshake) failure. hyper-util requires a connector's
//! future to be `Unpin`, so a `tower::timeout::Timeout` there needs boxing (for example
//! with `tower::util::BoxCloneSyncServiceLayer`).
//!
//! # Responses
//!
//! [`ResponseClass`][response-class] (feature `http`) reads a response's status and `Retry-After` header the
//! way the retry layer and the circuit breaker need it.
//!
//! # Metrics
//!
//! With the `metrics` feature, [`ErrorClassify`] records through the `metrics` facade. Its
//! handles are registered once, when the layer builds the service, so install the recorder
//! before building the service. Names and labels are part of the API:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fortify_request_duration_seconds` | histogram | `name` (the layer's, static), `stage`, `outcome` (`ok` or a [`FailureKind::as_str`]) |
//! | `fortify_errors_total` | counter | `name`, `stage`, `kind` ([`FailureKind::as_str`]), `category` ([`Category::as_str`], or `not_retried` for a kind [never retried](FailureKind::category)) |
//!
//! Around a connector, `fortify_request_duration_seconds{stage="tls_handshake"}` is the
//! connect-plus-handshake duration.
//!
//! Errors are counted whether or not the recorder keeps the histogram (a counters-only
//! backend, or a filter on its name); a call reads the clock only when a recorder took the
//! histogram or a tracing subscriber wants the failure events.
//!
//! # Tracing
//!
//! With the `tracing` feature, every failure is reported as a `DEBUG` event with target
//! `tower_fortify::classify` and fields `name`, `stage`, `kind`, `category`, `elapsed_ms`
//! and `error` (the whole `source()` chain).
//!
#![cfg_attr(feature = "http", doc = "[response-class]: ResponseClass")]
#![cfg_attr(
    not(feature = "http"),
    doc = "[response-class]: https://docs.rs/tower-fortify/latest/tower_fortify/classify/struct.ResponseClass.html"
)]

mod chain;
pub mod error;
mod explain;
#[cfg(feature = "retry")]
pub(crate) use explain::explains_itself;
mod failure;
pub mod future;
mod kind;
mod layer;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
#[cfg(feature = "http")]
mod response;
#[cfg(feature = "http")]
mod retry_after;
mod service;
mod stage;

/// Errors nested deeper than this are not inspected (a guard against cyclic chains).
pub(crate) const MAX_DEPTH: usize = 32;

/// The errors of `error`'s chain, `error` first, at most [`MAX_DEPTH`] of them: each
/// error's `source()`, except that an `io::Error` wrapping an error leads to that error
/// (`io::Error::source` skips it, and gives that error's own source instead).
pub(crate) fn links<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let err = next?;
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
        Some(err)
    })
    .take(MAX_DEPTH)
}

pub use chain::classify_error;
#[cfg_attr(not(feature = "diagnose"), allow(unused_imports))]
pub(crate) use explain::days;
#[cfg_attr(
    not(any(feature = "diagnose", feature = "retry")),
    allow(unused_imports)
)]
pub(crate) use explain::human_duration;
pub use stage::Stage;
// Only the diagnose module's tests use it directly.
#[cfg_attr(not(all(test, feature = "diagnose")), allow(unused_imports))]
pub(crate) use explain::thousands;
pub use failure::Failure;
pub use kind::{Category, FailureKind};
pub use layer::{ErrorClassifyBuilder, ErrorClassifyLayer};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use response::{is_retry_after_status, ResponseClass};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use retry_after::parse_retry_after;
#[cfg(any(feature = "retry", feature = "circuit-breaker"))]
pub(crate) use retry_after::retry_after_of;
pub use service::ErrorClassify;
/// A classification service's shared state: the preset's retry layer does the job with it.
#[cfg(feature = "retry")]
pub(crate) use service::Shared as ClassifyShared;
