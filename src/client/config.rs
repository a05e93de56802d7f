//! The HTTPS client's settings on [`ClientConfig`], and the constructor.

use super::{
    connector::{Connector, Shared},
    tls, HttpsClient, SharedClient,
};
use crate::{
    stack::{
        https::{Resolver, TlsRoots},
        ClientConfig, HedgeMode,
    },
    BoxError, InvalidConfig,
};
use hyper_util::{
    client::legacy::{connect::dns::Name, Client},
    rt::{TokioExecutor, TokioTimer},
};
use std::{net::SocketAddr, time::Duration};
use tower_layer::Layer;
use tower_service::Service;

impl<H: HedgeMode> ClientConfig<H> {
    /// How long the TLS handshake of a new connection may take (default 3 s), apart from
    /// the TCP [`connect_timeout`](Self::connect_timeout). A handshake that stalls longer
    /// fails with [`TlsHandshake`](crate::classify::FailureKind::TlsHandshake), which is
    /// retried for any method (the request was not sent).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// let err = ClientConfig::default()
    ///     .tls_handshake_timeout(Duration::ZERO)
    ///     .https::<String>()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "tls_handshake_timeout");
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.client.tls_handshake_timeout = timeout;
        self
    }

    /// How long an idle connection stays in the client's pool before it is closed (default
    /// 90 s, hyper-util's); `None` keeps it until the server closes it. How many stay is
    /// [`pool_maxsize`](Self::pool_maxsize) per host, urllib3's meaning of `maxsize`.
    /// A timeout longer than a year saturates to `None` (hyper-util adds it to the clock).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// let client = ClientConfig::default()
    ///     .pool_idle_timeout(Some(Duration::from_secs(30)))
    ///     .https::<String>()?;
    /// # let _ = client;
    /// let err = ClientConfig::default()
    ///     .pool_idle_timeout(Some(Duration::ZERO))
    ///     .https::<String>()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "pool_idle_timeout");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.client.pool_idle_timeout = timeout;
        self
    }

    /// The certificate authorities the client trusts (urllib3's `ca_certs`; default
    /// [`TlsRoots::WebPki`]).
    ///
    /// ```
    /// use tower_fortify::client::TlsRoots;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// let mut roots = rustls::RootCertStore::empty();
    /// # let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap()
    /// #     .self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    /// # let ca_der = ca.der().clone();
    /// roots.add(ca_der)?;
    /// let client = ClientConfig::default().tls_roots(TlsRoots::Custom(roots)).https::<String>()?;
    /// # let _ = client;
    /// # Ok::<(), tower_fortify::BoxError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.client.tls_roots = roots;
        self
    }

    /// The resolver of host names (default hyper-util's `GaiResolver`, the system's
    /// `getaddrinfo`): any `Service<Name>` answering with socket addresses, such as
    /// hyper-util's resolvers or one over `hickory-resolver`. Its errors are
    /// [`Dns`](crate::classify::FailureKind::Dns) failures; the port of its addresses is
    /// replaced by the URI's.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use hyper_util::client::legacy::connect::dns::Name;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// // Every name is 127.0.0.1 (a test's resolver).
    /// let loopback = tower::service_fn(|_name: Name| async {
    ///     Ok::<_, std::io::Error>(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
    /// });
    /// let client = ClientConfig::default().resolver(loopback).https::<String>()?;
    /// # let _ = client;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn resolver<R>(mut self, resolver: R) -> Self
    where
        R: Service<Name> + Clone + Send + Sync + 'static,
        R::Response: IntoIterator<Item = SocketAddr>,
        R::Error: Into<BoxError>,
        R::Future: Send + 'static,
    {
        self.client.resolver = Resolver::new(resolver);
        self
    }

    /// Offer HTTP/2 through ALPN (default `false`: HTTP/1.1 only). A server that picks
    /// `h2` gets one multiplexed connection per host; others keep HTTP/1.1. Feature
    /// `http2`.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().http2(true).https::<String>()?;
    /// # let _ = client;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    pub fn http2(mut self, enabled: bool) -> Self {
        self.client.http2 = enabled;
        self
    }

    /// Builds the fortified HTTPS client in one call: the classified resolver, TCP connect
    /// under [`connect_timeout`](Self::connect_timeout), the rustls handshake under
    /// [`tls_handshake_timeout`](Self::tls_handshake_timeout), hyper-util's legacy client
    /// keeping up to [`pool_maxsize`](Self::pool_maxsize) idle connections per host, then
    /// the preset stack, with the hedge layer when `hedge` set one (see the
    /// [`client`](crate::client) module). `B` is the request body (default `Full<Bytes>`);
    /// it must be replayable for retries (`Clone`, or a
    /// [`ReplayBody`](crate::retry::ReplayBody)).
    ///
    /// Install the metrics recorder first: the client registers its handles here.
    ///
    /// # Errors
    ///
    /// Everything [`build`](Self::build) rejects, and: a zero `tls_handshake_timeout` or
    /// `pool_idle_timeout`; an `attempt_timeout` not longer than `connect_timeout +
    /// tls_handshake_timeout` (the attempt's timeout would cut a stalled connection's
    /// set-up short and name it a read timeout); `tls_roots` when no root is usable.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::client::HttpsClient;
    /// use tower_fortify::stack::ClientConfig;
    ///
    /// let client: HttpsClient = ClientConfig::default().name("payments").https()?;
    /// # let _ = client;
    ///
    /// let err = ClientConfig::default()
    ///     .attempt_timeout(Duration::from_secs(5))
    ///     .https::<String>()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "attempt_timeout");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn https<B>(&self) -> Result<HttpsClient<B, H>, InvalidConfig>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
    {
        let layer = self.build()?;
        let settings = &self.client;
        if settings.tls_handshake_timeout.is_zero() {
            return Err(InvalidConfig::new(
                "tls_handshake_timeout",
                "must be greater than zero",
            ));
        }
        if settings.pool_idle_timeout == Some(Duration::ZERO) {
            return Err(InvalidConfig::new(
                "pool_idle_timeout",
                "must be greater than zero (None keeps idle connections)",
            ));
        }
        if layer
            .connect_timeout()
            .saturating_add(settings.tls_handshake_timeout)
            >= layer.attempt_timeout()
        {
            return Err(InvalidConfig::new(
                "attempt_timeout",
                "must be longer than connect_timeout + tls_handshake_timeout",
            ));
        }
        #[cfg(feature = "http2")]
        let http2 = settings.http2;
        #[cfg(not(feature = "http2"))]
        let http2 = false;
        let tls = tls::client_config(&settings.tls_roots, http2)?;
        let connector = Connector::new(Shared {
            name: layer.name(),
            resolver: settings.resolver.clone(),
            connect_timeout: layer.connect_timeout(),
            tls_handshake_timeout: settings.tls_handshake_timeout,
            tls: tokio_rustls::TlsConnector::from(tls),
            #[cfg(feature = "metrics")]
            instruments: super::metrics::Instruments::register(layer.name()),
        });
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_max_idle_per_host(self.pool_maxsize)
            .pool_idle_timeout(saturate_idle(settings.pool_idle_timeout))
            .pool_timer(TokioTimer::new());
        let client = SharedClient::new(
            builder.build(connector.clone()),
            connector,
            layer.pool_handle(),
            layer.breaker_handle(),
        );
        Ok(HttpsClient::new(layer.layer(client)))
    }
}

/// Idle timeouts longer than this mean "never": hyper-util adds the timeout to the clock,
/// which would overflow for `Duration::MAX`.
const IDLE_NEVER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

fn saturate_idle(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|t| *t <= IDLE_NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::MAX),
            any::<u64>().prop_map(Duration::from_nanos),
            (any::<u64>(), 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        ]
    }

    #[test]
    fn an_idle_timeout_of_a_year_is_kept_and_a_longer_one_is_never() {
        let year = Duration::from_secs(365 * 86_400);
        assert_eq!(saturate_idle(Some(year)), Some(year));
        assert_eq!(saturate_idle(Some(year + Duration::from_secs(1))), None);
    }

    proptest! {
        // Every duration setting of the client either builds or names itself; none panics.
        #[test]
        fn durations_build_or_name_their_field(
            connect in duration(),
            handshake in duration(),
            attempt in duration(),
            idle in proptest::option::of(duration()),
        ) {
            let result = ClientConfig::default()
                .connect_timeout(connect)
                .tls_handshake_timeout(handshake)
                .attempt_timeout(attempt)
                .pool_idle_timeout(idle)
                .https::<String>();
            if let Err(err) = result {
                prop_assert!(
                    ["connect_timeout", "tls_handshake_timeout", "attempt_timeout", "pool_idle_timeout"]
                        .contains(&err.field()),
                    "{err}"
                );
            } else {
                prop_assert!(!connect.is_zero() && !handshake.is_zero() && idle != Some(Duration::ZERO));
                prop_assert!(connect.saturating_add(handshake) < attempt);
            }
        }

        #[test]
        fn idle_timeouts_saturate_to_never(idle in duration()) {
            let saturated = saturate_idle(Some(idle));
            prop_assert_eq!(saturated, (idle <= IDLE_NEVER).then_some(idle));
            if let Some(idle) = saturated {
                // hyper-util's `now + timeout` stays representable.
                prop_assert!(std::time::Instant::now().checked_add(idle).is_some());
            }
        }
    }
}
