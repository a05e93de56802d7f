//! Backoff edges the other tests left open (mutation testing, MUTANTS.md): a draw of 1 or
//! more, and an exponential part that doubles past 128 bits.

use std::time::Duration;
use tower_fortify::retry::{Backoff, Jitter};

/// The largest `f64` below 1, derived from its bits rather than from a formula.
fn largest_below_one() -> f64 {
    f64::from_bits(1.0f64.to_bits() - 1)
}

#[test]
fn a_draw_of_one_or_more_is_the_largest_draw_below_one() {
    // A cap of 2^40 s: the sleep's last bits then tell 1 - 2^-53 from 1 - 2^-52 (122 µs apart).
    let cap = Duration::from_secs(1 << 40);
    let full = Backoff::new(cap).max(cap).jitter(Jitter::Full);
    let top = full.sleep(2, Duration::ZERO, largest_below_one());
    // Full jitter stays below the cap, however large the draw: [0, max).
    assert!(top < cap, "{top:?}");
    assert!(cap - top < Duration::from_millis(1), "{top:?}");
    for u in [1.0, 1.5, 7.0, f64::MAX, f64::INFINITY] {
        assert_eq!(full.sleep(2, Duration::ZERO, u), top, "u = {u}");
    }
    // The next draw down is a different sleep: the clamp lands on exactly one value.
    let lower = f64::from_bits(largest_below_one().to_bits() - 1);
    assert!(full.sleep(2, Duration::ZERO, lower) < top);
}

#[test]
fn an_exponential_part_that_doubles_past_128_bits_is_the_cap() {
    // 2^30 ns * 2^98 is exactly 2^128: a shift that lost its bits would wrap it to zero.
    let factor = Duration::from_nanos(1 << 30);
    for max in [Duration::from_secs(3_600), Duration::MAX] {
        let backoff = Backoff::new(factor).max(max);
        for retry in [99, 100, 128] {
            assert_eq!(
                backoff.sleep(retry, Duration::ZERO, 0.0),
                max,
                "retry {retry}"
            );
        }
        // One doubling less is 2^127 ns: still far above any cap.
        assert_eq!(backoff.sleep(98, Duration::ZERO, 0.0), max);
    }
}
