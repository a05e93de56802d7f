//! The hedge delays of one layer's pending calls, all on one tokio timer.
//!
//! A call pending at its first poll that may be hedged waits for its hedge delay. A tokio
//! `Sleep` per call would put each of them in the runtime's timer wheel (under its lock) and
//! take it out again when the call answers, which is nearly always before its delay: most
//! of the layer's cost for a call that is never hedged. Here a call only takes a slot in a
//! table (one compare-and-swap), leaves its waker and deadline there, and gives the slot
//! back when it answers. One task per layer (the ticker, spawned on the runtime of the
//! first call that waits) sleeps until the earliest deadline in the table, marks the calls
//! whose deadline has passed as due and wakes them, then sleeps until the next one; with no
//! call waiting it sleeps until one comes.
//!
//! Resolution: deadlines are kept exactly; the ticker sleeps on tokio's timer, which fires
//! at the millisecond after the deadline, as a `Sleep` of the call's own would. A hedge goes
//! out when its call is polled after that wake-up.
//!
//! Cost: a call that waits pays a claim and a release of its slot (two atomic
//! read-modify-writes on the table's bit words), a waker clone, and a lock of its own
//! slot's waker (uncontended: only the ticker, when the call is due, takes it too). The
//! ticker wakes about once per hedge delay while calls keep coming, whatever their number.
//!
//! At most 4096 calls of a layer wait at once; a call that finds the table full, or no
//! tokio runtime to run the ticker on, is not hedged.

use crate::internal::padded::Padded;
use std::{
    future::{poll_fn, Future},
    pin::pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, OnceLock, Weak,
    },
    task::{Poll, Waker},
    time::Duration,
};
use tokio::time::Instant;

/// Slots per word of the table's bit map (and per chunk of slots).
const WORD: usize = 64;
/// Words of the bit map: at most 4096 calls of a layer wait for their hedge delay at once.
const WORDS: usize = 64;
/// A slot's deadline once the ticker found it due.
const DUE: u64 = 0;
/// A slot's deadline while it has none (free, or being filled).
const NONE: u64 = u64::MAX;
/// `Ticker::armed` while the ticker has no deadline to sleep until.
const IDLE: u64 = u64::MAX;

/// One waiting call. Its deadline changes (set, due, cleared) under the waker's lock, so
/// that the ticker never takes the waker of the slot's next call.
struct Slot {
    /// Nanoseconds since the ticker's `base`, plus one (never `DUE`), `DUE` once due, or
    /// `NONE`.
    deadline: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Slot {
    fn new() -> Self {
        Slot {
            deadline: AtomicU64::new(NONE),
            waker: Mutex::new(None),
        }
    }
}

/// The waiting calls of one layer, and its ticker's state.
pub(crate) struct Ticker {
    /// Bit `i` of word `w`: slot `w * 64 + i` is taken.
    taken: Padded<[AtomicU64; WORDS]>,
    /// The slots, allocated 64 at a time when a word is first used.
    chunks: [OnceLock<Box<[Slot]>>; WORDS],
    /// The deadline the ticker sleeps until (as `Slot::deadline`), or `IDLE`.
    armed: Padded<AtomicU64>,
    /// Set when a call needs the ticker to look at the table before its `armed` deadline.
    wake: AtomicBool,
    /// The ticker task's waker, while it sleeps.
    ticker: Mutex<Option<Waker>>,
    /// Whether a ticker task runs (cleared when its runtime drops it).
    running: AtomicBool,
    base: Instant,
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Ticker {
    pub(crate) fn new() -> Self {
        Ticker {
            taken: Padded(std::array::from_fn(|_| AtomicU64::new(0))),
            chunks: std::array::from_fn(|_| OnceLock::new()),
            armed: Padded(AtomicU64::new(IDLE)),
            wake: AtomicBool::new(false),
            ticker: Mutex::new(None),
            running: AtomicBool::new(false),
            base: Instant::now(),
        }
    }

    fn slot(&self, index: usize) -> &Slot {
        &self.chunks[index / WORD].get_or_init(|| (0..WORD).map(|_| Slot::new()).collect())
            [index % WORD]
    }

    /// Waits for `deadline` with `waker`: the slot taken, to give back with
    /// [`release`](Self::release); `None` when the deadline is too far to represent, the
    /// table is full or no runtime can run the ticker (no hedge then).
    pub(crate) fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> Option<u32> {
        let nanos = u64::try_from(deadline.saturating_duration_since(self.base).as_nanos())
            .ok()?
            .checked_add(1)
            .filter(|&n| n != NONE)?;
        if !self.running.load(Ordering::Acquire) && !self.spawn() {
            return None;
        }
        let index = self.claim()?;
        let slot = self.slot(index);
        {
            let mut held = slot.lock();
            *held = Some(waker.clone());
            slot.deadline.store(nanos, Ordering::SeqCst);
        }
        // The ticker sleeps until a later deadline, or is about to look again (`IDLE`):
        // it must look at this one.
        if nanos < self.armed.load(Ordering::SeqCst) {
            self.wake_ticker();
        }
        Some(index as u32)
    }

    /// Whether the call in `index` is due; if not, its waker is updated to `waker`.
    pub(crate) fn poll_due(&self, index: u32, waker: &Waker) -> bool {
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
    pub(crate) fn release(&self, index: u32) {
        let index = index as usize;
        let slot = self.slot(index);
        let waker = {
            let mut held = slot.lock();
            slot.deadline.store(NONE, Ordering::Release);
            held.take()
        };
        self.taken[index / WORD].fetch_and(!(1 << (index % WORD)), Ordering::Release);
        drop(waker);
    }

    /// Takes a free slot.
    fn claim(&self) -> Option<usize> {
        for (w, word) in self.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                // Sequentially consistent, with the deadline's store and `armed`'s load:
                // a ticker that reads the word before this has announced `IDLE` first.
                match word.compare_exchange_weak(
                    bits,
                    bits | 1 << bit,
                    Ordering::SeqCst,
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
            runtime.spawn(run(Arc::downgrade(self)));
        }
        true
    }

    /// Marks the calls due at `now` and wakes them; the earliest deadline still ahead.
    fn tick(&self, now: u64) -> Option<u64> {
        let mut next = None::<u64>;
        for (w, word) in self.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let slot = self.slot(w * WORD + bit);
                let deadline = slot.deadline.load(Ordering::SeqCst);
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

    /// Now, as a deadline.
    fn now(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.base);
        u64::try_from(since.as_nanos())
            .unwrap_or(NONE - 1)
            .saturating_add(1)
    }

    /// The instant of a deadline.
    fn instant(&self, deadline: u64) -> Instant {
        self.base + Duration::from_nanos(deadline - 1)
    }
}

/// Cleared `running` when the ticker task ends (its runtime dropped it, or the layer is
/// gone), so that the next waiting call starts another.
struct Running(Weak<Ticker>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(ticker) = self.0.upgrade() {
            ticker.running.store(false, Ordering::Release);
        }
    }
}

/// The ticker task: until the layer is gone, sleeps until the earliest deadline (or until
/// a call needs it), then wakes the calls that are due.
async fn run(ticker: Weak<Ticker>) {
    let _running = Running(ticker.clone());
    let mut sleep = pin!(tokio::time::sleep(Duration::ZERO));
    loop {
        let next = {
            let Some(ticker) = ticker.upgrade() else {
                return;
            };
            // Announced before the table is read: a call that registers after the read
            // sees `IDLE` and wakes the ticker.
            ticker.armed.store(IDLE, Ordering::SeqCst);
            ticker.wake.store(false, Ordering::SeqCst);
            let next = ticker.tick(ticker.now());
            if let Some(next) = next {
                ticker.armed.store(next, Ordering::SeqCst);
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
        let waker = self.ticker.get_mut().ok().and_then(Option::take);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A waker counting its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_woken_at_their_deadline_and_not_before() {
        let ticker = Arc::new(Ticker::new());
        let start = Instant::now();
        let (late, late_waker) = counter();
        let (soon, soon_waker) = counter();
        let a = ticker
            .register(start + Duration::from_millis(30), &late_waker)
            .unwrap();
        let b = ticker
            .register(start + Duration::from_millis(10), &soon_waker)
            .unwrap();
        assert_ne!(a, b);

        tokio::time::sleep(Duration::from_millis(9)).await;
        assert_eq!(soon.0.load(Ordering::SeqCst), 0);
        assert!(!ticker.poll_due(b, &soon_waker));
        // Woken at the millisecond after the deadline, as tokio's own timer.
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(soon.0.load(Ordering::SeqCst), 1);
        assert!(ticker.poll_due(b, &soon_waker));
        assert_eq!(late.0.load(Ordering::SeqCst), 0);
        assert!(!ticker.poll_due(a, &late_waker));
        ticker.release(b);

        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
        assert!(ticker.poll_due(a, &late_waker));
        ticker.release(a);
        // Each slot given back: the next calls take them again.
        let (_, waker) = counter();
        let c = ticker
            .register(start + Duration::from_secs(1), &waker)
            .unwrap();
        assert!(c == a || c == b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_call_is_not_woken() {
        let ticker = Arc::new(Ticker::new());
        let (count, waker) = counter();
        let a = ticker
            .register(Instant::now() + Duration::from_millis(10), &waker)
            .unwrap();
        ticker.release(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_or_a_deadline_too_far_takes_no_slot() {
        let ticker = Arc::new(Ticker::new());
        let (_, waker) = counter();
        let at = Instant::now() + Duration::from_secs(1);
        let taken: Vec<u32> = (0..WORD * WORDS)
            .map(|_| ticker.register(at, &waker).expect("a free slot"))
            .collect();
        assert_eq!(ticker.register(at, &waker), None);
        ticker.release(taken[100]);
        assert_eq!(ticker.register(at, &waker), Some(taken[100]));
        // More nanoseconds than a `u64` holds: about 634 years.
        let never = Instant::now() + Duration::from_secs(20_000_000_000);
        assert_eq!(Arc::new(Ticker::new()).register(never, &waker), None);
    }

    #[test]
    fn outside_a_runtime_no_call_waits_and_another_runtime_takes_over() {
        let ticker = Arc::new(Ticker::new());
        let (count, waker) = counter();
        assert_eq!(ticker.register(Instant::now(), &waker), None);
        // A ticker started on a runtime that is gone: the next runtime starts another.
        for _ in 0..2 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async {
                let slot = ticker
                    .register(Instant::now() + Duration::from_millis(5), &waker)
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
                assert!(ticker.poll_due(slot, &waker));
                ticker.release(slot);
            });
            drop(runtime);
            assert!(!ticker.running.load(Ordering::SeqCst));
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}
