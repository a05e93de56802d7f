//! A retry budget: retries capped as a share of recent traffic, lock-free.
//!
//! tower's `TpsBudget` has the same semantics (both come from Finagle) but locks a mutex on
//! every call to rotate its window. Here the window is a ring of buckets tagged with the
//! epoch they count for: a stale bucket is reset by the first thread that needs it, with a
//! compare-and-swap on its tag, so no call ever waits for another.

use std::{
    fmt,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use crate::{
    internal::{
        buckets::{Epochs, Ring},
        clock::Nanos,
        padded::Padded,
        thread_index::{places_per_machine, thread_index},
    },
    InvalidConfig,
};

/// The counts of a bucket.
/// The one count of a lane's ring of deposits and of the ring of withdrawals.
const COUNT: usize = 0;
/// Fixed-point units per retry: the ratio is kept in millionths of a retry, so that the
/// balance is integer arithmetic on plain atomics.
const SCALE: i128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
const MIN_WINDOW: Duration = Duration::from_secs(1);
const MAX_WINDOW: Duration = Duration::from_secs(60);
const MAX_RATIO: f32 = 1000.0;

/// A retry budget: retries may be at most `retry_ratio` of the requests of the last `window`,
/// plus a reserve of `min_per_sec` retries per second.
///
/// Every original request [deposits](RetryBudget::deposit) `retry_ratio` of a retry; before
/// every retry the caller [withdraws](RetryBudget::withdraw) a whole one, and does not retry
/// when the budget refuses. Deposits and withdrawals both leave the budget when they leave
/// the sliding `window`: earned retries expire, and spent ones come back. The reserve lets a
/// client that sends few requests still retry; because withdrawals age out, it refills as the
/// window slides.
///
/// # Why a budget and not only a maximum number of retries?
///
/// A maximum per request (urllib3's `Retry(total=3)`) bounds how often one request is tried,
/// not how much load the retries add. When a backend starts failing, every client retries
/// every request: with 3 retries each, a fleet of clients sends up to four times its usual
/// load to the backend that is already struggling, which makes it fail more and brings more
/// retries. This is a retry storm, and clients of clients that also retry multiply it. A
/// budget caps retries as a share of the traffic instead: with a `retry_ratio` of 0.2,
/// retries add at most 20% of the requests plus the reserve, however bad the failures get.
/// Finagle's
/// `RetryBudget`, Envoy's `retry_budget`, gRPC's `retryThrottling` and the AWS SDKs' retry
/// quotas all work this way. Use both: the maximum for each request, the budget for the
/// whole client.
///
/// # How much load an outage adds
///
/// The reserve dominates at low traffic: it is a fixed number of retries per window, so
/// the fewer the requests, the larger the share it adds. With the
/// [production preset](super::RetryPolicy::production) (10 s window, 10 retries per
/// second, 0.2) and only the retry layer, a total outage (every attempt fails) makes the
/// backend see, per request sent:
///
/// | traffic during the outage | calls per request |
/// |---|---|
/// | a burst of 200 requests | 1.70 (40 earned + 100 reserve retries) |
/// | 200 req/s for 2 s | 1.45 |
/// | 200 req/s for 30 s | 1.25 |
/// | 20,000 req/s for 2 s | 1.20 |
///
/// So 1.2x (one plus `retry_ratio`) is the bound at high traffic only; at `r` requests
/// per second sustained, the bound is `1 + retry_ratio + min_per_sec / r`. The figures
/// are measured on tokio's paused clock by `tests/retry/amplification.rs`, which fails if
/// they change.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::retry::RetryBudget;
///
/// // Retries may add 20% to the requests of the last 10 s, plus 10 retries per second.
/// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
///
/// // The reserve: min_per_sec * window.
/// assert_eq!(budget.available(), 10 * 10);
///
/// // Each original request earns retry_ratio of a retry.
/// for _ in 0..1_000 {
///     budget.deposit();
/// }
/// assert_eq!(budget.available(), 10 * 10 + 1_000 / 5);
///
/// // Before each retry: no retry when the budget refuses.
/// if budget.withdraw() {
///     // ... send the request again
/// }
/// assert_eq!(budget.available(), 299);
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
///
/// # Clone
///
/// Clones share one budget (an [`Arc`] inside): give a clone to every service that retries
/// against the same backend, and the cap holds for all of them together.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::retry::RetryBudget;
///
/// let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.0)?;
/// let clone = budget.clone();
/// assert!(clone.withdraw());
/// assert_eq!(budget.available(), 9);
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
///
/// # Accuracy
///
/// The window is counted in 10 buckets of `window / 10`, so a deposit or withdrawal leaves
/// the budget between 0.9 and 1.0 `window` after it was made, all those of one bucket at
/// once. The budget is lock-free and approximate at the scale of a few calls: a deposit
/// that races with the reset of a bucket at a bucket boundary is lost, a withdrawal that
/// races with it is refused, and a withdrawal ignores deposits made while it runs.
/// Concurrent withdrawals never spend more than the balance, across a reset too (a loom
/// model checks it).
///
/// # Cost
///
/// [`deposit`](RetryBudget::deposit) reads the clock once (tokio's, to find its bucket),
/// loads the bucket's tag and adds one to its counter, in a lane of the calling thread's
/// (threads deposit on cache lines of their own; withdrawals and the balance sum the
/// lanes); it does nothing at all when
/// `retry_ratio` is 0. [`withdraw`](RetryBudget::withdraw) reads the clock, the 10
/// buckets and takes its retry with one compare-and-swap. No call locks or allocates.
///
/// # Time
///
/// Time is tokio's clock, measured from the budget's construction, so tests can drive it
/// with `tokio::time::pause` and `advance`. Outside a runtime it is the system's monotonic
/// clock; use a budget under one clock only (not built under a paused runtime and then used
/// from plain threads).
#[derive(Clone)]
pub struct RetryBudget {
    // `None` is the unlimited budget: nothing to count, nothing to share.
    shared: Option<Arc<Shared>>,
}

struct Shared {
    start: Nanos,
    epochs: Epochs,
    /// `min_per_sec * window`, in units.
    reserve: i128,
    /// `retry_ratio`, in units earned per deposit.
    deposit_units: i128,
    /// Deposits, by tenth of the window, in lanes: each thread adds to its own lane's
    /// ring (a power of two of them, each on cache lines of its own), so that the threads
    /// of a runtime, which deposit for every call, do not pass one counter's line between
    /// their cores. A balance sums the lanes.
    deposits: Box<[Padded<Ring<1>>]>,
    /// Withdrawals, by tenth of the window: one ring, whose compare-and-swap keeps
    /// concurrent withdrawals from overspending.
    withdrawals: Ring<1>,
    // The settings as given, for `Debug`.
    window: Duration,
    min_per_sec: u32,
    retry_ratio: f32,
}

// ===== impl RetryBudget =====

impl RetryBudget {
    /// Creates a budget that allows retries of up to `retry_ratio` of the requests of the last
    /// `window`, plus a reserve of `min_per_sec` retries per second of the window.
    ///
    /// - `window`: how long a deposit or withdrawal counts, from 1 s to 60 s.
    /// - `min_per_sec`: the reserve, for clients that send few requests; it holds
    ///   `min_per_sec * window` retries (rounded down), refilled as withdrawals age out.
    ///   0 means retries are only earned by requests.
    /// - `retry_ratio`: the retries each request earns, from 0.0 to 1000.0: 0.2 means
    ///   retries may be 20% of the requests, 2.0 means two retries per request. Precise to
    ///   a millionth.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming `budget_window` when `window` is under 1 s or over 60 s, or
    /// `budget_retry_ratio` when `retry_ratio` is negative, over 1000 or not a number.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::RetryBudget;
    ///
    /// // Finagle's default: 10 s, 10 retries per second, 20%.
    /// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
    /// assert_eq!(budget.available(), 100);
    ///
    /// let err = RetryBudget::new(Duration::from_secs(10), 10, f32::NAN).unwrap_err();
    /// assert_eq!(err.field(), "budget_retry_ratio");
    /// let err = RetryBudget::new(Duration::from_millis(500), 10, 0.2).unwrap_err();
    /// assert_eq!(err.field(), "budget_window");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn new(
        window: Duration,
        min_per_sec: u32,
        retry_ratio: f32,
    ) -> Result<Self, InvalidConfig> {
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&window) {
            return Err(InvalidConfig::new(
                "budget_window",
                "must be between 1 s and 60 s",
            ));
        }
        // `contains` is false for NaN, and for the infinities.
        if !(0.0..=MAX_RATIO).contains(&retry_ratio) {
            return Err(InvalidConfig::new(
                "budget_retry_ratio",
                "must be a number between 0.0 and 1000.0",
            ));
        }

        // The window is 1 s to 60 s, so all of these are far from their type's limits.
        let window_nanos = window.as_nanos();
        let reserve = u128::from(min_per_sec) * window_nanos * SCALE as u128 / NANOS_PER_SEC;
        let deposit_units = (f64::from(retry_ratio) * SCALE as f64).round() as i128;

        Ok(RetryBudget {
            shared: Some(Arc::new(Shared {
                start: Nanos::now(),
                epochs: Epochs::new(window_nanos),
                reserve: i128::try_from(reserve).unwrap_or(i128::MAX),
                deposit_units,
                deposits: (0..deposit_lanes())
                    .map(|_| Padded(Ring::default()))
                    .collect(),
                withdrawals: Ring::default(),
                window,
                min_per_sec,
                retry_ratio,
            })),
        })
    }

    /// A budget that never refuses: [`withdraw`](RetryBudget::withdraw) is always `true`, as
    /// with urllib3, which has no budget. Retries are then bounded by the retry policy alone.
    ///
    /// ```
    /// use tower_fortify::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::unlimited();
    /// assert!((0..1_000).all(|_| budget.withdraw()));
    /// assert_eq!(budget.available(), u64::MAX);
    /// ```
    pub const fn unlimited() -> Self {
        RetryBudget { shared: None }
    }

    /// Records one original request (not a retry): it earns `retry_ratio` of a retry, for
    /// `window`.
    ///
    /// Call it once per request, whatever its outcome; retries of the request do not deposit.
    /// It reads the clock once, unless `retry_ratio` is 0 (then deposits earn nothing and
    /// this does nothing).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::RetryBudget;
    ///
    /// // No reserve: retries are only earned, one for every 4 requests.
    /// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.25)?;
    /// assert!(!budget.withdraw());
    /// for _ in 0..8 {
    ///     budget.deposit();
    /// }
    /// assert_eq!(budget.available(), 2);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn deposit(&self) {
        if self.deposits() {
            self.deposit_at(Nanos::now());
        }
    }

    /// Whether a [`deposit`](Self::deposit) counts (and needs the time): a limited budget
    /// with a `retry_ratio` over 0. The retry layer reads the clock once per call for the
    /// budget and the deadline, and only if one of them needs it.
    #[inline]
    pub(crate) fn deposits(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.deposit_units != 0)
    }

    /// [`deposit`](Self::deposit) at `now`.
    #[inline]
    pub(crate) fn deposit_at(&self, now: Nanos) {
        if let Some(shared) = &self.shared {
            if shared.deposit_units != 0 {
                shared.deposit(now);
            }
        }
    }

    /// Tries to spend one retry: `false` when the budget is exhausted, and then the retry
    /// must not be made.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::RetryBudget;
    ///
    /// // A reserve of 2 retries (1 per second for 2 s), none earned.
    /// let budget = RetryBudget::new(Duration::from_secs(2), 1, 0.0)?;
    /// assert!(budget.withdraw());
    /// assert!(budget.withdraw());
    /// assert!(!budget.withdraw());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn withdraw(&self) -> bool {
        self.withdraw_at(Nanos::now())
    }

    /// [`withdraw`](Self::withdraw) at `now`.
    pub(crate) fn withdraw_at(&self, now: Nanos) -> bool {
        match &self.shared {
            Some(shared) => shared.withdraw(now),
            None => true,
        }
    }

    /// The number of retries that could be made now (rounded down), for metrics and tests;
    /// `u64::MAX` for an [`unlimited`](RetryBudget::unlimited) budget.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.3)?;
    /// for _ in 0..3 {
    ///     budget.deposit();
    /// }
    /// // 0.9 of a retry earned: not yet a whole one.
    /// assert_eq!(budget.available(), 0);
    /// budget.deposit();
    /// assert_eq!(budget.available(), 1);
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn available(&self) -> u64 {
        match &self.shared {
            Some(shared) => shared.available(),
            None => u64::MAX,
        }
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shared {
            Some(shared) => f
                .debug_struct("RetryBudget")
                .field("window", &shared.window)
                .field("min_per_sec", &shared.min_per_sec)
                .field("retry_ratio", &shared.retry_ratio)
                .field("available", &shared.available())
                .finish(),
            None => f
                .debug_struct("RetryBudget")
                .field("unlimited", &true)
                .finish(),
        }
    }
}

/// How many lanes of deposits a budget has: [`places_per_machine`], at most 16, a power of
/// two.
fn deposit_lanes() -> usize {
    places_per_machine(16).next_power_of_two()
}

// ===== impl Shared =====

impl Shared {
    fn deposit(&self, now: Nanos) {
        // The length is a power of two.
        let lane = &self.deposits[thread_index() & (self.deposits.len() - 1)];
        // Lost while another thread resets the bucket (the module's documented inaccuracy).
        if let Some((bucket, _)) = lane.claim(self.epoch_at(now)) {
            bucket.add_one(COUNT);
        }
    }

    fn withdraw(&self, now: Nanos) -> bool {
        // Refused while another thread resets the bucket: the budget never overspends.
        let Some((bucket, epoch)) = self.withdrawals.claim(self.epoch_at(now)) else {
            return false;
        };
        // Everything but this bucket's withdrawals, which the loop below owns.
        let rest = self.balance(epoch, false);
        let withdrawals = bucket.count(COUNT);
        let mut taken = withdrawals.load(Ordering::Acquire);
        loop {
            let Some(next) = taken.checked_add(1) else {
                return false;
            };
            if rest.saturating_sub(SCALE.saturating_mul(i128::from(next))) < 0 {
                return false;
            }
            // A compare-and-swap rather than add-then-undo: only a withdrawal that fits is
            // ever counted, so racing withdrawals neither overspend nor refuse each other.
            match withdrawals.compare_exchange_weak(
                taken,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => taken = actual,
            }
        }
    }

    fn available(&self) -> u64 {
        let units = self.balance(self.epoch_at(Nanos::now()), true);
        if units <= 0 {
            0
        } else {
            u64::try_from(units / SCALE).unwrap_or(u64::MAX)
        }
    }

    /// The epoch (the number of whole buckets since the start) of `now`.
    fn epoch_at(&self, now: Nanos) -> u64 {
        // u64 nanoseconds last 584 years; past that the epoch stays the last one.
        self.epochs.at(now.get().saturating_sub(self.start.get()))
    }

    /// The balance at `epoch`, in units: the reserve, plus what the deposits of the window
    /// earned, minus its withdrawals (without those of `epoch`'s own bucket unless
    /// `all_withdrawals`).
    fn balance(&self, epoch: u64, all_withdrawals: bool) -> i128 {
        let mut deposits: i128 = 0;
        let mut withdrawals: i128 = 0;
        for lane in self.deposits.iter() {
            for (bucket, _) in lane.live(epoch) {
                deposits = deposits.saturating_add(i128::from(bucket.get(COUNT)));
            }
        }
        for (bucket, tag) in self.withdrawals.live(epoch) {
            if all_withdrawals || tag != epoch {
                withdrawals = withdrawals.saturating_add(i128::from(bucket.get(COUNT)));
            }
        }
        self.reserve
            .saturating_add(self.deposit_units.saturating_mul(deposits))
            .saturating_sub(SCALE.saturating_mul(withdrawals))
    }
}

#[cfg(test)]
mod tests;

/// Loom model of the budget's ring (see `internal::sync` for how to run them). Time is
/// passed in (`deposit_at`, `withdraw_at`), so the model chooses the instants.
#[cfg(all(test, fortify_loom))]
mod loom {
    use super::*;
    use crate::internal::sync::Arc;

    /// Across a bucket roll-over the budget is never overspent: a 1 s window (ten buckets
    /// of 100 ms) with a reserve of two retries. In the first bucket one retry is spent.
    /// One window later that bucket comes round again: two threads withdraw twice each
    /// and a third deposits, racing the reset of the stale bucket. The old withdrawal has
    /// aged out, so two retries may be taken (the deposit adds half of one) and no more;
    /// the balance is never negative.
    ///
    /// What it caught: a real bug, not a seeded one. The ring published a bucket's new tag
    /// before it zeroed the counts, so a withdrawal made in between was wiped by the reset
    /// and the budget allowed three withdrawals where two fit; a bucket being reset is now
    /// marked as such and a call that finds it so is refused.
    #[test]
    fn loom_the_budget_is_never_overspent_across_a_roll_over() {
        ::loom::model(|| {
            let budget = Arc::new(RetryBudget::new(Duration::from_secs(1), 2, 0.5).unwrap());
            let start = budget.shared.as_ref().unwrap().start;
            let at = |ms| start.saturating_add(Duration::from_millis(ms));
            assert!(budget.withdraw_at(at(50)));
            let later = at(1_050);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let budget = Arc::clone(&budget);
                    ::loom::thread::spawn(move || {
                        usize::from(budget.withdraw_at(later))
                            + usize::from(budget.withdraw_at(later))
                    })
                })
                .collect();
            budget.deposit_at(later);
            let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert!(taken <= 2, "{taken} withdrawals where 2 were allowed");
            let shared = budget.shared.as_ref().unwrap();
            let balance = shared.balance(shared.epoch_at(later), true);
            assert!(balance >= 0, "a negative balance: {balance}");
        });
    }
}
