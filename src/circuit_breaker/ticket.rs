//! A call let through, and the recording of its result: the ticket holds a reference to the
//! breaker from a lane ([`Lane`]), which the thread keeps as its spare for its next call.

use super::{
    breaker::Breaker,
    local::{try_current_lane, with_local, Lane},
    state::{gen_of, state_of, State},
    window::new_buckets,
    Outcome,
};
use crate::internal::spare::Spared;
use std::{
    fmt,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

/// A call let through: what its result is recorded with. Plain integers besides the
/// reference, so that it is cheap to move.
///
/// Dropping a probe's ticket without a result gives its slot back.
pub(crate) struct Ticket {
    /// `None` once the result is recorded.
    pub(super) lane: Option<Arc<Lane>>,
    pub(super) gen: u32,
    /// The epoch of the probe slot the call holds, or [`NO_PROBE`].
    pub(super) probe: u32,
    /// When the call started (nanoseconds since the breaker's start), or [`NOT_TIMED`].
    pub(super) start: u64,
}

pub(super) const NO_PROBE: u32 = u32::MAX;
pub(super) const NOT_TIMED: u64 = u64::MAX;

impl Drop for Ticket {
    #[inline]
    fn drop(&mut self) {
        if let Some(lane) = &self.lane {
            if self.probe != NO_PROBE {
                lane.breaker.release_probe(self.probe);
            }
        }
    }
}

impl Ticket {
    /// The ticket of a call that was not let through: it records nothing.
    pub(crate) const fn none() -> Self {
        Ticket {
            lane: None,
            gen: 0,
            probe: NO_PROBE,
            start: NOT_TIMED,
        }
    }

    /// Whether the result is still to be recorded.
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.lane.is_some()
    }

    pub(crate) fn is_probe(&self) -> bool {
        self.probe != NO_PROBE
    }

    /// Whether the breaker wants the response's `Retry-After`.
    #[inline]
    pub(crate) fn wants_retry_after(&self) -> bool {
        self.lane
            .as_ref()
            .is_some_and(|lane| lane.breaker.retry_after)
    }

    /// Records the call's result.
    #[inline]
    pub(crate) fn finish(&mut self, outcome: Outcome, retry_after: Option<Duration>) {
        // The common result first: a plain success of an untimed call let through closed,
        // recorded while the breaker is still in the generation it was admitted in. It
        // builds no completion and clones no reference.
        if outcome == Outcome::Success
            && retry_after.is_none()
            && self.probe == NO_PROBE
            && self.start == NOT_TIMED
        {
            let gen = self.gen;
            if self
                .lane
                .as_ref()
                .is_some_and(|lane| lane.breaker.is_closed_in(gen))
            {
                // One read of the thread's own: its lane index, and the spare the reference
                // goes to (while the thread exits, both are gone, the ticket keeps its lane:
                // the cold path then). The lane is taken inside, so that it never waits on
                // the stack for the closure.
                let kept = with_local(|local| {
                    let lane = self.lane.take();
                    if let Some(lane) = &lane {
                        lane.breaker.record_success(local.index(), gen, None);
                    }
                    local.spare.replace(lane)
                });
                // The spare it replaces (another breaker's) goes once the slot is free.
                if let Ok(previous) = kept {
                    return drop(previous);
                }
            }
        }
        self.finish_cold(outcome, retry_after);
    }

    /// [`finish`](Self::finish) past its common result.
    #[inline(never)]
    fn finish_cold(&mut self, outcome: Outcome, retry_after: Option<Duration>) {
        let Some(lane) = self.lane.take() else {
            return;
        };
        let (gen, probe) = (self.gen, self.probe);
        let breaker = &lane.breaker;
        // The clock is read once here when the call was timed, and that reading serves a
        // time window too.
        let now = (self.start != NOT_TIMED).then(|| breaker.now_nanos());
        let slow = now.is_some_and(|now| now.saturating_sub(self.start) >= breaker.slow_nanos);
        let probe_call = probe != NO_PROBE;
        self.probe = NO_PROBE;
        // Kept for the slot's release below, which needs the breaker after the lane moved.
        let breaker = probe_call.then(|| Arc::clone(breaker));
        // Successes are buffered in the lane of the thread that completes the call (its only
        // writer, if it owns it), whichever thread made the call; the thread then keeps the
        // reference for its next call.
        let completion = Completion {
            gen,
            probe: probe_call,
            outcome,
            slow,
            retry_after,
            now,
        };
        // While the thread exits, its lane is gone: the shared one is left.
        let index = try_current_lane().unwrap_or(lane.breaker.lanes.len() - 1);
        lane.breaker.complete(index, completion);
        // Kept as the thread's spare (dropped instead while the thread exits).
        let previous = Lane::with_slot(move |spare| spare.replace(Some(lane)))
            .ok()
            .flatten();
        // A probe's slot is given back once its result has acted, so that no other probe
        // starts in between for a half-open period the result may just have ended.
        if let Some(breaker) = breaker {
            breaker.release_probe(probe);
        }
        drop(previous);
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("generation", &self.gen)
            .field("probe", &(self.probe != NO_PROBE))
            .finish_non_exhaustive()
    }
}

impl Breaker {
    // ===== recording =====

    /// Whether the breaker is still in generation `gen` and lets every call through (closed
    /// or disabled): a plain success of that generation is then only counted.
    #[inline(always)]
    fn is_closed_in(&self, gen: u32) -> bool {
        let word = self.word.load(Ordering::Acquire);
        gen_of(word) == gen && matches!(state_of(word), State::Closed | State::Disabled)
    }

    /// Records a result: inline for the common one (a plain success of a closed call),
    /// out of line for the others.
    #[inline]
    pub(super) fn complete(&self, lane: usize, c: Completion) {
        if c.outcome == Outcome::Success
            && !c.slow
            && !c.probe
            && c.retry_after.is_none()
            && self.is_closed_in(c.gen)
        {
            // A lane reports its successes in batches.
            self.record_success(lane, c.gen, c.now);
            return;
        }
        self.complete_cold(lane, c);
    }

    #[cold]
    pub(super) fn complete_cold(&self, lane: usize, c: Completion) {
        let Completion {
            gen,
            probe,
            outcome,
            slow,
            retry_after,
            now,
        } = c;
        let slow = slow && outcome != Outcome::Ignored;
        if let (Some(wait), Some(max)) = (retry_after, self.settings.config.retry_after_max) {
            if !wait.is_zero() && self.open_for(gen, wait.min(max)) {
                self.count_call(outcome, slow);
                return;
            }
        }
        if probe {
            self.count_call(outcome, slow);
            self.probe_result(gen, outcome, slow);
            return;
        }
        let word = self.word.load(Ordering::Acquire);
        let current =
            gen_of(word) == gen && matches!(state_of(word), State::Closed | State::Disabled);
        match outcome {
            // A lane reports its successes in batches.
            Outcome::Success if !slow && current => self.record_success(lane, gen, now),
            Outcome::Success | Outcome::Failure if current => {
                self.count_call(outcome, slow);
                self.record(lane, gen, outcome == Outcome::Failure, slow, now);
                if state_of(word) == State::Closed {
                    self.evaluate(gen);
                }
            }
            _ => self.count_call(outcome, slow),
        }
    }

    #[inline]
    /// `now`: the clock's reading if the call already took one.
    pub(super) fn record_success(&self, lane: usize, gen: u32, now: Option<u64>) {
        let data = &self.lanes[lane];
        if let Some(time) = &self.time {
            let buckets = data.buckets.get_or_init(new_buckets);
            let now = now.unwrap_or_else(|| self.now_nanos());
            time.record(buckets, now, false, false);
        }
        let owned = lane < self.lanes.len() - 1;
        let (full, stale) = data.add_success(owned, gen, self.batch);
        if full + stale > 0 {
            self.push_successes(full, stale);
        }
    }

    pub(super) fn record(&self, lane: usize, gen: u32, failed: bool, slow: bool, now: Option<u64>) {
        if let Some(ring) = &self.ring {
            // The lane's earlier successes go first, in order.
            self.flush_lane(lane, gen);
            ring.push(failed, slow);
        } else if let Some(time) = &self.time {
            let buckets = self.lanes[lane].buckets.get_or_init(new_buckets);
            let now = now.unwrap_or_else(|| self.now_nanos());
            time.record(buckets, now, failed, slow);
        }
    }
}

/// A finished call's result, as the breaker records it.
#[derive(Clone, Copy)]
pub(super) struct Completion {
    /// The generation the call was admitted in.
    pub(super) gen: u32,
    pub(super) probe: bool,
    pub(super) outcome: Outcome,
    pub(super) slow: bool,
    pub(super) retry_after: Option<Duration>,
    /// The clock's reading (nanoseconds since the breaker's start) if the call took one.
    pub(super) now: Option<u64>,
}
