//! Tests that kill mutants of the semaphore (see MUTANTS.md): the `WAITERS` bit is clear
//! whenever the queue is empty, an uncontended release takes no lock, and a queued waiter
//! is woken through the waker of its last poll.

use super::{Semaphore, Wait, WAITERS};
use crate::internal::sync::Ordering;
use std::{
    sync::{atomic::AtomicUsize, mpsc, Arc},
    task::{Context, Wake, Waker},
    thread,
    time::Duration,
};

fn bit_set(sem: &Semaphore) -> bool {
    sem.state.load(Ordering::SeqCst) & WAITERS != 0
}

/// Calls `release` on another thread while this one holds the queue's lock: it must
/// return without the lock.
fn release_without_the_lock(sem: &Arc<Semaphore>) {
    let guard = sem.lock();
    let (tx, rx) = mpsc::channel();
    let releaser = {
        let sem = Arc::clone(sem);
        thread::spawn(move || {
            sem.release();
            let _ = tx.send(());
        })
    };
    let released = rx.recv_timeout(Duration::from_secs(10));
    drop(guard);
    releaser.join().unwrap();
    assert!(released.is_ok(), "the release waited for the queue's lock");
}

#[test]
fn an_uncontended_release_takes_no_lock() {
    let sem = Arc::new(Semaphore::new(2));
    assert!(sem.try_acquire());
    release_without_the_lock(&sem);
    assert_eq!(sem.available(), 2);
}

#[test]
fn the_bit_is_clear_once_the_last_waiter_is_served() {
    let sem = Arc::new(Semaphore::new(1));
    assert!(sem.try_acquire());
    let mut wait = Wait::Start;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(sem.poll_acquire(&mut wait, &mut cx).is_pending());
    assert!(bit_set(&sem), "set while a caller waits");
    sem.release();
    assert!(sem.poll_acquire(&mut wait, &mut cx).is_ready());
    assert!(!bit_set(&sem), "set with an empty queue");
    // The served waiter's permit comes back through the fast path.
    release_without_the_lock(&sem);
    assert_eq!(sem.available(), 1);
}

#[test]
fn the_bit_is_clear_once_the_last_waiter_leaves() {
    let sem = Arc::new(Semaphore::new(1));
    assert!(sem.try_acquire());
    let mut wait = Wait::Start;
    assert!(sem
        .poll_acquire(&mut wait, &mut Context::from_waker(Waker::noop()))
        .is_pending());
    assert!(!sem.cancel(&mut wait));
    assert!(!bit_set(&sem), "set with an empty queue");
    release_without_the_lock(&sem);
    assert_eq!(sem.available(), 1);
    assert!(sem.try_acquire());
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Counted(AtomicUsize);

impl Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counted() -> (Arc<Counted>, Waker) {
    let counted = Arc::new(Counted::default());
    (Arc::clone(&counted), Waker::from(counted))
}

#[test]
fn a_waiter_is_woken_through_the_waker_of_its_last_poll() {
    let sem = Semaphore::new(1);
    assert!(sem.try_acquire());
    let (first, first_waker) = counted();
    let (second, second_waker) = counted();
    let mut wait = Wait::Start;
    assert!(sem
        .poll_acquire(&mut wait, &mut Context::from_waker(&first_waker))
        .is_pending());
    // The wait moved to another task: the release must wake that one.
    assert!(sem
        .poll_acquire(&mut wait, &mut Context::from_waker(&second_waker))
        .is_pending());
    sem.release();
    assert_eq!(second.0.load(Ordering::SeqCst), 1, "the new waker");
    assert_eq!(first.0.load(Ordering::SeqCst), 0, "the old waker");
    assert!(sem
        .poll_acquire(&mut wait, &mut Context::from_waker(&second_waker))
        .is_ready());
}
