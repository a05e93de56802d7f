use super::{ErrorClassify, Stage};
use tower_layer::Layer;

/// Applies [`ErrorClassify`] to a service: every error it returns becomes a classified
/// [`Failure`](super::Failure).
///
/// The layer is told the [`Stage`] of the service it wraps: [`new`](Self::new) for a
/// service that sends requests (a hyper-util client, an axum handler's downstream),
/// [`resolver`](Self::resolver), [`connector`](Self::connector) and
/// [`tls_handshake`](Self::tls_handshake) for the parts of a connector, so that a timeout
/// there is a connect or handshake failure and not a read timeout.
///
/// Each service the layer builds registers its metric handles once (see the
/// [module docs](super#metrics)); its clones share them.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::classify::ErrorClassifyLayer;
///
/// let svc = ServiceBuilder::new()
///     .layer(ErrorClassifyLayer::new().name("payments"))
///     .service(tower::service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) }));
/// # let _ = svc;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorClassifyLayer {
    stage: Stage,
    name: Option<&'static str>,
}

impl ErrorClassifyLayer {
    /// A layer for a service that sends requests ([`Stage::Request`]).
    pub const fn new() -> Self {
        Self::at(Stage::Request)
    }

    /// A layer for a service at the given stage.
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// let layer = ErrorClassifyLayer::at(Stage::Connect);
    /// # let _ = layer;
    /// ```
    pub const fn at(stage: Stage) -> Self {
        ErrorClassifyLayer { stage, name: None }
    }

    /// A layer for a resolver (a `Service<Name>` such as hyper-util's `GaiResolver`):
    /// every failure it returns is [`Dns`](super::FailureKind::Dns).
    ///
    /// ```
    /// use hyper_util::client::legacy::connect::{dns::GaiResolver, HttpConnector};
    /// use tower::Layer;
    /// use tower_fortify::classify::ErrorClassifyLayer;
    ///
    /// let resolver = ErrorClassifyLayer::resolver().layer(GaiResolver::new());
    /// let connector = HttpConnector::new_with_resolver(resolver);
    /// # let _ = connector;
    /// ```
    pub const fn resolver() -> Self {
        Self::at(Stage::Resolve)
    }

    /// A layer for a connector (a `Service<Uri>` such as hyper-util's `HttpConnector`):
    /// a timeout is a [`ConnectTimeout`](super::FailureKind::ConnectTimeout), a reset a
    /// [`ConnectRefused`](super::FailureKind::ConnectRefused).
    ///
    /// ```
    /// use hyper_util::client::legacy::connect::HttpConnector;
    /// use tower::Layer;
    /// use tower_fortify::classify::ErrorClassifyLayer;
    ///
    /// let mut http = HttpConnector::new();
    /// http.set_connect_timeout(Some(std::time::Duration::from_secs(3)));
    /// let connector = ErrorClassifyLayer::connector().layer(http);
    /// # let _ = connector;
    /// ```
    pub const fn connector() -> Self {
        Self::at(Stage::Connect)
    }

    /// A layer for a TLS connector (such as hyper-rustls's `HttpsConnector`) whose inner TCP
    /// connector is wrapped by [`connector`](Self::connector): a timeout or broken
    /// connection that the inner layer did not classify is a
    /// [`TlsHandshake`](super::FailureKind::TlsHandshake) failure.
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// let layer = ErrorClassifyLayer::tls_handshake();
    /// # let _ = layer;
    /// ```
    pub const fn tls_handshake() -> Self {
        Self::at(Stage::TlsHandshake)
    }

    /// Sets the `name` label of this layer's metrics and tracing events (default: the
    /// stage's name). It must be a static string, so that labels stay bounded.
    ///
    /// ```
    /// use tower_fortify::classify::ErrorClassifyLayer;
    ///
    /// let layer = ErrorClassifyLayer::new().name("inventory");
    /// # let _ = layer;
    /// ```
    pub const fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }
}

impl Default for ErrorClassifyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ErrorClassifyLayer {
    type Service = ErrorClassify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorClassify::with_settings(inner, self.stage, self.name.unwrap_or(self.stage.as_str()))
    }
}
