//! Whether a call may go through: the closed path (one load of the state word), and past it
//! the open and half-open decisions. Single and per-host breakers admit through here alike.

use super::{
    breaker::{micros_at_least_one, Breaker},
    error::Open,
    lanes::lane_count,
    local::{with_local, Lane},
    settings::Settings,
    state::{gen_of, open_belongs_to, slots_epoch, slots_in_flight, state_of, State, UNTIL_MASK},
    ticket::{Ticket, NOT_TIMED, NO_PROBE},
};
use crate::{
    classify::{Failure, FailureKind},
    internal::spare,
    BoxError,
};
use std::{
    cell::Cell,
    fmt,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

/// A breaker and its lanes: what a service (or a key of a keyed service) holds.
pub(crate) struct Shared {
    pub(crate) breaker: Arc<Breaker>,
    lanes: Box<[Arc<Lane>]>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.breaker, f)
    }
}

/// Whether a call may go through.
pub(crate) enum Admission {
    Call(Ticket),
    Reject(BoxError),
}

/// A reference for the current thread's lane: its spare if that is the one, a new one
/// otherwise.
#[inline]
fn take_lane(lanes: &[Arc<Lane>]) -> Arc<Lane> {
    // One read of the thread's own for its lane index and its spare; while the thread
    // exits, both are gone: a new reference to the shared lane.
    with_local(|local| spare::take(&local.spare, &lanes[local.index()]))
        .unwrap_or_else(|_| Arc::clone(&lanes[lane_count()]))
}

impl Shared {
    pub(crate) fn new(settings: Arc<Settings>, key: Option<Arc<str>>) -> Self {
        let breaker = Arc::new(Breaker::new(settings, key));
        let lanes = (0..breaker.lanes.len())
            .map(|_| {
                Arc::new(Lane {
                    breaker: Arc::clone(&breaker),
                })
            })
            .collect();
        Shared { breaker, lanes }
    }

    /// Lets a call through or rejects it. While closed: one atomic load, and the lane's
    /// reference count. The fast path is [`closed_gen`](Self::closed_gen) and
    /// [`closed_ticket`](Self::closed_ticket), which the single breaker calls apart.
    #[inline(always)]
    pub(crate) fn admit(&self) -> Admission {
        match self.closed_gen() {
            Some(gen) => Admission::Call(self.closed_ticket(gen, self.started())),
            None => self.admit_slow(),
        }
    }

    /// The generation, when the breaker lets every call through (closed or disabled): the
    /// fast path of [`admit`](Self::admit), for a caller that makes the call before it takes
    /// its [`closed_ticket`](Self::closed_ticket) (so that the ticket is built in place).
    #[inline(always)]
    pub(crate) fn closed_gen(&self) -> Option<u32> {
        let word = self.breaker.word.load(Ordering::Acquire);
        matches!(state_of(word), State::Closed | State::Disabled).then_some(gen_of(word))
    }

    /// The call's start, when slow calls are detected.
    #[inline(always)]
    pub(crate) fn started(&self) -> u64 {
        if self.breaker.slow_nanos != u64::MAX {
            self.breaker.now_nanos()
        } else {
            NOT_TIMED
        }
    }

    /// A ticket holding no probe slot: a call let through by [`closed_gen`](Self::closed_gen)
    /// (and the base of a probe's ticket).
    #[inline(always)]
    pub(crate) fn closed_ticket(&self, gen: u32, start: u64) -> Ticket {
        Ticket {
            lane: Some(take_lane(&self.lanes)),
            gen,
            probe: NO_PROBE,
            start,
        }
    }

    /// [`admit`](Self::admit) past its fast path.
    pub(crate) fn admit_slow(&self) -> Admission {
        self.admit_cold(self.breaker.word.load(Ordering::Acquire))
    }

    #[inline]
    fn ticket(&self, gen: u32, probe: Option<u32>) -> Ticket {
        let mut ticket = self.closed_ticket(gen, self.started());
        ticket.probe = probe.unwrap_or(NO_PROBE);
        ticket
    }

    #[cold]
    fn admit_cold(&self, mut word: u64) -> Admission {
        let b = &*self.breaker;
        let config = &b.settings.config;
        loop {
            let gen = gen_of(word);
            match state_of(word) {
                State::Closed | State::Disabled => return Admission::Call(self.ticket(gen, None)),
                State::ForcedOpen => return reject(b, State::ForcedOpen, None),
                State::Open => {
                    let info = b.open_info.load(Ordering::Acquire);
                    if !open_belongs_to(info, gen) {
                        // A later transition overwrote it: the state has changed too.
                        let fresh = b.word.load(Ordering::Acquire);
                        if fresh == word {
                            return reject(b, State::Open, None);
                        }
                        word = fresh;
                        continue;
                    }
                    let until = info & UNTIL_MASK;
                    let now = b.now_micros();
                    if now < until {
                        return reject(b, State::Open, Some(Duration::from_micros(until - now)));
                    }
                    b.enter_half_open(gen, now);
                }
                State::HalfOpen => {
                    let slots = b.probe_slots.load(Ordering::Acquire);
                    if slots_in_flight(slots) < config.half_open_max_probes {
                        // Stamped before the slot is taken, so that a full set of slots
                        // never shows an older stamp than its newest probe's.
                        b.last_probe_at.store(b.now_micros(), Ordering::Release);
                        if b.probe_slots
                            .compare_exchange(slots, slots + 1, Ordering::AcqRel, Ordering::Acquire)
                            .is_err()
                        {
                            continue;
                        }
                        let epoch = slots_epoch(slots);
                        // The slot counts only if the breaker is still in this half-open
                        // period; otherwise it goes back and the call is decided again.
                        let fresh = b.word.load(Ordering::Acquire);
                        if gen_of(fresh) == gen && state_of(fresh) == State::HalfOpen {
                            return Admission::Call(self.ticket(gen, Some(epoch)));
                        }
                        b.release_probe(epoch);
                        word = fresh;
                        continue;
                    }
                    let now = b.now_micros();
                    let since = now.saturating_sub(b.last_probe_at.load(Ordering::Acquire));
                    if since < micros_at_least_one(config.probe_timeout) {
                        return reject(b, State::HalfOpen, None);
                    }
                    b.probe_failed(gen, "probe_timeout", true);
                }
            }
            word = b.word.load(Ordering::Acquire);
        }
    }
}

/// Rejects a call: a [`CircuitOpen`](FailureKind::CircuitOpen) failure.
fn reject(b: &Breaker, state: State, retry_in: Option<Duration>) -> Admission {
    #[cfg(feature = "metrics")]
    b.settings.instruments.rejected();
    let open = Open::new(state, retry_in, b.key.clone());
    Admission::Reject(Box::new(Failure::new(FailureKind::CircuitOpen, open)))
}

thread_local! {
    static PROBE_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is inside the inner service's `call` for a half-open probe.
///
/// A breaker that lets a call through as a probe says so for the duration of the inner
/// service's `call` (not of its response future): an inner service can read it there to
/// treat probes apart, for example to give them a shorter timeout or to tag its logs.
/// Outside such a `call` it is `false`.
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::circuit_breaker::{is_probe_call, CircuitBreakerLayer, ErrorsOnly};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let layer = CircuitBreakerLayer::builder()
///     .classifier(ErrorsOnly)
///     .minimum_calls(1)
///     .build_generic()
///     .unwrap();
/// let svc = layer.layer(tower::service_fn(|fail: bool| {
///     let probe = is_probe_call();
///     async move { if fail { Err(std::io::Error::other("down")) } else { Ok(probe) } }
/// }));
/// assert_eq!(svc.clone().oneshot(false).await.unwrap(), false);
/// assert!(svc.clone().oneshot(true).await.is_err()); // trips
/// tokio::time::advance(Duration::from_secs(5)).await;
/// assert_eq!(svc.clone().oneshot(false).await.unwrap(), true, "the first call after the wait");
/// assert!(!is_probe_call());
/// # }
/// ```
pub fn is_probe_call() -> bool {
    PROBE_CALL.try_with(Cell::get).unwrap_or(false)
}

/// Marks the current thread as calling a probe until dropped.
pub(crate) struct ProbeCall {
    previous: bool,
}

impl ProbeCall {
    pub(crate) fn enter() -> Self {
        ProbeCall {
            previous: PROBE_CALL.try_with(|p| p.replace(true)).unwrap_or(false),
        }
    }
}

impl Drop for ProbeCall {
    fn drop(&mut self) {
        let _ = PROBE_CALL.try_with(|p| p.set(self.previous));
    }
}

impl Shared {
    /// Marks the breaker as gone from its map (or its layer): its transitions no longer
    /// move the state gauge, and it leaves it. Once: a per-host breaker retires when its
    /// map lets it go, though a thread's cache may hold it a little longer.
    pub(crate) fn retire(&self) {
        let mut ctl = self.breaker.control();
        if ctl.retired {
            return;
        }
        ctl.retired = true;
        #[cfg(feature = "metrics")]
        self.breaker.settings.instruments.left(self.breaker.state());
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.retire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::{config::Config, local::current_lane, Outcome};

    #[test]
    fn a_thread_reuses_its_spare_lane_reference() {
        let shared = Shared::new(
            Arc::new(Settings::new(Config::DEFAULT, "test", false)),
            None,
        );
        let lane = &shared.lanes[current_lane()];
        for _ in 0..3 {
            let Admission::Call(mut ticket) = shared.admit() else {
                panic!("closed")
            };
            // The lanes' reference and the ticket's: the spare moved into the ticket.
            assert_eq!(Arc::strong_count(lane), 2);
            ticket.finish(Outcome::Success, None);
            // The lanes' reference and the spare.
            assert_eq!(Arc::strong_count(lane), 2);
        }
    }
}
