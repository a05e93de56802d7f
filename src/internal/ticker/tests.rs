use super::*;
use std::sync::atomic::AtomicUsize;
use std::task::Wake;

/// A waker counting its wake-ups (a `std` atomic: the loom models use it too, and
/// their threads run on one OS thread).
#[derive(Default)]
pub(super) struct Count(pub(super) AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub(super) fn counter() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

/// Registers `waker` for `after` from now: its slot.
fn register_in(ticker: &Arc<Ticker>, after: Duration, waker: &Waker) -> u32 {
    ticker
        .register(Instant::now() + after, waker)
        .expect("a free slot")
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
    let a = register_in(&ticker, Duration::from_millis(10), &waker);
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

#[tokio::test(start_paused = true)]
async fn every_slot_of_a_full_table_holds_a_call_of_its_own() {
    // Every slot taken, every other call due at 10 ms, the rest at 20 ms: each call is
    // woken once, at its own deadline, and is due through its own index. Two indices that
    // led to one slot (the index split into chunk and place wrongly, or a chunk's first
    // slot found otherwise than its later ones) would leave one call's waker and deadline
    // overwritten by the other's.
    let ticker = Arc::new(Ticker::new());
    let start = Instant::now();
    let calls: Vec<(u32, Arc<Count>, Waker, bool)> = (0..WORD * WORDS)
        .map(|k| {
            let (count, waker) = counter();
            let soon = k % 2 == 0;
            let at = start + Duration::from_millis(if soon { 10 } else { 20 });
            let index = ticker.register(at, &waker).expect("a free slot");
            (index, count, waker, soon)
        })
        .collect();
    let indices: std::collections::HashSet<u32> = calls.iter().map(|call| call.0).collect();
    assert_eq!(indices.len(), WORD * WORDS);

    tokio::time::sleep(Duration::from_millis(15)).await;
    for (index, count, waker, soon) in &calls {
        let woken = count.0.load(Ordering::SeqCst);
        assert_eq!(woken, usize::from(*soon), "the call in slot {index}");
        assert_eq!(ticker.poll_due(*index, waker), *soon, "slot {index}");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    for (index, count, waker, _) in &calls {
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the call in slot {index}"
        );
        assert!(ticker.poll_due(*index, waker), "slot {index}");
        ticker.release(*index);
    }
    assert_eq!(ticker.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_wakes_the_ticker_sleeping_until_a_later_one() {
    let ticker = Arc::new(Ticker::new());
    let (late, late_waker) = counter();
    let a = register_in(&ticker, Duration::from_secs(1), &late_waker);
    // The ticker runs, and sleeps until the only deadline, a second away.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let (soon, soon_waker) = counter();
    let b = register_in(&ticker, Duration::from_millis(10), &soon_waker);
    // Woken at the millisecond after its deadline, not at the second.
    tokio::time::sleep(Duration::from_millis(11)).await;
    assert_eq!(soon.0.load(Ordering::SeqCst), 1);
    assert!(ticker.poll_due(b, &soon_waker));
    assert_eq!(late.0.load(Ordering::SeqCst), 0);
    assert!(!ticker.poll_due(a, &late_waker));
    ticker.release(b);
    ticker.release(a);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_no_earlier_than_the_armed_one_does_not_wake_the_ticker() {
    let ticker = Arc::new(Ticker::new());
    let (_, waker) = counter();
    let at = Instant::now() + Duration::from_secs(1);
    let a = ticker.register(at, &waker).unwrap();
    // The ticker runs and sleeps until `at`.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!ticker.wake.load(Ordering::SeqCst));
    // The same deadline, and a later one: the ticker's sleep already covers them.
    let b = ticker.register(at, &waker).unwrap();
    let c = ticker
        .register(at + Duration::from_secs(1), &waker)
        .unwrap();
    assert!(!ticker.wake.load(Ordering::SeqCst));
    // An earlier one wakes it.
    let d = ticker
        .register(at - Duration::from_millis(1), &waker)
        .unwrap();
    assert!(ticker.wake.load(Ordering::SeqCst));
    for index in [a, b, c, d] {
        ticker.release(index);
    }
}

#[tokio::test(start_paused = true)]
async fn when_the_ticker_is_gone_only_the_waiting_calls_are_woken() {
    let ticker = Arc::new(Ticker::new());
    let at = Instant::now() + Duration::from_secs(1);
    let (waiting, waiting_waker) = counter();
    let (released, released_waker) = counter();
    let (due, due_waker) = counter();
    let a = ticker.register(at, &waiting_waker).unwrap();
    let b = ticker.register(at, &released_waker).unwrap();
    let c = register_in(&ticker, Duration::from_millis(10), &due_waker);
    ticker.release(b);
    tokio::time::sleep(Duration::from_millis(11)).await;
    assert_eq!(due.0.load(Ordering::SeqCst), 1);
    ticker.wake_all();
    // The waiting call is woken; the released one's kept waker and the due one's are not
    // (the due call was woken at its deadline, once).
    assert_eq!(waiting.0.load(Ordering::SeqCst), 1);
    assert_eq!(released.0.load(Ordering::SeqCst), 0);
    assert_eq!(due.0.load(Ordering::SeqCst), 1);
    // Every kept waker is dropped: only the tests' own references are left.
    assert_eq!(Arc::strong_count(&released), 2);
    ticker.release(a);
    ticker.release(c);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_ticker_ends_its_task_at_once() {
    let ticker = Arc::new(Ticker::new());
    let (_, waker) = counter();
    let start = Instant::now();
    let index = ticker
        .register(start + Duration::from_secs(3_600), &waker)
        .unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    // The ticker's task runs, and sleeps until the deadline an hour away.
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), 1);
    ticker.release(index);
    drop(ticker);
    // Woken by the drop, it finds the ticker gone and ends, with no time passed (not at
    // its deadline, an hour later).
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0);
    assert_eq!(Instant::now(), start);
}

#[tokio::test(start_paused = true)]
async fn a_ticker_debugs_as_whether_its_task_runs() {
    let ticker = Arc::new(Ticker::new());
    assert_eq!(format!("{ticker:?}"), "Ticker { running: false, .. }");
    let (_, waker) = counter();
    let index = register_in(&ticker, Duration::from_secs(1), &waker);
    assert_eq!(format!("{ticker:?}"), "Ticker { running: true, .. }");
    ticker.release(index);
}

#[tokio::test(start_paused = true)]
async fn a_slot_keeps_its_last_waker_and_does_not_clone_the_same_tasks_again() {
    let ticker = Arc::new(Ticker::new());
    let (count, waker) = counter();
    let at = Instant::now() + Duration::from_secs(1);
    let a = ticker.register(at, &waker).unwrap();
    assert_eq!(Arc::strong_count(&count), 3, "the slot holds a clone");
    ticker.release(a);
    assert_eq!(
        Arc::strong_count(&count),
        3,
        "kept for the slot's next call"
    );
    // The same task waits again, in the same slot: still one reference in the slot. (Its
    // waker is not cloned again either, but a count cannot tell a clone that replaced the
    // kept one from none: MUTANTS.md, `ticker.rs:228:31`.)
    assert_eq!(ticker.register(at, &waker), Some(a));
    assert_eq!(Arc::strong_count(&count), 3);
    ticker.release(a);
    // Another task's call replaces it.
    let (other, other_waker) = counter();
    assert_eq!(ticker.register(at, &other_waker), Some(a));
    assert_eq!(
        Arc::strong_count(&count),
        2,
        "the last call's waker dropped"
    );
    assert_eq!(Arc::strong_count(&other), 3);
    // Kept wakers are dropped, and the waiting calls woken, when the ticker is gone.
    ticker.release(a);
    let b = ticker.register(at, &waker).unwrap();
    ticker.wake_all();
    assert_eq!(Arc::strong_count(&other), 2, "a free slot's waker dropped");
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "the waiting call woken");
    assert_eq!(
        other.0.load(Ordering::SeqCst),
        0,
        "a free slot's waker not woken"
    );
    ticker.release(b);
}

#[test]
fn after_delay_is_the_delay_added_or_none_past_a_u64() {
    let now = Nanos::from_nanos(5);
    for delay in [
        Duration::ZERO,
        Duration::from_millis(1_500),
        Duration::from_nanos(u64::MAX - 5),
        Duration::from_nanos(u64::MAX - 4),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        assert_eq!(
            Ticker::with_delay(delay).after_delay(now),
            now.checked_add(delay),
            "{delay:?}"
        );
    }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn calls_whose_ticker_shut_down_with_its_runtime_are_woken_and_a_new_one_times_them() {
    let ticker = Arc::new(Ticker::new());
    let (count, waker) = counter();
    // The ticker is spawned on the first runtime, which shuts down before polling it.
    let slot = paused_runtime()
        .block_on(async { register_in(&ticker, Duration::from_millis(50), &waker) });
    assert!(!ticker.running.load(Ordering::SeqCst));
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "not woken: it would wait forever"
    );
    paused_runtime().block_on(async {
        // Polled again on another runtime: a ticker starts there and times the call.
        assert!(!ticker.poll_due(slot, &waker));
        assert!(ticker.running.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(ticker.poll_due(slot, &waker));
    });
    ticker.release(slot);
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
            let slot = register_in(&ticker, Duration::from_millis(5), &waker);
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(ticker.poll_due(slot, &waker));
            ticker.release(slot);
        });
        drop(runtime);
        assert!(!ticker.running.load(Ordering::SeqCst));
    }
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
}

#[test]
fn threads_in_turn_start_on_words_of_lines_of_their_own() {
    // Eight threads in a row: one word on each of the eight lines of eight words.
    let lines: std::collections::HashSet<usize> = (0..8).map(|t| first_word(t) / 8).collect();
    assert_eq!(lines.len(), 8);
    // Every thread index of a table's worth: every word once.
    let words: std::collections::HashSet<usize> = (0..WORDS).map(first_word).collect();
    assert_eq!(words.len(), WORDS);
    assert!((0..1000).all(|t| first_word(t) < WORDS));
}

#[test]
fn a_thread_claims_in_its_own_word_first_and_others_when_it_is_full() {
    let ticker = Arc::new(Ticker::new());
    let runtime = paused_runtime();
    let _entered = runtime.enter();
    let (_count, waker) = counter();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Two threads: each one's first slots are in its own word; the 65th of one thread
    // goes on to the next word.
    let claims: Vec<(usize, Vec<u32>)> = (0..2)
        .map(|_| {
            let (ticker, waker) = (Arc::clone(&ticker), waker.clone());
            let handle = runtime.handle().clone();
            std::thread::spawn(move || {
                let _entered = handle.enter();
                let own = first_word(thread_index());
                let slots = (0..=WORD)
                    .map(|_| ticker.register(deadline, &waker).unwrap())
                    .collect();
                (own, slots)
            })
            .join()
            .unwrap()
        })
        .collect();
    assert_ne!(claims[0].0, claims[1].0);
    for (own, slots) in &claims {
        assert!(slots[..WORD].iter().all(|&i| i as usize / WORD == *own));
        assert_ne!(slots[WORD] as usize / WORD, *own);
    }
}
