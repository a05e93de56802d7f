//! Metric handles of a pool limit, registered once per layer.

use crate::internal::lazy::Lazy;
use metrics::{Counter, Gauge, Histogram};
use std::{cell::Cell, time::Duration};

pub(crate) const IN_USE: &str = "fortify_pool_in_use";
pub(crate) const MAX: &str = "fortify_pool_max";
pub(crate) const UTILISATION: &str = "fortify_pool_utilisation_ratio";
pub(crate) const WAITING: &str = "fortify_pool_waiting";
pub(crate) const WAIT: &str = "fortify_pool_wait_seconds";
pub(crate) const TIMEOUTS: &str = "fortify_pool_timeouts_total";
pub(crate) const OVERFLOW: &str = "fortify_pool_overflow_total";
pub(crate) const REJECTED: &str = "fortify_pool_rejected_total";
pub(crate) const LEAKS: &str = "fortify_pool_leaks_total";

#[derive(Debug)]
pub(crate) struct Instruments {
    in_use: Gauge,
    max: Gauge,
    utilisation: Gauge,
    pub(crate) waiting: Gauge,
    pub(crate) wait: Histogram,
    pub(crate) timeouts: Counter,
    pub(crate) overflow: Counter,
    pub(crate) rejected: Counter,
    pub(crate) leaks: Counter,
    /// Whether the gauges reach a recorder: handles are bound when registered, so with no
    /// recorder installed then, publishing is skipped without computing anything.
    live: bool,
}

impl Instruments {
    pub(crate) fn register(name: &'static str) -> Self {
        metrics::describe_gauge!(
            IN_USE,
            "Calls holding a pool permit or overflowing the pool, all pools of the layer"
        );
        metrics::describe_gauge!(MAX, "Permits of the layer's pools (maxsize times pools)");
        metrics::describe_gauge!(UTILISATION, "fortify_pool_in_use / fortify_pool_max");
        metrics::describe_gauge!(WAITING, "Calls waiting for a pool permit");
        metrics::describe_histogram!(
            WAIT,
            metrics::Unit::Seconds,
            "Time calls waited for a pool permit (only calls that waited and got one)"
        );
        metrics::describe_counter!(TIMEOUTS, "Calls that waited pool_timeout in vain");
        metrics::describe_counter!(
            OVERFLOW,
            "Calls let through over maxsize (block=False): the pool is too small"
        );
        metrics::describe_counter!(REJECTED, "Calls rejected by a full pool (fail fast)");
        metrics::describe_counter!(LEAKS, "Permits held longer than leak_threshold");
        let in_use = metrics::gauge!(IN_USE, "name" => name);
        // The layer publishes 0 in use when it is built: this is that value.
        let live = Cell::new(false);
        in_use.set(Lazy(|| {
            live.set(true);
            0.0
        }));
        Instruments {
            in_use,
            max: metrics::gauge!(MAX, "name" => name),
            utilisation: metrics::gauge!(UTILISATION, "name" => name),
            waiting: metrics::gauge!(WAITING, "name" => name),
            wait: metrics::histogram!(WAIT, "name" => name),
            timeouts: metrics::counter!(TIMEOUTS, "name" => name),
            overflow: metrics::counter!(OVERFLOW, "name" => name),
            rejected: metrics::counter!(REJECTED, "name" => name),
            leaks: metrics::counter!(LEAKS, "name" => name),
            live: live.get(),
        }
    }

    /// Publishes `in_use` out of `max` as `read` gives them, then re-reads: if another
    /// thread changed the count meanwhile, its value may have been overwritten by this stale
    /// one, so publish again. The last writer always publishes a value it read after its own
    /// write, so the gauges settle on the true count (no drift, unlike float increments of
    /// `1 / max`).
    ///
    /// With no recorder holding the gauges (see `live`), publishing is one branch and reads
    /// nothing. `max` itself is published by [`set_max`](Self::set_max), when it changes.
    pub(crate) fn publish(&self, read: impl Fn() -> (usize, usize)) {
        if !self.live {
            return;
        }
        loop {
            let (in_use, max) = read();
            self.in_use.set(in_use as f64);
            self.utilisation.set(if max == 0 {
                0.0
            } else {
                in_use as f64 / max as f64
            });
            if read() == (in_use, max) {
                return;
            }
        }
    }

    /// Whether a recorder took the gauges (else publishing does nothing).
    #[inline]
    pub(crate) fn live(&self) -> bool {
        self.live
    }

    pub(crate) fn set_max(&self, max: usize) {
        self.max.set(max as f64);
    }

    pub(crate) fn waited(&self, waited: Duration) {
        self.wait.record(waited);
    }
}
