use super::{ErrorClassify, Stage};
use crate::InvalidConfig;
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
/// let layer = ErrorClassifyLayer::builder().name("payments").build()?;
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service(tower::service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) }));
/// # let _ = svc;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorClassifyLayer {
    stage: Stage,
    name: Option<&'static str>,
}

impl<S> ErrorClassify<S> {
    /// Returns a layer that wraps services with `ErrorClassify` at [`Stage::Request`].
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassify, Stage};
    ///
    /// let layer = ErrorClassify::<()>::layer();
    /// assert_eq!(layer.stage(), Stage::Request);
    /// assert_eq!(layer.name(), "request");
    /// ```
    pub const fn layer() -> ErrorClassifyLayer {
        ErrorClassifyLayer::new()
    }
}

impl ErrorClassifyLayer {
    /// A layer for a service that sends requests ([`Stage::Request`]), with the default
    /// name.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// let svc = ErrorClassifyLayer::new().layer(tower::service_fn(|req: u32| async move {
    ///     Ok::<_, std::io::Error>(req)
    /// }));
    /// assert_eq!(svc.stage(), Stage::Request);
    /// assert_eq!(svc.name(), "request");
    /// ```
    pub const fn new() -> Self {
        Self::at(Stage::Request)
    }

    /// A builder, to set the stage and the name.
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// let layer = ErrorClassifyLayer::builder().stage(Stage::Connect).name("inventory").build()?;
    /// assert_eq!(layer.stage(), Stage::Connect);
    /// assert_eq!(layer.name(), "inventory");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn builder() -> ErrorClassifyBuilder {
        ErrorClassifyBuilder { layer: Self::new() }
    }

    const fn at(stage: Stage) -> Self {
        ErrorClassifyLayer { stage, name: None }
    }

    /// The stage of the services this layer builds.
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// assert_eq!(ErrorClassifyLayer::new().stage(), Stage::Request);
    /// assert_eq!(ErrorClassifyLayer::connector().stage(), Stage::Connect);
    /// ```
    pub const fn stage(&self) -> Stage {
        self.stage
    }

    /// The `name` label of the metrics and tracing events: the one set, or the stage's name.
    ///
    /// ```
    /// use tower_fortify::classify::ErrorClassifyLayer;
    ///
    /// assert_eq!(ErrorClassifyLayer::resolver().name(), "resolve");
    /// let layer = ErrorClassifyLayer::builder().name("payments").build()?;
    /// assert_eq!(layer.name(), "payments");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn name(&self) -> &'static str {
        match self.name {
            Some(name) => name,
            None => self.stage.as_str(),
        }
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
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::classify::{ErrorClassifyLayer, Failure, FailureKind, Stage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = ErrorClassifyLayer::tls_handshake();
    /// assert_eq!(layer.stage(), Stage::TlsHandshake);
    /// // A handshake that times out is a handshake failure, not a read timeout.
    /// let stalled = layer.layer(tower::service_fn(|_: ()| async {
    ///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut))
    /// }));
    /// let err = stalled.oneshot(()).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<Failure>().unwrap().kind(), FailureKind::TlsHandshake);
    /// # }
    /// ```
    pub const fn tls_handshake() -> Self {
        Self::at(Stage::TlsHandshake)
    }
}

/// Builds an [`ErrorClassifyLayer`]: [`ErrorClassifyLayer::builder`].
///
/// ```
/// use tower_fortify::classify::{ErrorClassifyBuilder, ErrorClassifyLayer, Stage};
///
/// let builder: ErrorClassifyBuilder = ErrorClassifyLayer::builder().stage(Stage::TlsHandshake);
/// let layer = builder.name("tls").build()?;
/// assert_eq!(layer.stage(), Stage::TlsHandshake);
/// assert_eq!(layer.name(), "tls");
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorClassifyBuilder {
    layer: ErrorClassifyLayer,
}

impl ErrorClassifyBuilder {
    /// The stage of the wrapped service (default [`Stage::Request`]); see
    /// [`ErrorClassifyLayer::resolver`], [`connector`](ErrorClassifyLayer::connector) and
    /// [`tls_handshake`](ErrorClassifyLayer::tls_handshake) for the usual ones.
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// let layer = ErrorClassifyLayer::builder().stage(Stage::Resolve).build()?;
    /// assert_eq!(layer.stage(), Stage::Resolve);
    /// assert_eq!(layer.name(), "resolve"); // no name set: the stage's
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn stage(mut self, stage: Stage) -> Self {
        self.layer.stage = stage;
        self
    }

    /// The `name` label of the layer's metrics and tracing events (default: the stage's
    /// name). It must be a static string, so that labels stay bounded.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::classify::ErrorClassifyLayer;
    ///
    /// let layer = ErrorClassifyLayer::builder().name("inventory").build()?;
    /// assert_eq!(layer.layer(()).name(), "inventory");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn name(mut self, name: &'static str) -> Self {
        self.layer.name = Some(name);
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// None today: every stage and name is valid. The `Result` keeps the crate's one
    /// configuration grammar (`builder()...build()?`).
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// let layer = ErrorClassifyLayer::builder().build()?;
    /// assert_eq!(layer.stage(), Stage::Request);
    /// assert_eq!(layer.name(), "request");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub const fn build(self) -> Result<ErrorClassifyLayer, InvalidConfig> {
        Ok(self.layer)
    }
}

impl Default for ErrorClassifyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorClassifyLayer {
    /// The shared state of a service this layer builds (its metric handles registered now),
    /// for a layer that does the classification's job itself (the preset's retry layer).
    #[cfg(feature = "stack")]
    pub(crate) fn shared(&self) -> std::sync::Arc<super::service::Shared> {
        std::sync::Arc::new(super::service::Shared::new(self.stage, self.name()))
    }
}

impl<S> Layer<S> for ErrorClassifyLayer {
    type Service = ErrorClassify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorClassify::with_settings(inner, self.stage, self.name())
    }
}
