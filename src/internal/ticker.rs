//! The deadlines of one layer's pending calls, all on one tokio timer: the hedge layer's
//! hedge delays, the preset's attempt timeouts.
//!
//! A call pending at its first poll waits for a deadline (its hedge delay, its attempt
//! timeout). A tokio `Sleep` per call would put each of them in the runtime's timer wheel
//! (under its lock) and take it out again when the call answers, which is nearly always
//! before its deadline: most of a layer's cost for a call that answers in time. Here a call
//! only takes a slot in a table (one compare-and-swap), leaves its waker and deadline
//! there, and gives the slot back when it answers. One task per layer (the ticker, spawned
//! on the runtime of the first call that waits) sleeps until the earliest deadline in the
//! table, marks the calls whose deadline has passed as due and wakes them, then sleeps
//! until the next one; with no call waiting it sleeps until one comes.
//!
//! Precision: deadlines are kept exactly (nanoseconds). A call is marked due only when the
//! ticker has read the clock at or after its deadline: never early. The ticker sleeps on
//! tokio's timer until the earliest deadline, and tokio fires a timer at the first tick of
//! its wheel (a millisecond) at or after the deadline, as a `Sleep` of the call's own would;
//! so a call is due at most one tokio timer tick (1 ms) after its deadline, plus the time
//! the ticker task waits to be polled. A call registered with a deadline earlier than the
//! one the ticker sleeps until wakes the ticker, which sleeps again until the new earliest.
//!
//! Cost: a call that waits pays a claim and a release of its slot (two atomic
//! read-modify-writes on the table's bit words, each thread first in words on a cache line
//! of its own, so that a runtime's workers do not pass one line to and fro), a lock of its own slot's waker when it
//! registers (uncontended: only the ticker, when the call is due, takes it too; the
//! release takes none), and a waker clone unless the slot still holds its task's waker:
//! a free slot keeps its last call's waker, so that a task that waits again in the same
//! slot (one calling again and again) clones none, and the waker dropped by another's
//! call is the one it replaces. The kept wakers are dropped when the ticker's task ends
//! (with its runtime) and with the layer. The ticker wakes about once per deadline's
//! length while calls keep coming, whatever their number.
//!
//! At most 4096 calls of a layer wait at once; [`register`](Ticker::register) gives no
//! slot to a call that finds the table full or runs outside a tokio runtime, and the layer
//! decides what that call does (the hedge sends no hedge, the attempt timeout makes its own
//! `Sleep`).
//!
//! Runtimes: the ticker runs on the runtime of the call that started it, and wakes calls
//! of any runtime. When that runtime shuts down (dropping the task), the waiting calls are
//! woken, and the next of them to be polled starts a ticker on its own runtime. A ticker
//! on a current-thread runtime runs only while that runtime is driven (`block_on`): a
//! layer shared with calls on another runtime while the first stands idle waits for it.
//! The ticker's timer is made in the calling context: a runtime without time enabled
//! panics there, as tokio's `sleep` does.

// The loom models' table has one word: the remainders by `WORDS` and the spread of the
// threads over its lines are then constant, which clippy would otherwise refuse.
#![cfg_attr(
    all(test, fortify_loom),
    allow(clippy::modulo_one, clippy::unnecessary_min_or_max)
)]

use crate::internal::{
    clock::Nanos,
    padded::Padded,
    sync::{fence, AtomicBool, AtomicU64, Mutex, MutexGuard, Ordering},
    thread_index::thread_index,
};
use std::{
    future::{poll_fn, Future},
    pin::{pin, Pin},
    sync::{Arc, OnceLock, Weak},
    task::{Context, Poll, Waker},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// Slots per word of the table's bit map (and per chunk of slots).
const WORD: usize = 64;
/// Words of the bit map: at most 4096 calls of a layer wait at once (one word, 64 calls,
/// in the loom models, which read every word).
#[cfg(not(all(test, fortify_loom)))]
const WORDS: usize = 64;
#[cfg(all(test, fortify_loom))]
const WORDS: usize = 1;
/// The word a thread's claims start at: threads in turn on the words' eight cache lines
/// (eight words to a line), then on the next word of each line. The workers of a runtime
/// (whose indices follow each other) claim and release slots in words of their own lines,
/// where from one word they would move that line between their cores on every call.
#[inline]
fn first_word(thread: usize) -> usize {
    const PER_LINE: usize = 8;
    (thread * PER_LINE + thread / (WORDS / PER_LINE).max(1)) % WORDS
}

/// A slot's deadline once the ticker found it due.
const DUE: u64 = 0;
/// A slot's deadline while it has none (free, or being filled).
const NONE: u64 = u64::MAX;
/// `Ticker::armed` while the ticker has no deadline to sleep until.
const IDLE: u64 = u64::MAX;

/// One waiting call. Its deadline is set and marked due under the waker's lock, and the
/// ticker marks it due only while it still holds the deadline the ticker read: so the
/// ticker never takes the waker of the slot's next call, which sets its own deadline under
/// the lock. It is cleared without the lock (see [`Ticker::release`]).
struct Slot {
    /// Nanoseconds since the clock's base (`internal::clock`), plus one (never `DUE`),
    /// `DUE` once due, or `NONE`.
    deadline: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            deadline: AtomicU64::new(NONE),
            waker: Mutex::new(None),
        }
    }

    #[inline]
    fn lock(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The waiting calls of one layer, and its ticker's state.
pub(crate) struct Ticker {
    /// Bit `i` of word `w`: slot `w * 64 + i` is taken.
    taken: Padded<[AtomicU64; WORDS]>,
    /// The slots, allocated 64 at a time when a word is first used; each on cache lines of
    /// its own, as the calls of several threads wait in neighbouring slots at once.
    chunks: [OnceLock<Box<[Padded<Slot>; WORD]>>; WORDS],
    /// The deadline the ticker sleeps until (as `Slot::deadline`), or `IDLE`.
    armed: Padded<AtomicU64>,
    /// Set when a call needs the ticker to look at the table before its `armed` deadline.
    wake: AtomicBool,
    /// The ticker task's waker, while it sleeps.
    ticker: Mutex<Option<Waker>>,
    /// Whether a ticker task runs (cleared when its runtime drops it).
    running: AtomicBool,
    /// The delay every call of the layer waits, for a layer that has one (the attempt
    /// timeout): kept here so that the layer's services and futures hold only the ticker.
    delay: Duration,
    /// `delay` in nanoseconds (`None`: more than a `u64` holds), for
    /// [`after_delay`](Self::after_delay).
    delay_nanos: Option<u64>,
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Ticker {
    /// A ticker for calls that each wait their own delay.
    pub(crate) fn new() -> Self {
        Self::with_delay(Duration::ZERO)
    }

    /// A ticker for calls that all wait `delay` ([`delay`](Self::delay)).
    pub(crate) fn with_delay(delay: Duration) -> Self {
        Ticker {
            taken: Padded(std::array::from_fn(|_| AtomicU64::new(0))),
            chunks: std::array::from_fn(|_| OnceLock::new()),
            armed: Padded(AtomicU64::new(IDLE)),
            wake: AtomicBool::new(false),
            ticker: Mutex::new(None),
            running: AtomicBool::new(false),
            delay,
            delay_nanos: u64::try_from(delay.as_nanos()).ok(),
        }
    }

    /// The delay given to [`with_delay`](Self::with_delay).
    #[cfg_attr(not(feature = "stack"), allow(dead_code))]
    #[inline]
    pub(crate) fn delay(&self) -> Duration {
        self.delay
    }

    /// [`delay`](Self::delay) after `now`, as `now.checked_add(delay)`: the conversion of
    /// the delay to nanoseconds made once, when the ticker is.
    #[cfg_attr(not(feature = "stack"), allow(dead_code))]
    #[inline]
    pub(crate) fn after_delay(&self, now: Nanos) -> Option<Nanos> {
        self.delay_nanos
            .and_then(|delay| now.get().checked_add(delay))
            .map(Nanos::from_nanos)
    }

    #[inline]
    fn slot(&self, index: usize) -> &Slot {
        // Indices are below `WORD * WORDS` (powers of two): the remainders cost no bounds
        // checks.
        match self.chunks[index / WORD % WORDS].get() {
            Some(chunk) => &chunk[index % WORD],
            None => self.first_slot(index),
        }
    }

    /// A slot of a chunk not made yet: makes it.
    #[cold]
    fn first_slot(&self, index: usize) -> &Slot {
        &self.chunks[index / WORD % WORDS]
            .get_or_init(|| Box::new(std::array::from_fn(|_| Padded(Slot::new()))))[index % WORD]
    }

    /// Waits for `deadline` with `waker`: the slot taken, to give back with
    /// [`release`](Self::release); `None` when the deadline is too far to represent (about
    /// 584 years) or before the clock's base (a clock of another runtime, paused far
    /// behind: see `internal::clock`), the table is full or no runtime can run the ticker.
    ///
    /// The layers register in nanoseconds ([`register_nanos`](Self::register_nanos)); this
    /// is the tests' way, with tokio's instants.
    #[cfg_attr(not(test), allow(dead_code))]
    #[inline]
    pub(crate) fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> Option<u32> {
        self.register_nanos(Nanos::of(deadline)?, waker)
    }

    /// [`register`](Self::register) with the deadline in nanoseconds.
    #[inline]
    pub(crate) fn register_nanos(self: &Arc<Self>, deadline: Nanos, waker: &Waker) -> Option<u32> {
        let nanos = deadline.get().checked_add(1).filter(|&n| n != NONE)?;
        if !self.running.load(Ordering::Acquire) && !self.spawn() {
            return None;
        }
        self.register_at(nanos, waker)
    }

    /// The table's part of [`register`](Self::register): `nanos` as `Slot::deadline`.
    fn register_at(&self, nanos: u64, waker: &Waker) -> Option<u32> {
        let index = self.claim()?;
        let slot = self.slot(index);
        let stale = {
            let mut held = slot.lock();
            // The slot's last call's waker, kept by `release`: the same task's (a task
            // calling again and again takes the same slot) is kept as it is.
            let stale = match &*held {
                Some(kept) if kept.will_wake(waker) => None,
                _ => held.replace(waker.clone()),
            };
            slot.deadline.store(nanos, Ordering::Release);
            stale
        };
        // Outside the lock: a waker's drop is the waker's code.
        drop(stale);
        // Paired with the fence in `pass`: either the ticker's next read of the table sees
        // this deadline, or this read of `armed` sees what the ticker announced before it.
        fence(Ordering::SeqCst);
        // The ticker sleeps until a later deadline, or is about to look again (`IDLE`):
        // it must look at this one.
        if nanos < self.armed.load(Ordering::Relaxed) {
            self.wake_ticker();
        }
        Some(index as u32)
    }

    /// Whether the call in `index` is due; if not, its waker is updated to `waker`, and a
    /// ticker is started if the one it waited on is gone (its runtime shut down).
    #[inline]
    pub(crate) fn poll_due(self: &Arc<Self>, index: u32, waker: &Waker) -> bool {
        if self.due_or_wait(index, waker) {
            return true;
        }
        if !self.running.load(Ordering::Acquire) {
            // Outside a runtime, nothing can time the call: it waits to be polled on one.
            self.spawn();
        }
        false
    }

    /// The table's part of [`poll_due`](Self::poll_due).
    fn due_or_wait(&self, index: u32, waker: &Waker) -> bool {
        let slot = self.slot(index as usize);
        if slot.deadline.load(Ordering::Acquire) == DUE {
            return true;
        }
        let mut held = slot.lock();
        // Due meanwhile: its waker was taken.
        if slot.deadline.load(Ordering::Acquire) == DUE {
            return true;
        }
        if !held.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *held = Some(waker.clone());
        }
        false
    }

    /// Gives back the slot taken by [`register`](Self::register).
    ///
    /// The slot keeps the call's waker, for the slot's next call: the same task's is not
    /// cloned again (see `register_at`); another's replaces it. Without the lock: the
    /// ticker marks a slot due only under it and only while the slot holds the deadline
    /// it read, so that a ticker that read this call's deadline either finds `NONE` (or
    /// the next call's deadline) or marks the slot due and wakes the kept waker once (a
    /// spurious wake-up of a call that has answered), and then leaves the slot to the
    /// next call, which finds no waker and clones its own.
    #[inline]
    pub(crate) fn release(&self, index: u32) {
        let index = index as usize;
        self.slot(index).deadline.store(NONE, Ordering::Release);
        // The remainder, as in `slot`: no bounds check.
        self.taken[index / WORD % WORDS].fetch_and(!(1 << (index % WORD)), Ordering::Release);
    }

    /// Takes a free slot, first among the calling thread's words (see [`first_word`]).
    fn claim(&self) -> Option<usize> {
        let first = first_word(thread_index());
        for k in 0..WORDS {
            // From the thread's first word on, round the table (a power of two of words).
            let w = (first + k) % WORDS;
            let word = &self.taken[w];
            let mut bits = word.load(Ordering::Relaxed);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                // Ordered before `armed`'s load by the fence in `register_at`.
                match word.compare_exchange_weak(
                    bits,
                    bits | 1 << bit,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(w * WORD + bit),
                    Err(now) => bits = now,
                }
            }
        }
        None
    }

    fn wake_ticker(&self) {
        self.wake.store(true, Ordering::SeqCst);
        let waker = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Starts the ticker on the current runtime; `false` outside one.
    #[cold]
    fn spawn(self: &Arc<Self>) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Made here: a runtime without time panics in the caller, as with a `Sleep`
            // of its own, not in a task that would be started again and again.
            let sleep = tokio::time::sleep(Duration::ZERO);
            runtime.spawn(run(Running(Arc::downgrade(self)), sleep));
        }
        true
    }

    /// Marks the calls due at `now` and wakes them; the earliest deadline still ahead.
    fn tick(&self, now: u64) -> Option<u64> {
        let mut next = None::<u64>;
        for (w, word) in self.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let slot = self.slot(w * WORD + bit);
                let deadline = slot.deadline.load(Ordering::Acquire);
                if deadline == DUE || deadline == NONE {
                    continue;
                }
                if deadline > now {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                    continue;
                }
                let waker = {
                    let mut held = slot.lock();
                    // Still this call's deadline: not released (and taken again) meanwhile.
                    if slot.deadline.load(Ordering::Acquire) != deadline {
                        continue;
                    }
                    slot.deadline.store(DUE, Ordering::Release);
                    held.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        }
        next
    }

    /// One pass of the ticker at `now`: marks the calls due and wakes them; the earliest
    /// deadline ahead, which the ticker then sleeps until (unless a call wakes it first).
    fn pass(&self, now: u64) -> Option<u64> {
        // Announced before the table is read: a call that registers after the read sees
        // `IDLE` (or the deadline armed below, if its own is later) and wakes the ticker.
        self.armed.store(IDLE, Ordering::Relaxed);
        self.wake.store(false, Ordering::Relaxed);
        // Paired with the fence in `register_at` (a store, a fence and a load on each side:
        // sequentially consistent fences, which loom models, rather than sequentially
        // consistent accesses, which it treats as acquire-release).
        fence(Ordering::SeqCst);
        let next = self.tick(now);
        if let Some(next) = next {
            self.armed.store(next, Ordering::Relaxed);
        }
        next
    }

    /// Wakes every waiting call (not due): their ticker is gone, and the next of them
    /// polled starts another. The wakers the free slots kept (see
    /// [`release`](Self::release)) are dropped: when the ticker's runtime shuts down, they
    /// are most likely its tasks'.
    fn wake_all(&self) {
        for chunk in self.chunks.iter().filter_map(OnceLock::get) {
            for slot in chunk.iter() {
                let (waker, waiting) = {
                    let mut held = slot.lock();
                    let deadline = slot.deadline.load(Ordering::SeqCst);
                    (held.take(), deadline != DUE && deadline != NONE)
                };
                match waker {
                    Some(waker) if waiting => waker.wake(),
                    _ => {}
                }
            }
        }
    }

    /// How many calls hold a slot.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.taken
            .iter()
            .map(|w| w.load(Ordering::SeqCst).count_ones() as usize)
            .sum()
    }

    /// Now, as a deadline.
    fn now(&self) -> u64 {
        Nanos::now().get().min(NONE - 2) + 1
    }

    /// The instant of a deadline.
    fn instant(&self, deadline: u64) -> Instant {
        Nanos::from_nanos(deadline - 1).instant()
    }
}

/// One call's wait for one deadline on a ticker (the attempt timeout's, the retry's
/// deadline and backoff): a slot in the ticker's table, or a `Sleep` of its own on the heap
/// when the ticker has none for it. Sixteen bytes in the call's future where a `Sleep`
/// would take more than a hundred, and no timer at all until the call waits.
///
/// It does not hold the ticker (the call's future reaches it through its layer's shared
/// state): its owner gives the slot back with [`stop`](Self::stop) when it stops waiting,
/// and when it is dropped.
#[derive(Debug, Default)]
pub(crate) enum Wait {
    /// Not waiting.
    #[default]
    Idle,
    /// Waiting: the slot in the ticker's table.
    Slot(u32),
    /// Waiting, with no slot: a timer of its own.
    Own(Pin<Box<Sleep>>),
}

impl Wait {
    /// Whether it is not waiting (never started, stopped, or found due).
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self, Wait::Idle)
    }

    /// Starts waiting until `at` (`None`: too far to represent; `delay` from now then, which
    /// a `Sleep` saturates), in place of any wait before; `true` if `at` has passed already
    /// (then it is not waiting).
    #[inline]
    pub(crate) fn until(
        &mut self,
        ticker: &Arc<Ticker>,
        at: Option<Nanos>,
        delay: Duration,
        cx: &mut Context<'_>,
    ) -> bool {
        self.stop(ticker);
        self.start(ticker, at, delay, cx)
    }

    /// [`until`](Self::until) for a wait that is idle.
    #[inline]
    pub(crate) fn start(
        &mut self,
        ticker: &Arc<Ticker>,
        at: Option<Nanos>,
        delay: Duration,
        cx: &mut Context<'_>,
    ) -> bool {
        debug_assert!(self.is_idle(), "a wait started twice");
        match at.and_then(|at| ticker.register_nanos(at, cx.waker())) {
            Some(index) => {
                *self = Wait::Slot(index);
                false
            }
            None => self.own(at, delay, cx),
        }
    }

    /// A `Sleep` of its own (see [`until`](Self::until)).
    #[cold]
    fn own(&mut self, at: Option<Nanos>, delay: Duration, cx: &mut Context<'_>) -> bool {
        let mut sleep = Box::pin(match at {
            Some(at) => tokio::time::sleep_until(at.instant()),
            None => tokio::time::sleep(delay),
        });
        let due = sleep.as_mut().poll(cx).is_ready();
        *self = if due { Wait::Idle } else { Wait::Own(sleep) };
        due
    }

    /// Whether the deadline it waits for has passed (then it stops waiting); if not, the
    /// call is woken with `cx` when it does. `false` when idle.
    #[inline]
    pub(crate) fn poll_due(&mut self, ticker: &Arc<Ticker>, cx: &mut Context<'_>) -> bool {
        let due = match self {
            Wait::Idle => return false,
            Wait::Slot(index) => ticker.poll_due(*index, cx.waker()),
            Wait::Own(sleep) => sleep.as_mut().poll(cx).is_ready(),
        };
        if due {
            self.stop(ticker);
        }
        due
    }

    /// Stops waiting: gives the slot back, if it holds one. A wait that is idle (never
    /// started, stopped already, or found due) writes nothing and calls nothing.
    #[inline]
    pub(crate) fn stop(&mut self, ticker: &Ticker) {
        if self.is_idle() {
            return;
        }
        match std::mem::take(self) {
            Wait::Idle => {}
            Wait::Slot(index) => ticker.release(index),
            Wait::Own(sleep) => drop(sleep),
        }
    }
}

/// Clears `running` when the ticker task ends (its runtime dropped it, or the layer is
/// gone) and wakes the calls that waited on it, so that the next of them starts another.
struct Running(Weak<Ticker>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(ticker) = self.0.upgrade() {
            ticker.running.store(false, Ordering::SeqCst);
            ticker.wake_all();
        }
    }
}

/// The ticker task: until the layer is gone, sleeps until the earliest deadline (or until
/// a call needs it), then wakes the calls that are due.
/// `running` comes in whole, so that a task dropped before its first poll (spawned on a
/// runtime shutting down) clears it too.
async fn run(running: Running, sleep: Sleep) {
    let ticker = running.0.clone();
    let mut sleep = pin!(sleep);
    loop {
        let next = {
            let Some(ticker) = ticker.upgrade() else {
                return;
            };
            let next = ticker.pass(ticker.now());
            if let Some(next) = next {
                sleep.as_mut().reset(ticker.instant(next));
            }
            next
        };
        // Until the deadline, a call's wake-up, or the layer's end.
        poll_fn(|cx| {
            let Some(ticker) = ticker.upgrade() else {
                return Poll::Ready(());
            };
            if ticker.wake.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            if next.is_some() && sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *ticker.ticker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // A wake-up between the check and the waker's store.
            if ticker.wake.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // The task holds no reference: woken, it finds the layer gone and ends.
        let waker = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests;

/// Loom models of the table (see `internal::sync` for how to run them). Deadlines and the
/// ticker's clock are passed in (`register_at`, `pass`), so the models choose them; a
/// model thread plays the waiting call, the model's main thread the ticker task.
#[cfg(all(test, fortify_loom))]
mod loom;
