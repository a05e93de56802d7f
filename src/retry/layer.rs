use super::{service::Shared, Retry, RetryPolicy};
use crate::InvalidConfig;
use std::sync::Arc;
use tower_layer::Layer;

/// Applies [`Retry`] to a service, with a validated [`RetryPolicy`].
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
/// let layer = RetryLayer::new(RetryPolicy::production())?.name("payments");
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

impl RetryLayer {
    /// Creates the layer.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming the field, when the policy's settings do not hold together:
    /// a `status_forcelist` code that is not an error status, a `backoff_jitter` with a
    /// strategy other than `Jitter::Additive`, a zero `deadline`.
    ///
    /// ```
    /// use tower_fortify::retry::{RetryLayer, RetryPolicy};
    ///
    /// let err = RetryLayer::new(RetryPolicy::default().status_forcelist([200])).unwrap_err();
    /// assert_eq!(err.field(), "status_forcelist");
    /// ```
    pub fn new(policy: RetryPolicy) -> Result<Self, InvalidConfig> {
        policy.validate()?;
        Ok(RetryLayer {
            shared: Arc::new(Shared::new(policy, "retry")),
        })
    }

    /// Sets the `name` label of the metrics and tracing events (default `"retry"`). It must
    /// be a static string, so that labels stay bounded.
    pub fn name(self, name: &'static str) -> Self {
        let policy = self.shared.policy.clone();
        RetryLayer {
            shared: Arc::new(Shared::new(policy, name)),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_shared(inner, Arc::clone(&self.shared))
    }
}
