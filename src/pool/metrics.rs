//! Metric handles of a pool limit, registered once per layer, and the task that refreshes
//! its gauges.
//!
//! # Why a refresher
//!
//! The in-use and utilisation gauges change with every permit taken or given back.
//! Publishing each change cost two recorder calls per change, four per call (about 180
//! instructions per call with a Prometheus recorder), and every call wrote the gauges'
//! shared lines. A gauge is read when it is scraped (every few seconds), so one task per
//! layer (the refresher) publishes them every [`REFRESH`] instead, from the counts the
//! pools keep anyway: a call publishes nothing, and a pool with a recorder takes the same
//! short paths as one without. A [`PoolHandle::snapshot`](super::PoolHandle::snapshot)
//! publishes them too, so that a scrape handler that takes one first exports exact values.
//!
//! The refresher runs on the tokio runtime where the layer was built or, if it was built
//! outside one, where its first call ran. Until it runs (a layer only ever called outside a
//! tokio runtime, or on a runtime without time, where the task cannot sleep and stops
//! for good), each change publishes as before. When its runtime shuts down, calls publish
//! again until a call starts a refresher on its own runtime.

use super::handle::Source;
use crate::internal::lazy::Lazy;
use metrics::{Counter, Gauge, Histogram};
use std::{
    cell::Cell,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, OnceLock, Weak,
    },
    time::Duration,
};

/// How often the refresher publishes the gauges.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

pub(crate) const IN_USE: &str = "fortify_pool_in_use";
pub(crate) const MAX: &str = "fortify_pool_max";
pub(crate) const UTILISATION: &str = "fortify_pool_utilisation_ratio";
pub(crate) const WAITING: &str = "fortify_pool_waiting";
pub(crate) const WAIT: &str = "fortify_pool_wait_seconds";
pub(crate) const TIMEOUTS: &str = "fortify_pool_timeouts_total";
pub(crate) const OVERFLOW: &str = "fortify_pool_overflow_total";
pub(crate) const REJECTED: &str = "fortify_pool_rejected_total";
pub(crate) const LEAKS: &str = "fortify_pool_leaks_total";

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
    pub(crate) refresh: Refresh,
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
            refresh: Refresh::default(),
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

// ===== the refresher =====

/// The refresher has not started, or its runtime shut down: calls publish.
const IDLE: u8 = 0;
/// The refresher runs: calls publish nothing.
const RUNNING: u8 = 1;
/// The refresher could not sleep (a runtime without time): calls publish, for good.
const FAILED: u8 = 2;

/// The refresher of a layer's gauges (see the module docs).
#[derive(Default)]
pub(crate) struct Refresh(Arc<RefreshState>);

#[derive(Default)]
struct RefreshState {
    state: AtomicU8,
    /// The layer's pools, set once the layer is built.
    source: OnceLock<Weak<dyn Source>>,
}

impl Refresh {
    /// Whether the refresher runs (so that calls need not publish).
    #[inline]
    pub(crate) fn running(&self) -> bool {
        // `SeqCst`: ordered with a pool's flag (`Pool::granted_tracked`).
        self.0.state.load(Ordering::SeqCst) == RUNNING
    }

    /// The layer's pools, which the refresher reads.
    pub(crate) fn set_source(&self, source: Weak<dyn Source>) {
        let _ = self.0.source.set(source);
    }

    /// Starts the refresher on the current tokio runtime unless it runs; whether it runs.
    pub(crate) fn start(&self) -> bool {
        match self.0.state.load(Ordering::Acquire) {
            RUNNING => return true,
            FAILED => return false,
            _ => {}
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if let Err(state) =
            self.0
                .state
                .compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        {
            return state == RUNNING;
        }
        // Moved into the task whole: dropped with it, even if it never runs.
        let running = Running(Arc::clone(&self.0));
        drop(runtime.spawn(refresh(running)));
        true
    }
}

/// The refresher's hold on its state: when the task ends (its layer gone, its runtime shut
/// down, or its timer refused), calls publish again.
struct Running(Arc<RefreshState>);

impl Drop for Running {
    fn drop(&mut self) {
        // A panic here is the timer's: a runtime without time. Calls publish from now on.
        let next = if std::thread::panicking() {
            FAILED
        } else {
            IDLE
        };
        self.0.state.store(next, Ordering::SeqCst);
        if let Some(source) = self.0.source.get().and_then(Weak::upgrade) {
            source.gauges_per_call();
        }
    }
}

async fn refresh(running: Running) {
    let mut interval = tokio::time::interval(REFRESH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match running.0.source.get() {
            Some(source) => match source.upgrade() {
                Some(source) => source.publish_gauges(),
                None => return,
            },
            // Not set yet, or never: the layer was dropped if the task alone holds this.
            None if Arc::strong_count(&running.0) == 1 => return,
            None => {}
        }
    }
}
