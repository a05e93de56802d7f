//! A FIFO-fair counting semaphore whose uncontended acquire and release are one
//! compare-and-swap each, and whose wait is a nameable, `Unpin` state (no boxed future).
//!
//! tokio's `Semaphore` is FIFO-fair too, but its release always takes a mutex and its
//! acquire future cannot be named, so a service that waits in `poll_ready` would have to
//! box it. Here the fast paths touch one atomic word; the mutex is taken only when a call
//! must wait, or when a permit is handed to a waiter.
//!
//! The state word is the only memory every call writes (a layer's only pool is shared by
//! every thread that calls it; its permits do not even write its reference count, see
//! `Pool::reference`), so it has a cache line of its own: calls on other threads that read
//! the pool's settings do not pull the line away from the thread that writes it.
//!
//! The state word holds the available permits shifted left by one, and a `WAITERS` bit
//! that is set exactly while the queue is not empty (it changes only under the queue's
//! lock). While it is set, neither fast path applies: a new caller cannot overtake the
//! queue, and a released permit goes straight to the first waiter.
//!
//! A layer's only fixed pool also parks free permits in per-thread slots ([`lease`]), so
//! that its calls on several threads do not all write the state word: the word is then
//! only read while nobody waits.

use crate::internal::{
    padded::Padded,
    sync::{Arc, AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering},
};
use lease::Leases;
use std::{
    collections::VecDeque,
    sync::PoisonError,
    task::{Context, Poll, Waker},
};

const WAITERS: usize = 1;
const ONE: usize = 2;

/// The largest number of permits the state word can hold.
pub(crate) const MAX_PERMITS: usize = usize::MAX >> 2;

#[derive(Debug)]
pub(crate) struct Semaphore {
    state: Padded<AtomicUsize>,
    /// Per-thread parked permits, if this semaphore has them: free, not in `state`.
    leases: Option<Leases>,
    queue: Mutex<VecDeque<Arc<Waiter>>>,
    /// The queue's length, for snapshots (written under the lock).
    waiting: AtomicUsize,
}

/// One caller in the queue.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Set under the queue's lock when a permit is handed to this waiter.
    assigned: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// Where a caller stands in its wait for a permit.
#[derive(Debug, Default)]
pub(crate) enum Wait {
    /// Not queued (yet): the next poll tries to take a permit, then queues.
    #[default]
    Start,
    Queued(Arc<Waiter>),
    /// The permit was taken: the caller owns it.
    Done,
}

impl Semaphore {
    pub(crate) fn new(permits: usize) -> Self {
        assert!(permits <= MAX_PERMITS, "too many permits");
        Semaphore {
            state: Padded(AtomicUsize::new(permits * ONE)),
            leases: None,
            queue: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A semaphore whose free permits may be parked in `slots` per-thread slots (see
    /// [`lease`]).
    pub(crate) fn with_leases(permits: usize, slots: usize) -> Self {
        Semaphore {
            leases: Some(Leases::new(slots)),
            ..Semaphore::new(permits)
        }
    }

    /// Permits not taken, parked ones included (zero while callers wait; a snapshot, which
    /// may count a permit that moved between a slot and the word twice or not at all).
    pub(crate) fn available(&self) -> usize {
        self.state.load(Ordering::Relaxed) / ONE + self.leases.as_ref().map_or(0, Leases::parked)
    }

    /// Callers queued for a permit.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Takes a permit if one is free and nobody waits: the thread's parked one first.
    #[inline(always)]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        if state & WAITERS != 0 {
            return false;
        }
        if let Some(leases) = &self.leases {
            if leases.take() {
                return true;
            }
        }
        loop {
            if state & WAITERS != 0 {
                return false;
            }
            if state < ONE {
                return self.try_steal();
            }
            match self.state.compare_exchange_weak(
                state,
                state - ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// The word holds no permit and nobody waits: takes one parked in another thread's
    /// slot, if there is one.
    #[cold]
    fn try_steal(&self) -> bool {
        self.leases.as_ref().is_some_and(Leases::steal)
    }

    /// Gives a permit back: to the thread's slot if it has one and it is empty and nobody
    /// waits, else to the first waiter if there is one, else to the state word.
    #[inline]
    pub(crate) fn release(&self) {
        if let Some(leases) = &self.leases {
            if let Some(slot) = leases.park() {
                // Parked first, the bit read after: a waiter whose sweep came before the
                // park's write to the slot is seen here (the park read from the sweep's
                // write), one whose sweep came after finds the permit (see `lease`).
                if self.state.load(Ordering::Relaxed) & WAITERS == 0 {
                    return;
                }
                return self.unpark(slot);
            }
        }
        self.release_shared();
    }

    /// Gives a permit back to the first waiter if there is one, else to the state word.
    #[inline]
    fn release_shared(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & WAITERS == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        self.release_slow();
    }

    /// A waiter came while this thread parked a permit: gives it to the semaphore, unless
    /// a sweep (which gives it to the semaphore) or the slot's thread took it first.
    #[cold]
    fn unpark(&self, slot: &AtomicUsize) {
        if Leases::unpark(slot) {
            self.release_shared();
        }
    }

    #[cold]
    fn release_slow(&self) {
        let mut queue = self.lock();
        match queue.pop_front() {
            Some(waiter) => {
                self.waiting.store(queue.len(), Ordering::Relaxed);
                waiter.assigned.store(true, Ordering::Release);
                if queue.is_empty() {
                    self.state.fetch_and(!WAITERS, Ordering::Release);
                }
                drop(queue);
                let waker = waiter
                    .waker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            None => {
                // The waiters left since the bit was seen: the permit is free again.
                let _ = self
                    .state
                    .fetch_update(Ordering::Release, Ordering::Relaxed, |state| {
                        Some((state & !WAITERS) + ONE)
                    });
            }
        }
    }

    /// Polls a wait: `Ready` once the caller owns a permit (`wait` is then `Done`).
    pub(crate) fn poll_acquire(&self, wait: &mut Wait, cx: &mut Context<'_>) -> Poll<()> {
        match wait {
            Wait::Start => {
                if self.try_acquire() {
                    *wait = Wait::Done;
                    return Poll::Ready(());
                }
                let mut queue = self.lock();
                // With the bit set, the state only changes under this lock.
                let previous = self.state.fetch_or(WAITERS, Ordering::Acquire);
                if previous >= ONE {
                    // A permit came back in between. Permits are only free while nobody
                    // waits, so the queue is empty and this caller is first.
                    debug_assert!(queue.is_empty());
                    self.state.fetch_sub(ONE + WAITERS, Ordering::Acquire);
                    *wait = Wait::Done;
                    return Poll::Ready(());
                }
                let waiter = Arc::new(Waiter {
                    assigned: AtomicBool::new(false),
                    waker: Mutex::new(Some(cx.waker().clone())),
                });
                queue.push_back(Arc::clone(&waiter));
                self.waiting.store(queue.len(), Ordering::Relaxed);
                if let Some(leases) = &self.leases {
                    drop(queue);
                    // Permits parked before the bit: to the semaphore, which hands them to
                    // the queue's first waiters (this one, if it was the first).
                    for _ in 0..leases.sweep() {
                        self.release_shared();
                    }
                    if waiter.assigned.load(Ordering::Acquire) {
                        *wait = Wait::Done;
                        return Poll::Ready(());
                    }
                }
                *wait = Wait::Queued(waiter);
                Poll::Pending
            }
            Wait::Queued(waiter) => {
                if waiter.assigned.load(Ordering::Acquire) {
                    *wait = Wait::Done;
                    return Poll::Ready(());
                }
                {
                    let mut slot = waiter.waker.lock().unwrap_or_else(PoisonError::into_inner);
                    match &mut *slot {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        slot => *slot = Some(cx.waker().clone()),
                    }
                }
                // The releaser sets `assigned` before it takes the waker: either it saw
                // the waker stored above, or this load sees the assignment.
                if waiter.assigned.load(Ordering::Acquire) {
                    *wait = Wait::Done;
                    return Poll::Ready(());
                }
                Poll::Pending
            }
            Wait::Done => Poll::Ready(()),
        }
    }

    /// Leaves the queue (a dropped wait). Returns `true` if a permit had already been
    /// handed to this waiter: the caller owns it and must release it.
    pub(crate) fn cancel(&self, wait: &mut Wait) -> bool {
        let Wait::Queued(waiter) = std::mem::take(wait) else {
            return false;
        };
        let mut queue = self.lock();
        if waiter.assigned.load(Ordering::Acquire) {
            return true;
        }
        if let Some(position) = queue.iter().position(|w| Arc::ptr_eq(w, &waiter)) {
            queue.remove(position);
            self.waiting.store(queue.len(), Ordering::Relaxed);
        }
        if queue.is_empty() {
            self.state.fetch_and(!WAITERS, Ordering::Release);
        }
        false
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Waiter>>> {
        // Nothing under this lock can panic half-way; a poisoned lock is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn fast_paths() {
        let sem = Semaphore::new(2);
        assert!(sem.try_acquire());
        assert!(sem.try_acquire());
        assert!(!sem.try_acquire());
        assert_eq!(sem.available(), 0);
        sem.release();
        assert_eq!(sem.available(), 1);
        sem.release();
        assert_eq!(sem.available(), 2);
    }

    #[test]
    fn waiters_are_served_in_order_and_nobody_overtakes() {
        let sem = Semaphore::new(1);
        assert!(sem.try_acquire());
        let mut waits: Vec<Wait> = (0..3).map(|_| Wait::Start).collect();
        for wait in &mut waits {
            assert!(sem.poll_acquire(wait, &mut cx()).is_pending());
        }
        assert_eq!(sem.waiting(), 3);
        for i in 0..3 {
            sem.release();
            // The released permit went to waiter i, not to a newcomer.
            assert!(!sem.try_acquire());
            for (j, wait) in waits.iter_mut().enumerate().skip(i) {
                assert_eq!(sem.poll_acquire(wait, &mut cx()).is_ready(), j == i);
            }
        }
        assert_eq!(sem.waiting(), 0);
        sem.release();
        assert_eq!(sem.available(), 1);
    }

    #[test]
    fn cancelled_waiters_leave_and_pass_on_assigned_permits() {
        let sem = Semaphore::new(1);
        assert!(sem.try_acquire());
        let mut first = Wait::Start;
        let mut second = Wait::Start;
        assert!(sem.poll_acquire(&mut first, &mut cx()).is_pending());
        assert!(sem.poll_acquire(&mut second, &mut cx()).is_pending());
        sem.release(); // assigned to `first`, which is dropped before it polls
        assert!(
            sem.cancel(&mut first),
            "the assigned permit is the caller's"
        );
        sem.release();
        assert!(sem.poll_acquire(&mut second, &mut cx()).is_ready());
        // A waiter cancelled before assignment leaves the queue and clears the bit.
        let mut third = Wait::Start;
        assert!(sem.poll_acquire(&mut third, &mut cx()).is_pending());
        assert!(!sem.cancel(&mut third));
        assert_eq!(sem.waiting(), 0);
        sem.release();
        assert!(sem.try_acquire(), "the permit is free for newcomers again");
    }
}

/// Loom models of the semaphore (see `internal::sync` for how to run them). tokio's
/// runtime cannot run under loom, so the models call what a task's poll calls from loom
/// threads; a wait is polled with `loom::future::block_on`, which parks the thread until
/// it is woken, so a lost wake-up is a deadlock loom reports. A permit's drop is
/// `release`, an `Acquire`'s drop is `cancel` then `release` when the permit had been
/// handed over (as in `permit.rs`).
#[cfg(all(test, fortify_loom))]
mod loom {
    use super::{Semaphore, Wait};
    use crate::internal::sync::{Arc, AtomicUsize, Ordering};
    use ::loom::thread;
    use std::future::poll_fn;

    /// Waits for a permit as `Acquire::poll` does: parked until the semaphore wakes it.
    pub(super) fn acquire(sem: &Semaphore) {
        let mut wait = Wait::Start;
        ::loom::future::block_on(poll_fn(|cx| sem.poll_acquire(&mut wait, cx)));
    }

    /// Acquires, holds (counted in `holders`, which must be zero before) and releases.
    fn use_permit(sem: &Semaphore, holders: &AtomicUsize) {
        acquire(sem);
        assert_eq!(
            holders.fetch_add(1, Ordering::SeqCst),
            0,
            "a doubled permit"
        );
        holders.fetch_sub(1, Ordering::SeqCst);
        sem.release();
    }

    /// Permits held at once never exceed the semaphore's, and every permit comes back:
    /// with one permit and three threads that each acquire (waiting if they must), hold
    /// and release it, no two hold it together, every waiter is woken (a lost wake-up is a
    /// deadlock), and the permit is free at the end.
    #[test]
    fn loom_permits_are_neither_lost_nor_doubled() {
        ::loom::model(|| {
            let sem = Arc::new(Semaphore::new(1));
            let holders = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (sem, holders) = (Arc::clone(&sem), Arc::clone(&holders));
                    thread::spawn(move || use_permit(&sem, &holders))
                })
                .collect();
            use_permit(&sem, &holders);
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(sem.available(), 1, "a lost permit");
            assert_eq!(sem.waiting(), 0);
            assert!(sem.try_acquire());
        });
    }

    /// A waiter that leaves (its `Acquire` dropped) racing the release that hands it the
    /// permit: the permit is then either still in the semaphore or passed on by the leaver
    /// (as `Acquire`'s drop does), never lost and never given twice.
    #[test]
    fn loom_a_cancelled_wait_racing_a_release_loses_no_permit() {
        ::loom::model(|| {
            let sem = Arc::new(Semaphore::new(1));
            assert!(sem.try_acquire());
            // Queued before the race starts, as a waiter that was polled once.
            let mut wait = Wait::Start;
            let waker = futures_noop();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(sem.poll_acquire(&mut wait, &mut cx).is_pending());
            let releaser = {
                let sem = Arc::clone(&sem);
                // A permit's drop (a response body ending) gives the permit back.
                thread::spawn(move || sem.release())
            };
            if sem.cancel(&mut wait) {
                sem.release();
            }
            releaser.join().unwrap();
            assert_eq!(sem.available(), 1, "a lost or doubled permit");
            assert_eq!(sem.waiting(), 0);
        });
    }

    /// FIFO hand-off: a permit released while a caller waits goes to that caller, never to
    /// a newcomer that arrives meanwhile. One permit is held, `first` waits for it; a
    /// release and a newcomer's `try_acquire` race: if the newcomer got a permit, `first`
    /// was not queued yet when it was released (then `first` takes it only after the
    /// newcomer gives it back); otherwise `first` gets it.
    #[test]
    fn loom_a_released_permit_goes_to_the_first_waiter() {
        ::loom::model(|| {
            let sem = Arc::new(Semaphore::new(1));
            assert!(sem.try_acquire());
            let waker = futures_noop();
            let mut cx = std::task::Context::from_waker(&waker);
            let mut first = Wait::Start;
            assert!(sem.poll_acquire(&mut first, &mut cx).is_pending());
            let newcomer = {
                let sem = Arc::clone(&sem);
                thread::spawn(move || sem.try_acquire())
            };
            sem.release();
            let overtaken = newcomer.join().unwrap();
            assert!(!overtaken, "a newcomer overtook a queued waiter");
            assert!(sem.poll_acquire(&mut first, &mut cx).is_ready());
            assert_eq!(sem.available(), 0);
            sem.release();
            assert_eq!(sem.available(), 1);
        });
    }

    fn futures_noop() -> std::task::Waker {
        std::task::Waker::noop().clone()
    }
}

#[cfg(test)]
mod mutants;

pub(crate) mod lease;
