use std::{
    collections::VecDeque,
    sync::{Arc, Barrier},
    thread,
};

use proptest::prelude::*;
use tokio::time::{advance, Instant};

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn budget(window_secs: u64, min_per_sec: u32, retry_ratio: f32) -> RetryBudget {
    RetryBudget::new(Duration::from_secs(window_secs), min_per_sec, retry_ratio)
        .expect("valid settings")
}

fn withdraw_n(budget: &RetryBudget, attempts: u64) -> u64 {
    (0..attempts).map(|_| u64::from(budget.withdraw())).sum()
}

#[tokio::test(start_paused = true)]
async fn reserve_is_min_per_sec_times_window_and_refills() {
    let window = Duration::from_secs(10);
    let b = budget(10, 10, 0.0);
    assert_eq!(b.available(), 100);
    for i in 0..100 {
        assert!(b.withdraw(), "withdrawal {i} of the reserve of 100");
    }
    assert!(!b.withdraw(), "the 101st withdrawal");
    assert_eq!(b.available(), 0);

    // At ratio 0 requests earn nothing.
    for _ in 0..1_000 {
        b.deposit();
    }
    assert!(!b.withdraw());

    // The withdrawals still count until the window has passed...
    advance(window - Duration::from_millis(1)).await;
    assert!(!b.withdraw());
    // ...then they age out and the reserve is back, whole.
    advance(Duration::from_millis(1)).await;
    assert_eq!(b.available(), 100);
    assert_eq!(withdraw_n(&b, 1_000), 100);
}

#[tokio::test(start_paused = true)]
async fn retries_are_a_share_of_requests() {
    let window = Duration::from_secs(10);
    let b = budget(10, 0, 0.2);
    assert!(!b.withdraw(), "no reserve, nothing earned");
    for _ in 0..1_000 {
        b.deposit();
    }
    assert_eq!(b.available(), 200);
    assert_eq!(withdraw_n(&b, 1_000), 200);
    assert!(!b.withdraw());

    // With nothing spent, earned retries still expire with their deposits.
    let b = budget(10, 0, 0.2);
    for _ in 0..1_000 {
        b.deposit();
    }
    assert_eq!(withdraw_n(&b, 100), 100);
    advance(window).await;
    assert_eq!(b.available(), 0);
    assert!(!b.withdraw(), "the deposits aged out");
}

#[tokio::test(start_paused = true)]
async fn deposits_age_out_bucket_by_bucket() {
    // 1 s buckets; 100 retries earned at the start of each second for a window.
    let b = budget(10, 0, 1.0);
    for _ in 0..10 {
        for _ in 0..100 {
            b.deposit();
        }
        advance(SECOND).await;
    }
    // At 10 s the bucket of second 0 has left the window, then one more each second.
    for second in 0..=9 {
        assert_eq!(b.available(), 900 - 100 * second, "at {}s", 10 + second);
        advance(SECOND).await;
    }
    assert_eq!(b.available(), 0, "at 20s");
}

#[tokio::test(start_paused = true)]
async fn half_a_window_later_about_half_remains() {
    // One deposit every 10 ms for a whole window: 1000 retries earned, spread evenly.
    let b = budget(10, 0, 1.0);
    for _ in 0..1_000 {
        b.deposit();
        advance(Duration::from_millis(10)).await;
    }
    advance(Duration::from_secs(5)).await;
    // An exact sliding window would keep the deposits of the last 10 s, 500 of them.
    // The bucketed window drops a bucket's deposits all at once, between 0.9 and 1.0
    // window after they were made, so it keeps those of the last 9 to 10 s: between
    // 400 and 500 (here the last 9 s exactly, as the time falls on a bucket boundary).
    let available = b.available();
    assert!(
        (400..=500).contains(&available),
        "available {available}, expected about half of 1000"
    );
}

#[tokio::test(start_paused = true)]
async fn available_matches_successes() {
    let b = budget(10, 5, 0.5);
    for _ in 0..20 {
        b.deposit();
    }
    assert_eq!(b.available(), 50 + 10);
    for spent in 1..=60 {
        assert!(b.withdraw());
        assert_eq!(b.available(), 60 - spent);
    }
    assert!(!b.withdraw());
    assert_eq!(b.available(), 0);

    // A fraction is kept: 3 * 0.3 = 0.9, one more deposit makes 1.2.
    let b = budget(10, 0, 0.3);
    for _ in 0..3 {
        b.deposit();
    }
    assert_eq!(b.available(), 0);
    assert!(!b.withdraw());
    b.deposit();
    assert_eq!(b.available(), 1);
    assert!(b.withdraw());
    assert_eq!(b.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_budget() {
    let a = budget(10, 1, 1.0);
    let b = a.clone();
    assert!(b.withdraw());
    assert_eq!(a.available(), 9);
    a.deposit();
    assert_eq!(b.available(), 10);
    assert!(format!("{a:?}").contains("available: 10"), "{a:?}");
}

#[test]
fn unlimited_never_refuses() {
    let b = RetryBudget::unlimited();
    for _ in 0..1_000_000 {
        assert!(b.withdraw());
    }
    b.deposit();
    assert_eq!(b.available(), u64::MAX);
    assert!(b.clone().withdraw());
    assert_eq!(format!("{b:?}"), "RetryBudget { unlimited: true }");
}

#[test]
fn only_a_limited_budget_that_earns_retries_counts_deposits() {
    // What the retry layer asks before it reads the clock for a call's deposit.
    assert!(budget(10, 10, 0.2).deposits());
    assert!(!budget(10, 10, 0.0).deposits());
    assert!(!RetryBudget::unlimited().deposits());
}

#[test]
fn invalid_settings_are_rejected_with_the_field_named() {
    let window_errors = [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(60) + Duration::from_nanos(1),
        Duration::from_secs(61),
        Duration::MAX,
    ];
    for window in window_errors {
        let err = RetryBudget::new(window, 10, 0.2).unwrap_err();
        assert_eq!(err.field(), "budget_window", "{window:?}");
        assert_eq!(
            err.to_string(),
            "invalid budget_window: must be between 1 s and 60 s"
        );
    }
    let ratio_errors = [
        f32::NAN,
        -1.0,
        -f32::MIN_POSITIVE,
        1000.001,
        1001.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    for ratio in ratio_errors {
        let err = RetryBudget::new(Duration::from_secs(10), 10, ratio).unwrap_err();
        assert_eq!(err.field(), "budget_retry_ratio", "{ratio}");
    }
    // The bounds themselves are valid.
    for (window, ratio) in [(1, 0.0), (60, 1000.0), (10, -0.0)] {
        assert!(RetryBudget::new(Duration::from_secs(window), 0, ratio).is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn extreme_settings_do_not_overflow() {
    let b = budget(60, u32::MAX, 1000.0);
    let reserve = u64::from(u32::MAX) * 60;
    assert_eq!(b.available(), reserve);
    for _ in 0..1_000 {
        b.deposit();
    }
    assert_eq!(b.available(), reserve + 1_000_000);
    assert!(b.withdraw());
    advance(Duration::from_secs(3600 * 24 * 365 * 100)).await;
    assert_eq!(b.available(), reserve);

    // A fractional window gives a fractional reserve, rounded down.
    let b = RetryBudget::new(Duration::from_millis(1_500), 1, 0.0).unwrap();
    assert_eq!(b.available(), 1);
    assert!(b.withdraw());
    assert!(!b.withdraw());
}

#[test]
fn deposits_count_in_the_window_that_holds_their_bucket() {
    // The ring's claim is tested in `buckets`; here, the balance it feeds.
    let b = budget(10, 0, 1.0);
    let shared = b.shared.as_ref().unwrap();
    let (bucket, epoch) = shared.deposits[0].claim(15).unwrap();
    assert_eq!(epoch, 15);
    bucket.count(COUNT).fetch_add(3, Ordering::AcqRel);
    assert_eq!(shared.balance(15, true), 3 * SCALE);
    assert_eq!(shared.balance(24, true), 3 * SCALE, "still in the window");
    assert_eq!(shared.balance(25, true), 0, "aged out a window later");
}

#[test]
fn threads_deposit_in_lanes_of_their_own_and_the_balance_sums_them() {
    // The real clock (plain threads): a 20 s window, nothing ages out meanwhile.
    let b = budget(20, 0, 1.0);
    let shared = b.shared.as_ref().unwrap();
    let lanes = shared.deposits.len();
    assert!(lanes >= 2 && lanes.is_power_of_two());
    // Two threads, 100 and 50 deposits: each lands whole in its thread's lane (its
    // index's, which other tests' threads may have moved on: two lanes, or one).
    let mut expected = vec![0; lanes];
    thread::scope(|scope| {
        for n in [100, 50] {
            let b = &b;
            let lane = scope
                .spawn(move || {
                    (0..n).for_each(|_| b.deposit());
                    thread_index() & (lanes - 1)
                })
                .join()
                .unwrap();
            expected[lane] += n;
        }
    });
    let epoch = shared.epoch_at(Nanos::now());
    let counted: Vec<u64> = shared
        .deposits
        .iter()
        .map(|lane| lane.live(epoch).map(|(bucket, _)| bucket.get(COUNT)).sum())
        .collect();
    assert_eq!(counted, expected, "each thread's deposits in its own lane");
    assert_eq!(b.available(), 150);
}

#[test]
fn concurrent_withdrawals_do_not_overspend() {
    // A reserve of 1000 (50 per second for 20 s), nothing earned; the real clock, as the
    // threads run outside any runtime. 2 s buckets: nothing ages out during the test.
    const THREADS: u64 = 8;
    let b = budget(20, 50, 0.0);
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let b = b.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                withdraw_n(&b, 10_000)
            })
        })
        .collect();
    let successes: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(
        (1_000..=1_000 + THREADS).contains(&successes),
        "{successes} successes"
    );
    assert_eq!(b.available(), 1_000u64.saturating_sub(successes));
}

#[test]
fn is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RetryBudget>();
}

// ===== property test against a model =====

#[derive(Debug, Clone)]
enum Op {
    Deposit(u8),
    Withdraw(u8),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..=20).prop_map(Op::Deposit),
        (1u8..=8).prop_map(Op::Withdraw),
        (0u32..=3_000).prop_map(Op::Advance),
    ]
}

/// Events of the last window, with their time since the start in nanoseconds.
struct Model {
    window: u128,
    bucket: u128,
    reserve: i128,
    deposit_units: i128,
    deposits: VecDeque<u128>,
    withdrawals: VecDeque<u128>,
}

impl Model {
    /// The budget counts the events of its last 9 buckets and of the current one: those
    /// of at least the last 0.9 window and at most the last window. So its balance is
    /// between these bounds (in units), one bucket of slack apart.
    fn bounds(&self, now: u128) -> (i128, i128) {
        let count = |events: &VecDeque<u128>, from: u128| {
            events.iter().filter(|&&t| t >= from).count() as i128
        };
        // At most the last window: events after now - window.
        let widest = (now + 1).saturating_sub(self.window);
        // At least the last 9 buckets.
        let narrowest = now.saturating_sub(9 * self.bucket);
        let low = self.reserve + self.deposit_units * count(&self.deposits, narrowest)
            - SCALE * count(&self.withdrawals, widest);
        let high = self.reserve + self.deposit_units * count(&self.deposits, widest)
            - SCALE * count(&self.withdrawals, narrowest);
        (low, high)
    }

    fn forget_before(&mut self, now: u128) {
        let widest = (now + 1).saturating_sub(self.window);
        for events in [&mut self.deposits, &mut self.withdrawals] {
            while events.front().is_some_and(|&t| t < widest) {
                events.pop_front();
            }
        }
    }
}

fn retries(units: i128) -> u64 {
    u64::try_from(units.max(0) / SCALE).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn stays_within_a_sliding_window_model(
        window_ms in 1_000u64..=60_000,
        min_per_sec in 0u32..=5,
        ratio_milli in 0u32..=3_000,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let window = Duration::from_millis(window_ms);
            let ratio = ratio_milli as f32 / 1000.0;
            let b = RetryBudget::new(window, min_per_sec, ratio).unwrap();
            let t0 = Instant::now();
            let mut model = Model {
                window: window.as_nanos(),
                bucket: window.as_nanos() / 10,
                // min_per_sec * window_ms / 1000 retries, in millionths.
                reserve: i128::from(min_per_sec) * i128::from(window_ms) * 1_000,
                deposit_units: i128::from(ratio_milli) * 1_000,
                deposits: VecDeque::new(),
                withdrawals: VecDeque::new(),
            };
            for op in ops {
                let now = Instant::now().duration_since(t0).as_nanos();
                model.forget_before(now);
                match op {
                    Op::Deposit(n) => {
                        for _ in 0..n {
                            b.deposit();
                            model.deposits.push_back(now);
                        }
                    }
                    Op::Withdraw(n) => {
                        for _ in 0..n {
                            let (low, high) = model.bounds(now);
                            if b.withdraw() {
                                prop_assert!(high >= SCALE, "granted with {high} units at most");
                                model.withdrawals.push_back(now);
                            } else {
                                prop_assert!(low < SCALE, "refused with {low} units at least");
                            }
                        }
                    }
                    Op::Advance(ms) => advance(Duration::from_millis(u64::from(ms))).await,
                }
                let now = Instant::now().duration_since(t0).as_nanos();
                let (low, high) = model.bounds(now);
                let available = b.available();
                prop_assert!(
                    (retries(low)..=retries(high)).contains(&available),
                    "available {} not in {}..={}", available, retries(low), retries(high)
                );
            }
            Ok(())
        })?;
    }

    #[test]
    fn new_never_panics(
        window_nanos in 0u64..=120_000_000_000,
        min_per_sec in any::<u32>(),
        ratio in any::<f32>(),
    ) {
        let window = Duration::from_nanos(window_nanos);
        let valid = (MIN_WINDOW..=MAX_WINDOW).contains(&window)
            && (0.0..=MAX_RATIO).contains(&ratio);
        match RetryBudget::new(window, min_per_sec, ratio) {
            Ok(b) => {
                prop_assert!(valid);
                b.deposit();
                let _ = b.withdraw();
                let _ = b.available();
            }
            Err(_) => prop_assert!(!valid),
        }
    }
}
