//! The validated settings of a breaker, and the window they choose.

use crate::InvalidConfig;
use std::time::Duration;

/// Which sliding window the failure and slow-call rates are computed over.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::circuit_breaker::{CircuitBreakerLayer, Window};
///
/// let layer = CircuitBreakerLayer::builder()
///     .window(Window::Time(Duration::from_secs(30)))
///     .build_generic()?;
/// assert_eq!(layer.window(), Window::Time(Duration::from_secs(30)));
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `n` calls: a ring in which each call replaces the oldest. Reads no clock.
    Count(u32),
    /// The calls of the last `duration`, counted in 10 buckets of `duration / 10` on tokio's
    /// clock: a call leaves the window between 0.9 and 1.0 `duration` after it completed.
    /// Reads the clock once per call.
    Time(Duration),
}

/// The largest count window: a million calls take 250 KB of bits.
pub(crate) const MAX_COUNT_WINDOW: u32 = 1_000_000;
/// The largest number of probes in flight, and of successes to close (12 bits each).
pub(crate) const MAX_PROBES: u32 = 4095;

/// The validated settings of a breaker.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) window: Window,
    pub(crate) minimum_calls: u32,
    pub(crate) failure_rate_threshold: f64,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) open_duration: Duration,
    pub(crate) open_duration_multiplier: f64,
    pub(crate) open_duration_max: Duration,
    pub(crate) open_duration_jitter: f64,
    pub(crate) recovery_period: Duration,
    pub(crate) half_open_max_probes: u32,
    pub(crate) half_open_successes: u32,
    pub(crate) probe_timeout: Duration,
    pub(crate) retry_after_max: Option<Duration>,
    pub(crate) max_keys: usize,
}

impl Config {
    pub(crate) const DEFAULT: Config = Config {
        window: Window::Count(100),
        minimum_calls: 10,
        failure_rate_threshold: 0.5,
        slow_call_duration: None,
        slow_call_rate_threshold: 0.5,
        open_duration: Duration::from_secs(5),
        open_duration_multiplier: 2.0,
        open_duration_max: Duration::from_secs(120),
        open_duration_jitter: 0.2,
        recovery_period: Duration::from_secs(60),
        half_open_max_probes: 1,
        half_open_successes: 2,
        probe_timeout: Duration::from_secs(30),
        retry_after_max: None,
        max_keys: 1024,
    };

    pub(crate) fn validate(&self) -> Result<(), InvalidConfig> {
        match self.window {
            Window::Count(0) => {
                return Err(InvalidConfig::new("window", "must hold at least one call"))
            }
            Window::Count(n) if n > MAX_COUNT_WINDOW => {
                return Err(InvalidConfig::new(
                    "window",
                    "must hold at most 1 000 000 calls",
                ))
            }
            Window::Count(n) if self.minimum_calls > n => {
                return Err(InvalidConfig::new(
                    "minimum_calls",
                    "must not exceed the count window's size",
                ))
            }
            Window::Time(d) if d.is_zero() => {
                return Err(InvalidConfig::new("window", "must be longer than zero"))
            }
            Window::Time(d) if d.as_nanos() > u128::from(u64::MAX) => {
                return Err(InvalidConfig::new(
                    "window",
                    "must be shorter than 500 years",
                ))
            }
            _ => {}
        }
        if self.minimum_calls == 0 {
            return Err(InvalidConfig::new("minimum_calls", "must be at least 1"));
        }
        if !is_rate(self.failure_rate_threshold) {
            return Err(InvalidConfig::new(
                "failure_rate_threshold",
                "must be greater than 0 and at most 1",
            ));
        }
        if self.slow_call_duration.is_some_and(|d| d.is_zero()) {
            return Err(InvalidConfig::new(
                "slow_call_duration",
                "must be longer than zero",
            ));
        }
        if !is_rate(self.slow_call_rate_threshold) {
            return Err(InvalidConfig::new(
                "slow_call_rate_threshold",
                "must be greater than 0 and at most 1",
            ));
        }
        if self.open_duration.is_zero() {
            return Err(InvalidConfig::new(
                "open_duration",
                "must be longer than zero",
            ));
        }
        if !(self.open_duration_multiplier >= 1.0 && self.open_duration_multiplier.is_finite()) {
            return Err(InvalidConfig::new(
                "open_duration_multiplier",
                "must be a finite number of at least 1",
            ));
        }
        if self.open_duration_max < self.open_duration {
            return Err(InvalidConfig::new(
                "open_duration_max",
                "must be at least open_duration",
            ));
        }
        if self.open_duration_max > MAX_WAIT {
            return Err(InvalidConfig::new(
                "open_duration_max",
                "must be shorter than 100 years",
            ));
        }
        if !(0.0..=1.0).contains(&self.open_duration_jitter) {
            return Err(InvalidConfig::new(
                "open_duration_jitter",
                "must be between 0 and 1",
            ));
        }
        if self.recovery_period.is_zero() {
            return Err(InvalidConfig::new(
                "recovery_period",
                "must be longer than zero",
            ));
        }
        if !(1..=MAX_PROBES).contains(&self.half_open_max_probes) {
            return Err(InvalidConfig::new(
                "half_open_max_probes",
                "must be between 1 and 4095",
            ));
        }
        if !(1..=MAX_PROBES).contains(&self.half_open_successes) {
            return Err(InvalidConfig::new(
                "half_open_successes",
                "must be between 1 and 4095",
            ));
        }
        if self.probe_timeout.is_zero() {
            return Err(InvalidConfig::new(
                "probe_timeout",
                "must be longer than zero",
            ));
        }
        if let Some(max) = self.retry_after_max {
            if max.is_zero() {
                return Err(InvalidConfig::new(
                    "retry_after_open",
                    "must be longer than zero",
                ));
            }
            if max > MAX_WAIT {
                return Err(InvalidConfig::new(
                    "retry_after_open",
                    "must be shorter than 100 years",
                ));
            }
        }
        if self.max_keys == 0 {
            return Err(InvalidConfig::new("max_keys", "must be at least 1"));
        }
        Ok(())
    }

    /// The nominal open duration after `failed_probes` consecutive failed probes:
    /// `open_duration * open_duration_multiplier ^ failed_probes`, at most `open_duration_max`.
    pub(crate) fn nominal_open_duration(&self, failed_probes: u32) -> Duration {
        let exponent = i32::try_from(failed_probes).unwrap_or(i32::MAX);
        let secs = self.open_duration.as_secs_f64() * self.open_duration_multiplier.powi(exponent);
        if secs.is_finite() && secs < self.open_duration_max.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.open_duration_max
        }
    }
}

/// `(0, 1]`, and not NaN.
fn is_rate(r: f64) -> bool {
    r > 0.0 && r <= 1.0
}

/// The longest the breaker can stay open: a deadline is kept in microseconds on 52 bits
/// (about 142 years), and this leaves room for the clock's own age.
const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The `name` label of a breaker that was not named.
pub(crate) const DEFAULT_NAME: &str = "circuit_breaker";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_open_duration_grows_and_caps() {
        let c = Config::DEFAULT;
        assert_eq!(c.nominal_open_duration(0), Duration::from_secs(5));
        assert_eq!(c.nominal_open_duration(1), Duration::from_secs(10));
        assert_eq!(c.nominal_open_duration(4), Duration::from_secs(80));
        assert_eq!(c.nominal_open_duration(5), Duration::from_secs(120));
        assert_eq!(c.nominal_open_duration(u32::MAX), Duration::from_secs(120));
    }

    #[test]
    fn an_open_duration_at_its_maximum_is_the_maximum_to_the_nanosecond() {
        // A year and a nanosecond is no `f64` of seconds: the product equals the maximum
        // read as one, and the maximum itself is returned, not the `f64` read back.
        let max = Duration::new(365 * 24 * 60 * 60, 1);
        let c = Config {
            open_duration: max,
            open_duration_max: max,
            open_duration_multiplier: 1.0,
            ..Config::DEFAULT
        };
        assert_ne!(Duration::from_secs_f64(max.as_secs_f64()), max);
        assert_eq!(c.nominal_open_duration(0), max);
        assert_eq!(c.nominal_open_duration(3), max);
    }
}
