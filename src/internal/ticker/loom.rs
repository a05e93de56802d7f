use super::tests::counter;
use super::*;

fn ticker() -> Arc<Ticker> {
    let ticker = Arc::new(Ticker::new());
    // The slots' chunk, made before the threads race (a `std` `OnceLock`).
    ticker.slot(0);
    ticker
}

/// Register, expire and cancel racing: a call waits for deadline 5, looks whether it
/// is due, gives its slot back (answered, or timed out), and the slot's next call
/// waits for deadline 20; meanwhile the ticker passes at 10.
///
/// Invariant: the ticker never marks due, nor wakes, a call whose deadline is ahead of
/// its clock (a timeout never fires early), even when the slot it read changed hands
/// under it; the first call is woken at most once. Seeded bug caught: `tick` without
/// its second look at the deadline under the slot's lock ("the slot's next call was
/// marked due at 10, its deadline 20").
#[test]
fn loom_a_slot_that_changes_hands_is_never_expired_early() {
    ::loom::model(|| {
        let ticker = ticker();
        let (first, first_waker) = counter();
        let (next, next_waker) = counter();
        let call = {
            let ticker = Arc::clone(&ticker);
            let next_waker = next_waker.clone();
            ::loom::thread::spawn(move || {
                let a = ticker.register_at(5, &first_waker).expect("a free slot");
                ticker.due_or_wait(a, &first_waker);
                ticker.release(a);
                ticker.register_at(20, &next_waker).expect("a free slot")
            })
        };
        ticker.pass(10);
        let b = call.join().unwrap();
        assert!(
            !ticker.due_or_wait(b, &next_waker),
            "the slot's next call was marked due at 10, its deadline 20"
        );
        assert_eq!(next.0.load(Ordering::SeqCst), 0, "the next call was woken");
        assert!(first.0.load(Ordering::SeqCst) <= 1, "woken twice");
        ticker.release(b);
    });
}

/// Register racing the ticker's pass: a call waits for deadline 5 while the ticker,
/// woken for deadline 3, passes at 10 and then sleeps, unless asked to look again
/// (`wake`), which it does.
///
/// Invariant: no lost wake-up. A call whose deadline has passed at the ticker's clock
/// is, once the ticker sleeps, either found due at its own look or woken. Seeded bug
/// caught: `pass` announcing `IDLE` after reading the table instead of before ("a due
/// call was neither woken nor found due").
#[test]
fn loom_a_call_registered_during_a_pass_is_not_lost() {
    ::loom::model(|| {
        let ticker = ticker();
        // The ticker slept until deadline 3 (of a call answered since): a call that
        // waits for a later one needs not wake it, unless it is about to sleep longer.
        ticker.armed.store(3, Ordering::SeqCst);
        let (count, waker) = counter();
        let call = {
            let ticker = Arc::clone(&ticker);
            ::loom::thread::spawn(move || {
                let a = ticker.register_at(5, &waker).expect("a free slot");
                (a, ticker.due_or_wait(a, &waker))
            })
        };
        ticker.pass(10);
        let (a, due) = call.join().unwrap();
        // Asked to look again: the ticker task was woken, and passes again.
        if ticker.wake.swap(false, Ordering::SeqCst) {
            ticker.pass(10);
        }
        assert!(
            due || count.0.load(Ordering::SeqCst) == 1,
            "a due call was neither woken nor found due"
        );
        ticker.release(a);
    });
}
