//! [`Future`] types.

use super::{service::SharedRef, tracker::Tracker};
use crate::internal::clock::{self, Nanos};
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
    ///
    /// ```
    /// use tower::{Service, ServiceExt};
    /// use tower_fortify::hedge::{future::ResponseFuture, Hedge};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let mut svc = Hedge::new(tower::service_fn(|_req: http::Request<String>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(String::from("ok")))
    /// }))?;
    /// let request = http::Request::get("http://inventory.internal/items").body(String::new())?;
    /// let future: ResponseFuture<_, String> = svc.ready().await?.call(request);
    /// assert_eq!(future.await?.into_body(), "ok");
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        kind: Kind<S, B>,
    }
}

pin_project! {
    /// A call the layer leaves alone (its one attempt, passed through, and nothing else:
    /// no reference to the layer), or one it tracks.
    #[project = KindProj]
    enum Kind<S, B>
    where
        S: Service<Request<B>>,
    {
        Passed {
            #[pin]
            future: S::Future,
        },
        Tracked {
            #[pin]
            call: Tracked<S, B>,
        },
    }
}

pin_project! {
    /// A call whose latency is recorded and that may be hedged.
    struct Tracked<S, B>
    where
        S: Service<Request<B>>,
    {
        // The first attempt, until it answers or loses.
        #[pin]
        primary: Option<S::Future>,
        // The hedge, once its delay is over: its service getting ready, then its attempt.
        // On the heap, so that a call never hedged carries one attempt's future, not two
        // (and is moved with fewer bytes).
        hedge: Option<Pin<Box<HedgeState<S, B>>>>,
        // The copy of the request a hedge is made from, until the hedge is made or can no
        // longer be. A field of its own (not with the service in one `Option`), so that
        // the copy is written where it stays, not built and then moved in.
        kept: Option<Kept<B>>,
        // When the first attempt was first pending (not read for an answer at once).
        started: Option<Nanos>,
        // The call's slot among the layer's calls waiting for their hedge delay, taken when
        // the first attempt is first pending (see `internal::ticker`), or `NO_WAIT`.
        wait: u32,
        // The host's slot in the tracker (at most 4096, `max_keys`), and the layer's state
        // with the template the hedge's service is cloned from (made when `kept` is). Small
        // fields, so that the future of a call over a boxed inner one (hyper-util's client)
        // stays within 256 bytes: copied with straight-line moves, not a loop, each of the
        // several times a call moves it.
        slot: u16,
        // Whether and how the first attempt's latency is recorded.
        timing: Timing,
        shared: SharedRef<S>,
    }

    impl<S, B> PinnedDrop for Tracked<S, B>
    where
        S: Service<Request<B>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            stop_waiting(this.wait, this.shared);
        }
    }
}

pin_project! {
    /// A hedge whose delay is over: its service (a clone of the template) getting ready
    /// with the request made for it, then its attempt running. Either holds its place in
    /// its host's `max_in_flight`, dropped after the attempt (fields drop in order).
    #[project = HedgeProj]
    enum HedgeState<S, B>
    where
        S: Service<Request<B>>,
    {
        Readying {
            service: S,
            request: Option<Request<B>>,
            in_flight: Option<InFlight>,
        },
        Sent {
            #[pin]
            future: S::Future,
            _in_flight: Option<InFlight>,
            started: Nanos,
            // The first attempt's failure, kept while the hedge runs.
            failed: Option<S::Error>,
        },
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
    /// poll (no clock read) and a pending call take their turn alike.
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
    fn pending(&mut self, started: &mut Option<Nanos>, waits: bool) {
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
            // The instant the attempt inside read when first pending in this poll (the
            // preset's attempt timeout), else now: and left for the retry layer around
            // (see `internal::clock`), which then reads no clock of its own either.
            let now = clock::taken_or_now();
            clock::leave(now);
            *started = Some(now);
        }
    }

    /// Whether [`pending`](Self::pending) may read the clock at this poll: then the poll
    /// [`forget`](clock::forget)s the instants read before it, so that it only takes one
    /// read during it.
    #[inline]
    fn may_read(self, started: Option<Nanos>) -> bool {
        match self {
            Timing::Cold => started.is_none(),
            Timing::Warm => true,
            Timing::Timed | Timing::Untimed => false,
        }
    }

    /// The latency of a first attempt that answered, with its weight: `None` when it is
    /// not recorded.
    #[inline]
    fn sample(self, started: Option<Nanos>) -> Option<(Duration, u16)> {
        let weight = match self {
            // Answered at the first poll (no clock read, `started` is none) or timed.
            Timing::Cold => 1,
            // Answered at the first poll once the host has its delay: drawn as a pending
            // call is, so that one answer in `TIME_EVERY` writes the histogram, counting as
            // zero `TIME_EVERY` times.
            Timing::Warm if crate::internal::draw::one_in(u32::from(TIME_EVERY)) => TIME_EVERY,
            Timing::Timed => TIME_EVERY,
            Timing::Warm | Timing::Untimed => return None,
        };
        Some((
            started.map_or(Duration::ZERO, |s| Nanos::now().saturating_since(s)),
            weight,
        ))
    }
}

/// `Tracked::wait` while the call holds no slot among the waiting calls (the ticker
/// has 4096).
const NO_WAIT: u32 = u32::MAX;

/// Gives back the call's slot among the waiting calls, if it has one.
#[inline]
fn stop_waiting(wait: &mut u32, shared: &super::shared::Shared) {
    let index = std::mem::replace(wait, NO_WAIT);
    if index != NO_WAIT {
        shared.ticker.release(index);
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
        let mut f = f.debug_struct("ResponseFuture");
        match &self.kind {
            Kind::Passed { .. } => f.field("tracked", &false),
            Kind::Tracked { call } => {
                let sent = call
                    .hedge
                    .as_ref()
                    .is_some_and(|hedge| matches!(**hedge, HedgeState::Sent { .. }));
                f.field("tracked", &true)
                    .field("hedge_sent", &sent)
                    .field("started", &call.started)
            }
        }
        .finish_non_exhaustive()
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A call the layer leaves alone.
    #[inline]
    pub(crate) fn untracked(future: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Passed { future },
        }
    }

    /// A call whose latency is recorded (as `timing` says), and that may be hedged when
    /// `kept` is some (and `shared`'s template is made).
    #[inline(always)]
    pub(crate) fn tracked(
        future: S::Future,
        slot: u16,
        kept: Option<Kept<B>>,
        timing: Timing,
        shared: SharedRef<S>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Tracked {
                call: Tracked {
                    primary: Some(future),
                    hedge: None,
                    kept,
                    started: None,
                    wait: NO_WAIT,
                    slot,
                    timing,
                    shared,
                },
            },
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>> + Clone,
    B: TryCloneBody,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passed { future } => future.poll(cx),
            KindProj::Tracked { call } => call.poll(cx),
        }
    }
}

impl<S, B> Future for Tracked<S, B>
where
    S: Service<Request<B>> + Clone,
    B: TryCloneBody,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let slot = usize::from(*this.slot);
        let shared: &super::shared::Shared = this.shared;
        let mut poll_primary = true;
        loop {
            if poll_primary {
                if let Some(primary) = this.primary.as_mut().as_pin_mut() {
                    if this.timing.may_read(*this.started) {
                        clock::forget();
                    }
                    // The result is looked at in place and handed on whole: bound and
                    // rebuilt, the response would be copied once more.
                    let poll = primary.poll(cx);
                    match &poll {
                        Poll::Pending => this.timing.pending(this.started, this.kept.is_some()),
                        Poll::Ready(Ok(_)) => {
                            // An answer at the first poll took no measurable time: no clock
                            // read for it.
                            if let Some((latency, weight)) = this.timing.sample(*this.started) {
                                shared.tracker.record(slot, latency, weight);
                            }
                            // The hedge, if any, lost: cancelled now (its place in
                            // `max_in_flight` given back after it).
                            *this.hedge = None;
                            stop_waiting(this.wait, shared);
                            return poll;
                        }
                        Poll::Ready(Err(_)) => {
                            this.primary.set(None);
                            // No hedge after a failure: trying again is the retry layer's
                            // decision.
                            *this.kept = None;
                            stop_waiting(this.wait, shared);
                            match this.hedge.as_mut().map(|h| h.as_mut().project()) {
                                Some(HedgeProj::Sent { failed, .. }) => {
                                    if let Poll::Ready(Err(err)) = poll {
                                        *failed = Some(err);
                                    }
                                }
                                _ => {
                                    // A hedge getting ready is dropped with its place.
                                    *this.hedge = None;
                                    return poll;
                                }
                            }
                        }
                    }
                }
            }

            if let Some(hedge) = this.hedge.as_mut() {
                if let HedgeProj::Sent {
                    future,
                    started,
                    failed,
                    ..
                } = hedge.as_mut().project()
                {
                    match future.poll(cx) {
                        Poll::Ready(Ok(response)) => {
                            let now = Nanos::now();
                            // A call hedged is always timed (its clock reads are the
                            // hedge's): each latency counts once.
                            shared
                                .tracker
                                .record(slot, now.saturating_since(*started), 1);
                            if let (Some(_), Some(started)) =
                                (this.primary.as_ref().as_pin_ref(), *this.started)
                            {
                                // The first attempt ran at least this long: its latency as
                                // far as it is known, so that slow answers stay in the tail.
                                shared
                                    .tracker
                                    .record(slot, now.saturating_since(started), 1);
                            }
                            shared.won();
                            // The first attempt lost: cancelled now.
                            this.primary.set(None);
                            *this.hedge = None;
                            return Poll::Ready(Ok(response));
                        }
                        Poll::Ready(Err(err)) => {
                            let failed = failed.take();
                            *this.hedge = None;
                            if this.primary.is_none() {
                                // Both failed: the first attempt's failure.
                                return Poll::Ready(Err(failed.unwrap_or(err)));
                            }
                        }
                        Poll::Pending => {}
                    }
                }
            }

            let hedging = this.kept.is_some()
                || this
                    .hedge
                    .as_ref()
                    .is_some_and(|h| matches!(**h, HedgeState::Readying { .. }));
            if this.primary.is_some() && hedging {
                let sent = send_hedge(
                    Spare {
                        kept: this.kept,
                        template: this.shared,
                        hedge: this.hedge,
                    },
                    this.wait,
                    *this.started,
                    slot,
                    shared,
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

/// The future's fields a hedge is made and sent from.
struct Spare<'a, S, B>
where
    S: Service<Request<B>>,
{
    kept: &'a mut Option<Kept<B>>,
    template: &'a SharedRef<S>,
    hedge: &'a mut Option<Pin<Box<HedgeState<S, B>>>>,
}

impl<S, B> Spare<'_, S, B>
where
    S: Service<Request<B>>,
{
    /// No hedge will be sent: what it would have been made from is dropped (a hedge
    /// getting ready with its place in `max_in_flight`).
    fn give_up(self) {
        *self.kept = None;
        *self.hedge = None;
    }
}

/// Waits for the hedge delay, decides, waits for the service's readiness and sends the
/// hedge: `true` once it is sent. What the hedge is made from is dropped when no hedge
/// will be sent.
fn send_hedge<S, B>(
    spare: Spare<'_, S, B>,
    wait: &mut u32,
    started: Option<Nanos>,
    slot: usize,
    shared: &super::shared::Shared,
    cx: &mut Context<'_>,
) -> bool
where
    S: Service<Request<B>> + Clone,
    B: TryCloneBody,
{
    if let Some(kept) = spare.kept.as_ref() {
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
                match at.and_then(|at| shared.ticker.register_nanos(at, cx.waker())) {
                    Some(index) => *wait = index,
                    None => spare.give_up(),
                }
                return false;
            }
            index => {
                if !shared.ticker.poll_due(index, cx.waker()) {
                    return false;
                }
                stop_waiting(wait, shared);
            }
        }
        match shared.decide(slot, kept) {
            Ok((request, place)) => {
                let service = spare.template.service();
                *spare.kept = None;
                *spare.hedge = Some(Box::pin(HedgeState::Readying {
                    service,
                    request: Some(request),
                    in_flight: Some(place),
                }));
            }
            Err(skip) => {
                shared.skipped(skip, slot);
                spare.give_up();
                return false;
            }
        }
    }
    let Some(hedge) = spare.hedge.as_mut() else {
        return false;
    };
    let HedgeProj::Readying {
        service,
        request,
        in_flight,
    } = hedge.as_mut().project()
    else {
        return false;
    };
    match service.poll_ready(cx) {
        Poll::Pending => false,
        Poll::Ready(Err(_)) => {
            shared.skipped(Skip::NotReady, slot);
            // Its place in `max_in_flight` given back with it.
            spare.give_up();
            false
        }
        Poll::Ready(Ok(())) => {
            let request = request
                .take()
                .expect("a hedge's request is taken when it is sent");
            shared.sent(&request, slot);
            let future = service.call(request);
            let in_flight = in_flight.take();
            // In the same allocation: the service's clone is dropped, the attempt runs.
            hedge.set(HedgeState::Sent {
                future,
                _in_flight: in_flight,
                started: Nanos::now(),
                failed: None,
            });
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
mod tests;
