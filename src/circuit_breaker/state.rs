//! The state machine of one breaker, lock-free while closed.
//!
//! # Layout
//!
//! - `word`: one atomic `u64` holding the state, a generation number and, while half-open,
//!   the successful probes so far. Every call loads it; only transitions and probe results
//!   write it. A call records the generation it started in and its result is dropped if the
//!   generation has changed since (generation tagging).
//! - `probe_slots`: the probes in flight, with an epoch. A probe holds its slot until it
//!   answers or is dropped, across state changes (a probe of an earlier half-open period
//!   that is still running keeps its slot), unless the slots are reclaimed from probes that
//!   never answer, which starts a new epoch.
//! - Transitions (changing the state and generation) happen under `control`, a mutex that
//!   the closed path never touches: it serialises the bookkeeping of the open duration.
//! - Lanes: a breaker has a few *owned* lanes (one per CPU and one more, up to 16) and one
//!   *shared* lane. A thread claims an owned lane index for its lifetime if one is free
//!   (the same index in every breaker), and uses the shared lane otherwise.
//!   Only its owner writes an owned lane's counter of buffered successes, with plain loads
//!   and stores; the shared lane's is updated with atomic read-modify-writes. Successes
//!   enter the count ring from the lanes in batches; a time window has buckets per lane.
//! - A call's future holds an `Arc<Lane>` (a reference to the breaker from its thread's
//!   lane), and the thread keeps the last one it used for its next call, so that calls do
//!   not all increment one shared reference count.

use super::{
    config::{Config, Window},
    error::Open,
    window::{new_buckets, Buckets, CountRing, TimeWindow, WindowFigures},
    Outcome,
};
use crate::{
    classify::{Failure, FailureKind},
    internal::padded::Padded,
    BoxError,
};
use std::{
    cell::Cell,
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
    time::Duration,
};
use tokio::time::Instant;

/// The state of a breaker.
///
/// ```
/// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, State};
///
/// let handle = CircuitBreakerLayer::new().handle();
/// assert_eq!(handle.state(), State::Closed);
/// handle.force_open();
/// assert_eq!(handle.state(), State::ForcedOpen);
/// assert_eq!(State::HalfOpen.as_str(), "half_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls go through and are measured.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A few probe calls go through; their results close or reopen the breaker.
    HalfOpen,
    /// Opened by an operator ([`force_open`](super::CircuitBreakerHandle::force_open)): every
    /// call is rejected until [`reset`](super::CircuitBreakerHandle::reset).
    ForcedOpen,
    /// Turned off by an operator ([`disable`](super::CircuitBreakerHandle::disable)): every
    /// call goes through and is measured, and the breaker never trips, until
    /// [`reset`](super::CircuitBreakerHandle::reset).
    Disabled,
}

impl State {
    /// Every state, in declaration order.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::State;
    ///
    /// let names = State::ALL.map(State::as_str);
    /// assert_eq!(names, ["closed", "open", "half_open", "forced_open", "disabled"]);
    /// ```
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// A stable `snake_case` name, used as a metrics label value.
    ///
    /// ```
    /// use tower_fortify::circuit_breaker::State;
    ///
    /// assert_eq!(State::ForcedOpen.as_str(), "forced_open");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    const fn from_bits(bits: u64) -> State {
        match bits {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

// ===== the state word =====

const STATE_MASK: u64 = 0xFF;
const SUCCESSES_SHIFT: u32 = 20;
const COUNT_MASK: u64 = 0xFFF;
const GEN_SHIFT: u32 = 32;
const ONE_SUCCESS: u64 = 1 << SUCCESSES_SHIFT;

const fn pack(state: State, gen: u32) -> u64 {
    ((gen as u64) << GEN_SHIFT) | state as u64
}

const fn state_of(word: u64) -> State {
    State::from_bits(word & STATE_MASK)
}

const fn gen_of(word: u64) -> u32 {
    (word >> GEN_SHIFT) as u32
}

const fn successes_of(word: u64) -> u32 {
    ((word >> SUCCESSES_SHIFT) & COUNT_MASK) as u32
}

// Probe slots: the probes in flight (low 32 bits) in an epoch (high 32 bits).

const fn slots_in_flight(slots: u64) -> u32 {
    slots as u32
}

const fn slots_epoch(slots: u64) -> u32 {
    (slots >> 32) as u32
}

// The deadline of an open state: microseconds since the breaker's start on 52 bits (142
// years), tagged with the low 12 bits of the generation it belongs to.
const UNTIL_BITS: u32 = 52;
const UNTIL_MASK: u64 = (1 << UNTIL_BITS) - 1;

const fn pack_open(gen: u32, until: u64) -> u64 {
    ((gen as u64 & COUNT_MASK) << UNTIL_BITS) | (until & UNTIL_MASK)
}

const fn open_belongs_to(info: u64, gen: u32) -> bool {
    info >> UNTIL_BITS == gen as u64 & COUNT_MASK
}

/// Growth steps beyond this are never needed: `multiplier >= 1`, so `2^64` times any
/// duration exceeds the 100-year cap unless the multiplier is 1.
const MAX_LEVEL: u32 = 64;

// ===== settings shared by the breakers of a layer =====

/// What every breaker of a layer shares: the settings and the metric handles.
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) name: &'static str,
    /// Lanes per breaker: the owned ones, then the shared one.
    lanes: usize,
    /// Successes a lane buffers before they enter the count ring (and the metrics).
    batch: u64,
    #[cfg(feature = "metrics")]
    pub(crate) instruments: super::metrics::Instruments,
}

impl Settings {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(config: Config, name: &'static str, keyed: bool) -> Self {
        // The owned lanes and the shared one.
        let lanes = lane_count() + 1;
        // A lane holds back at most `batch - 1` successes; all lanes together less than a
        // quarter of a count window.
        let batch = match config.window {
            Window::Count(n) => (u64::from(n) / (4 * lanes as u64)).clamp(1, 32),
            Window::Time(_) => 32,
        };
        Settings {
            config,
            name,
            lanes,
            batch,
            #[cfg(feature = "metrics")]
            instruments: super::metrics::Instruments::register(name, keyed),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The most owned lanes.
const MAX_LANES: usize = 16;

/// The owned lanes of every breaker: one per CPU and one more (a runtime's workers and the
/// thread that blocks on its main future), up to 16. The shared lane's index is this.
fn lane_count() -> usize {
    static LANES: OnceLock<usize> = OnceLock::new();
    *LANES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .saturating_add(1)
            .clamp(2, MAX_LANES)
    })
}

/// Which owned lane indexes threads have claimed.
static CLAIMS: [AtomicBool; MAX_LANES] = [const { AtomicBool::new(false) }; MAX_LANES];

/// The lane of the current thread: the owned lane it claimed, or the shared lane.
fn current_lane() -> usize {
    LOCAL.try_with(claim).unwrap_or_else(|_| lane_count())
}

// ===== one breaker =====

/// One breaker: its state, window and lanes.
pub(crate) struct Breaker {
    word: Padded<AtomicU64>,
    open_info: AtomicU64,
    probe_slots: AtomicU64,
    /// When the last probe slot was taken (microseconds), to reclaim slots of probes that
    /// never answer.
    last_probe_at: AtomicU64,
    control: Mutex<Control>,
    ring: Option<CountRing>,
    time: Option<TimeWindow>,
    lanes: Box<[Padded<LaneData>]>,
    start: Instant,
    pub(crate) settings: Arc<Settings>,
    /// Copies of settings every call reads, to save a pointer chase: the slow-call
    /// threshold in nanoseconds (`u64::MAX`: slow calls are not detected).
    slow_nanos: u64,
    retry_after: bool,
    batch: u64,
    /// The key of a keyed breaker, for tracing and rejections.
    key: Option<Arc<str>>,
}

/// Bookkeeping of the open duration, changed only with a transition.
#[derive(Debug)]
struct Control {
    /// Its owner (a layer, or a keyed map's entry) is gone: the breaker no longer counts in
    /// the state gauge, although in-flight calls (or a thread's spare reference) may still
    /// hold it.
    retired: bool,
    /// Growth steps of the open duration (failed probes not yet undone by recovery).
    level: u32,
    /// When the breaker last closed (microseconds).
    closed_at: u64,
}

#[derive(Debug)]
struct LaneData {
    /// Successes not yet pushed into the count ring nor reported to the metrics, tagged with
    /// the generation they belong to: `generation << 32 | count`.
    pending: AtomicU64,
    /// A time window's buckets, allocated when the lane is first used.
    buckets: OnceLock<Box<Buckets>>,
}

const COUNT_BITS: u64 = 0xFFFF_FFFF;

impl LaneData {
    /// Adds a success of generation `gen`; returns the successes to push (a full batch, or
    /// none) and those of an older generation to drop (counted in the metrics only).
    ///
    /// `owned`: only the calling thread writes this lane, so a load and a store do.
    #[inline]
    fn add_success(&self, owned: bool, gen: u32, batch: u64) -> (u64, u64) {
        let tag = u64::from(gen) << 32;
        let mut word = self.pending.load(Ordering::Relaxed);
        loop {
            let (count, stale) = if word & !COUNT_BITS == tag {
                ((word & COUNT_BITS) + 1, 0)
            } else {
                (1, word & COUNT_BITS)
            };
            let (next, full) = if count >= batch {
                (tag, count)
            } else {
                (tag | count, 0)
            };
            if owned {
                self.pending.store(next, Ordering::Relaxed);
                return (full, stale);
            }
            match self.pending.compare_exchange_weak(
                word,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (full, stale),
                Err(actual) => word = actual,
            }
        }
    }

    /// Takes the buffered successes: those of generation `gen`, and older ones.
    fn take(&self, owned: bool, gen: u32) -> (u64, u64) {
        let tag = u64::from(gen) << 32;
        let word = if owned {
            let word = self.pending.load(Ordering::Relaxed);
            self.pending.store(tag, Ordering::Relaxed);
            word
        } else {
            self.pending.swap(tag, Ordering::AcqRel)
        };
        if word & !COUNT_BITS == tag {
            (word & COUNT_BITS, 0)
        } else {
            (0, word & COUNT_BITS)
        }
    }
}

/// A reference to a breaker, one per lane, held by the futures of calls. Its reference
/// count is written only when a thread switches breakers or has several calls in flight
/// (see `ThreadLocal::spare`), so it needs no padding.
#[derive(Debug)]
pub(crate) struct Lane {
    breaker: Arc<Breaker>,
}

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

/// A call let through: what its result is recorded with. Plain integers besides the
/// reference, so that it is cheap to move.
///
/// Dropping a probe's ticket without a result gives its slot back.
pub(crate) struct Ticket {
    /// `None` once the result is recorded.
    lane: Option<Arc<Lane>>,
    gen: u32,
    /// The epoch of the probe slot the call holds, or [`NO_PROBE`].
    probe: u32,
    /// When the call started (nanoseconds since the breaker's start), or [`NOT_TIMED`].
    start: u64,
}

const NO_PROBE: u32 = u32::MAX;
const NOT_TIMED: u64 = u64::MAX;

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(lane) = &self.lane {
            if self.probe != NO_PROBE {
                lane.breaker.release_probe(self.probe);
            }
        }
    }
}

/// What a thread keeps between its calls.
struct ThreadLocal {
    /// The owned lane index the thread claimed, or the shared lane's (`usize::MAX`: not
    /// claimed yet).
    lane: Cell<usize>,
    /// The lane reference the thread's last call held, kept for its next call: a thread
    /// that calls one breaker again and again moves one `Arc` back and forth instead of
    /// incrementing and decrementing a shared reference count for every call. It keeps at
    /// most one breaker alive per thread, until the thread calls another one or exits.
    spare: Cell<Option<Arc<Lane>>>,
}

thread_local! {
    static LOCAL: ThreadLocal = const {
        ThreadLocal {
            lane: Cell::new(usize::MAX),
            spare: Cell::new(None),
        }
    };
}

impl Drop for ThreadLocal {
    fn drop(&mut self) {
        // The next thread to claim the index becomes its lanes' only writer.
        let lane = self.lane.get();
        if lane < lane_count() {
            CLAIMS[lane].store(false, Ordering::Release);
        }
    }
}

/// The thread's lane: claims a free owned lane index on the thread's first call.
#[inline]
fn claim(local: &ThreadLocal) -> usize {
    let lane = local.lane.get();
    if lane != usize::MAX {
        return lane;
    }
    let owned = lane_count();
    let lane = (0..owned)
        .find(|&i| {
            CLAIMS[i]
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
        .unwrap_or(owned);
    local.lane.set(lane);
    lane
}

/// A reference for the current thread's lane: its spare if that is the one, a new one
/// otherwise.
#[inline]
fn take_lane(lanes: &[Arc<Lane>]) -> Arc<Lane> {
    LOCAL
        .try_with(|local| crate::internal::spare::take(&local.spare, &lanes[claim(local)]))
        .unwrap_or_else(|_| Arc::clone(&lanes[lanes.len() - 1]))
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
    #[inline]
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
                State::ForcedOpen => return b.reject(State::ForcedOpen, None),
                State::Open => {
                    let info = b.open_info.load(Ordering::Acquire);
                    if !open_belongs_to(info, gen) {
                        // A later transition overwrote it: the state has changed too.
                        let fresh = b.word.load(Ordering::Acquire);
                        if fresh == word {
                            return b.reject(State::Open, None);
                        }
                        word = fresh;
                        continue;
                    }
                    let until = info & UNTIL_MASK;
                    let now = b.now_micros();
                    if now < until {
                        return b.reject(State::Open, Some(Duration::from_micros(until - now)));
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
                    if since < micros(config.probe_timeout) {
                        return b.reject(State::HalfOpen, None);
                    }
                    b.probe_failed(gen, "probe_timeout", true);
                }
            }
            word = b.word.load(Ordering::Acquire);
        }
    }
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
///     .build()
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
        let mut lane = Some(lane);
        let previous = LOCAL.try_with(|local| {
            let kept = lane.take()?;
            kept.breaker.complete(claim(local), completion);
            local.spare.replace(Some(kept))
        });
        if let Some(lane) = lane {
            // The thread is exiting: its lane is gone, the shared one is left.
            let shared = lane.breaker.lanes.len() - 1;
            lane.breaker.complete(shared, completion);
        }
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

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn draw() -> f64 {
    rand::RngExt::random::<f64>(&mut rand::rng())
}

impl Breaker {
    fn new(settings: Arc<Settings>, key: Option<Arc<str>>) -> Self {
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

    fn now_micros(&self) -> u64 {
        micros(Instant::now().saturating_duration_since(self.start))
    }

    fn now_nanos(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.start))
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
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

    /// The window's figures; with `flush`, after pushing the successes buffered in the
    /// calling thread's lane and in the shared lane (other threads' lanes are theirs).
    pub(crate) fn figures(&self, flush: bool) -> WindowFigures {
        if flush {
            let gen = gen_of(self.word.load(Ordering::Acquire));
            let shared = self.lanes.len() - 1;
            let own = current_lane();
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

    // ===== recording =====

    /// Records a result: inline for the common one (a plain success of a closed call),
    /// out of line for the others.
    #[inline]
    fn complete(&self, lane: usize, c: Completion) {
        if c.outcome == Outcome::Success && !c.slow && !c.probe && c.retry_after.is_none() {
            let word = self.word.load(Ordering::Acquire);
            if gen_of(word) == c.gen && matches!(state_of(word), State::Closed | State::Disabled) {
                // A lane reports its successes in batches.
                self.record_success(lane, c.gen, c.now);
                return;
            }
        }
        self.complete_cold(lane, c);
    }

    #[cold]
    fn complete_cold(&self, lane: usize, c: Completion) {
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

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn count_call(&self, outcome: Outcome, slow: bool) {
        #[cfg(feature = "metrics")]
        self.settings.instruments.call(outcome, slow, 1);
    }

    #[inline]
    /// `now`: the clock's reading if the call already took one.
    fn record_success(&self, lane: usize, gen: u32, now: Option<u64>) {
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

    fn record(&self, lane: usize, gen: u32, failed: bool, slow: bool, now: Option<u64>) {
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

    /// Pushes a lane's buffered successes of generation `gen` into the window. The calling
    /// thread must own the lane (see [`current_lane`]), unless it is the shared one.
    fn flush_lane(&self, lane: usize, gen: u32) {
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
    fn push_successes(&self, current: u64, stale: u64) {
        if let Some(ring) = &self.ring {
            ring.push_successes(current);
        }
        #[cfg(feature = "metrics")]
        self.settings
            .instruments
            .call(Outcome::Success, false, current + stale);
    }

    /// Trips the breaker if the window's rates have reached a threshold.
    fn evaluate(&self, gen: u32) {
        let config = &self.settings.config;
        let figures = self.figures(false);
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

    /// The growth level once the time closed since `closed_at` has undone its steps.
    fn recovered_level(&self, ctl: &Control, now: u64) -> u32 {
        if self.state() != State::Closed {
            return ctl.level;
        }
        let period = micros(self.settings.config.recovery_period).max(1);
        let steps = now.saturating_sub(ctl.closed_at) / period;
        ctl.level
            .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX))
    }

    fn jittered(&self, nominal: Duration) -> Duration {
        let jitter = self.settings.config.open_duration_jitter;
        if jitter == 0.0 {
            return nominal;
        }
        nominal.mul_f64(1.0 - jitter * draw())
    }

    // ===== half-open =====

    fn enter_half_open(&self, gen: u32, now: u64) {
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
    fn probe_result(&self, gen: u32, outcome: Outcome, slow: bool) {
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
    fn probe_failed(&self, gen: u32, reason: &'static str, reclaim: bool) {
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
                || since < micros(config.probe_timeout)
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

    fn release_probe(&self, epoch: u32) {
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
    fn open_for(&self, gen: u32, wait: Duration) -> bool {
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
    fn hold(&self, to: State, reason: &'static str) {
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
    fn set_state(
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
                let until = now.saturating_add(micros(wait)).min(UNTIL_MASK);
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

    fn reset_window(&self) {
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
    fn trace_transition(
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

    fn reject(&self, state: State, retry_in: Option<Duration>) -> Admission {
        #[cfg(feature = "metrics")]
        self.settings.instruments.rejected();
        let open = Open::new(state, retry_in, self.key.clone());
        Admission::Reject(Box::new(Failure::new(FailureKind::CircuitOpen, open)))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut ctl = self.breaker.control();
        ctl.retired = true;
        #[cfg(feature = "metrics")]
        self.breaker.settings.instruments.left(self.breaker.state());
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
            .field("figures", &self.figures(false))
            .finish_non_exhaustive()
    }
}

/// A finished call's result, as the breaker records it.
#[derive(Clone, Copy)]
struct Completion {
    /// The generation the call was admitted in.
    gen: u32,
    probe: bool,
    outcome: Outcome,
    slow: bool,
    retry_after: Option<Duration>,
    /// The clock's reading (nanoseconds since the breaker's start) if the call took one.
    now: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_packs_and_unpacks() {
        let word = pack(State::HalfOpen, u32::MAX) + 7 * ONE_SUCCESS;
        assert_eq!(state_of(word), State::HalfOpen);
        assert_eq!(gen_of(word), u32::MAX);
        assert_eq!(successes_of(word), 7);
        let slots = (5u64 << 32) + 3;
        assert_eq!((slots_epoch(slots), slots_in_flight(slots)), (5, 3));
        for state in State::ALL {
            assert_eq!(state_of(pack(state, 9)), state);
            assert_eq!(State::ALL[state.index()], state);
        }
        let info = pack_open(0x1234_5678, UNTIL_MASK);
        assert!(open_belongs_to(info, 0x678));
        assert!(!open_belongs_to(info, 0x679));
        assert_eq!(info & UNTIL_MASK, UNTIL_MASK);
    }

    #[test]
    fn live_threads_never_share_an_owned_lane() {
        let owned = lane_count();
        assert!((1..=MAX_LANES).contains(&owned));
        let here = current_lane();
        assert_eq!(current_lane(), here, "a thread keeps its lane");
        assert!(here <= owned);
        // Threads alive at the same time: distinct owned lanes, or the shared one (other
        // tests claim lanes too, so which ones is not known).
        let barrier = Arc::new(std::sync::Barrier::new(12));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let lane = current_lane();
                    barrier.wait();
                    lane
                })
            })
            .collect();
        let mut lanes: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        lanes.push(here);
        let mut claimed: Vec<usize> = lanes.into_iter().filter(|&l| l < owned).collect();
        let count = claimed.len();
        claimed.sort_unstable();
        claimed.dedup();
        assert_eq!(claimed.len(), count, "two live threads own one lane");
    }
}

#[cfg(test)]
mod spare_tests {
    use super::*;

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
