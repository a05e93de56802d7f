//! The record of the retries a call made, and why it stopped retrying.

use crate::classify::{Category, FailureKind};
use http::StatusCode;
use std::time::Duration;

/// What a retry was made after.
///
/// ```
/// use tower_fortify::{classify::FailureKind, retry::RetryCause};
///
/// let cause = RetryCause::Failure(FailureKind::ConnectRefused);
/// assert_eq!(cause.failure_kind(), Some(FailureKind::ConnectRefused));
/// assert_eq!(cause.status(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryCause {
    /// A failure of this kind.
    Failure(FailureKind),
    /// A response with this status.
    Status(StatusCode),
}

impl RetryCause {
    /// The failure kind, for a failure.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::{classify::FailureKind, retry::{error::RetryError, RetryLayer}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let svc = RetryLayer::builder().build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let history = err.downcast_ref::<RetryError>().unwrap().history();
    /// let cause = history.records()[0].cause();
    /// assert_eq!(cause.failure_kind(), Some(FailureKind::ConnectRefused));
    /// assert_eq!(cause.status(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            RetryCause::Failure(kind) => Some(*kind),
            RetryCause::Status(_) => None,
        }
    }

    /// The status, for a response.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{RetryHistory, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(status_forcelist=[503], raise_on_status=False): the last 503 comes back.
    /// let policy = RetryPolicy::default().status_forcelist([503]).raise_on_status(false);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).body(())
    /// }));
    /// let response = svc.oneshot(http::Request::new(())).await?;
    /// let history = response.extensions().get::<RetryHistory>().unwrap();
    /// let cause = history.records()[0].cause();
    /// assert_eq!(cause.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    /// assert_eq!(cause.failure_kind(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn status(&self) -> Option<StatusCode> {
        match self {
            RetryCause::Failure(_) => None,
            RetryCause::Status(status) => Some(*status),
        }
    }
}

/// One retry: what it was made after, the counter it took, and the sleep before it.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::retry::RetryHistory;
///
/// let history = RetryHistory::default();
/// assert!(history.records().is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRecord {
    pub(crate) category: Category,
    pub(crate) cause: RetryCause,
    pub(crate) sleep: Duration,
}

impl RetryRecord {
    /// The counter this retry decremented.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::{classify::Category, retry::{error::RetryError, RetryLayer, RetryPolicy}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let policy = RetryPolicy::default().status_forcelist([503]);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).body(())
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let history = err.downcast_ref::<RetryError>().unwrap().history();
    /// assert!(history.records().iter().all(|r| r.category() == Category::Status));
    /// # Ok(())
    /// # }
    /// ```
    pub const fn category(&self) -> Category {
        self.category
    }

    /// What the retry was made after.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::{classify::FailureKind, retry::{error::RetryError, RetryCause, RetryLayer}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let svc = RetryLayer::builder().build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let history = err.downcast_ref::<RetryError>().unwrap().history();
    /// let refused = RetryCause::Failure(FailureKind::ConnectRefused);
    /// assert!(history.records().iter().all(|r| r.cause() == refused));
    /// # Ok(())
    /// # }
    /// ```
    pub const fn cause(&self) -> RetryCause {
        self.cause
    }

    /// How long the layer slept before the retry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy, RetryRecord};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(total=3, backoff_factor=0.5): the first retry at once, then 0.5 s * 2^(k-1).
    /// let policy = RetryPolicy::default().backoff_factor(Duration::from_millis(500));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let history = err.downcast_ref::<RetryError>().unwrap().history();
    /// let sleeps: Vec<Duration> = history.records().iter().map(RetryRecord::sleep).collect();
    /// assert_eq!(sleeps, [0, 1_000, 2_000].map(Duration::from_millis));
    /// # Ok(())
    /// # }
    /// ```
    pub const fn sleep(&self) -> Duration {
        self.sleep
    }
}

/// Why the layer stopped retrying before it had a result it could return as it is.
///
/// ```
/// use tower_fortify::retry::Stop;
///
/// assert_eq!(Stop::Budget.as_str(), "budget");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// A counter (`total`, `connect`, `read`, `status`, `other`) ran out.
    Exhausted,
    /// The retry budget refused the retry.
    Budget,
    /// The retry would have ended after the call's deadline, or the deadline passed.
    Deadline,
    /// The server asked to wait longer than `retry_after_max`, and the policy says to stop.
    RetryAfterTooLong(Duration),
    /// The request's body could no longer be replayed (it went past the replay limit).
    NotReplayable,
}

impl Stop {
    /// Every kind of stop, in [`index`](Self::index) order (the delay of
    /// `RetryAfterTooLong` is a placeholder).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [Stop; 5] = [
        Stop::Exhausted,
        Stop::Budget,
        Stop::Deadline,
        Stop::RetryAfterTooLong(Duration::ZERO),
        Stop::NotReplayable,
    ];

    /// The kind's place in [`ALL`](Self::ALL), whatever its delay.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const fn index(&self) -> usize {
        match self {
            Stop::Exhausted => 0,
            Stop::Budget => 1,
            Stop::Deadline => 2,
            Stop::RetryAfterTooLong(_) => 3,
            Stop::NotReplayable => 4,
        }
    }

    /// A stable `snake_case` name, used as a metrics label value.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let svc = RetryLayer::builder().build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let stop = err.downcast_ref::<RetryError>().unwrap().stop().unwrap();
    /// assert_eq!(stop.as_str(), "exhausted");
    /// # Ok(())
    /// # }
    /// ```
    pub const fn as_str(&self) -> &'static str {
        match self {
            Stop::Exhausted => "exhausted",
            Stop::Budget => "budget",
            Stop::Deadline => "deadline",
            Stop::RetryAfterTooLong(_) => "retry_after_too_long",
            Stop::NotReplayable => "not_replayable",
        }
    }
}

/// The retries a call made, in order, and why it stopped retrying if it did.
///
/// One path leads to it: the layer puts it in the extensions of a response it returns after
/// at least one retry (or after a retry it refused), and in every
/// [`RetryError`](super::error::RetryError), which the layer returns for any failure after
/// at least one retry. A response without one, or a bare
/// [`Failure`](crate::classify::Failure), was not retried.
///
/// ```
/// use tower_fortify::retry::RetryHistory;
///
/// let response = http::Response::new(());
/// assert!(response.extensions().get::<RetryHistory>().is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryHistory {
    pub(crate) records: Vec<RetryRecord>,
    pub(crate) stop: Option<Stop>,
}

impl RetryHistory {
    /// One record per retry made, in order.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let policy = RetryPolicy::default().total(Some(2));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let history = err.downcast_ref::<RetryError>().unwrap().history();
    /// assert_eq!(history.records().len(), 2); // 3 attempts
    /// # Ok(())
    /// # }
    /// ```
    pub fn records(&self) -> &[RetryRecord] {
        &self.records
    }

    /// Why retrying stopped before a result that could be returned as it is, if it did.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{RetryHistory, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let policy = RetryPolicy::default().status_forcelist([503]).raise_on_status(false);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).body(())
    /// }));
    /// let response = svc.oneshot(http::Request::new(())).await?;
    /// let history = response.extensions().get::<RetryHistory>().unwrap();
    /// assert_eq!(response.status(), 503);
    /// assert_eq!(history.stop(), Some(Stop::Exhausted));
    /// # Ok(())
    /// # }
    /// ```
    pub const fn stop(&self) -> Option<Stop> {
        self.stop
    }

    /// The sleeps before each retry, in order.
    ///
    /// ```
    /// let history = tower_fortify::retry::RetryHistory::default();
    /// assert_eq!(history.sleeps().count(), 0);
    /// ```
    pub fn sleeps(&self) -> impl Iterator<Item = Duration> + '_ {
        self.records.iter().map(|r| r.sleep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stop_is_at_its_index() {
        for (i, stop) in Stop::ALL.iter().enumerate() {
            assert_eq!(stop.index(), i, "{stop:?}");
        }
        assert_eq!(Stop::RetryAfterTooLong(Duration::from_secs(9)).index(), 3);
    }
}
