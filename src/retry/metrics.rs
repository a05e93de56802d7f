//! Metric handles of `Retry`, registered once per layer.

use super::Stop;
use crate::classify::Category;
use metrics::Counter;

pub(crate) const REQUESTS: &str = "fortify_retry_requests_total";
pub(crate) const RETRIED_REQUESTS: &str = "fortify_retry_retried_requests_total";
pub(crate) const RETRIES: &str = "fortify_retries_total";
pub(crate) const STOPPED: &str = "fortify_retry_stopped_total";
pub(crate) const INVALID_RETRY_AFTER: &str = "fortify_retry_after_invalid_total";

#[derive(Debug)]
pub(crate) struct Instruments {
    requests: Counter,
    retried_requests: Counter,
    retries: [Counter; 4],
    stopped: [Counter; 5],
    invalid_retry_after: Counter,
}

impl Instruments {
    pub(crate) fn register(name: &'static str) -> Self {
        metrics::describe_counter!(
            REQUESTS,
            "Requests through the retry layer (first attempts)"
        );
        metrics::describe_counter!(RETRIED_REQUESTS, "Requests retried at least once");
        metrics::describe_counter!(RETRIES, "Retries made, by category");
        metrics::describe_counter!(
            STOPPED,
            "Calls that stopped retrying before a result it could return, by reason"
        );
        metrics::describe_counter!(
            INVALID_RETRY_AFTER,
            "Malformed Retry-After headers treated as absent"
        );
        Instruments {
            requests: metrics::counter!(REQUESTS, "name" => name),
            retried_requests: metrics::counter!(RETRIED_REQUESTS, "name" => name),
            retries: Category::ALL
                .map(|c| metrics::counter!(RETRIES, "name" => name, "category" => c.as_str())),
            stopped: Stop::ALL
                .map(|stop| metrics::counter!(STOPPED, "name" => name, "stop" => stop.as_str())),
            invalid_retry_after: metrics::counter!(INVALID_RETRY_AFTER, "name" => name),
        }
    }

    #[inline]
    pub(crate) fn request(&self) {
        self.requests.increment(1);
    }

    pub(crate) fn retry(&self, category: Category, first: bool) {
        self.retries[category.index()].increment(1);
        if first {
            self.retried_requests.increment(1);
        }
    }

    pub(crate) fn stopped(&self, stop: Stop) {
        self.stopped[stop.index()].increment(1);
    }

    pub(crate) fn invalid_retry_after(&self, count: u32) {
        if count > 0 {
            self.invalid_retry_after.increment(u64::from(count));
        }
    }
}
