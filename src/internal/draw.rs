//! Which calls are timed: a cheap per-thread draw shared by the layers that time a share of
//! their calls (the adaptive pool limit, the hedge). A counter (every n-th call) would time
//! none of one host's or one pool's calls on a thread that calls two in turn; a draw times
//! each of them at the same rate.

thread_local! {
    /// This thread's draws: a linear congruential generator (its high bits), the same
    /// sequence on every thread.
    static DRAW: std::cell::Cell<u32> = const { std::cell::Cell::new(0x2545_f491) };
}

/// Whether this thread's next draw falls in one of `every` (`every` >= 1; one draws
/// nothing and says yes).
#[inline]
pub(crate) fn one_in(every: u32) -> bool {
    if every <= 1 {
        return true;
    }
    DRAW.try_with(|draw| {
        // Numerical Recipes' constants; the high bits decide (the low ones are periodic).
        let next = draw
            .get()
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        draw.set(next);
        u64::from(next) * u64::from(every) < 1 << 32
    })
    .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::one_in;

    /// About one draw in `every` says yes, on a thread of its own, and each of two kinds
    /// of call drawn in turn gets its share (a counter would give one of them all).
    #[test]
    fn one_in_n_and_alike_for_calls_in_turn() {
        std::thread::spawn(|| {
            // 2 for the hedge, up to 64 for the adaptive pool limit.
            for every in [2_u32, 4, 8, 64] {
                let mut yes = [0_u32; 2];
                for i in 0..2_000 * every as usize {
                    yes[i % 2] += u32::from(one_in(every));
                }
                for n in yes {
                    assert!(
                        n.abs_diff(1_000) <= 200,
                        "one in {every}: {n} of {}, expected about 1,000",
                        1_000 * every
                    );
                }
            }
            assert!((0..100).all(|_| one_in(1)));
        })
        .join()
        .unwrap();
    }
}
