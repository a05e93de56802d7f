//! Errors of the retry layer.

use super::{RetryHistory, Stop};
use crate::classify::{human_duration, Failure};
use http::StatusCode;
use std::{error::Error, fmt, time::Duration};

/// What the call met last when retries stopped.
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::retry::{error::{RetryError, RetryReason}, RetryLayer, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let policy = RetryPolicy::default().status_forcelist([503]);
/// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
///     http::Response::builder().status(503).body(())
/// }));
/// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
/// match err.downcast_ref::<RetryError>().unwrap().reason() {
///     RetryReason::Status(status) => assert_eq!(*status, 503),
///     other => panic!("the last attempt answered, it did not fail: {other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RetryReason {
    /// The last attempt failed.
    Failure(Failure),
    /// The last attempt answered with this status (`too many <status> error responses`).
    Status(StatusCode),
}

/// The call failed after the layer retried it, or the layer stopped retrying: urllib3's
/// `MaxRetryError`, and the one place a failed call's [`RetryHistory`] is.
///
/// It says what the last attempt met ([`reason`](Self::reason)), why the layer stopped
/// ([`stop`](Self::stop): counters exhausted, budget, deadline, a `Retry-After` above the cap,
/// a body that cannot be replayed; `None` when the last failure is simply not retried, such
/// as a POST's read timeout after a retried refused connect) and every retry made before
/// ([`history`](Self::history)). A failure the layer returns without any retry is the bare
/// [`Failure`]. Its `source()` is the last [`Failure`], so an outer classification sees the
/// real kind.
///
/// ```
/// use tower_fortify::retry::{error::RetryError, Stop};
///
/// fn explain(err: &tower_fortify::BoxError) -> String {
///     match err.downcast_ref::<RetryError>() {
///         Some(err) if err.stop() == Some(Stop::Budget) => "retry budget exhausted".into(),
///         Some(err) => format!("gave up after {} retries", err.history().records().len()),
///         None => err.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug)]
pub struct RetryError {
    pub(crate) reason: RetryReason,
    pub(crate) history: RetryHistory,
}

impl RetryError {
    pub(crate) fn new(reason: RetryReason, mut history: RetryHistory, stop: Option<Stop>) -> Self {
        history.stop = stop;
        // A `Failure` around this error writes its text (the classify layer outside the retry).
        crate::classify::explains_itself(|error| error.is::<RetryError>());
        RetryError { reason, history }
    }

    /// What the last attempt met.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::classify::FailureKind;
    /// use tower_fortify::retry::{error::{RetryError, RetryReason}, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let svc = RetryLayer::builder().build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert!(matches!(err.reason(), RetryReason::Failure(f) if f.kind() == FailureKind::ConnectRefused));
    /// # Ok(())
    /// # }
    /// ```
    pub fn reason(&self) -> &RetryReason {
        &self.reason
    }

    /// The last failure, when the last attempt failed.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::classify::FailureKind;
    /// use tower_fortify::retry::{error::RetryError, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let svc = RetryLayer::builder().build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.failure().map(|f| f.kind()), Some(FailureKind::ConnectRefused));
    /// assert_eq!(err.status(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn failure(&self) -> Option<&Failure> {
        match &self.reason {
            RetryReason::Failure(failure) => Some(failure),
            RetryReason::Status(_) => None,
        }
    }

    /// The status of the last response, when it was a retryable response.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let policy = RetryPolicy::default().status_forcelist([502, 503, 504]);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).body(())
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    /// assert!(err.failure().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        match &self.reason {
            RetryReason::Failure(_) => None,
            RetryReason::Status(status) => Some(*status),
        }
    }

    /// Why the layer stopped retrying; `None` when the last failure is not retried (its kind
    /// or the request's method says so), after earlier retries.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(total=1, status_forcelist=[503])
    /// let policy = RetryPolicy::default().total(Some(1)).status_forcelist([503]);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).body(())
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<RetryError>().unwrap().stop(), Some(Stop::Exhausted));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stop(&self) -> Option<Stop> {
        self.history.stop
    }

    /// The retries made before the layer stopped.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::{classify::Category, retry::{error::RetryError, RetryLayer}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let svc = RetryLayer::builder().build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let history = err.downcast_ref::<RetryError>().unwrap().history();
    /// // The default policy: 3 retries (4 attempts), each after a connect failure.
    /// assert_eq!(history.records().len(), 3);
    /// assert!(history.records().iter().all(|r| r.category() == Category::Connect));
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(&self) -> &RetryHistory {
        &self.history
    }

    /// Consumes the error, returning the last failure, if the last attempt failed.
    ///
    /// ```
    /// use std::io;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let svc = RetryLayer::builder().build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast::<RetryError>().unwrap();
    /// let failure = err.into_failure().unwrap();
    /// let io = failure.get_ref().downcast_ref::<io::Error>().unwrap();
    /// assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_failure(self) -> Option<Failure> {
        match self.reason {
            RetryReason::Failure(failure) => Some(failure),
            RetryReason::Status(_) => None,
        }
    }
}

/// One line: why the layer stopped, the attempts made (and the backoff slept between
/// them), then the last failure's own one-line explanation (see [`Failure`]'s `Display`)
/// or the status.
///
/// ```
/// use std::io;
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::{classify::{Failure, FailureKind}, retry::{error::RetryError, RetryLayer}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = RetryLayer::builder().build().unwrap().layer(tower::service_fn(|_: http::Request<String>| async {
///     let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
///     Err::<http::Response<()>, _>(Failure::new(FailureKind::ConnectRefused, refused))
/// }));
/// let err = svc.oneshot(http::Request::new(String::new())).await.unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "max retries exceeded: 4 attempts; last: connect refused: connection refused (nothing listening)"
/// );
/// # let _ = err.downcast_ref::<RetryError>().unwrap();
/// # }
/// ```
impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stop() {
            Some(Stop::Exhausted) => f.write_str("max retries exceeded")?,
            Some(Stop::Budget) => f.write_str("retry budget exhausted")?,
            Some(Stop::Deadline) => f.write_str("retry deadline exceeded")?,
            Some(Stop::RetryAfterTooLong(delay)) => write!(
                f,
                "server asked to retry after {}s, more than retry_after_max",
                delay.as_secs()
            )?,
            Some(Stop::NotReplayable) => f.write_str("request body cannot be replayed")?,
            None => f.write_str("last failure not retryable")?,
        }
        // Every retry recorded was made; the first attempt was not a retry.
        let attempts = self.history.records.len() + 1;
        write!(
            f,
            ": {attempts} attempt{}",
            if attempts == 1 { "" } else { "s" }
        )?;
        let slept: Duration = self.history.sleeps().sum();
        if !slept.is_zero() {
            write!(f, " over {} of backoff", human_duration(slept))?;
        }
        match &self.reason {
            RetryReason::Failure(failure) => write!(f, "; last: {failure}"),
            RetryReason::Status(status) => {
                write!(f, "; last: too many {} error responses", status.as_u16())
            }
        }
    }
}

impl Error for RetryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.reason {
            RetryReason::Failure(failure) => Some(failure),
            RetryReason::Status(_) => None,
        }
    }
}

/// The whole call's deadline passed while an attempt (or the wait for the service's
/// readiness) was running: the reason of the [`RetryError`] the layer then returns, as the
/// source of a [`ReadTimeout`](crate::classify::FailureKind::ReadTimeout) failure.
///
/// ```
/// use tower_fortify::retry::error::{DeadlineElapsed, RetryError};
///
/// fn is_deadline(err: &RetryError) -> bool {
///     err.failure().is_some_and(|f| f.get_ref().is::<DeadlineElapsed>())
/// }
/// # let _ = is_deadline;
/// ```
#[derive(Debug)]
pub struct DeadlineElapsed(pub(crate) ());

impl fmt::Display for DeadlineElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("retry deadline elapsed during an attempt")
    }
}

impl Error for DeadlineElapsed {}

/// Why a replay body dropped its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// More than `limit` bytes went through.
    Capped,
    /// The original body returned an error: its bytes cannot be reproduced.
    Failed,
}

/// A copy of a [`ReplayBody`](super::ReplayBody) could not replay bytes it had not yet yielded, because they
/// were no longer kept.
///
/// Copies are made with [`try_clone_body`](super::TryCloneBody::try_clone_body), which refuses once
/// the body went past its limit (or the original body failed). A copy made *before* that,
/// and polled only after, yields this error instead of wrong bytes.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower_fortify::retry::{error::BodyNotReplayable, ReplayBody, TryCloneBody};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = ReplayBody::with_limit(Full::new(Bytes::from_static(b"too long")), 4);
/// let stale = body.try_clone_body().unwrap();
///
/// // The original is sent whole, but keeping its bytes would go past the limit.
/// assert_eq!(body.collect().await.unwrap().to_bytes(), "too long");
///
/// let err = stale.collect().await.unwrap_err();
/// assert!(err.is::<BodyNotReplayable>());
/// assert_eq!(err.to_string(), "body exceeded the replay limit");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyNotReplayable {
    pub(crate) reason: Lost,
}

impl fmt::Display for BodyNotReplayable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Lost::Capped => f.pad("body exceeded the replay limit"),
            Lost::Failed => f.pad("body failed before it could be replayed"),
        }
    }
}

impl Error for BodyNotReplayable {}
