//! What counts as a failure: the [`Classify`] trait and its implementations.

use crate::classify::{retry_after_of, Failure, FailureKind, ResponseClass};
use http::StatusCode;
use std::time::{Duration, SystemTime};

/// What a call counts as in the breaker's window.
///
/// ```
/// use tower_fortify::circuit_breaker::Outcome;
/// use tower_fortify::classify::FailureKind;
///
/// assert_eq!(Outcome::of_failure_kind(FailureKind::ConnectRefused), Outcome::Failure);
/// assert_eq!(Outcome::of_failure_kind(FailureKind::PoolTimeout), Outcome::Ignored);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded: it counts, and lowers the failure rate.
    Success,
    /// The call failed: it counts towards the failure rate.
    Failure,
    /// The call says nothing about the backend's health: it is not recorded at all.
    Ignored,
}

impl Outcome {
    /// The default outcome of a classified failure: the crate's own rejections
    /// ([`CircuitOpen`](FailureKind::CircuitOpen), [`PoolTimeout`](FailureKind::PoolTimeout),
    /// [`PoolFull`](FailureKind::PoolFull)) are [`Ignored`](Outcome::Ignored), as the backend
    /// was never called; every other kind (connect, read, TLS, protocol, other) is a
    /// [`Failure`](Outcome::Failure).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::Outcome;
    /// use tower_fortify::classify::FailureKind;
    ///
    /// for kind in FailureKind::ALL {
    ///     let ignored = matches!(
    ///         kind,
    ///         FailureKind::CircuitOpen | FailureKind::PoolTimeout | FailureKind::PoolFull
    ///     );
    ///     assert_eq!(Outcome::of_failure_kind(kind) == Outcome::Ignored, ignored);
    /// }
    /// ```
    pub const fn of_failure_kind(kind: FailureKind) -> Outcome {
        match kind {
            FailureKind::CircuitOpen | FailureKind::PoolTimeout | FailureKind::PoolFull => {
                Outcome::Ignored
            }
            _ => Outcome::Failure,
        }
    }
}

/// Decides what a call's result counts as: a success, a failure, or nothing.
///
/// The breaker calls it once per completed call, with the response or with the inner
/// service's error, classified by the crate's taxonomy. [`HttpStatus`] (the default) reads
/// HTTP responses by status; [`ErrorsOnly`] works for any response type and counts only
/// errors; [`ClassifyFn`] wraps a closure. Implement it for your own rules.
///
/// ```
/// use tower_fortify::circuit_breaker::{Classify, Outcome};
///
/// /// A response type whose `ok` flag says whether the backend was healthy.
/// struct Reply { ok: bool }
///
/// #[derive(Clone)]
/// struct ByFlag;
///
/// impl Classify<Reply> for ByFlag {
///     fn classify_response(&self, reply: &Reply) -> Outcome {
///         if reply.ok { Outcome::Success } else { Outcome::Failure }
///     }
/// }
///
/// assert_eq!(ByFlag.classify_response(&Reply { ok: false }), Outcome::Failure);
/// ```
pub trait Classify<Res> {
    /// What a response counts as.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{Classify, ErrorsOnly, Outcome};
    ///
    /// assert_eq!(ErrorsOnly.classify_response(&"any response"), Outcome::Success);
    /// ```
    fn classify_response(&self, response: &Res) -> Outcome;

    /// What a failed call counts as. The default is [`Outcome::of_failure_kind`].
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{Classify, Outcome};
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// /// Read timeouts are the client's own too-short timeout here: not the backend's fault.
    /// #[derive(Clone)]
    /// struct TimeoutsAreOk;
    ///
    /// impl Classify<()> for TimeoutsAreOk {
    ///     fn classify_response(&self, _: &()) -> Outcome {
    ///         Outcome::Success
    ///     }
    ///     fn classify_failure(&self, failure: &Failure) -> Outcome {
    ///         match failure.kind() {
    ///             FailureKind::ReadTimeout => Outcome::Ignored,
    ///             kind => Outcome::of_failure_kind(kind),
    ///         }
    ///     }
    /// }
    ///
    /// let timeout = Failure::new(FailureKind::ReadTimeout, "slow");
    /// assert_eq!(TimeoutsAreOk.classify_failure(&timeout), Outcome::Ignored);
    /// ```
    fn classify_failure(&self, failure: &Failure) -> Outcome {
        Outcome::of_failure_kind(failure.kind())
    }

    /// How long a response asks the client to stay away, if it does (a `Retry-After`).
    ///
    /// Called only when the breaker opens on `Retry-After`
    /// ([`retry_after_open`](super::CircuitBreakerBuilder::retry_after_open)). The default is
    /// `None`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::circuit_breaker::{Classify, HttpStatus};
    ///
    /// let response = http::Response::builder()
    ///     .status(503)
    ///     .header("retry-after", "30")
    ///     .body(())
    ///     .unwrap();
    /// assert_eq!(HttpStatus::new().retry_after(&response), Some(Duration::from_secs(30)));
    /// ```
    fn retry_after(&self, response: &Res) -> Option<Duration> {
        let _ = response;
        None
    }
}

/// The default classifier, for `http::Response`: a 5xx status is a failure, anything else
/// a success (a 4xx means the request was wrong, not the server), unless a predicate says
/// otherwise. A 503 or 429 with a valid `Retry-After` can open the breaker for that long
/// (see [`retry_after_open`](super::CircuitBreakerBuilder::retry_after_open)).
///
/// The predicate is a function pointer (a closure that captures nothing), so that the
/// classifier is `Copy` and costs nothing to hand to each call.
///
/// ```
/// use tower_fortify::circuit_breaker::{Classify, HttpStatus, Outcome};
///
/// let response = |status: u16| http::Response::builder().status(status).body(()).unwrap();
///
/// let default = HttpStatus::new();
/// assert_eq!(default.classify_response(&response(503)), Outcome::Failure);
/// assert_eq!(default.classify_response(&response(404)), Outcome::Success);
///
/// // 429 also means the server is overloaded; 501 is the request's fault.
/// let custom = HttpStatus::failure_if(|class| {
///     (class.is_server_error() && class.status() != 501) || class.status() == 429
/// });
/// assert_eq!(custom.classify_response(&response(429)), Outcome::Failure);
/// assert_eq!(custom.classify_response(&response(501)), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HttpStatus {
    // `None`: the default, 5xx (read from the status alone).
    is_failure: Option<fn(&ResponseClass) -> bool>,
}

impl HttpStatus {
    /// 5xx responses are failures ([`ResponseClass::is_server_error`]).
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{Classify, HttpStatus, Outcome};
    ///
    /// let response = http::Response::builder().status(502).body(()).unwrap();
    /// assert_eq!(HttpStatus::new().classify_response(&response), Outcome::Failure);
    /// ```
    pub const fn new() -> Self {
        HttpStatus { is_failure: None }
    }

    /// Responses for which `is_failure` returns `true` are failures, the others successes.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{Classify, HttpStatus, Outcome};
    ///
    /// // Only 502, 503 and 504: the statuses of an unreachable or overloaded upstream.
    /// let classifier = HttpStatus::failure_if(|class| matches!(class.status().as_u16(), 502..=504));
    /// let response = |status: u16| http::Response::builder().status(status).body(()).unwrap();
    /// assert_eq!(classifier.classify_response(&response(503)), Outcome::Failure);
    /// assert_eq!(classifier.classify_response(&response(500)), Outcome::Success);
    /// ```
    pub const fn failure_if(is_failure: fn(&ResponseClass) -> bool) -> Self {
        HttpStatus {
            is_failure: Some(is_failure),
        }
    }
}

impl Default for HttpStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Classify<http::Response<B>> for HttpStatus {
    #[inline]
    fn classify_response(&self, response: &http::Response<B>) -> Outcome {
        let failed = match self.is_failure {
            None => response.status().is_server_error(),
            Some(is_failure) => is_failure(&ResponseClass::of(response)),
        };
        if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }

    /// A 503 or 429 with a valid `Retry-After` (delta-seconds or an HTTP-date, through
    /// [`parse_retry_after`](crate::classify::parse_retry_after)). A malformed value is
    /// treated as absent, and so are several `Retry-After` fields, as the retry layer reads
    /// them: urllib3 joins them (`"5, 1"`), which is malformed, and neither value can be
    /// trusted over the other.
    fn retry_after(&self, response: &http::Response<B>) -> Option<Duration> {
        if !matches!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            return None;
        }
        retry_after_of(response.headers(), SystemTime::now)?.ok()
    }
}

/// A classifier for any response type: every response is a success, only errors count
/// (as [`Outcome::of_failure_kind`] says).
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, ErrorsOnly};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let layer = CircuitBreakerLayer::builder().classifier(ErrorsOnly).build_generic()?;
/// let svc = layer.layer(tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(svc.oneshot(1).await?, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsOnly;

impl<Res> Classify<Res> for ErrorsOnly {
    fn classify_response(&self, _: &Res) -> Outcome {
        Outcome::Success
    }
}

/// A classifier from a closure over the response; failures are classified by
/// [`Outcome::of_failure_kind`].
///
/// ```
/// use tower_fortify::circuit_breaker::{Classify, ClassifyFn, Outcome};
///
/// let classifier = ClassifyFn::new(|n: &i32| if *n < 0 { Outcome::Failure } else { Outcome::Success });
/// assert_eq!(classifier.classify_response(&-1), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClassifyFn<F> {
    f: F,
}

impl<F> ClassifyFn<F> {
    /// Wraps `f`.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::{Classify, ClassifyFn, Outcome};
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let classifier = ClassifyFn::new(|ok: &bool| if *ok { Outcome::Success } else { Outcome::Failure });
    /// assert_eq!(classifier.classify_response(&true), Outcome::Success);
    /// assert_eq!(classifier.classify_response(&false), Outcome::Failure);
    /// // Errors, by kind: the backend was never called, so a full pool says nothing.
    /// let full = Failure::new(FailureKind::PoolFull, "pool full");
    /// assert_eq!(Classify::<bool>::classify_failure(&classifier, &full), Outcome::Ignored);
    /// ```
    pub const fn new(f: F) -> Self {
        ClassifyFn { f }
    }
}

impl<F, Res> Classify<Res> for ClassifyFn<F>
where
    F: Fn(&Res) -> Outcome,
{
    fn classify_response(&self, response: &Res) -> Outcome {
        (self.f)(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{header::RETRY_AFTER, HeaderValue};

    fn response(status: u16, retry_after: Option<&'static str>) -> http::Response<()> {
        let mut r = http::Response::builder().status(status).body(()).unwrap();
        if let Some(v) = retry_after {
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(v));
        }
        r
    }

    #[test]
    fn http_status_reads_5xx_and_retry_after() {
        let c = HttpStatus::new();
        let rows = [
            (200, None, Outcome::Success, None),
            (404, None, Outcome::Success, None),
            (429, Some("7"), Outcome::Success, Some(7)),
            (500, None, Outcome::Failure, None),
            (503, Some("3"), Outcome::Failure, Some(3)),
            (503, Some("soon"), Outcome::Failure, None),
            (503, Some(""), Outcome::Failure, None),
            (502, Some("3"), Outcome::Failure, None),
            (413, Some("3"), Outcome::Success, None),
        ];
        for (status, ra, outcome, secs) in rows {
            let r = response(status, ra);
            assert_eq!(c.classify_response(&r), outcome, "{status}");
            assert_eq!(
                c.retry_after(&r),
                secs.map(Duration::from_secs),
                "{status} {ra:?}"
            );
        }
    }

    #[test]
    fn several_retry_after_fields_are_ignored_as_the_retry_layer_does() {
        let c = HttpStatus::new();
        for values in [&["5", "1"][..], &["1", "5"], &["3", "3"], &["3", "soon"]] {
            let mut r = response(503, None);
            for v in values {
                r.headers_mut()
                    .append(RETRY_AFTER, HeaderValue::from_static(v));
            }
            // urllib3 joins them ("5, 1"): malformed, so no `Retry-After` at all.
            assert_eq!(c.retry_after(&r), None, "{values:?}");
        }
        // One field still counts.
        let mut r = response(503, None);
        r.headers_mut()
            .append(RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(c.retry_after(&r), Some(Duration::from_secs(5)));
    }

    #[test]
    fn failures_are_classified_by_kind() {
        let c = HttpStatus::new();
        let refused = Failure::new(FailureKind::ConnectRefused, "refused");
        let full = Failure::new(FailureKind::PoolFull, "full");
        assert_eq!(
            Classify::<http::Response<()>>::classify_failure(&c, &refused),
            Outcome::Failure
        );
        assert_eq!(
            Classify::<http::Response<()>>::classify_failure(&c, &full),
            Outcome::Ignored
        );
    }
}
