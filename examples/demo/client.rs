//! The two clients, bare and fortified (with the demo's breaker settings), boxed alike.

use bytes::Bytes;
use fortify_test_support::flaky::FlakyBackend;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::time::Duration;
use tower::{util::BoxCloneService, Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer},
    client::TlsRoots,
    hedge::HedgeLayer,
    pool::PoolHandle,
    stack::{ClientConfig, HedgeMode},
    BoxError,
};

/// The fortified client's settings that differ from `ClientConfig::default()`.
/// The demo compresses an incident into seconds (a 1.5 s outage), so the breaker's open
/// durations are scaled down with it; with the defaults (5 s, growing to 120 s) the breaker
/// would still be open long after the backend recovered, for the rest of the run.
pub(crate) const OPEN_DURATION: Duration = Duration::from_millis(250);
pub(crate) const OPEN_DURATION_MAX: Duration = Duration::from_secs(1);
/// Both clients use the stack's default connect timeout, and its per-attempt timeout as
/// the bare client's per-request timeout.
pub(crate) fn connect_timeout() -> Duration {
    ClientConfig::default()
        .build()
        .expect("the default configuration is valid")
        .connect_timeout()
}

pub(crate) fn request_timeout() -> Duration {
    ClientConfig::default()
        .build()
        .expect("the default configuration is valid")
        .attempt_timeout()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bare,
    Fortified,
}

/// What one request goes through: either client, its response body boxed, so that one
/// loop drives both (the same cost for both).
pub(crate) type DemoClient = BoxCloneService<
    http::Request<Full<Bytes>>,
    http::Response<UnsyncBoxBody<Bytes, BoxError>>,
    BoxError,
>;

fn boxed<S, B>(service: S) -> DemoClient
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneService::new(
        service
            .map_response(|response| response.map(|body| body.map_err(Into::into).boxed_unsync()))
            .map_err(Into::into),
    )
}

/// The client of this run (the fortified one with `config`), and the fortified client's
/// pool and breaker handles (an unused stack's for the bare client, whose pool stays empty).
pub(crate) fn client(
    kind: Kind,
    config: ClientConfig,
    plain: bool,
    backend: &FlakyBackend,
) -> (DemoClient, PoolHandle, CircuitBreakerHandle) {
    if plain {
        let http = backend.connector(connect_timeout());
        let stack = config.build().expect("a valid configuration");
        let (pool, breakers) = (stack.pool_handle(), stack.breaker_handle());
        let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(http);
        let service = match kind {
            Kind::Bare => boxed(tower::timeout::TimeoutLayer::new(request_timeout()).layer(client)),
            Kind::Fortified => boxed(stack.layer(client)),
        };
        return (service, pool, breakers);
    }
    match kind {
        Kind::Bare => {
            // hyper-util over hyper-rustls, trusting the backend's authority only.
            let https = backend.https_connector(connect_timeout());
            let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);
            let stack = config.build().expect("a valid configuration");
            (
                boxed(tower::timeout::TimeoutLayer::new(request_timeout()).layer(client)),
                stack.pool_handle(),
                stack.breaker_handle(),
            )
        }
        Kind::Fortified => {
            // The crate's HTTPS client in one call.
            let client = for_backend(config, backend).https::<Full<Bytes>>();
            let client = client.expect("a valid configuration");
            let (pool, breakers) = (client.pool_handle(), client.breaker_handle());
            (boxed(client), pool, breakers)
        }
    }
}

/// `config` trusting the backend's authority and resolving its name.
fn for_backend<H: HedgeMode>(config: ClientConfig<H>, backend: &FlakyBackend) -> ClientConfig<H> {
    config
        .tls_roots(TlsRoots::Custom(backend.roots()))
        .resolver(backend.resolver())
}

/// The fortified client with hedging (`--hedge`): the crate's HTTPS client with the demo's
/// settings and the preset's hedge layer (`ClientConfig::hedge`, between retry and breaker;
/// p95 of the host's latency, at least 10 ms). Hedges and retries share the production
/// policy's budget (20% of requests plus 10 retries/s); no hedge goes to a host whose
/// breaker is not closed.
pub(crate) fn hedged_client(
    backend: &FlakyBackend,
) -> (DemoClient, PoolHandle, CircuitBreakerHandle) {
    let config = fortified_config().hedge(HedgeLayer::builder());
    let client = for_backend(config, backend).https::<Full<Bytes>>();
    let client = client.expect("a valid configuration");
    let (pool, breakers) = (client.pool_handle(), client.breaker_handle());
    (boxed(client), pool, breakers)
}

pub(crate) fn fortified_config() -> ClientConfig {
    ClientConfig::default().name("demo").circuit_breaker(
        CircuitBreakerLayer::builder()
            .open_duration(OPEN_DURATION)
            .open_duration_max(OPEN_DURATION_MAX),
    )
}
