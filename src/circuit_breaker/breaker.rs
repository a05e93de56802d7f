//! One breaker: its state word, window and lanes, what reads them, and how successes enter
//! the window.
//!
//! # Layout
//!
//! - `word`: one atomic `u64` holding the state, a generation number and, while half-open,
//!   the successful probes so far (see [`state`](super::state)). Every call loads it; only
//!   transitions and probe results write it. A call records the generation it started in
//!   and its result is dropped if the generation has changed since (generation tagging).
//! - `probe_slots`: the probes in flight, with an epoch. A probe holds its slot until it
//!   answers or is dropped, across state changes (a probe of an earlier half-open period
//!   that is still running keeps its slot), unless the slots are reclaimed from probes that
//!   never answer, which starts a new epoch.
//! - Transitions (changing the state and generation, [`transitions`](super::transitions))
//!   happen under `control`, a mutex that the closed path never touches: it serialises the
//!   bookkeeping of the open duration.
//! - Lanes ([`lanes`](super::lanes)): successes are buffered per thread before they enter
//!   the count ring; a time window has buckets per lane.
//! - A call's future holds an `Arc<Lane>` (a reference to the breaker from its thread's
//!   lane, [`ticket`](super::ticket)), and the thread keeps the last one it used for its
//!   next call, so that calls do not all increment one shared reference count.

use super::{
    lanes::LaneData,
    settings::Settings,
    state::{gen_of, open_belongs_to, pack, slots_in_flight, state_of, State, UNTIL_MASK},
    window::{CountRing, TimeWindow, WindowFigures},
    Outcome, Window,
};
use crate::internal::{
    padded::Padded,
    sync::{AtomicU64, Mutex, MutexGuard, Ordering},
};
use std::{
    fmt,
    sync::{Arc, OnceLock, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// One breaker: its state, window and lanes.
pub(crate) struct Breaker {
    pub(super) word: Padded<AtomicU64>,
    pub(super) open_info: AtomicU64,
    pub(super) probe_slots: AtomicU64,
    /// When the last probe slot was taken (microseconds), to reclaim slots of probes that
    /// never answer.
    pub(super) last_probe_at: AtomicU64,
    pub(super) control: Mutex<Control>,
    pub(super) ring: Option<CountRing>,
    pub(super) time: Option<TimeWindow>,
    pub(super) lanes: Box<[Padded<LaneData>]>,
    pub(super) start: Instant,
    pub(crate) settings: Arc<Settings>,
    /// Copies of settings every call reads, to save a pointer chase: the slow-call
    /// threshold in nanoseconds (`u64::MAX`: slow calls are not detected).
    pub(super) slow_nanos: u64,
    pub(super) retry_after: bool,
    pub(super) batch: u64,
    /// The key of a per-host breaker, for tracing and rejections.
    pub(super) key: Option<Arc<str>>,
}

/// Bookkeeping of the open duration, changed only with a transition.
#[derive(Debug)]
pub(super) struct Control {
    /// Its owner (a layer, or a keyed map's entry) is gone: the breaker no longer counts in
    /// the state gauge, although in-flight calls (or a thread's spare reference) may still
    /// hold it.
    pub(super) retired: bool,
    /// Growth steps of the open duration (failed probes not yet undone by recovery).
    pub(super) level: u32,
    /// When the breaker last closed (microseconds).
    pub(super) closed_at: u64,
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `d` in microseconds, a sub-microsecond duration counting as one (the clock's unit: an open
/// breaker rejects the calls of its instant, however short its open duration). Zero stays
/// zero: the builder refuses it, and only a test's internal configuration uses it.
pub(super) fn micros_at_least_one(d: Duration) -> u64 {
    if d.is_zero() {
        0
    } else {
        micros(d).max(1)
    }
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub(super) fn new(settings: Arc<Settings>, key: Option<Arc<str>>) -> Self {
        let (ring, time) = match settings.config.window {
            Window::Count(n) => (Some(CountRing::new(n)), None),
            Window::Time(d) => (None, Some(TimeWindow::new(nanos(d)))),
        };
        let lanes = (0..settings.lanes)
            .map(|_| {
                Padded(LaneData {
                    pending: AtomicU64::new(0),
                    buckets: OnceLock::new(),
                })
            })
            .collect();
        #[cfg(feature = "metrics")]
        settings.instruments.entered(State::Closed);
        Breaker {
            word: Padded(AtomicU64::new(pack(State::Closed, 0))),
            open_info: AtomicU64::new(0),
            probe_slots: AtomicU64::new(0),
            last_probe_at: AtomicU64::new(0),
            control: Mutex::new(Control {
                retired: false,
                level: 0,
                closed_at: 0,
            }),
            ring,
            time,
            lanes,
            start: Instant::now(),
            slow_nanos: settings.config.slow_call_duration.map_or(u64::MAX, nanos),
            retry_after: settings.config.retry_after_max.is_some(),
            batch: settings.batch,
            settings,
            key,
        }
    }

    pub(super) fn now_micros(&self) -> u64 {
        micros(self.elapsed())
    }

    pub(super) fn now_nanos(&self) -> u64 {
        nanos(self.elapsed())
    }

    /// Time since the breaker's start: under loom, the model thread's clock, which the
    /// models set (`internal::sync::model_clock`).
    #[inline]
    fn elapsed(&self) -> Duration {
        #[cfg(all(test, fortify_loom))]
        return {
            let _ = self.start;
            crate::internal::sync::model_clock::elapsed()
        };
        #[cfg(not(all(test, fortify_loom)))]
        Instant::now().saturating_duration_since(self.start)
    }

    pub(super) fn control(&self) -> MutexGuard<'_, Control> {
        // The bookkeeping stays consistent even if a holder panicked (metrics recorder,
        // tracing subscriber): every write is a plain assignment.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ===== reading =====

    pub(crate) fn state(&self) -> State {
        state_of(self.word.load(Ordering::Acquire))
    }

    pub(crate) fn probes_in_flight(&self) -> u32 {
        slots_in_flight(self.probe_slots.load(Ordering::Acquire))
    }

    /// How long until the next probe may go, while open.
    pub(crate) fn retry_in(&self) -> Option<Duration> {
        let word = self.word.load(Ordering::Acquire);
        if state_of(word) != State::Open {
            return None;
        }
        let info = self.open_info.load(Ordering::Acquire);
        if !open_belongs_to(info, gen_of(word)) {
            return None;
        }
        Some(Duration::from_micros(
            (info & UNTIL_MASK).saturating_sub(self.now_micros()),
        ))
    }

    /// The window's figures; with `flush` (the calling thread's lane), after pushing the
    /// successes buffered in that lane and in the shared lane (other threads' lanes are
    /// theirs).
    pub(crate) fn figures(&self, flush: Option<usize>) -> WindowFigures {
        if let Some(own) = flush {
            let gen = gen_of(self.word.load(Ordering::Acquire));
            let shared = self.lanes.len() - 1;
            if own < shared {
                self.flush_lane(own, gen);
            }
            self.flush_lane(shared, gen);
        }
        if let Some(ring) = &self.ring {
            return ring.figures();
        }
        let mut figures = WindowFigures::default();
        if let Some(time) = &self.time {
            let now = self.now_nanos();
            for lane in self.lanes.iter() {
                if let Some(buckets) = lane.buckets.get() {
                    time.add_figures(buckets, now, &mut figures);
                }
            }
        }
        figures
    }

    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The nominal open duration the next trip would use (before jitter).
    pub(crate) fn next_open_duration(&self) -> Duration {
        let ctl = self.control();
        let level = self.recovered_level(&ctl, self.now_micros());
        self.settings.config.nominal_open_duration(level)
    }

    /// The growth level once the time closed since `closed_at` has undone its steps.
    pub(super) fn recovered_level(&self, ctl: &Control, now: u64) -> u32 {
        if self.state() != State::Closed {
            return ctl.level;
        }
        let period = micros(self.settings.config.recovery_period).max(1);
        let steps = now.saturating_sub(ctl.closed_at) / period;
        ctl.level
            .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX))
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(super) fn count_call(&self, outcome: Outcome, slow: bool) {
        #[cfg(feature = "metrics")]
        self.settings.instruments.call(outcome, slow, 1);
    }

    /// Pushes a lane's buffered successes of generation `gen` into the window. The calling
    /// thread must own the lane (see [`current_lane`](super::local::current_lane)), unless
    /// it is the shared one.
    pub(super) fn flush_lane(&self, lane: usize, gen: u32) {
        let owned = lane < self.lanes.len() - 1;
        let (current, stale) = self.lanes[lane].take(owned, gen);
        if current + stale > 0 {
            self.push_successes(current, stale);
        }
    }

    /// `current` successes into the window, and the metrics; `stale` ones (of an earlier
    /// generation) into the metrics only.
    #[cold]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(super) fn push_successes(&self, current: u64, stale: u64) {
        if let Some(ring) = &self.ring {
            ring.push_successes(current);
        }
        #[cfg(feature = "metrics")]
        self.settings
            .instruments
            .call(Outcome::Success, false, current + stale);
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.word.load(Ordering::Acquire);
        f.debug_struct("Breaker")
            .field("name", &self.settings.name)
            .field("key", &self.key)
            .field("state", &state_of(word))
            .field("generation", &gen_of(word))
            .field("figures", &self.figures(None))
            .finish_non_exhaustive()
    }
}
