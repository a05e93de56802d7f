use super::{service::Shared, Retry, RetryPolicy};
use crate::{internal::ticker::Ticker, InvalidConfig};
use std::sync::Arc;
use tower_layer::Layer;

/// Applies [`Retry`] to a service, with a validated [`RetryPolicy`]: built by
/// [`RetryLayer::builder`].
///
/// # Clone
///
/// Every service the layer builds, and every clone of them, shares the policy and its
/// [`RetryBudget`](super::RetryBudget).
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_fortify::retry::{RetryLayer, RetryPolicy};
///
/// let layer = RetryLayer::builder()
///     .policy(RetryPolicy::production())
///     .name("payments")
///     .build()?;
/// assert_eq!(layer.name(), "payments");
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|req: http::Request<String>| async move {
///         Ok::<_, std::io::Error>(http::Response::new(req.into_body()))
///     });
/// # let _ = svc;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

/// Builds a [`RetryLayer`]: [`RetryLayer::builder`].
///
/// ```
/// use tower_fortify::retry::RetryLayer;
///
/// // urllib3's `Retry.DEFAULT`, named "retry".
/// let layer = RetryLayer::builder().build()?;
/// assert_eq!(layer.name(), "retry");
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetryBuilder {
    policy: RetryPolicy,
    name: &'static str,
    attempt_bound: Option<std::time::Duration>,
    ticker: Option<Arc<Ticker>>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with `policy`.
    ///
    /// # Errors
    ///
    /// As [`RetryBuilder::build`](super::RetryBuilder::build).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::{Retry, RetryPolicy};
    ///
    /// let inner = tower::service_fn(|_: http::Request<()>| async { http::Response::builder().body(()) });
    /// let svc = Retry::new(inner, RetryPolicy::default())?;
    /// assert_eq!(svc.name(), "retry");
    ///
    /// // The policy is checked as the builder checks it.
    /// let err = Retry::new(inner, RetryPolicy::default().deadline(Some(Duration::ZERO))).unwrap_err();
    /// assert_eq!(err.field(), "deadline");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn new(inner: S, policy: RetryPolicy) -> Result<Self, InvalidConfig> {
        let layer = RetryLayer::builder().policy(policy).build()?;
        Ok(tower_layer::Layer::layer(&layer, inner))
    }
}

impl RetryLayer {
    /// A builder with urllib3's default policy ([`RetryPolicy::default`]) and the name
    /// `"retry"`.
    ///
    /// ```
    /// use tower_fortify::retry::RetryLayer;
    ///
    /// let layer = RetryLayer::builder().build()?;
    /// assert_eq!(layer.name(), "retry");
    /// // Retry.DEFAULT: 3 retries in all.
    /// assert!(format!("{:?}", layer.policy()).starts_with("RetryPolicy { total: Some(3),"));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            policy: RetryPolicy::default(),
            name: "retry",
            attempt_bound: None,
            ticker: None,
        }
    }

    /// The policy.
    ///
    /// ```
    /// use tower_fortify::retry::{RetryLayer, RetryPolicy};
    ///
    /// let layer = RetryLayer::builder().policy(RetryPolicy::production()).build()?;
    /// let policy = format!("{:?}", layer.policy());
    /// assert!(policy.contains("status_forcelist: [502, 503, 504]"));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    /// The `name` label of the metrics and tracing events.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::retry::RetryLayer;
    ///
    /// let layer = RetryLayer::builder().name("payments").build()?;
    /// assert_eq!(layer.name(), "payments");
    /// // Every service the layer builds has its name.
    /// assert_eq!(layer.layer(()).name(), "payments");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.name
    }
}

impl RetryBuilder {
    /// The retry settings (default [`RetryPolicy::default`], urllib3's `Retry.DEFAULT`).
    ///
    /// ```
    /// use tower_fortify::retry::{RetryLayer, RetryPolicy};
    ///
    /// let layer = RetryLayer::builder().policy(RetryPolicy::default().total(Some(5))).build()?;
    /// assert!(format!("{:?}", layer.policy()).starts_with("RetryPolicy { total: Some(5),"));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The `name` label of the metrics and tracing events (default `"retry"`). It must be a
    /// static string, so that labels stay bounded.
    ///
    /// ```
    /// use tower_fortify::retry::RetryLayer;
    ///
    /// let layer = RetryLayer::builder().name("inventory").build()?;
    /// assert_eq!(layer.name(), "inventory");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// For the preset: the longest an attempt can last from its first pending poll, as the
    /// layers inside bound it (see `Shared::attempt_bound`).
    #[cfg(feature = "stack")]
    pub(crate) fn attempt_bound(mut self, bound: Option<std::time::Duration>) -> Self {
        self.attempt_bound = bound;
        self
    }

    /// For the preset: the timer its calls' deadlines and backoffs share with its attempt
    /// timeouts (one timer task per stack); by default the layer makes its own.
    #[cfg(feature = "stack")]
    pub(crate) fn ticker(mut self, ticker: Arc<Ticker>) -> Self {
        self.ticker = Some(ticker);
        self
    }

    /// Builds the layer, registering its metric handles (with the `metrics` feature).
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming the field, when the policy's settings do not hold together:
    /// a `status_forcelist` code that is not an error status, a `backoff_jitter` with a
    /// strategy other than `Jitter::Additive`, a zero `deadline`. Durations are not
    /// bounded: one too long to represent as an instant saturates to "never".
    ///
    /// ```
    /// use tower_fortify::retry::{RetryLayer, RetryPolicy};
    ///
    /// let err = RetryLayer::builder()
    ///     .policy(RetryPolicy::default().status_forcelist([200]))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "status_forcelist");
    /// ```
    pub fn build(self) -> Result<RetryLayer, InvalidConfig> {
        self.policy.validate()?;
        let ticker = self.ticker.unwrap_or_else(|| Arc::new(Ticker::new()));
        let mut shared = Shared::new(self.policy, self.name, ticker);
        shared.attempt_bound = self.attempt_bound;
        Ok(RetryLayer {
            shared: Arc::new(shared),
        })
    }
}

impl RetryLayer {
    /// A service that also does the job of `ErrorClassify` with `classify` around it (the
    /// preset): see `Retry::classified`.
    #[cfg(feature = "stack")]
    pub(crate) fn layer_classified<S>(
        &self,
        inner: S,
        classify: Arc<crate::classify::ClassifyShared>,
    ) -> Retry<S> {
        Retry::classified(inner, Arc::clone(&self.shared), classify)
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_shared(inner, Arc::clone(&self.shared))
    }
}
