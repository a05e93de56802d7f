//! The retry decision, whole: whether a response could be retried at all (checked on
//! every call), and after each attempt, whether to retry, after which sleep, or why not.
//! The settings it reads are [`RetryPolicy`]'s.

use super::{RetryAfterOverMax, RetryCause, RetryHistory, RetryPolicy, RetryRecord, Stop};
use crate::classify::{retry_after_of, Category, FailureKind, ResponseClass};
use http::{HeaderMap, StatusCode};
use std::time::{Duration, SystemTime};

/// Whether any rule could retry `response` (a cheap superset of the decision), asked of
/// every answer: inlined, a success costs the caller one comparison.
#[inline]
pub(crate) fn may_retry(policy: &RetryPolicy, status: StatusCode, headers: &HeaderMap) -> bool {
    // The forcelist holds no status below 300 (the layer rejects one), and Retry-After is
    // honoured on 413, 429 and 503 only: a success or a redirect is never retried.
    if status.as_u16() < 300 {
        return false;
    }
    policy.status_forcelist.contains(&status.as_u16())
        || (policy.respect_retry_after_header
            && ResponseClass::new(status, headers).asks_retry_after())
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Return the result as it is.
    Return,
    /// Retry after this sleep.
    Retry(Duration),
    /// Stop retrying.
    Stop(Stop),
}

/// The counters and history of one call: urllib3's `Retry` object as it is incremented.
#[derive(Debug)]
pub(crate) struct Attempts {
    total: Option<u32>,
    counters: [Option<u32>; 4],
    pub(crate) history: RetryHistory,
    /// How many malformed `Retry-After` headers were treated as absent.
    pub(crate) invalid_retry_after: u32,
}

impl Attempts {
    pub(crate) fn new(policy: &RetryPolicy) -> Self {
        Attempts {
            total: policy.total,
            counters: [policy.connect, policy.read, policy.other, policy.status],
            history: RetryHistory::default(),
            invalid_retry_after: 0,
        }
    }

    /// Decides after a failure of `kind`. `idempotent`: the method is allowed, or the request
    /// is marked [`Idempotent`].
    pub(crate) fn on_failure(
        &mut self,
        policy: &RetryPolicy,
        kind: FailureKind,
        idempotent: bool,
        u: impl FnOnce() -> f64,
    ) -> Decision {
        let category = match kind.category() {
            Some(Category::Read) if !idempotent => return Decision::Return,
            Some(category) => category,
            // The kinds never retried.
            None => return Decision::Return,
        };
        if !self.take(category) {
            return Decision::Stop(Stop::Exhausted);
        }
        let sleep = self.backoff(policy, category, u);
        self.record(category, RetryCause::Failure(kind), sleep)
    }

    /// Decides after a response.
    pub(crate) fn on_response(
        &mut self,
        policy: &RetryPolicy,
        status: StatusCode,
        headers: &HeaderMap,
        idempotent: bool,
        now: impl FnOnce() -> SystemTime,
        u: impl FnOnce() -> f64,
    ) -> Decision {
        if !idempotent {
            return Decision::Return;
        }
        let forced = policy.status_forcelist.contains(&status.as_u16());
        let asked = !forced
            && matches!(self.total, Some(n) if n > 0)
            && policy.respect_retry_after_header
            && ResponseClass::new(status, headers).asks_retry_after();
        if !forced && !asked {
            return Decision::Return;
        }
        if !self.take(Category::Status) {
            return Decision::Stop(Stop::Exhausted);
        }
        let mut sleep = None;
        if policy.respect_retry_after_header {
            if let Some(parsed) = retry_after_of(headers, now) {
                match parsed {
                    Ok(delay) if delay.is_zero() => {}
                    Ok(delay) if delay > policy.retry_after_max => {
                        match policy.retry_after_over_max {
                            RetryAfterOverMax::Cap => sleep = Some(policy.retry_after_max),
                            RetryAfterOverMax::Ignore => {}
                            RetryAfterOverMax::Stop => {
                                return Decision::Stop(Stop::RetryAfterTooLong(delay))
                            }
                        }
                    }
                    Ok(delay) => sleep = Some(delay),
                    // D1: a malformed header (or several) is treated as absent, and counted.
                    Err(_) => self.invalid_retry_after += 1,
                }
            }
        }
        let sleep = match sleep {
            Some(sleep) => sleep,
            None => self.backoff(policy, Category::Status, u),
        };
        self.record(Category::Status, RetryCause::Status(status), sleep)
    }

    /// Takes one retry from `total` and from `category`'s counter, if neither ran out.
    fn take(&mut self, category: Category) -> bool {
        let counter = self.counters[category.index()];
        if self.total == Some(0) || counter == Some(0) {
            return false;
        }
        self.total = self.total.map(|n| n - 1);
        self.counters[category.index()] = counter.map(|n| n - 1);
        true
    }

    fn backoff(
        &self,
        policy: &RetryPolicy,
        category: Category,
        u: impl FnOnce() -> f64,
    ) -> Duration {
        let backoff = policy.backoff_of(category);
        if backoff.factor_value().is_zero() && backoff.additive_jitter_value().is_zero() {
            return Duration::ZERO;
        }
        // k counts the retry about to happen.
        let k = u32::try_from(self.history.records.len() + 1).unwrap_or(u32::MAX);
        // The previous sleep (decorrelated jitter grows from it) is the last one recorded.
        let previous = self
            .history
            .records
            .last()
            .map_or(Duration::ZERO, |r| r.sleep);
        backoff.sleep(k, previous, u())
    }

    fn record(&mut self, category: Category, cause: RetryCause, sleep: Duration) -> Decision {
        self.history.records.push(RetryRecord {
            category,
            cause,
            sleep,
        });
        Decision::Retry(sleep)
    }

    /// Takes back the last retry recorded: it was refused after the decision (budget,
    /// deadline, body), so it was not made.
    pub(crate) fn unrecord(&mut self) {
        self.history.records.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{Backoff, Jitter};
    use http::HeaderValue;
    use proptest::prelude::*;

    fn response_sleep(policy: &RetryPolicy, status: u16, value: &[u8], u: f64) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_bytes(value).ok()?,
        );
        let mut attempts = Attempts::new(policy);
        match attempts.on_response(
            policy,
            StatusCode::from_u16(status).unwrap(),
            &headers,
            true,
            SystemTime::now,
            || u,
        ) {
            Decision::Retry(sleep) => Some(sleep),
            _ => None,
        }
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_sleep() {
        let backoff = Backoff::new(Duration::from_secs(1))
            .max(Duration::from_secs(100))
            .jitter(Jitter::Decorrelated);
        let policy = RetryPolicy::default()
            .total(Some(4))
            .backoff_for(Category::Connect, backoff);
        let mut attempts = Attempts::new(&policy);
        let mut previous = Duration::ZERO;
        for k in 1..=4 {
            let want = backoff.sleep(k, previous, 0.5);
            let decision = attempts.on_failure(&policy, FailureKind::ConnectRefused, true, || 0.5);
            assert_eq!(decision, Decision::Retry(want), "retry {k}");
            previous = want;
        }
        // The chain is not the same draw each time: the previous sleep was used.
        let sleeps: Vec<_> = attempts.history.sleeps().collect();
        assert!(sleeps.windows(2).all(|w| w[0] < w[1]), "{sleeps:?}");
    }

    proptest! {
        /// Whatever a server sends in `Retry-After`, the wait is bounded by the larger of
        /// `retry_after_max` and `backoff_max`, and nothing panics.
        #[test]
        fn hostile_retry_after_never_exceeds_the_caps(
            value in proptest::collection::vec(any::<u8>(), 0..64),
            status in prop_oneof![Just(413u16), Just(429), Just(503), Just(500)],
            max_secs in 0u64..100_000,
            u in any::<f64>(),
        ) {
            let policy = RetryPolicy::default()
                .status_forcelist([500])
                .backoff_factor(Duration::from_secs(1))
                .retry_after_max(Duration::from_secs(max_secs));
            if let Some(sleep) = response_sleep(&policy, status, &value, u) {
                let cap = policy.retry_after_max.max(policy.backoff.max_value());
                prop_assert!(sleep <= cap, "{sleep:?} > {cap:?}");
            }
        }

        /// Digits are honoured exactly up to the cap.
        #[test]
        fn delta_seconds_are_capped(seconds in any::<u64>(), max_secs in 1u64..100_000) {
            let policy = RetryPolicy::default().retry_after_max(Duration::from_secs(max_secs));
            let sleep = response_sleep(&policy, 503, seconds.to_string().as_bytes(), 0.5);
            let expected = if seconds == 0 { Duration::ZERO } else { Duration::from_secs(seconds.min(max_secs)) };
            prop_assert_eq!(sleep, Some(expected));
        }

        /// No sequence of outcomes makes more calls than `total + 1`.
        #[test]
        fn total_bounds_the_calls(total in 0u32..20, kinds in proptest::collection::vec(0usize..12, 1..64)) {
            let policy = RetryPolicy::default().total(Some(total)).allowed_methods([]);
            let mut attempts = Attempts::new(&policy);
            let mut calls = 1;
            for k in kinds {
                match attempts.on_failure(&policy, FailureKind::ALL[k], true, || 0.5) {
                    Decision::Retry(_) => calls += 1,
                    _ => break,
                }
            }
            prop_assert!(calls <= total + 1);
        }
    }
}
