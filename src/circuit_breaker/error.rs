//! Error types.

use super::State;
use std::{fmt, sync::Arc, time::Duration};

/// The breaker rejected the call without calling the service.
///
/// The service returns it as the source of a [`Failure`](crate::classify::Failure) of kind
/// [`CircuitOpen`](crate::classify::FailureKind::CircuitOpen), boxed as a
/// [`BoxError`](crate::BoxError). It says why, and how long until the next probe.
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::circuit_breaker::{error::Open, GenericCircuitBreakerLayer, State};
/// use tower_fortify::classify::{Failure, FailureKind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let layer = GenericCircuitBreakerLayer::new();
/// layer.handle().force_open();
/// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(()))
/// }));
///
/// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
/// let failure = err.downcast_ref::<Failure>().unwrap();
/// assert_eq!(failure.kind(), FailureKind::CircuitOpen);
/// let open = failure.get_ref().downcast_ref::<Open>().unwrap();
/// assert_eq!(open.state(), State::ForcedOpen);
/// assert_eq!(open.retry_in(), None);
/// assert_eq!(failure.to_string(), "circuit open: forced open");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    state: State,
    retry_in: Option<Duration>,
    key: Option<Arc<str>>,
}

impl Open {
    pub(crate) fn new(state: State, retry_in: Option<Duration>, key: Option<Arc<str>>) -> Self {
        Open {
            state,
            retry_in,
            key,
        }
    }

    /// The breaker's state when it rejected the call: [`Open`](State::Open),
    /// [`HalfOpen`](State::HalfOpen) (every probe slot taken) or
    /// [`ForcedOpen`](State::ForcedOpen).
    ///
    /// ```
    /// # use tower_fortify::circuit_breaker::{error::Open, CircuitBreakerLayer, ErrorsOnly, State};
    /// # use tower_fortify::classify::Failure;
    /// # use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = CircuitBreakerLayer::builder().classifier(ErrorsOnly).build_generic().unwrap();
    /// layer.handle().force_open();
    /// let svc = layer.layer(tower::service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    /// let err = svc.oneshot(()).await.unwrap_err();
    /// let open = err.downcast_ref::<Failure>().unwrap().get_ref().downcast_ref::<Open>().unwrap();
    /// assert_eq!(open.state(), State::ForcedOpen);
    /// # }
    /// ```
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the next probe may go: `Some` while [`Open`](State::Open); `None`
    /// while probes are in flight (their results decide) or while forced open (an operator
    /// decides).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_fortify::circuit_breaker::{error::Open, CircuitBreakerLayer, ErrorsOnly};
    /// # use tower_fortify::classify::Failure;
    /// # use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let layer = CircuitBreakerLayer::builder()
    ///     .classifier(ErrorsOnly)
    ///     .minimum_calls(1)
    ///     .open_duration_jitter(0.0)
    ///     .build_generic()
    ///     .unwrap();
    /// let svc = layer.layer(tower::service_fn(|_: ()| async {
    ///     Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let _ = svc.clone().oneshot(()).await; // trips
    /// let err = svc.oneshot(()).await.unwrap_err();
    /// let open = err.downcast_ref::<Failure>().unwrap().get_ref().downcast_ref::<Open>().unwrap();
    /// assert_eq!(open.retry_in(), Some(Duration::from_secs(5)));
    /// # }
    /// ```
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }

    /// The key of the breaker that rejected the call, for a per-host breaker, as its `Debug`
    /// form prints it (`scheme://host:port` for the default per-host key). It is shared with
    /// the breaker: a rejection does not copy it.
    ///
    /// ```
    /// # use tower_fortify::circuit_breaker::{error::Open, CircuitBreakerLayer};
    /// # use tower_fortify::classify::Failure;
    /// # use tower_fortify::key::HostKey;
    /// # use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = CircuitBreakerLayer::builder().build()?;
    /// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(()))
    /// }));
    /// svc.clone().oneshot(http::Request::get("http://down.test/").body(())?).await?;
    /// let key = HostKey::from_uri(&http::Uri::from_static("http://down.test"));
    /// layer.handle().get(&key).unwrap().force_open();
    /// let err = svc.oneshot(http::Request::get("http://down.test/").body(())?).await.unwrap_err();
    /// let open = err.downcast_ref::<Failure>().unwrap().get_ref().downcast_ref::<Open>().unwrap();
    /// assert_eq!(open.key(), Some("http://down.test:80"));
    /// assert_eq!(err.to_string(), "circuit open: forced open (key \"http://down.test:80\")");
    /// # Ok(())
    /// # }
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// ```
/// use std::time::Duration;
/// # use tower_fortify::circuit_breaker::{CircuitBreakerLayer, error::Open};
/// # use tower_fortify::classify::Failure;
/// # use tower::{Layer, ServiceExt};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// # let layer = CircuitBreakerLayer::builder().open_duration_jitter(0.0).build_generic().unwrap();
/// # let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
/// #     Ok::<_, std::io::Error>(http::Response::builder().status(500).body(()).unwrap())
/// # }));
/// # for _ in 0..10 { let _ = svc.clone().oneshot(http::Request::new(())).await; }
/// # let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
/// // After a trip with the default 5 s open duration:
/// assert_eq!(err.to_string(), "circuit open: next probe in 5s");
/// # }
/// ```
impl fmt::Display for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_in) {
            (State::ForcedOpen, _) => f.write_str("forced open")?,
            (State::HalfOpen, _) => f.write_str("probing, no probe slot free")?,
            (_, Some(wait)) => write!(f, "next probe in {wait:?}")?,
            (_, None) => f.write_str("open")?,
        }
        if let Some(key) = &self.key {
            write!(f, " (key {key:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Open {}
