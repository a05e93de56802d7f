//! Every change of a breaker's state: a trip, the move to half-open, a probe's result, a
//! `Retry-After`, the operator's actions. Each runs under the breaker's `control` mutex
//! (never touched by the closed path) and moves the state word to the next generation.

use super::{
    breaker::{micros_at_least_one, Breaker, Control},
    state::{
        gen_of, open_belongs_to, pack, pack_open, slots_epoch, slots_in_flight, state_of,
        successes_of, State, ONE_SUCCESS, UNTIL_MASK,
    },
    window::{TimeWindow, WindowFigures},
    Outcome,
};
use crate::internal::sync::{fence, Ordering};
use std::time::Duration;

/// Growth steps beyond this are never needed: `multiplier >= 1`, so `2^64` times any
/// duration exceeds the 100-year cap unless the multiplier is 1.
pub(super) const MAX_LEVEL: u32 = 64;

pub(super) fn draw() -> f64 {
    rand::RngExt::random::<f64>(&mut rand::rng())
}

impl Breaker {
    /// Trips the breaker if the window's rates have reached a threshold.
    pub(super) fn evaluate(&self, gen: u32) {
        let config = &self.settings.config;
        if self.time.is_some() {
            // The result was just counted in this thread's lane, and the other lanes are
            // read next: without a full fence, two results counted at once in two lanes
            // may each miss the other (store buffering), and neither trip on the pair
            // that crosses the threshold (the loom model in `window_loom.rs`).
            fence(Ordering::SeqCst);
        }
        let figures = self.figures(None);
        if figures.calls < u64::from(config.minimum_calls) {
            return;
        }
        let reason = if figures.failure_rate() >= config.failure_rate_threshold {
            "failure_rate"
        } else if config.slow_call_duration.is_some()
            && figures.slow_call_rate() >= config.slow_call_rate_threshold
        {
            "slow_call_rate"
        } else {
            return;
        };
        let mut ctl = self.control();
        let now = self.now_micros();
        ctl.level = self.recovered_level(&ctl, now);
        let wait = self.jittered(config.nominal_open_duration(ctl.level));
        self.set_state(
            &mut ctl,
            |w| gen_of(w) == gen && state_of(w) == State::Closed,
            State::Open,
            now,
            Some(wait),
            reason,
            Some(figures),
        );
    }

    pub(super) fn jittered(&self, nominal: Duration) -> Duration {
        let jitter = self.settings.config.open_duration_jitter;
        if jitter == 0.0 {
            return nominal;
        }
        nominal.mul_f64(1.0 - jitter * draw())
    }

    // ===== half-open =====

    pub(super) fn enter_half_open(&self, gen: u32, now: u64) {
        let mut ctl = self.control();
        self.set_state(
            &mut ctl,
            |w| {
                gen_of(w) == gen && state_of(w) == State::Open && {
                    let info = self.open_info.load(Ordering::Acquire);
                    open_belongs_to(info, gen) && now >= info & UNTIL_MASK
                }
            },
            State::HalfOpen,
            now,
            None,
            "open_duration_elapsed",
            None,
        );
    }

    /// Acts on a probe's result (its slot is already free).
    pub(super) fn probe_result(&self, gen: u32, outcome: Outcome, slow: bool) {
        let config = &self.settings.config;
        loop {
            let word = self.word.load(Ordering::Acquire);
            if gen_of(word) != gen || state_of(word) != State::HalfOpen {
                return;
            }
            match outcome {
                Outcome::Ignored => return,
                Outcome::Failure => return self.probe_failed(gen, "probe_failed", false),
                Outcome::Success if slow => return self.probe_failed(gen, "probe_slow", false),
                Outcome::Success => {}
            }
            if successes_of(word) + 1 >= config.half_open_successes {
                let mut ctl = self.control();
                let now = self.now_micros();
                self.set_state(
                    &mut ctl,
                    |w| gen_of(w) == gen && state_of(w) == State::HalfOpen,
                    State::Closed,
                    now,
                    None,
                    "probes_succeeded",
                    None,
                );
                return;
            }
            if self
                .word
                .compare_exchange(
                    word,
                    word + ONE_SUCCESS,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return;
            }
        }
    }

    /// Reopens for longer after a failed probe; with `reclaim`, only if every probe slot is
    /// still taken and the newest probe started `probe_timeout` ago, and then the slots are
    /// taken back from those probes.
    pub(super) fn probe_failed(&self, gen: u32, reason: &'static str, reclaim: bool) {
        let mut ctl = self.control();
        if gen_of(self.word.load(Ordering::Acquire)) != gen {
            return;
        }
        let now = self.now_micros();
        if reclaim {
            let config = &self.settings.config;
            let slots = self.probe_slots.load(Ordering::Acquire);
            let since = now.saturating_sub(self.last_probe_at.load(Ordering::Acquire));
            if slots_in_flight(slots) < config.half_open_max_probes
                || since < micros_at_least_one(config.probe_timeout)
            {
                return;
            }
            // A new epoch: the stuck probes' late releases no longer count.
            let mut slots = slots;
            while let Err(actual) = self.probe_slots.compare_exchange(
                slots,
                u64::from(slots_epoch(slots).wrapping_add(1)) << 32,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                slots = actual;
            }
        }
        let level = (ctl.level + 1).min(MAX_LEVEL);
        let wait = self.jittered(self.settings.config.nominal_open_duration(level));
        if self
            .set_state(
                &mut ctl,
                |w| gen_of(w) == gen && state_of(w) == State::HalfOpen,
                State::Open,
                now,
                Some(wait),
                reason,
                None,
            )
            .is_some()
        {
            ctl.level = level;
        }
    }

    pub(super) fn release_probe(&self, epoch: u32) {
        let mut slots = self.probe_slots.load(Ordering::Acquire);
        while slots_epoch(slots) == epoch && slots_in_flight(slots) > 0 {
            match self.probe_slots.compare_exchange(
                slots,
                slots - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => slots = actual,
            }
        }
    }

    /// Opens for a `Retry-After` wait, from closed or half-open.
    pub(super) fn open_for(&self, gen: u32, wait: Duration) -> bool {
        let mut ctl = self.control();
        let now = self.now_micros();
        self.set_state(
            &mut ctl,
            |w| gen_of(w) == gen && matches!(state_of(w), State::Closed | State::HalfOpen),
            State::Open,
            now,
            Some(wait),
            "retry_after",
            None,
        )
        .is_some()
    }

    // ===== operator actions =====

    pub(crate) fn force_open(&self) {
        self.hold(State::ForcedOpen, "forced_open");
    }

    pub(crate) fn disable(&self) {
        self.hold(State::Disabled, "disabled");
    }

    /// Moves to an operator's state `to`, unless the breaker is in it already.
    pub(super) fn hold(&self, to: State, reason: &'static str) {
        let mut ctl = self.control();
        let now = self.now_micros();
        self.set_state(&mut ctl, |w| state_of(w) != to, to, now, None, reason, None);
    }

    pub(crate) fn reset(&self) {
        let mut ctl = self.control();
        let now = self.now_micros();
        ctl.level = 0;
        self.set_state(&mut ctl, |_| true, State::Closed, now, None, "reset", None);
    }

    // ===== transitions =====

    /// Moves to `to` with the next generation if `expect` holds for the current word, and
    /// reports the transition. Called with `control` held, so no other transition runs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_state(
        &self,
        ctl: &mut Control,
        expect: impl Fn(u64) -> bool,
        to: State,
        now: u64,
        open_for: Option<Duration>,
        reason: &'static str,
        figures: Option<WindowFigures>,
    ) -> Option<State> {
        if !expect(self.word.load(Ordering::Acquire)) {
            return None;
        }
        // What readers of the new state need is ready before they can see it.
        match to {
            State::Closed | State::Disabled => self.reset_window(),
            State::HalfOpen => self.last_probe_at.store(now, Ordering::Release),
            _ => {}
        }
        loop {
            let word = self.word.load(Ordering::Acquire);
            if !expect(word) {
                return None;
            }
            let gen = gen_of(word).wrapping_add(1);
            if let Some(wait) = open_for {
                let until = now
                    .saturating_add(micros_at_least_one(wait))
                    .min(UNTIL_MASK);
                self.open_info
                    .store(pack_open(gen, until), Ordering::Release);
            }
            // Only probe successes change outside the lock: a failed exchange is retried.
            if self
                .word
                .compare_exchange(word, pack(to, gen), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let from = state_of(word);
                if to == State::Closed {
                    ctl.closed_at = now;
                }
                if from != to {
                    #[cfg(feature = "metrics")]
                    self.settings.instruments.transition(from, to, !ctl.retired);
                    self.trace_transition(from, to, reason, open_for, figures);
                }
                return Some(from);
            }
        }
    }

    pub(super) fn reset_window(&self) {
        // Buffered successes are tagged with their generation: those of the old one will be
        // dropped by their lane's writer, which only it may touch.
        for lane in self.lanes.iter() {
            if let Some(buckets) = lane.buckets.get() {
                TimeWindow::reset(buckets);
            }
        }
        if let Some(ring) = &self.ring {
            ring.reset();
        }
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(super) fn trace_transition(
        &self,
        from: State,
        to: State,
        reason: &'static str,
        open_for: Option<Duration>,
        figures: Option<WindowFigures>,
    ) {
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "tower_fortify::circuit_breaker",
            name = self.settings.name,
            key = self.key.as_deref().unwrap_or(""),
            from = from.as_str(),
            to = to.as_str(),
            reason,
            open_ms = open_for.map(|d| d.as_secs_f64() * 1e3),
            calls = figures.map(|f| f.calls),
            failure_rate = figures.map(|f| f.failure_rate()),
            slow_call_rate = figures.map(|f| f.slow_call_rate()),
            "circuit breaker state changed"
        );
    }
}

/// Loom models of the breaker's transitions (see `internal::sync` for how to run them).
/// They drive the synchronous core (`Shared::admit`, `Ticket::finish`, a ticket's drop) from
/// loom threads. The breaker reads the model clock (`internal::sync::model_clock`), which
/// these models leave at zero (but for the reclaim model, whose caller reads a later time);
/// the open duration is zero and the probe timeout long, so an open breaker lets the next
/// call in as a probe, a rejection is always for full probe slots, and no probe slot is
/// reclaimed (but in the reclaim model). The lanes' and spare references' thread-locals are
/// loom's (`internal::sync::thread_local`), so each model thread has its own, as a real
/// thread.
#[cfg(all(test, fortify_loom))]
mod loom {
    use super::*;
    use crate::circuit_breaker::{
        admission::{Admission, Shared},
        config::Config,
        error::Open,
        settings::Settings,
        ticket::Ticket,
        Window,
    };
    use crate::classify::Failure;
    use crate::internal::sync::{AtomicUsize, Ordering as SeqOrdering};
    use std::sync::Arc;

    /// A breaker over the last two calls that trips when both failed, with `probes` probe
    /// slots and `successes` probe successes to close.
    fn breaker(probes: u32, successes: u32) -> Arc<Shared> {
        breaker_with_probe_timeout(probes, successes, Duration::from_secs(3600))
    }

    /// As [`breaker`], with the time after which the slots of probes that never answered
    /// are taken back.
    fn breaker_with_probe_timeout(
        probes: u32,
        successes: u32,
        probe_timeout: Duration,
    ) -> Arc<Shared> {
        let config = Config {
            window: Window::Count(2),
            minimum_calls: 2,
            open_duration: Duration::ZERO,
            open_duration_jitter: 0.0,
            half_open_max_probes: probes,
            half_open_successes: successes,
            probe_timeout,
            ..Config::DEFAULT
        };
        Arc::new(Shared::new(
            Arc::new(Settings::new(config, "loom", false)),
            None,
        ))
    }

    /// Admits a call, `None` if rejected. Every model's open duration is zero: an open
    /// breaker lets its next call in, so a rejection is always for full probe slots
    /// (half-open), never as open. A call that saw the breaker open in a generation that
    /// moved on before it read the deadline must look again, not reject.
    fn call(shared: &Shared) -> Option<Ticket> {
        match shared.admit() {
            Admission::Call(ticket) => Some(ticket),
            Admission::Reject(error) => {
                let failure = error.downcast_ref::<Failure>().unwrap();
                let open = failure.get_ref().downcast_ref::<Open>().unwrap();
                assert_eq!(open.state(), State::HalfOpen, "rejected as open");
                None
            }
        }
    }

    /// Trips `shared` (two failures) and lets one call in, which moves it to half-open and
    /// holds a probe slot.
    fn half_open_with_probe(shared: &Shared) -> Ticket {
        for _ in 0..2 {
            call(shared).unwrap().finish(Outcome::Failure, None);
        }
        assert_eq!(shared.breaker.state(), State::Open);
        let probe = call(shared).unwrap();
        assert!(probe.is_probe());
        probe
    }

    /// Closed to open exactly once: two calls fail at the same time, each result may see
    /// the window full of failures and try to trip; the breaker ends open, one generation
    /// later (a second trip would be a second generation).
    #[test]
    fn loom_closed_to_open_exactly_once() {
        ::loom::model(|| {
            let shared = breaker(1, 1);
            let (a, b) = (call(&shared).unwrap(), call(&shared).unwrap());
            let other = ::loom::thread::spawn(move || {
                let mut a = a;
                a.finish(Outcome::Failure, None);
            });
            let mut b = b;
            b.finish(Outcome::Failure, None);
            other.join().unwrap();
            let word = shared.breaker.word.load(Ordering::Acquire);
            assert_eq!(state_of(word), State::Open);
            assert_eq!(gen_of(word), 1, "the breaker tripped more than once");
        });
    }

    /// At most K probes, and a dropped probe frees its slot: an open breaker with one
    /// probe slot, two threads call at once (each may move it to half-open and race for
    /// the slot); never two probes at a time. One drops its probe unanswered, the other
    /// answers with a failure; at the end no slot is held.
    #[test]
    fn loom_at_most_k_probes_and_dropped_probes_free_their_slot() {
        ::loom::model(|| {
            let shared = breaker(1, 1);
            for _ in 0..2 {
                call(&shared).unwrap().finish(Outcome::Failure, None);
            }
            let probes = Arc::new(AtomicUsize::new(0));
            let other = {
                let (shared, probes) = (Arc::clone(&shared), Arc::clone(&probes));
                ::loom::thread::spawn(move || {
                    if let Some(ticket) = call(&shared).filter(Ticket::is_probe) {
                        assert_eq!(probes.fetch_add(1, SeqOrdering::SeqCst), 0, "two probes");
                        probes.fetch_sub(1, SeqOrdering::SeqCst);
                        drop(ticket);
                    }
                })
            };
            if let Some(mut ticket) = call(&shared).filter(Ticket::is_probe) {
                assert_eq!(probes.fetch_add(1, SeqOrdering::SeqCst), 0, "two probes");
                probes.fetch_sub(1, SeqOrdering::SeqCst);
                ticket.finish(Outcome::Failure, None);
            }
            other.join().unwrap();
            assert_eq!(
                shared.breaker.probes_in_flight(),
                0,
                "a probe slot was lost"
            );
        });
    }

    /// Two probes of one half-open period (two slots, `successes` to close): the first
    /// fails, which reopens the breaker, and the next call (returned, with the generation
    /// of the first period) moves it to a new half-open period, a probe of its own if a slot
    /// is free (the late probe may still hold one), while the second probe's success comes
    /// in from another thread.
    fn late_success_racing_a_new_period(successes: u32) -> (Arc<Shared>, u32, Option<Ticket>) {
        let shared = breaker(2, successes);
        let mut first = half_open_with_probe(&shared);
        let second = call(&shared).unwrap();
        assert!(second.is_probe());
        let old = gen_of(shared.breaker.word.load(Ordering::Acquire));
        let late = ::loom::thread::spawn(move || {
            let mut second = second;
            second.finish(Outcome::Success, None);
        });
        first.finish(Outcome::Failure, None);
        let next = call(&shared);
        late.join().unwrap();
        (shared, old, next)
    }

    /// A late result never acts on a newer generation: two probes of one half-open period
    /// (two slots, two successes to close); one fails, which reopens the breaker, and the
    /// next call moves it to a new half-open period, while the other probe's success comes
    /// in. That success belongs to the old period: it must not count towards closing the
    /// new one.
    #[test]
    fn loom_a_late_probe_result_never_acts_on_a_newer_generation() {
        ::loom::model(|| {
            let (shared, old, next) = late_success_racing_a_new_period(2);
            let word = shared.breaker.word.load(Ordering::Acquire);
            if gen_of(word) != old && state_of(word) == State::HalfOpen {
                assert_eq!(
                    successes_of(word),
                    0,
                    "a success of an older half-open period counted in a newer one"
                );
            }
            drop(next);
            assert_eq!(
                shared.breaker.probes_in_flight(),
                0,
                "a probe slot was lost"
            );
        });
    }

    /// A reset is final: a failure that crosses the threshold races an operator's reset.
    /// The result belongs to the generation before the reset, so it may trip the breaker
    /// only before the reset (which then closes it again), never after: the breaker ends
    /// closed.
    #[test]
    fn loom_a_result_racing_a_reset_never_trips_the_newer_generation() {
        ::loom::model(|| {
            let shared = breaker(1, 1);
            call(&shared).unwrap().finish(Outcome::Failure, None);
            let last = call(&shared).unwrap();
            let result = ::loom::thread::spawn(move || {
                let mut last = last;
                last.finish(Outcome::Failure, None);
            });
            shared.breaker.reset();
            result.join().unwrap();
            assert_eq!(
                shared.breaker.state(),
                State::Closed,
                "a result of the generation before a reset tripped the breaker after it"
            );
        });
    }

    /// Open to half-open exactly once: two calls reach an open breaker whose open duration
    /// has passed, each may try to move it to half-open; one moves it, one generation
    /// later, and the other takes a probe slot of that half-open period or is rejected.
    /// With no result given, the breaker ends half-open in the generation after the open one.
    #[test]
    fn loom_open_to_half_open_exactly_once() {
        ::loom::model(|| {
            let shared = breaker(1, 1);
            for _ in 0..2 {
                call(&shared).unwrap().finish(Outcome::Failure, None);
            }
            let open = gen_of(shared.breaker.word.load(Ordering::Acquire));
            let other = {
                let shared = Arc::clone(&shared);
                ::loom::thread::spawn(move || drop(call(&shared)))
            };
            drop(call(&shared));
            other.join().unwrap();
            let word = shared.breaker.word.load(Ordering::Acquire);
            assert_eq!(state_of(word), State::HalfOpen);
            assert_eq!(gen_of(word), open + 1, "moved to half-open more than once");
            assert_eq!(
                shared.breaker.probes_in_flight(),
                0,
                "a probe slot was lost"
            );
        });
    }

    /// A late probe success never closes a newer half-open period: two probes of one
    /// period (two slots, one success closes); one fails, which reopens the breaker, and
    /// the next call moves it to a new half-open period as its probe, while the other
    /// probe's success comes in. If that next call is a probe of the new period, the
    /// breaker is still in that period at the end: only its own probes decide it.
    #[test]
    fn loom_a_late_probe_success_never_closes_a_newer_period() {
        ::loom::model(|| {
            let (shared, _, next) = late_success_racing_a_new_period(1);
            if let Some(next) = next.as_ref().filter(|t| t.is_probe()) {
                let word = shared.breaker.word.load(Ordering::Acquire);
                assert_eq!(
                    (state_of(word), gen_of(word)),
                    (State::HalfOpen, next.gen),
                    "a success of an older half-open period closed a newer one"
                );
            }
            drop(next);
            assert_eq!(
                shared.breaker.probes_in_flight(),
                0,
                "a probe slot was lost"
            );
        });
    }

    /// Slots are taken back only from probes that still hold them: a probe that never
    /// answered is dropped (its slot freed) while a call, its clock past `probe_timeout`,
    /// finds every slot taken and goes to reclaim them. The reclaim (which reopens the
    /// breaker for longer, one growth step) happens only if the slot is still taken when
    /// it decides, under the breaker's lock: once the dropped probe's thread has seen the
    /// growth level under that lock, the level does not grow.
    #[test]
    fn loom_a_slot_freed_before_a_reclaim_is_not_taken_back() {
        ::loom::model(|| {
            let shared = breaker_with_probe_timeout(1, 1, Duration::from_secs(1));
            let stuck = half_open_with_probe(&shared);
            let dropper = {
                let shared = Arc::clone(&shared);
                ::loom::thread::spawn(move || {
                    drop(stuck);
                    shared.breaker.control().level
                })
            };
            crate::internal::sync::model_clock::set(Duration::from_secs(2));
            let next = call(&shared);
            let seen = dropper.join().unwrap();
            let level = shared.breaker.control().level;
            assert_eq!(
                level, seen,
                "slots taken back after their probe had freed its own"
            );
            drop(next);
            assert_eq!(
                shared.breaker.probes_in_flight(),
                0,
                "a probe slot was lost"
            );
        });
    }

    /// A probe's slot is taken while its half-open period is current: a call that took a
    /// slot after its period ended (another probe failed and a third call started a new
    /// period) gives the slot back and is decided again in the new period. Two slots; probe
    /// `x` of the first period fails and a call `z` starts the next period, while the main
    /// thread's call races them. If that call is a probe of the first period, it took its
    /// slot before the period ended, so `z` saw both slots taken.
    #[test]
    fn loom_a_probe_slot_is_taken_within_its_half_open_period() {
        ::loom::model(|| {
            let shared = breaker(2, 1);
            let x = half_open_with_probe(&shared);
            let period = x.gen;
            let other = {
                let shared = Arc::clone(&shared);
                ::loom::thread::spawn(move || {
                    let mut x = x;
                    x.finish(Outcome::Failure, None);
                    let z = call(&shared);
                    let seen = shared.breaker.probes_in_flight();
                    (z, seen)
                })
            };
            let mine = call(&shared);
            let (z, seen) = other.join().unwrap();
            if mine
                .as_ref()
                .is_some_and(|t| t.is_probe() && t.gen == period)
            {
                assert_eq!(seen, 2, "a probe of a half-open period that had ended");
            }
            drop((mine, z));
            assert_eq!(
                shared.breaker.probes_in_flight(),
                0,
                "a probe slot was lost"
            );
        });
    }
}
