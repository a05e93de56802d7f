//! Per-thread permit leases: free permits parked where the thread that gave them back takes
//! them again, so that one shared pool called from several threads does not move the
//! semaphore's word between their cores on every call.
//!
//! A semaphore with leases owns a few slots, each on a cache line of its own, and every
//! thread has an index into them (given at its first call, from a global count, so that
//! the workers of a runtime, started together, get slots of their own). A slot is empty or
//! holds one parked permit, which counts as free:
//! - a release parks its permit in the thread's slot if the slot is empty, then reads the
//!   waiters bit; only if it is set (or the slot was full) does the permit go to the
//!   semaphore, so while nobody waits a call on its own slot writes no shared line;
//! - an acquire, if nobody waits, takes the thread's parked permit first, then the word's,
//!   and when both are empty one parked in another thread's slot.
//!
//! A caller that must wait sets the semaphore's waiters bit, joins the queue, and then
//! empties every slot ([`Leases::sweep`]), giving each permit it finds to the semaphore,
//! which hands it to the queue's first waiter. A release that parked and then sees the bit
//! takes its permit back out of the slot and gives it to the semaphore (if it is gone, a
//! sweep or the slot's thread took it). So no permit stays parked while a caller waits:
//! the sweep is a swap (a write) of every slot, so a park that comes after it in the
//! slot's order reads from it and sees the bit, and a park before it is found by it. The
//! argument needs acquire/release only, not the sequentially consistent store-then-load
//! pair of both sides (which loom models as acquire/release, and which a sweep of plain
//! loads would need).
//!
//! Only a layer's only pool whose permits are plain (fixed `maxsize`: no adaptive limit,
//! leak tracking or live gauges) has leases: per-host pools are many, and small, and one
//! host's calls rarely come from every thread at once; the slots would cost each of them
//! a few hundred bytes to kilobytes.

use crate::internal::{
    padded::Padded,
    sync::{AtomicUsize, Ordering},
    thread_index::{places_per_machine, thread_index},
};

/// A slot holding no permit.
const EMPTY: usize = 0;
/// A slot holding one parked permit.
const PARKED: usize = 1;

/// The slots of one semaphore: a power of two of them.
pub(crate) struct Leases {
    slots: Box<[Padded<AtomicUsize>]>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("slots", &self.slots.len())
            .field("parked", &self.parked())
            .finish()
    }
}

impl Leases {
    /// `slots` empty slots (rounded up to a power of two).
    pub(crate) fn new(slots: usize) -> Self {
        let slots = slots.max(1).next_power_of_two();
        Leases {
            slots: (0..slots)
                .map(|_| Padded(AtomicUsize::new(EMPTY)))
                .collect(),
        }
    }

    /// How many slots a pool gets on this machine: [`places_per_machine`], at most 64 (8 KiB).
    pub(crate) fn per_machine() -> usize {
        places_per_machine(64)
    }

    /// The calling thread's slot.
    #[inline]
    fn own(&self) -> &AtomicUsize {
        // The length is a power of two.
        &self.slots[thread_index() & (self.slots.len() - 1)]
    }

    /// Takes the permit parked in the calling thread's slot, if there is one.
    #[inline]
    pub(crate) fn take(&self) -> bool {
        self.own()
            .compare_exchange(PARKED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Parks a permit in the calling thread's slot, if it is empty: the slot, to take the
    /// permit back with [`unpark`](Self::unpark) if a waiter appeared meanwhile.
    ///
    /// Acquire as well as release: a park that reads from a waiter's sweep must see the
    /// waiters bit the waiter set before it.
    #[inline]
    pub(crate) fn park(&self) -> Option<&AtomicUsize> {
        let slot = self.own();
        slot.compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| slot)
    }

    /// Takes a permit just parked in `slot` back: `false` if a sweep or the slot's thread
    /// took it first.
    #[inline]
    pub(crate) fn unpark(slot: &AtomicUsize) -> bool {
        slot.compare_exchange(PARKED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes a permit parked in any slot (the caller saw no waiter): `false` if none is.
    pub(crate) fn steal(&self) -> bool {
        self.slots.iter().any(|slot| {
            slot.load(Ordering::Relaxed) == PARKED
                && slot
                    .compare_exchange(PARKED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Empties every slot, for a caller that has just joined the queue: the permits taken,
    /// which the caller gives to the semaphore. Each slot is swapped, written even when
    /// empty, so that a later park reads from this write (see the module's docs).
    pub(crate) fn sweep(&self) -> usize {
        self.slots
            .iter()
            .map(|slot| slot.swap(EMPTY, Ordering::AcqRel))
            .sum()
    }

    /// Permits parked (a snapshot).
    pub(crate) fn parked(&self) -> usize {
        self.slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .sum()
    }
}

/// Loom models of the leases (see `internal::sync` for how to run them), on the semaphore
/// as `semaphore.rs`'s own models drive it: a permit's drop is `release`, a wait is
/// `poll_acquire` polled by `loom::future::block_on`, so a lost wake-up is a deadlock loom
/// reports. The semaphores have two slots, so that of three model threads two share one;
/// a thread's slot comes from the order of the threads' first calls, which loom varies.
#[cfg(all(test, fortify_loom))]
mod loom {
    use super::super::{loom::acquire, Semaphore};
    use crate::internal::sync::{Arc, AtomicUsize, Ordering};
    use ::loom::thread;

    /// Acquires (waiting if it must), holds (counted in `holders`, at most `permits` at
    /// once) and releases.
    fn use_permit(sem: &Semaphore, holders: &AtomicUsize, permits: usize) {
        acquire(sem);
        hold(holders, permits);
        sem.release();
    }

    fn hold(holders: &AtomicUsize, permits: usize) {
        let held = holders.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            held <= permits,
            "{held} holders of {permits} permits: a doubled permit"
        );
        holders.fetch_sub(1, Ordering::SeqCst);
    }

    /// Every permit is free again and counted once: `available` says `permits`, and
    /// exactly that many can be taken.
    fn assert_all_free(sem: &Semaphore, permits: usize) {
        assert_eq!(sem.waiting(), 0, "a waiter was left in the queue");
        assert_eq!(sem.available(), permits, "a lost or doubled permit");
        let taken = (0..=permits).filter(|_| sem.try_acquire()).count();
        assert_eq!(taken, permits, "a lost or doubled permit");
    }

    /// A park racing a new waiter: the waiter gets the permit. One permit, held; one
    /// thread gives it back (parking it, as nobody waited when it looked) while another
    /// finds none free and waits. Invariant: the waiter is never left waiting while the
    /// permit sits parked (a waiter nobody wakes is a deadlock loom reports), and the
    /// permit is free once at the end.
    ///
    /// Seeded bug it caught: `Semaphore::release` without its re-read of the waiters bit
    /// after parking (it returns as soon as the park succeeded): loom reported the waiter's
    /// deadlock (the waiter swept the slots before the park, the park did not see the bit).
    #[test]
    fn loom_a_park_racing_a_new_waiter_gives_the_waiter_the_permit() {
        ::loom::model(|| {
            let sem = Arc::new(Semaphore::with_leases(1, 2));
            assert!(sem.try_acquire());
            let releaser = {
                let sem = Arc::clone(&sem);
                thread::spawn(move || sem.release())
            };
            acquire(&sem);
            releaser.join().unwrap();
            sem.release();
            assert_all_free(&sem, 1);
        });
    }

    /// A waiter's sweep racing the owner's un-park: no doubled permit. One permit, held;
    /// its holder gives it back while two callers acquire (waiting if they must), hold and
    /// give back theirs. The release may park the permit, see a waiter and take it back
    /// out of the slot while that waiter's sweep takes it too: exactly one of them must
    /// get it. Invariant: never two holders of the one permit, every waiter served, the
    /// permit free once at the end.
    ///
    /// Seeded bug it caught: `Semaphore::unpark` that gives the permit to the semaphore
    /// whether or not its compare-and-swap on the slot won (`Leases::unpark`'s result
    /// ignored): loom reported two permits free at the end (the sweep had given the same
    /// permit to the semaphore).
    #[test]
    fn loom_a_sweep_racing_an_unpark_doubles_no_permit() {
        ::loom::model(|| {
            let sem = Arc::new(Semaphore::with_leases(1, 2));
            let holders = Arc::new(AtomicUsize::new(0));
            assert!(sem.try_acquire());
            let callers: Vec<_> = (0..2)
                .map(|_| {
                    let (sem, holders) = (Arc::clone(&sem), Arc::clone(&holders));
                    thread::spawn(move || use_permit(&sem, &holders, 1))
                })
                .collect();
            sem.release();
            for caller in callers {
                caller.join().unwrap();
            }
            assert_all_free(&sem, 1);
        });
    }

    /// Taking a parked permit racing a release and a steal: a parked permit is taken once.
    /// Two permits: one parked in this thread's slot, one held by another thread that gives
    /// it back (parking it in its slot or this one, or adding it to the word) while this
    /// thread and a third each take one if they can (their own slot's, the word's, or one
    /// parked in another slot). Invariant: never more than two holders; at the end both
    /// permits are free, counted once.
    ///
    /// Seeded bug it caught: `Leases::take` as a load and a store (not one
    /// compare-and-swap): loom reported three permits free at the end (two threads had
    /// taken the one parked permit, and both gave it back).
    #[test]
    fn loom_taking_a_parked_permit_racing_a_release_takes_it_once() {
        ::loom::model(|| {
            let sem = Arc::new(Semaphore::with_leases(2, 2));
            let holders = Arc::new(AtomicUsize::new(0));
            assert!(sem.try_acquire());
            assert!(sem.try_acquire());
            sem.release(); // parked in this thread's slot
            holders.fetch_add(1, Ordering::SeqCst); // the other permit's holder
            let releaser = {
                let (sem, holders) = (Arc::clone(&sem), Arc::clone(&holders));
                thread::spawn(move || {
                    holders.fetch_sub(1, Ordering::SeqCst);
                    sem.release();
                })
            };
            let stealer = {
                let (sem, holders) = (Arc::clone(&sem), Arc::clone(&holders));
                thread::spawn(move || {
                    if sem.try_acquire() {
                        hold(&holders, 2);
                        sem.release();
                    }
                })
            };
            if sem.try_acquire() {
                hold(&holders, 2);
                sem.release();
            }
            releaser.join().unwrap();
            stealer.join().unwrap();
            assert_all_free(&sem, 2);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Semaphore, Wait, ONE};
    use crate::internal::sync::Ordering;
    use std::{
        sync::Arc,
        task::{Context, Waker},
        thread,
    };

    fn word(sem: &Semaphore) -> usize {
        sem.state.load(Ordering::SeqCst)
    }

    /// A thread that gives a permit back and takes one again leaves the shared word alone,
    /// and the parked permit counts as free.
    #[test]
    fn a_thread_takes_back_the_permit_it_parked_without_the_word() {
        let sem = Semaphore::with_leases(2, 4);
        assert!(sem.try_acquire());
        assert_eq!(word(&sem), ONE);
        sem.release();
        assert_eq!(word(&sem), ONE, "parked, not added to the word");
        assert_eq!(sem.available(), 2, "a parked permit is free");
        for _ in 0..3 {
            assert!(sem.try_acquire());
            assert_eq!(word(&sem), ONE, "the parked permit taken, not the word's");
            assert_eq!(sem.available(), 1);
            sem.release();
        }
        assert_eq!(word(&sem), ONE);
        // The second permit taken while the first is held comes from the word, and goes
        // back there: the slot is full.
        assert!(sem.try_acquire());
        assert!(sem.try_acquire());
        assert!(!sem.try_acquire());
        assert_eq!(sem.available(), 0);
        sem.release();
        sem.release();
        assert_eq!(word(&sem), ONE);
        assert_eq!(sem.available(), 2);
    }

    /// A permit parked by one thread is free to another whose slot and word are empty.
    #[test]
    fn another_thread_takes_a_parked_permit() {
        let sem = Arc::new(Semaphore::with_leases(1, 4));
        assert!(sem.try_acquire());
        sem.release();
        assert_eq!(word(&sem), 0, "parked");
        let other = Arc::clone(&sem);
        let took = thread::spawn(move || other.try_acquire()).join().unwrap();
        assert!(took, "the parked permit was free");
        assert!(!sem.try_acquire(), "taken once");
        assert_eq!(sem.available(), 0);
    }

    /// A permit given back while a caller waits goes to the caller, not to the releasing
    /// thread's slot.
    #[test]
    fn a_release_while_a_caller_waits_goes_to_the_waiter() {
        let sem = Arc::new(Semaphore::with_leases(1, 4));
        assert!(sem.try_acquire());
        let mut wait = Wait::Start;
        let mut cx = Context::from_waker(Waker::noop());
        assert!(sem.poll_acquire(&mut wait, &mut cx).is_pending());
        let other = Arc::clone(&sem);
        thread::spawn(move || other.release()).join().unwrap();
        assert!(sem.poll_acquire(&mut wait, &mut cx).is_ready());
        assert_eq!(sem.available(), 0);
        assert_eq!(sem.waiting(), 0);
        sem.release();
        assert_eq!(sem.available(), 1);
    }

    /// Slots come in powers of two, at least one; a pool gets two per processor, at most
    /// 64.
    #[test]
    fn slot_counts_round_up_to_a_power_of_two() {
        assert_eq!(super::Leases::new(0).slots.len(), 1);
        assert_eq!(super::Leases::new(3).slots.len(), 4);
        assert_eq!(super::Leases::new(64).slots.len(), 64);
        let processors = thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(super::Leases::per_machine(), (2 * processors).min(64));
    }

    /// Every thread has an index of its own (so threads started together get slots of
    /// their own while there are enough), kept for its life.
    #[test]
    fn threads_have_indices_of_their_own() {
        let indices: Vec<usize> = (0..8)
            .map(|_| {
                thread::spawn(|| {
                    let index = crate::internal::thread_index::thread_index();
                    assert_eq!(crate::internal::thread_index::thread_index(), index, "kept");
                    index
                })
                .join()
                .unwrap()
            })
            .collect();
        for (i, index) in indices.iter().enumerate() {
            assert!(
                !indices[..i].contains(index),
                "two threads share index {index}: {indices:?}"
            );
        }
    }

    /// A semaphore's `Debug` shows its slots and the permits parked in them.
    #[test]
    fn a_semaphore_with_leases_debugs_its_slots() {
        let sem = Semaphore::with_leases(2, 3);
        assert!(sem.try_acquire());
        sem.release();
        let debug = format!("{sem:?}");
        assert!(
            debug.contains("leases: Some(Leases { slots: 4, parked: 1 })"),
            "{debug}"
        );
    }
}
