//! [`Future`] types.

use super::{shared::SharedRef, tracker::Tracker};
use crate::retry::{Kept, TryCloneBody};
use http::Request;
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower_service::Service;

pin_project! {
    /// Response future of [`Hedge`](super::Hedge).
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops both attempts and the request copy, gives back its place among the
    /// calls waiting for their hedge delay and the hedge's place in its host's
    /// `max_in_flight`; it records no latency. A hedge taken from the budget is not given
    /// back.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        // The first attempt, until it answers or loses.
        #[pin]
        primary: Option<S::Future>,
        // The hedge and what goes with it, once sent, until it answers or loses: on the
        // heap, so that a call never hedged carries one attempt's future, not two (and is
        // moved with fewer bytes).
        sent: Option<Pin<Box<Sent<S, B>>>>,
        // What a hedge is sent with, until it is sent or can no longer be.
        spare: Option<Spare<S, B>>,
        // When the first attempt was first pending (not read for an answer at once).
        started: Option<Instant>,
        // The call's slot among the layer's calls waiting for their hedge delay, taken when
        // the first attempt is first pending (see `internal::ticker`), or `NO_WAIT`.
        wait: u32,
        // The host's slot in the tracker (at most 4096, `max_keys`; `UNTRACKED`: a call the
        // layer leaves alone), and the layer. Small fields, so that the future of a call over a boxed inner one
        // (hyper-util's client) stays within 256 bytes: copied with straight-line moves,
        // not a loop, each of the several times a call moves it.
        slot: u16,
        // Whether and how the first attempt's latency is recorded.
        timing: Timing,
        shared: SharedRef,
    }

    impl<S, B> PinnedDrop for ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            stop_waiting(this.wait, Some(&**this.shared));
        }
    }
}

/// `ResponseFuture::slot` of a call the layer leaves alone.
const UNTRACKED: u16 = u16::MAX;

pin_project! {
    /// A hedge sent: its attempt, its place in its host's `max_in_flight`, when it was
    /// sent, and the first attempt's failure, kept while the hedge runs.
    struct Sent<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        future: S::Future,
        // Dropped after the attempt (fields drop in order).
        _in_flight: InFlight,
        started: Instant,
        failed: Option<S::Error>,
    }
}

/// One pending call in `TIME_EVERY` on each thread, drawn at random (`internal::draw`, as
/// the adaptive pool limit draws its calls: a thread calling two hosts in turn times each
/// alike), is timed once its host has a delay, its latency counting `TIME_EVERY` times:
/// the others read the clock once (when first pending, for their hedge deadline), or not
/// at all when no hedge may follow.
pub(crate) const TIME_EVERY: u16 = 2;

/// How a tracked call's latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timing {
    /// Its host has no delay yet: every call is timed (a host gets its delay after
    /// `min_samples` answers, not `TIME_EVERY` times as many).
    Cold,
    /// Its host has a delay, and the call has not been pending yet: an answer at the first
    /// poll counts once as zero (no clock read), a pending call takes its turn.
    Warm,
    /// Its turn: timed, counting `TIME_EVERY` times.
    Timed,
    /// Not its turn: not recorded.
    Untimed,
}

impl Timing {
    /// The first attempt is pending: whether to read the clock now (`waits`: a hedge may
    /// follow, whose deadline needs it), once.
    #[inline]
    fn pending(&mut self, started: &mut Option<Instant>, waits: bool) {
        let read = match *self {
            Timing::Cold => started.is_none(),
            Timing::Warm => {
                let timed = crate::internal::draw::one_in(u32::from(TIME_EVERY));
                *self = if timed {
                    Timing::Timed
                } else {
                    Timing::Untimed
                };
                timed || waits
            }
            Timing::Timed | Timing::Untimed => false,
        };
        if read {
            *started = Some(Instant::now());
        }
    }

    /// The latency of a first attempt that answered, with its weight: `None` when it is
    /// not recorded.
    #[inline]
    fn sample(self, started: Option<Instant>) -> Option<(Duration, u16)> {
        let weight = match self {
            // Answered at the first poll (no clock read, `started` is none) or timed.
            Timing::Cold | Timing::Warm => 1,
            Timing::Timed => TIME_EVERY,
            Timing::Untimed => return None,
        };
        Some((started.map_or(Duration::ZERO, |s| s.elapsed()), weight))
    }
}

/// `ResponseFuture::wait` while the call holds no slot among the waiting calls (the ticker
/// has 4096).
const NO_WAIT: u32 = u32::MAX;

/// Gives back the call's slot among the waiting calls, if it has one.
#[inline]
fn stop_waiting(wait: &mut u32, shared: Option<&super::shared::Shared>) {
    let index = std::mem::replace(wait, NO_WAIT);
    if let (true, Some(shared)) = (index != NO_WAIT, shared) {
        shared.ticker.release(index);
    }
}

/// What a hedge is sent with: the service it is cloned from when the delay is over, and
/// the request. The delay is the host's when the first attempt is first pending.
pub(crate) struct Spare<S, B> {
    service: super::service::Template<S>,
    request: SpareRequest<S, B>,
}

/// The hedge's request: the copy until the delay is over, then the request made from it
/// and the service's clone while that gets ready, on the heap (a call hedged pays for it,
/// one answered before its delay does not carry it).
enum SpareRequest<S, B> {
    Kept(Kept<B>),
    Made(Box<(S, Request<B>, InFlight)>),
}

impl<S, B> Spare<S, B> {
    pub(crate) fn new(service: super::service::Template<S>, kept: Kept<B>) -> Self {
        Spare {
            service,
            request: SpareRequest::Kept(kept),
        }
    }
}

/// A hedge counted in its host's `max_in_flight`, given back when dropped.
struct InFlight {
    tracker: Arc<Tracker>,
    slot: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.tracker.release(self.slot);
    }
}

/// Why a hedge was not sent, for the tracing event.
#[derive(Debug, Clone, Copy)]
enum Skip {
    InFlight,
    NotReplayable,
    #[cfg(feature = "circuit-breaker")]
    Breaker,
    Budget,
    NotReady,
}

impl Skip {
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    fn as_str(self) -> &'static str {
        match self {
            Skip::InFlight => "max_in_flight",
            Skip::NotReplayable => "not_replayable",
            #[cfg(feature = "circuit-breaker")]
            Skip::Breaker => "breaker",
            Skip::Budget => "budget",
            Skip::NotReady => "not_ready",
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("tracked", &(self.slot != UNTRACKED))
            .field("hedge_sent", &self.sent.is_some())
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A call the layer leaves alone.
    pub(crate) fn untracked(future: S::Future, shared: SharedRef) -> Self {
        Self::new(future, UNTRACKED, None, Timing::Cold, shared)
    }

    /// A call whose latency is recorded (as `timing` says), and that may be hedged when
    /// `spare` is some.
    pub(crate) fn tracked(
        future: S::Future,
        slot: u16,
        spare: Option<Spare<S, B>>,
        timing: Timing,
        shared: SharedRef,
    ) -> Self {
        Self::new(future, slot, spare, timing, shared)
    }

    #[inline(always)]
    fn new(
        future: S::Future,
        slot: u16,
        spare: Option<Spare<S, B>>,
        timing: Timing,
        shared: SharedRef,
    ) -> Self {
        ResponseFuture {
            primary: Some(future),
            sent: None,
            spare,
            started: None,
            wait: NO_WAIT,
            slot,
            timing,
            shared,
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>> + Clone,
    B: TryCloneBody,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if *this.slot == UNTRACKED {
            // A call the layer leaves alone: its one attempt, passed through.
            if let Some(primary) = this.primary.as_mut().as_pin_mut() {
                return primary.poll(cx);
            }
        }
        let slot = *this.slot as usize;
        let tracked: Option<&super::shared::Shared> = Some(this.shared);
        let mut poll_primary = true;
        loop {
            if poll_primary {
                if let Some(primary) = this.primary.as_mut().as_pin_mut() {
                    match primary.poll(cx) {
                        Poll::Ready(Ok(response)) => {
                            if let Some(shared) = tracked {
                                // An answer at the first poll took no measurable time: no
                                // clock read for it.
                                if let Some((latency, weight)) = this.timing.sample(*this.started) {
                                    shared.tracker.record(slot, latency, weight);
                                }
                            }
                            // The hedge, if any, lost: cancelled now (its place in
                            // `max_in_flight` given back after it).
                            *this.sent = None;
                            stop_waiting(this.wait, tracked);
                            return Poll::Ready(Ok(response));
                        }
                        Poll::Ready(Err(err)) => {
                            this.primary.set(None);
                            // No hedge after a failure: trying again is the retry layer's
                            // decision.
                            *this.spare = None;
                            stop_waiting(this.wait, tracked);
                            match this.sent.as_mut() {
                                None => return Poll::Ready(Err(err)),
                                Some(sent) => *sent.as_mut().project().failed = Some(err),
                            }
                        }
                        Poll::Pending => this.timing.pending(this.started, this.spare.is_some()),
                    }
                }
            }

            if let Some(sent) = this.sent.as_mut() {
                let sent = sent.as_mut().project();
                match sent.future.poll(cx) {
                    Poll::Ready(Ok(response)) => {
                        if let Some(shared) = tracked {
                            let now = Instant::now();
                            // A call hedged is always timed (its clock reads are the
                            // hedge's): each latency counts once.
                            shared.tracker.record(
                                slot,
                                now.saturating_duration_since(*sent.started),
                                1,
                            );
                            if let (Some(_), Some(started)) =
                                (this.primary.as_ref().as_pin_ref(), *this.started)
                            {
                                // The first attempt ran at least this long: its latency as
                                // far as it is known, so that slow answers stay in the tail.
                                shared.tracker.record(
                                    slot,
                                    now.saturating_duration_since(started),
                                    1,
                                );
                            }
                            shared.won();
                        }
                        // The first attempt lost: cancelled now.
                        this.primary.set(None);
                        *this.sent = None;
                        return Poll::Ready(Ok(response));
                    }
                    Poll::Ready(Err(err)) => {
                        let failed = sent.failed.take();
                        *this.sent = None;
                        if this.primary.is_none() {
                            // Both failed: the first attempt's failure.
                            return Poll::Ready(Err(failed.unwrap_or(err)));
                        }
                    }
                    Poll::Pending => {}
                }
            }

            if this.primary.is_some() && this.spare.is_some() {
                let sent = send_hedge(
                    this.spare,
                    this.wait,
                    this.sent,
                    *this.started,
                    slot,
                    tracked,
                    cx,
                );
                if sent {
                    // Poll the hedge once, not the first attempt again.
                    poll_primary = false;
                    continue;
                }
            }
            return Poll::Pending;
        }
    }
}

/// Waits for the hedge delay, decides, waits for the service's readiness and sends the
/// hedge: `true` once it is sent. The spare is dropped when no hedge will be sent.
fn send_hedge<S, B>(
    spare_slot: &mut Option<Spare<S, B>>,
    wait: &mut u32,
    sent: &mut Option<Pin<Box<Sent<S, B>>>>,
    started: Option<Instant>,
    slot: usize,
    shared: Option<&super::shared::Shared>,
    cx: &mut Context<'_>,
) -> bool
where
    S: Service<Request<B>> + Clone,
    B: TryCloneBody,
{
    let (Some(spare), Some(shared)) = (spare_slot.as_mut(), shared) else {
        return false;
    };
    if let SpareRequest::Kept(kept) = &spare.request {
        match *wait {
            NO_WAIT => {
                // The first attempt is pending: `started` is set. The delay is the slot's
                // now (read again rather than carried: a host evicted since has none). A
                // delay too long to represent is a hedge never sent, as is one no slot is
                // left to wait in.
                let delay = shared.tracker.delay(slot);
                let at = started
                    .zip(delay)
                    .and_then(|(s, delay)| s.checked_add(delay));
                match at.and_then(|at| shared.ticker.register(at, cx.waker())) {
                    Some(index) => *wait = index,
                    None => *spare_slot = None,
                }
                return false;
            }
            index => {
                if !shared.ticker.poll_due(index, cx.waker()) {
                    return false;
                }
                stop_waiting(wait, Some(shared));
            }
        }
        match shared.decide(slot, kept) {
            Ok((request, place)) => {
                let service = spare.service.service();
                spare.request = SpareRequest::Made(Box::new((service, request, place)));
            }
            Err(skip) => {
                shared.skipped(skip, slot);
                *spare_slot = None;
                return false;
            }
        }
    }
    let SpareRequest::Made(made) = &mut spare.request else {
        unreachable!("a hedge's request is made before its service is readied");
    };
    match made.0.poll_ready(cx) {
        Poll::Pending => false,
        Poll::Ready(Err(_)) => {
            shared.skipped(Skip::NotReady, slot);
            // Its place in `max_in_flight` given back with it.
            *spare_slot = None;
            false
        }
        Poll::Ready(Ok(())) => {
            let Some(Spare {
                request: SpareRequest::Made(made),
                ..
            }) = spare_slot.take()
            else {
                unreachable!("a hedge's request is made before its service is readied");
            };
            let (mut service, request, place) = *made;
            shared.sent(&request, slot);
            *sent = Some(Box::pin(Sent {
                future: service.call(request),
                _in_flight: place,
                started: Instant::now(),
                failed: None,
            }));
            true
        }
    }
}

impl super::shared::Shared {
    /// Whether the hedge due now may be sent, checked in this order: room in the host's
    /// `max_in_flight`, a request copy, the host's breaker, the budget (last: it spends).
    fn decide<B: TryCloneBody>(
        &self,
        slot: usize,
        kept: &Kept<B>,
    ) -> Result<(Request<B>, InFlight), Skip> {
        if !self.tracker.try_acquire(slot, self.max_in_flight) {
            return Err(Skip::InFlight);
        }
        // Given back if a later check refuses.
        let place = InFlight {
            tracker: Arc::clone(&self.tracker),
            slot,
        };
        let request = kept.request().ok_or(Skip::NotReplayable)?;
        #[cfg(feature = "circuit-breaker")]
        if let Some(breakers) = &self.breaker {
            use crate::circuit_breaker::State;
            use crate::key::RequestKey;
            let key = crate::key::ByAuthority.key(&request);
            if let Some(breaker) = breakers.get(&key) {
                if !matches!(breaker.state(), State::Closed | State::Disabled) {
                    return Err(Skip::Breaker);
                }
            }
        }
        if let Some(budget) = &self.budget {
            if !budget.withdraw() {
                return Err(Skip::Budget);
            }
        }
        Ok((request, place))
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn sent<B>(&self, request: &Request<B>, slot: usize) {
        #[cfg(feature = "metrics")]
        self.instruments.sent();
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::hedge",
            name = self.name,
            key = ?crate::key::HostKey::from_uri(request.uri()),
            delay_ms = self.delay_ms(slot),
            "hedging"
        );
    }

    /// The host's delay (ms), for the tracing events.
    #[cfg(feature = "tracing")]
    fn delay_ms(&self, slot: usize) -> f64 {
        self.tracker
            .delay(slot)
            .map_or(0.0, |delay| delay.as_secs_f64() * 1e3)
    }

    fn won(&self) {
        #[cfg(feature = "metrics")]
        self.instruments.won();
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "tower_fortify::hedge", name = self.name, "hedge won");
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn skipped(&self, skip: Skip, slot: usize) {
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::hedge",
            name = self.name,
            reason = skip.as_str(),
            delay_ms = self.delay_ms(slot),
            "hedge not sent"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Timing` through a call's life: the first pending poll, then the answer.
    fn answered(timing: Timing, waits: bool) -> (bool, Option<u16>) {
        let (mut timing, mut started) = (timing, None);
        timing.pending(&mut started, waits);
        // Polled again while pending: no second reading.
        let first = started;
        timing.pending(&mut started, waits);
        assert_eq!(started, first, "the clock is read once, when first pending");
        (started.is_some(), timing.sample(started).map(|(_, w)| w))
    }

    #[test]
    fn a_warm_hosts_pending_calls_are_timed_one_in_time_every() {
        // A thread of its own: its draws start at the first.
        std::thread::spawn(|| {
            // Cold: every pending call timed, counting once.
            for _ in 0..3 {
                assert_eq!(answered(Timing::Cold, false), (true, Some(1)));
            }
            // Warm: one in `TIME_EVERY` timed, counting `TIME_EVERY` times; the others read
            // the clock only for a hedge's deadline, and are not recorded. Calls with and
            // without a hedge to follow, in turn (as two hosts' calls would be), are each
            // timed about one in `TIME_EVERY`: a counter would time only one of them.
            assert_eq!(TIME_EVERY, 2);
            let mut timed = [0_u32; 2];
            for i in 0..2_000 {
                let waits = i % 2 == 1;
                match answered(Timing::Warm, waits) {
                    (true, Some(2)) => timed[usize::from(waits)] += 1,
                    untimed => assert_eq!(untimed, (waits, None)),
                }
            }
            for n in timed {
                assert!(
                    (400..=600).contains(&n),
                    "{n} of 1,000 timed, expected about 500"
                );
            }
            // Answered at the first poll: counts once, as zero, without a clock read.
            for timing in [Timing::Cold, Timing::Warm] {
                assert_eq!(timing.sample(None), Some((Duration::ZERO, 1)));
            }
        })
        .join()
        .unwrap();
    }
}
