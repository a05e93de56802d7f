//! The fortified HTTPS client in one call (feature `client`).
//!
//! [`ClientConfig::https`](crate::stack::ClientConfig::https) builds, in this order:
//!
//! ```text
//! ErrorClassify -> Retry -> CircuitBreaker -> PoolLimit -> Timeout   the preset stack
//!   -> hyper_util::client::legacy::Client                            one for every clone (SharedClient); keeps
//!                                                                    pool_maxsize idle connections per host
//!     -> Connector                                                    one new connection:
//!          resolve         (stage resolve)        the resolver; any error is Dns
//!          TCP connect     (stage connect)        within connect_timeout
//!          TLS handshake   (stage tls_handshake)  rustls (ring), within tls_handshake_timeout
//! ```
//!
//! It speaks rustls with the `ring` provider and Mozilla's roots (webpki-roots) by default;
//! no OpenSSL. The operating system's roots (feature `native-roots`) or a private
//! certificate authority are a [`TlsRoots`] away. HTTP/1.1 by default; HTTP/2 through ALPN
//! with `ClientConfig::http2` (feature `http2`). `http://` URIs work too, without the
//! handshake phase.
//!
//! ```no_run
//! use http_body_util::{BodyExt, Full};
//! use tower::ServiceExt;
//! use tower_fortify::client::HttpsClient;
//! use tower_fortify::stack::ClientConfig;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), tower_fortify::BoxError> {
//! let client: HttpsClient = ClientConfig::default().name("github").https()?;
//!
//! let request = http::Request::get("https://api.github.com/").body(Full::default())?;
//! let response = client.oneshot(request).await?;
//! let body = response.into_body().collect().await?.to_bytes();
//! # let _ = body;
//! # Ok(())
//! # }
//! ```
//!
//! # Settings
//!
//! Those of the [preset stack](crate::stack) (retry, breaker, pool, `attempt_timeout`,
//! `connect_timeout`), and:
//!
//! | setting | default | urllib3 / requests |
//! |---|---|---|
//! | [`connect_timeout`](crate::stack::ClientConfig::connect_timeout) | 3 s | `Timeout(connect=...)` (here the TCP connect alone) |
//! | [`tls_handshake_timeout`](crate::stack::ClientConfig::tls_handshake_timeout) | 3 s | (part of urllib3's connect timeout) |
//! | [`attempt_timeout`](crate::stack::ClientConfig::attempt_timeout) | 10 s | `Timeout(read=...)`; must exceed the two above together |
//! | [`pool_maxsize`](crate::stack::ClientConfig::pool_maxsize) | 64 | `maxsize`: calls in flight per host and idle connections kept per host (hyper-util's `pool_max_idle_per_host`) |
//! | [`pool_idle_timeout`](crate::stack::ClientConfig::pool_idle_timeout) | 90 s | (none) |
//! | [`tls_roots`](crate::stack::ClientConfig::tls_roots) | [`TlsRoots::WebPki`] | `ca_certs` / `verify` |
//! | [`resolver`](crate::stack::ClientConfig::resolver) | hyper-util's `GaiResolver` | (none) |
//! | `http2` | `false` | (none; feature `http2`) |
//!
//! Every setting is validated by [`https`](crate::stack::ClientConfig::https), which names the field.
//!
//! # Failures
//!
//! Each phase classifies its own errors (see [`Connector`]): the stack's retry layer
//! retries `Dns`, `ConnectRefused`, `ConnectTimeout` and `TlsHandshake` for any method
//! (the request was not sent) and never `TlsCertificate`; `ReadTimeout` and
//! `ConnectionClosed` after the request was sent only for idempotent methods.
//!
//! # Metrics
//!
//! With the `metrics` feature, the connector records, besides the stack's own metrics
//! (see [`classify`](crate::classify#metrics) and the other layers). Handles are registered
//! once, by [`https`](crate::stack::ClientConfig::https): install the recorder first.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fortify_connection_setup_seconds` | histogram | `name`, `stage` (`resolve`, `connect`, `tls_handshake`), `outcome` (`ok` or a [`FailureKind::as_str`](crate::classify::FailureKind::as_str)) |
//! | `fortify_connections_opened_total` | counter | `name` |
//!
//! A phase is recorded when it ends, failed or not; a URI with an IP address has no
//! `resolve` phase and an `http://` one no `tls_handshake`. A connection is counted as
//! opened once its last phase succeeded. Connection reuse is one PromQL line, connections
//! opened per request:
//!
//! ```text
//! sum(rate(fortify_connections_opened_total{name="api"}[5m]))
//!   / sum(rate(fortify_request_duration_seconds_count{name="api", stage="request"}[5m]))
//! ```
//!
//! and the handshake's p99:
//!
//! ```text
//! histogram_quantile(0.99, sum by (le) (rate(
//!   fortify_connection_setup_seconds_bucket{name="api", stage="tls_handshake", outcome="ok"}[5m])))
//! ```
//!
//! # Tracing
//!
//! With the `tracing` feature, target `tower_fortify::client`, level `DEBUG`: a
//! `connection set-up failed` event with fields `name`, `stage`, `kind`, `elapsed_ms` and
//! `error` (the whole `source()` chain), and a `connection opened` event with `name`,
//! `resolve_ms`, `connect_ms` and `tls_handshake_ms` (absent for a phase that did not run).

mod config;
mod connector;
#[cfg(feature = "metrics")]
mod metrics;
mod shared;
mod tls;

pub use crate::stack::https::TlsRoots;
pub use connector::{Connecting, Connection, Connector};
pub use shared::SharedClient;

use crate::{
    circuit_breaker::CircuitBreakerHandle,
    pool::PoolHandle,
    stack::{ClientStack, HedgeMode, NoHedge},
};
use bytes::Bytes;
use http_body_util::Full;
use std::{
    fmt,
    task::{Context, Poll},
};
use tower_service::Service;

/// The fortified HTTPS client built by [`ClientConfig::https`](crate::stack::ClientConfig::https):
/// the preset stack around hyper-util's legacy client over the classified [`Connector`]
/// (shared by every clone: a [`SharedClient`]), for request bodies `B` (default
/// `Full<Bytes>`), with the hedge layer when `H` is `Hedged` (`ClientConfig::hedge`,
/// feature `hedge`; see [`HedgeMode`]).
///
/// A `Service<http::Request<B>>` with `Response = http::Response<PoolBody<Incoming>>` (the
/// body holds the host's pool permit until it ends) and `Error = BoxError`, always a
/// [`Failure`](crate::classify::Failure) whose kind says what ended the call.
///
/// # Clone
///
/// Clones share everything: hyper-util's connection pool, the breakers, the pool limits,
/// the retry budget. Build one client per backend (or per set of settings) and clone it
/// into each task.
///
/// ```
/// use tower::ServiceExt;
/// use tower_fortify::classify::{Failure, FailureKind};
/// use tower_fortify::client::HttpsClient;
/// use tower_fortify::retry::RetryPolicy;
/// use tower_fortify::stack::ClientConfig;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// struct Backend {
///     http: HttpsClient,
/// }
///
/// let backend = Backend {
///     http: ClientConfig::default().retry(RetryPolicy::production().total(Some(0))).https()?,
/// };
/// // Nothing listens on port 1 of 127.0.0.1.
/// let request = http::Request::get("https://127.0.0.1:1/").body(Default::default())?;
/// let err = backend.http.clone().oneshot(request).await.unwrap_err();
/// assert_eq!(err.downcast_ref::<Failure>().unwrap().kind(), FailureKind::ConnectRefused);
/// assert_eq!(backend.http.pool_handle().snapshot().total.in_use, 0);
/// # Ok(())
/// # }
/// ```
pub struct HttpsClient<B = Full<Bytes>, H: HedgeMode = NoHedge> {
    // The getters' handles live in the inner `SharedClient`: callers clone the client per
    // request or per task, and each reference count is an atomic write on a cache line
    // every worker shares.
    stack: ClientStack<SharedClient<B>, H>,
}

impl<B, H: HedgeMode> HttpsClient<B, H> {
    pub(crate) fn new(stack: ClientStack<SharedClient<B>, H>) -> Self {
        HttpsClient { stack }
    }

    /// A handle on the per-host pool limits: in use, waiting, overflow, timeouts, leaks.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
    /// assert_eq!(client.pool_handle().snapshot().total.in_use, 0);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn pool_handle(&self) -> PoolHandle {
        self.stack.get_ref().pool().clone()
    }

    /// A handle on the per-host circuit breakers.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
    /// assert!(client.breaker_handle().is_empty());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn breaker_handle(&self) -> CircuitBreakerHandle {
        self.stack.get_ref().breakers().clone()
    }

    /// The connector that opens the client's connections.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
    /// assert_eq!(client.connector().name(), "client");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn connector(&self) -> &Connector {
        self.stack.get_ref().connector()
    }

    /// The stack around hyper-util's client.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
    /// let _legacy: &hyper_util::client::legacy::Client<_, String> =
    ///     client.get_ref().get_ref().get_ref();
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &ClientStack<SharedClient<B>, H> {
        &self.stack
    }

    /// The stack around hyper-util's client, mutably.
    ///
    /// ```
    /// let mut client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
    /// let _stack = client.get_mut();
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut ClientStack<SharedClient<B>, H> {
        &mut self.stack
    }

    /// Unwraps the stack around hyper-util's client.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
    /// let legacy = client.into_inner().into_inner();
    /// # let _ = legacy;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn into_inner(self) -> ClientStack<SharedClient<B>, H> {
        self.stack
    }
}

// `SharedClient` is `Clone` for any body type: no `B: Clone` bound.
impl<B, H: HedgeMode> Clone for HttpsClient<B, H>
where
    ClientStack<SharedClient<B>, H>: Clone,
{
    fn clone(&self) -> Self {
        HttpsClient {
            stack: self.stack.clone(),
        }
    }
}

impl<B, H: HedgeMode> fmt::Debug for HttpsClient<B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsClient")
            .field("connector", self.connector())
            .finish_non_exhaustive()
    }
}

impl<B, H: HedgeMode> Service<http::Request<B>> for HttpsClient<B, H>
where
    ClientStack<SharedClient<B>, H>: Service<http::Request<B>>,
{
    type Response = <ClientStack<SharedClient<B>, H> as Service<http::Request<B>>>::Response;
    type Error = <ClientStack<SharedClient<B>, H> as Service<http::Request<B>>>::Error;
    type Future = <ClientStack<SharedClient<B>, H> as Service<http::Request<B>>>::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.stack.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.stack.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn auto_traits() {
        send_sync::<HttpsClient>();
        send_sync::<HttpsClient<String>>();
        #[cfg(feature = "hedge")]
        {
            use crate::stack::Hedged;
            send_sync::<HttpsClient<Full<Bytes>, Hedged>>();
            send::<<HttpsClient<Full<Bytes>, Hedged> as Service<http::Request<Full<Bytes>>>>::Future>(
            );
        }
        send_sync::<Connector>();
        send_sync::<TlsRoots>();
        send::<Connecting>();
        send::<<HttpsClient as Service<http::Request<Full<Bytes>>>>::Future>();
    }
}
