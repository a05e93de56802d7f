//! The sleep before each retry: urllib3's exponential backoff and jitter strategies.
//!
//! urllib3 adds its jitter *before* applying the cap, so once the exponential part reaches
//! the cap every client sleeps exactly the cap. [`Jitter`] explains why that matters and
//! offers strategies that keep the randomness below the cap.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The largest `f64` below 1: where a draw of 1 or more is clamped to.
const BELOW_ONE: f64 = 1.0 - f64::EPSILON / 2.0;

/// How randomness is mixed into a [`Backoff`].
///
/// All strategies start from the capped exponential `c = min(max, factor * 2^(k-1))` for
/// retry number `k >= 2`, and take `u`, a uniform draw in `[0, 1)`:
///
/// | strategy | sleep | range once `c == max` |
/// |---|---|---|
/// | [`Additive`](Self::Additive) (urllib3) | `min(max, factor * 2^(k-1) + u * additive_jitter)` | exactly `max` |
/// | [`Full`](Self::Full) | `u * c` | `[0, max)` |
/// | [`Equal`](Self::Equal) | `c/2 + u * c/2` | `[max/2, max)` |
/// | [`Decorrelated`](Self::Decorrelated) | `low + u * (high - low)`, `low = min(factor, max)`, `high = min(max, max(factor, previous * 3))` | `[factor, max)` |
///
/// # Why the place of the cap matters
///
/// urllib3 adds its jitter and *then* caps. In a long outage the exponential part soon
/// exceeds `max`, so `min(max, exponential + jitter)` is `max` whatever the draw: the jitter
/// disappears exactly when it is needed. Every client of a fleet that failed together then
/// waits exactly `max` between attempts, and they hit the recovering server in lockstep,
/// every `max`, as one thundering herd.
///
/// [`Full`](Self::Full), [`Equal`](Self::Equal) and [`Decorrelated`](Self::Decorrelated)
/// cap first and randomise *below* the cap, so their sleeps stay spread over `[0, max)`,
/// `[max/2, max)` and `[factor, max)` however long the outage lasts. Decorrelated (AWS's
/// formula, with the cap moved before the draw) draws up to three times the client's own
/// previous sleep, capped at `max`: since each client's range follows its own previous
/// sleep, a fleet that failed together drifts apart instead of staying in lockstep.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::retry::{Backoff, Jitter};
///
/// // Retry 20 of a long outage: the exponential part is far above the cap.
/// let backoff = Backoff::new(Duration::from_millis(200))
///     .max(Duration::from_secs(120))
///     .additive_jitter(Duration::from_secs(1));
/// let max = Duration::from_secs(120);
///
/// // urllib3: whatever the draw, the sleep is the cap.
/// assert_eq!(backoff.sleep(20, max, 0.1), max);
/// assert_eq!(backoff.sleep(20, max, 0.9), max);
///
/// // Full jitter: u * max.
/// let full = backoff.jitter(Jitter::Full);
/// assert_eq!(full.sleep(20, max, 0.25), Duration::from_secs(30));
///
/// // Equal jitter: max/2 + u * max/2.
/// let equal = backoff.jitter(Jitter::Equal);
/// assert_eq!(equal.sleep(20, max, 0.5), Duration::from_secs(90));
///
/// // Decorrelated: factor + u * (min(max, previous * 3) - factor).
/// let decorrelated = backoff.jitter(Jitter::Decorrelated);
/// assert_eq!(
///     decorrelated.sleep(20, Duration::from_secs(10), 0.5),
///     Duration::from_millis(200 + (30_000 - 200) / 2),
/// );
/// // Three times the previous sleep is above the cap: the draw is below the cap, not
/// // clamped to it.
/// assert_eq!(
///     decorrelated.sleep(20, Duration::from_secs(100), 0.5),
///     Duration::from_millis(200 + (120_000 - 200) / 2),
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// urllib3's formula (the default):
    /// `min(max, factor * 2^(k-1) + u * additive_jitter)`.
    ///
    /// The jitter is added before the cap, so once the exponential part reaches `max` every
    /// sleep is exactly `max`.
    #[default]
    Additive,
    /// AWS's "full jitter": `u * min(max, factor * 2^(k-1))`. The randomness stays below
    /// the cap.
    Full,
    /// "Equal jitter": `c/2 + u * c/2` with `c = min(max, factor * 2^(k-1))`: at least half
    /// the exponential sleep, and the randomness stays below the cap.
    Equal,
    /// AWS's "decorrelated jitter", capped before the draw: `low + u * (high - low)` with
    /// `low = min(factor, max)` and `high = min(max, max(factor, previous * 3))`, where
    /// `previous` is the sleep before the previous retry (zero before the first). The
    /// randomness stays below the cap.
    Decorrelated,
}

/// How long to sleep before each retry: urllib3's `backoff_factor`, `backoff_max` and
/// `backoff_jitter`, with a choice of [`Jitter`] strategy.
///
/// The first retry is immediate. Before retry `k >= 2` the sleep is, with the default
/// [`Jitter::Additive`], `min(max, factor * 2^(k-1) + u * additive_jitter)`, exactly as
/// urllib3 computes it. The exponential part is exact [`Duration`] arithmetic, so urllib3's
/// sequences come out exactly; only the random part goes through floating point.
///
/// Every strategy's sleep is at most `max`, and no input (any retry number up to
/// `u32::MAX`, any durations, any `u`) overflows or panics. See [`Jitter`] for why urllib3's
/// formula makes a fleet retry in lockstep during a long outage, and the strategies that
/// avoid it.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::retry::Backoff;
///
/// // urllib3's documented sequence for backoff_factor = 0.2 and the default 120 s cap.
/// let backoff = Backoff::new(Duration::from_millis(200));
/// let sleeps: Vec<Duration> = (1..=12).map(|k| backoff.sleep(k, Duration::ZERO, 0.5)).collect();
/// let millis = [0, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 120_000, 120_000];
/// assert_eq!(sleeps, millis.map(Duration::from_millis));
///
/// // The same with backoff_max = 1 s.
/// let capped = backoff.max(Duration::from_secs(1));
/// let sleeps: Vec<Duration> = (1..=6).map(|k| capped.sleep(k, Duration::ZERO, 0.5)).collect();
/// assert_eq!(sleeps, [0, 400, 800, 1_000, 1_000, 1_000].map(Duration::from_millis));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    factor: Duration,
    max: Duration,
    additive_jitter: Duration,
    jitter: Jitter,
}

// ===== impl Backoff =====

impl Backoff {
    /// urllib3's default `backoff_max`.
    const DEFAULT_MAX: Duration = Duration::from_secs(120);

    /// Exponential backoff with urllib3's `backoff_factor`: a cap of 120 s, no additive
    /// jitter, and [`Jitter::Additive`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::{Backoff, Jitter};
    ///
    /// const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1));
    /// let urllib3 = Backoff::new(Duration::from_secs(1))
    ///     .max(Duration::from_secs(120))
    ///     .additive_jitter(Duration::ZERO)
    ///     .jitter(Jitter::Additive);
    /// assert_eq!(BACKOFF, urllib3);
    /// // factor * 2^(k-1): 1 s * 2^2 before the third retry.
    /// assert_eq!(BACKOFF.sleep(3, Duration::ZERO, 0.5), Duration::from_secs(4));
    /// ```
    pub const fn new(factor: Duration) -> Self {
        Self {
            factor,
            max: Self::DEFAULT_MAX,
            additive_jitter: Duration::ZERO,
            jitter: Jitter::Additive,
        }
    }

    /// No backoff: a zero factor, so retries are immediate (urllib3's default). This is
    /// also [`Backoff::default`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::Backoff;
    ///
    /// let backoff = Backoff::none();
    /// assert_eq!(backoff, Backoff::default());
    /// assert!((1..=100).all(|k| backoff.sleep(k, Duration::ZERO, 0.5).is_zero()));
    /// ```
    pub const fn none() -> Self {
        Self::new(Duration::ZERO)
    }

    /// Sets the cap on every sleep (urllib3's `backoff_max`, 120 s by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::Backoff;
    ///
    /// let backoff = Backoff::new(Duration::from_secs(1)).max(Duration::from_secs(5));
    /// // min(5 s, 1 s * 2^9)
    /// assert_eq!(backoff.sleep(10, Duration::ZERO, 0.5), Duration::from_secs(5));
    /// ```
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets urllib3's `backoff_jitter`: `u * additive_jitter` is added to the exponential part
    /// before the cap. Only [`Jitter::Additive`] uses it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::Backoff;
    ///
    /// let backoff = Backoff::new(Duration::from_secs(1)).additive_jitter(Duration::from_secs(1));
    /// // min(120 s, 1 s * 2^2 + 0.5 * 1 s)
    /// assert_eq!(backoff.sleep(3, Duration::ZERO, 0.5), Duration::from_millis(4_500));
    /// ```
    pub const fn additive_jitter(mut self, additive_jitter: Duration) -> Self {
        self.additive_jitter = additive_jitter;
        self
    }

    /// Sets the [`Jitter`] strategy ([`Jitter::Additive`] by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::{Backoff, Jitter};
    ///
    /// let backoff = Backoff::new(Duration::from_secs(1)).jitter(Jitter::Full);
    /// // u * min(120 s, 1 s * 2^2)
    /// assert_eq!(backoff.sleep(3, Duration::ZERO, 0.25), Duration::from_secs(1));
    /// ```
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    // Read by the policy; a backoff is a configuration value, with setters only.

    pub(crate) const fn factor_value(&self) -> Duration {
        self.factor
    }

    pub(crate) const fn max_value(&self) -> Duration {
        self.max
    }

    pub(crate) const fn additive_jitter_value(&self) -> Duration {
        self.additive_jitter
    }

    pub(crate) const fn jitter_value(&self) -> Jitter {
        self.jitter
    }

    /// The sleep before retry number `retry` (1 is the first retry).
    ///
    /// `previous` is the sleep this backoff returned before the previous retry
    /// ([`Duration::ZERO`] before the first); only [`Jitter::Decorrelated`] uses it. `u` is a
    /// uniform random draw in `[0, 1)`; a value outside that range is clamped into it, and
    /// NaN counts as 0.
    ///
    /// `retry <= 1` gives zero for every strategy: urllib3 makes the first retry at once.
    /// The result never exceeds the cap ([`max`](Self::max)), and no input overflows or
    /// panics: an exponential part too large for a [`Duration`] counts as "at least `max`".
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::{Backoff, Jitter};
    ///
    /// let s = Duration::from_secs;
    /// let backoff = Backoff::new(s(1)).max(s(100)).additive_jitter(s(2));
    ///
    /// // The first retry is immediate, whatever the strategy.
    /// assert_eq!(backoff.sleep(1, Duration::ZERO, 0.5), Duration::ZERO);
    ///
    /// // Additive: min(max, factor * 2^(k-1) + u * additive_jitter)
    /// assert_eq!(backoff.sleep(4, Duration::ZERO, 0.5), s(8) + s(1));
    /// assert_eq!(backoff.sleep(8, Duration::ZERO, 0.5), s(100)); // min(100, 128 + 1)
    ///
    /// // Full: u * min(max, factor * 2^(k-1))
    /// let full = backoff.jitter(Jitter::Full);
    /// assert_eq!(full.sleep(4, Duration::ZERO, 0.5), s(4));
    /// assert_eq!(full.sleep(8, Duration::ZERO, 0.5), s(50));
    ///
    /// // Equal: c/2 + u * c/2, c = min(max, factor * 2^(k-1))
    /// let equal = backoff.jitter(Jitter::Equal);
    /// assert_eq!(equal.sleep(4, Duration::ZERO, 0.5), s(4) + s(2));
    /// assert_eq!(equal.sleep(8, Duration::ZERO, 0.5), s(50) + s(25));
    ///
    /// // Decorrelated: low + u * (high - low),
    /// // low = min(factor, max), high = min(max, max(factor, previous * 3))
    /// let decorrelated = backoff.jitter(Jitter::Decorrelated);
    /// assert_eq!(decorrelated.sleep(2, Duration::ZERO, 0.5), s(1));
    /// assert_eq!(decorrelated.sleep(3, s(5), 0.5), s(1) + s(7));
    /// // 1 + 0.5 * (min(100, 300) - 1): below the cap, not clamped to it.
    /// assert_eq!(decorrelated.sleep(9, s(100), 0.5), Duration::from_millis(50_500));
    ///
    /// // A draw outside [0, 1) is clamped; NaN counts as 0.
    /// assert_eq!(backoff.sleep(4, Duration::ZERO, f64::NAN), s(8));
    /// assert_eq!(backoff.sleep(4, Duration::ZERO, -3.0), s(8));
    /// assert_eq!(backoff.sleep(4, Duration::ZERO, 7.0), backoff.sleep(4, Duration::ZERO, 1.0));
    /// assert!(backoff.sleep(4, Duration::ZERO, 7.0) <= s(8) + s(2));
    /// ```
    pub fn sleep(&self, retry: u32, previous: Duration, u: f64) -> Duration {
        if retry <= 1 {
            return Duration::ZERO;
        }
        let u = clamp_unit(u);
        match self.jitter {
            Jitter::Additive => {
                // Capped first so that the sum cannot overflow; since the jitter is not
                // negative, capping before or after adding it gives the same min.
                let exponential = self.capped_exponential(retry);
                exponential
                    .saturating_add(scale(self.additive_jitter, u))
                    .min(self.max)
            }
            Jitter::Full => scale(self.capped_exponential(retry), u),
            Jitter::Equal => {
                let c = self.capped_exponential(retry);
                let half = c / 2;
                half + scale(c - half, u)
            }
            Jitter::Decorrelated => {
                // Capped first, then randomised below the cap: the sum is at most `high`,
                // which is at most `max`, so it cannot overflow.
                let low = self.factor.min(self.max);
                let high = low.max(self.max.min(previous.saturating_mul(3)));
                low + scale(high - low, u)
            }
        }
    }

    /// `min(max, factor * 2^(retry-1))`, exactly, for `retry >= 1`.
    fn capped_exponential(&self, retry: u32) -> Duration {
        let factor = self.factor.as_nanos();
        if factor == 0 {
            return Duration::ZERO;
        }
        let shift = retry.saturating_sub(1);
        // A shift that would push bits out means a product far beyond any Duration.
        if shift >= u128::BITS || factor > u128::MAX >> shift {
            return self.max;
        }
        let nanos = factor << shift;
        if nanos >= self.max.as_nanos() {
            return self.max;
        }
        // Below max, so the seconds fit in a u64.
        let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
        let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
        Duration::new(secs, subsec)
    }
}

impl Default for Backoff {
    /// [`Backoff::none`]: retries are immediate.
    fn default() -> Self {
        Self::none()
    }
}

/// Clamps a draw into `[0, 1)`; NaN becomes 0.
fn clamp_unit(u: f64) -> f64 {
    if u.is_nan() || u <= 0.0 {
        0.0
    } else if u >= 1.0 {
        BELOW_ONE
    } else {
        u
    }
}

/// `d * u` for `u` in `[0, 1)`, never more than `d`.
fn scale(d: Duration, u: f64) -> Duration {
    // Not `mul_f64`: it panics on overflow, and rounding through f64 could exceed `d`.
    Duration::try_from_secs_f64(d.as_secs_f64() * u).map_or(d, |scaled| scaled.min(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Jitter; 4] = [
        Jitter::Additive,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// `min(max, factor * 2^(retry-1))` by repeated doubling: independent of the u128 code.
    fn reference_capped(factor: Duration, max: Duration, retry: u32) -> Duration {
        let mut d = factor;
        for _ in 1..retry {
            if d.is_zero() || d >= max {
                break;
            }
            d *= 2;
        }
        d.min(max)
    }

    /// A tiny xorshift64: deterministic draws without a `rand` dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next_unit(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            // The top 53 bits, as a float in [0, 1).
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn urllib3_sequence_factor_200ms() {
        let backoff = Backoff::new(ms(200));
        let expected = [
            0, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 120_000, 120_000,
        ];
        for (k, want) in (1..=12).zip(expected) {
            for u in [0.0, 0.5, 0.999] {
                assert_eq!(backoff.sleep(k, Duration::ZERO, u), ms(want), "retry {k}");
            }
        }
    }

    #[test]
    fn urllib3_sequence_factor_200ms_max_1s() {
        let backoff = Backoff::new(ms(200)).max(secs(1));
        let expected = [0, 400, 800, 1_000, 1_000, 1_000];
        for (k, want) in (1..=6).zip(expected) {
            assert_eq!(backoff.sleep(k, Duration::ZERO, 0.3), ms(want), "retry {k}");
        }
    }

    #[test]
    fn additive_jitter_is_exact_for_a_fixed_draw() {
        let backoff = Backoff::new(secs(1)).additive_jitter(secs(1));
        assert_eq!(backoff.sleep(3, Duration::ZERO, 0.5), ms(4_500));
        assert_eq!(backoff.sleep(2, Duration::ZERO, 0.25), ms(2_250));
        assert_eq!(backoff.sleep(3, Duration::ZERO, 0.0), secs(4));
    }

    #[test]
    fn additive_jitter_is_capped_after_it_is_added() {
        // urllib3: min(max, exp + jitter), so 4 s + 0.5 s is cut to 4.2 s.
        let backoff = Backoff::new(secs(1))
            .additive_jitter(secs(1))
            .max(ms(4_200));
        assert_eq!(backoff.sleep(3, Duration::ZERO, 0.5), ms(4_200));
        assert_eq!(backoff.sleep(3, Duration::ZERO, 0.1), ms(4_100));
    }

    #[test]
    fn zero_factor_still_applies_additive_jitter() {
        // urllib3: 0 * 2^(k-1) + random() * backoff_jitter.
        let backoff = Backoff::none().additive_jitter(secs(2));
        assert_eq!(backoff.sleep(1, Duration::ZERO, 0.5), Duration::ZERO);
        assert_eq!(backoff.sleep(2, Duration::ZERO, 0.5), secs(1));
        assert_eq!(backoff.sleep(50, Duration::ZERO, 0.25), ms(500));
    }

    #[test]
    fn first_retry_is_immediate_for_every_strategy() {
        for jitter in ALL {
            let backoff = Backoff::new(secs(1))
                .additive_jitter(secs(1))
                .jitter(jitter);
            for retry in [0, 1] {
                assert_eq!(backoff.sleep(retry, secs(60), 0.9), Duration::ZERO);
            }
        }
    }

    #[test]
    fn strategies_for_fixed_draws() {
        let backoff = Backoff::new(secs(1));
        assert_eq!(
            backoff.jitter(Jitter::Full).sleep(3, Duration::ZERO, 0.5),
            secs(2)
        );
        assert_eq!(
            backoff.jitter(Jitter::Equal).sleep(3, Duration::ZERO, 0.5),
            secs(3)
        );
        assert_eq!(
            backoff.jitter(Jitter::Decorrelated).sleep(3, secs(2), 0.5),
            ms(3_500)
        );
        // Decorrelated ignores the retry number beyond the first.
        assert_eq!(
            backoff
                .jitter(Jitter::Decorrelated)
                .sleep(2, Duration::ZERO, 0.9),
            secs(1)
        );
    }

    #[test]
    fn decorrelated_caps_before_it_randomises() {
        let backoff = Backoff::new(secs(1))
            .max(secs(10))
            .jitter(Jitter::Decorrelated);
        // high = min(10, 3 * 100) = 10: 1 + u * 9, not min(10, 1 + u * 299).
        assert_eq!(backoff.sleep(5, secs(100), 0.0), secs(1));
        assert_eq!(backoff.sleep(5, secs(100), 0.5), ms(5_500));
        assert_eq!(backoff.sleep(5, secs(100), 0.9), ms(9_100));
        assert!(backoff.sleep(5, secs(100), BELOW_ONE) <= secs(10));
        // A previous sleep whose triple overflows saturates to the cap.
        assert_eq!(backoff.sleep(5, Duration::MAX, 0.5), ms(5_500));
        // Below the cap, the range is [factor, 3 * previous].
        assert_eq!(backoff.sleep(5, secs(2), 0.5), ms(3_500));
    }

    #[test]
    fn decorrelated_with_a_factor_above_the_cap_sleeps_the_cap() {
        let backoff = Backoff::new(secs(10))
            .max(secs(4))
            .jitter(Jitter::Decorrelated);
        for previous in [Duration::ZERO, secs(1), secs(100), Duration::MAX] {
            for u in [0.0, 0.5, BELOW_ONE] {
                assert_eq!(backoff.sleep(3, previous, u), secs(4));
            }
        }
    }

    #[test]
    fn draws_outside_the_unit_interval_are_clamped() {
        for jitter in ALL {
            let backoff = Backoff::new(secs(1))
                .additive_jitter(secs(1))
                .jitter(jitter);
            let at_zero = backoff.sleep(5, secs(10), 0.0);
            assert_eq!(backoff.sleep(5, secs(10), f64::NAN), at_zero);
            assert_eq!(backoff.sleep(5, secs(10), -1.0), at_zero);
            assert_eq!(backoff.sleep(5, secs(10), f64::NEG_INFINITY), at_zero);
            let at_top = backoff.sleep(5, secs(10), BELOW_ONE);
            assert_eq!(backoff.sleep(5, secs(10), 1.0), at_top);
            assert_eq!(backoff.sleep(5, secs(10), f64::INFINITY), at_top);
        }
    }

    #[test]
    fn extreme_inputs_neither_overflow_nor_panic() {
        let durations = [
            Duration::ZERO,
            Duration::from_nanos(1),
            secs(1),
            Duration::MAX,
        ];
        let retries = [2, 63, 64, 65, 127, 128, 129, 1_000, u32::MAX - 1, u32::MAX];
        let draws = [0.0, 0.5, BELOW_ONE, 1.0, f64::MAX, f64::NAN];
        for jitter in ALL {
            for factor in durations {
                for max in durations {
                    for extra in durations {
                        let backoff = Backoff::new(factor)
                            .max(max)
                            .additive_jitter(extra)
                            .jitter(jitter);
                        for retry in retries {
                            for u in draws {
                                assert!(backoff.sleep(retry, extra, u) <= max);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn huge_exponent_means_max() {
        let backoff = Backoff::new(Duration::from_nanos(1)).max(Duration::MAX);
        assert_eq!(backoff.sleep(u32::MAX, Duration::ZERO, 0.0), Duration::MAX);
        // 1 ns * 2^63 is exact and far below Duration::MAX.
        assert_eq!(
            backoff.sleep(64, Duration::ZERO, 0.0),
            Duration::from_nanos(1 << 63)
        );
        // 2^90 ns, exact, still below Duration::MAX (about 2^94 ns).
        let nanos = 1u128 << 90;
        let expected = Duration::new(
            (nanos / NANOS_PER_SEC) as u64,
            (nanos % NANOS_PER_SEC) as u32,
        );
        assert_eq!(backoff.sleep(91, Duration::ZERO, 0.0), expected);
        // 2^95 ns is above Duration::MAX: the cap.
        assert_eq!(backoff.sleep(96, Duration::ZERO, 0.0), Duration::MAX);
    }

    #[test]
    fn default_is_none() {
        assert_eq!(Backoff::default(), Backoff::none());
        assert_eq!(Jitter::default(), Jitter::Additive);
    }

    #[test]
    fn long_outage_full_and_decorrelated_stay_below_the_cap_additive_does_not() {
        let max = secs(120);
        let base = Backoff::new(ms(100)).max(max).additive_jitter(secs(1));
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut full_at_max, mut additive_at_max, mut decorrelated_at_max) = (0, 0, 0);
        let mut previous = Duration::ZERO;
        let retries = 20..=1000u32;
        let n = retries.clone().count();
        for retry in retries {
            let u = rng.next_unit();
            if base.jitter(Jitter::Full).sleep(retry, Duration::ZERO, u) == max {
                full_at_max += 1;
            }
            if base.sleep(retry, Duration::ZERO, u) == max {
                additive_at_max += 1;
            }
            previous = base.jitter(Jitter::Decorrelated).sleep(retry, previous, u);
            if previous == max {
                decorrelated_at_max += 1;
            }
        }
        assert!(full_at_max * 100 < n, "{full_at_max} of {n} at max");
        assert_eq!(additive_at_max, n);
        // Decorrelated caps before randomising: like Full, almost no sleep lands on the cap.
        assert!(
            decorrelated_at_max * 100 < n,
            "{decorrelated_at_max} of {n} at max"
        );
    }

    fn any_draw() -> impl Strategy<Value = f64> {
        prop_oneof![
            0.0..1.0f64,
            any::<f64>(),
            -2.0..2.0f64,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(1.0),
            Just(BELOW_ONE),
        ]
    }

    fn up_to_an_hour() -> impl Strategy<Value = Duration> {
        (0..=3_600_000u64).prop_map(Duration::from_millis)
    }

    proptest! {
        #[test]
        fn every_strategy_stays_within_max(
            jitter in prop::sample::select(ALL.to_vec()),
            retry in 0..=10_000u32,
            factor in up_to_an_hour(),
            max in up_to_an_hour(),
            additive in up_to_an_hour(),
            previous in up_to_an_hour(),
            u in any_draw(),
        ) {
            let backoff = Backoff::new(factor).max(max).additive_jitter(additive).jitter(jitter);
            let sleep = backoff.sleep(retry, previous, u);
            prop_assert!(sleep <= max);
            if retry <= 1 {
                prop_assert_eq!(sleep, Duration::ZERO);
            }
        }

        #[test]
        fn additive_is_urllib3(
            retry in 2..=10_000u32,
            factor in up_to_an_hour(),
            max in up_to_an_hour(),
            additive in up_to_an_hour(),
            u in any_draw(),
        ) {
            let c = reference_capped(factor, max, retry);
            let plain = Backoff::new(factor).max(max);
            prop_assert_eq!(plain.sleep(retry, Duration::ZERO, u), c);
            let sleep = plain.additive_jitter(additive).sleep(retry, Duration::ZERO, u);
            prop_assert!(sleep >= c);
            prop_assert!(sleep <= (c + additive).min(max));
        }

        #[test]
        fn full_stays_below_the_capped_exponential(
            retry in 2..=10_000u32,
            factor in up_to_an_hour(),
            max in up_to_an_hour(),
            u in any_draw(),
        ) {
            let c = reference_capped(factor, max, retry);
            let sleep = Backoff::new(factor).max(max).jitter(Jitter::Full).sleep(retry, Duration::ZERO, u);
            prop_assert!(sleep <= c);
        }

        #[test]
        fn equal_is_between_half_and_all_of_the_capped_exponential(
            retry in 2..=10_000u32,
            factor in up_to_an_hour(),
            max in up_to_an_hour(),
            u in any_draw(),
        ) {
            let c = reference_capped(factor, max, retry);
            let sleep = Backoff::new(factor).max(max).jitter(Jitter::Equal).sleep(retry, Duration::ZERO, u);
            prop_assert!(sleep >= c / 2);
            prop_assert!(sleep <= c);
        }

        #[test]
        fn decorrelated_is_at_least_the_factor(
            retry in 2..=10_000u32,
            factor in up_to_an_hour(),
            max in up_to_an_hour(),
            previous in up_to_an_hour(),
            u in any_draw(),
        ) {
            let backoff = Backoff::new(factor).max(max).jitter(Jitter::Decorrelated);
            let sleep = backoff.sleep(retry, previous, u);
            prop_assert!(sleep >= factor.min(max));
            prop_assert!(sleep <= max);
            prop_assert!(sleep <= factor.max(previous * 3));
            // The range is capped before the draw: [min(factor, max), min(max, max(factor, 3p))].
            prop_assert!(sleep <= max.min(factor.max(previous * 3)).max(factor.min(max)));
        }
    }
}
