//! Error types, and the record of the retries a call made.

use crate::classify::{Failure, FailureKind};
use http::StatusCode;
use std::{error::Error, fmt, time::Duration};

/// The counter a retry decrements: urllib3's `connect`, `read`, `other` and `status`.
///
/// ```
/// use tower_fortify::retry::RetryCategory;
///
/// assert_eq!(RetryCategory::Status.as_str(), "status");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryCategory {
    /// A connect failure (`Dns`, `ConnectRefused`, `ConnectTimeout`).
    Connect,
    /// A read failure (`ReadTimeout`, `ConnectionClosed`, `Protocol`).
    Read,
    /// Any other retryable failure (`TlsHandshake`, `Other`).
    Other,
    /// A response judged retryable by its status.
    Status,
}

impl RetryCategory {
    /// Every category, in declaration order.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [RetryCategory; 4] = [
        RetryCategory::Connect,
        RetryCategory::Read,
        RetryCategory::Other,
        RetryCategory::Status,
    ];

    /// A stable `snake_case` name, used as a metrics label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryCategory::Connect => "connect",
            RetryCategory::Read => "read",
            RetryCategory::Other => "other",
            RetryCategory::Status => "status",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

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
    pub const fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            RetryCause::Failure(kind) => Some(*kind),
            RetryCause::Status(_) => None,
        }
    }

    /// The status, for a response.
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
    pub(crate) category: RetryCategory,
    pub(crate) cause: RetryCause,
    pub(crate) sleep: Duration,
}

impl RetryRecord {
    /// The counter this retry decremented.
    pub const fn category(&self) -> RetryCategory {
        self.category
    }

    /// What the retry was made after.
    pub const fn cause(&self) -> RetryCause {
        self.cause
    }

    /// How long the layer slept before the retry.
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
/// The layer puts it in the extensions of a response it returns after at least one retry
/// (or after a retry it refused), in every [`RetryError`], and in a failure it returns as it
/// is after at least one retry ([`Failure::retry_history`](crate::classify::Failure::retry_history)).
/// A response without one was not retried.
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
    pub fn records(&self) -> &[RetryRecord] {
        &self.records
    }

    /// Why retrying stopped before a result that could be returned as it is, if it did.
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

/// What the call met last when retries stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum RetryReason {
    /// The last attempt failed.
    Failure(Failure),
    /// The last attempt answered with this status (`too many <status> error responses`).
    Status(StatusCode),
}

/// The call failed and the layer stopped retrying: urllib3's `MaxRetryError`.
///
/// It says what the last attempt met ([`reason`](Self::reason)), why the layer stopped
/// ([`stop`](Self::stop): counters exhausted, budget, deadline, a `Retry-After` above the cap,
/// a body that cannot be replayed) and every retry made before ([`history`](Self::history)).
/// Its `source()` is the last [`Failure`], so an outer classification sees the real kind.
///
/// ```
/// use tower_fortify::{classify::{Failure, FailureKind}, retry::{RetryError, Stop}};
///
/// fn explain(err: &tower_fortify::BoxError) -> String {
///     match err.downcast_ref::<RetryError>() {
///         Some(err) if err.stop() == Stop::Budget => "retry budget exhausted".into(),
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
    pub(crate) fn new(reason: RetryReason, mut history: RetryHistory, stop: Stop) -> Self {
        history.stop = Some(stop);
        RetryError { reason, history }
    }

    /// What the last attempt met.
    pub fn reason(&self) -> &RetryReason {
        &self.reason
    }

    /// The last failure, when the last attempt failed.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.reason {
            RetryReason::Failure(failure) => Some(failure),
            RetryReason::Status(_) => None,
        }
    }

    /// The status of the last response, when it was a retryable response.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.reason {
            RetryReason::Failure(_) => None,
            RetryReason::Status(status) => Some(*status),
        }
    }

    /// Why the layer stopped retrying.
    pub fn stop(&self) -> Stop {
        self.history.stop.unwrap_or(Stop::Exhausted)
    }

    /// The retries made before the layer stopped.
    pub fn history(&self) -> &RetryHistory {
        &self.history
    }

    /// Consumes the error, returning the last failure, if the last attempt failed.
    pub fn into_failure(self) -> Option<Failure> {
        match self.reason {
            RetryReason::Failure(failure) => Some(failure),
            RetryReason::Status(_) => None,
        }
    }
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stop() {
            Stop::Exhausted => f.write_str("max retries exceeded")?,
            Stop::Budget => f.write_str("retry budget exhausted")?,
            Stop::Deadline => f.write_str("retry deadline exceeded")?,
            Stop::RetryAfterTooLong(delay) => write!(
                f,
                "server asked to retry after {}s, more than retry_after_max",
                delay.as_secs()
            )?,
            Stop::NotReplayable => f.write_str("request body cannot be replayed")?,
        }
        match &self.reason {
            RetryReason::Failure(failure) => write!(f, " (caused by {failure})"),
            RetryReason::Status(status) => {
                write!(f, " (too many {} error responses)", status.as_u16())
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
