//! The layers' time: tokio's clock, read as whole nanoseconds ([`Nanos`]), and one clock read
//! shared by the nested layers of a call.
//!
//! # Nanoseconds
//!
//! An instant is turned into nanoseconds since one base for the whole process once, where
//! it is read; deadlines, durations and comparisons are then `u64` arithmetic, where each on
//! tokio's (and std's) `Instant` would split and carry seconds and nanoseconds again. The
//! clock is still tokio's (`tokio::time::Instant::now`), so a paused runtime's time drives
//! every layer. A `u64` of nanoseconds lasts 584 years; a deadline past that is no deadline
//! (`checked_add` gives `None`), as an `Instant + Duration` that overflows.
//!
//! The base is set at the first read, a day before it (on the real clock): a paused
//! runtime's clock starts at the real time it was made, so instants of any runtime made
//! within a day before the first read come after the base. An instant before the base
//! counts as the base itself ([`Nanos::saturating`]), or as none where that matters
//! ([`Nanos::of`]: the ticker gives such a deadline no slot).
//!
//! # One read per call
//!
//! An inner layer that reads the clock ([`read`]) leaves the instant in a per-thread cell,
//! and the layer around it, which needs the time of the same moment give or take the inner
//! layer's own work, takes it from there ([`taken_or_now`]) instead of reading the clock
//! again (a clock read is a call into the kernel's vDSO, and tokio's check for a paused
//! clock; the cell, a few instructions).
//!
//! The outer layer [`forget`]s the cell before it calls or polls the inner one, so that it
//! only ever takes an instant read during that call or poll: never one left by another
//! call, another layer or another stack on the thread. With nothing read meanwhile (the
//! inner layer had no reason to read the clock) it reads the clock itself.
//!
//! Who shares (the preset): the attempt timeout's read at its start (the attempt's first
//! pending poll) is the retry layer's "now" at the call's first poll, for its budget's
//! deposit and its deadline, and when it asks whether that attempt ends before the call's
//! deadline. That instant is a little *earlier* than the retry layer's own read would be,
//! and exact: it is when the attempt's bound started, so the attempt ends by it plus the
//! bound. A call answered at its first poll reads the clock once, in the retry layer, and
//! only if its budget or its deadline needs the time.
//!
//! The classification layer around it, when it times calls, starts a call at the same
//! read (the retry layer leaves it in the cell: [`shared_or_read`]). So a pending call of
//! the preset reads the clock once to start, and once more to end only when timed.

// The retry layer uses the most of it, the classification layer the duration.
#![cfg_attr(
    not(all(feature = "retry", any(feature = "metrics", feature = "tracing"))),
    allow(dead_code)
)]

use std::{cell::Cell, sync::OnceLock, time::Duration};
use tokio::time::Instant;

/// How long before the first read the base is set (see the module docs).
const MARGIN: Duration = Duration::from_secs(24 * 60 * 60);

/// An instant of tokio's clock, as nanoseconds since the process's base (see the module
/// docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Nanos(u64);

/// The process's base: the instant that is 0 nanoseconds.
#[inline]
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(|| {
        let now = Instant::from_std(std::time::Instant::now());
        now.checked_sub(MARGIN).unwrap_or(now)
    })
}

/// A duration in whole nanoseconds, `None` past `u64::MAX` (584 years).
#[inline]
fn nanos_of(duration: Duration) -> Option<u64> {
    u64::try_from(duration.as_nanos()).ok()
}

impl Nanos {
    /// Now, from tokio's clock (a clock read of its own: [`read`] shares one).
    #[inline]
    pub(crate) fn now() -> Nanos {
        Nanos::saturating(Instant::now())
    }

    /// `instant`, or `None` before the base or past 584 years after it.
    #[inline]
    pub(crate) fn of(instant: Instant) -> Option<Nanos> {
        nanos_of(instant.checked_duration_since(base())?).map(Nanos)
    }

    /// `instant`, the base if before it, the last representable instant if past it.
    #[inline]
    pub(crate) fn saturating(instant: Instant) -> Nanos {
        Nanos(nanos_of(instant.saturating_duration_since(base())).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the base.
    #[inline]
    pub(crate) fn get(self) -> u64 {
        self.0
    }

    /// From nanoseconds since the base.
    #[inline]
    pub(crate) fn from_nanos(nanos: u64) -> Nanos {
        Nanos(nanos)
    }

    /// `self + duration`, or `None` when that is too far to represent (never comes).
    #[inline]
    pub(crate) fn checked_add(self, duration: Duration) -> Option<Nanos> {
        nanos_of(duration)
            .and_then(|nanos| self.0.checked_add(nanos))
            .map(Nanos)
    }

    /// `self + duration`, or the last representable instant when that overflows.
    #[inline]
    pub(crate) fn saturating_add(self, duration: Duration) -> Nanos {
        self.checked_add(duration).unwrap_or(Nanos(u64::MAX))
    }

    /// How long after `earlier` this is (zero if it is not after it).
    #[inline]
    pub(crate) fn saturating_since(self, earlier: Nanos) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// As an instant of tokio's clock.
    pub(crate) fn instant(self) -> Instant {
        // The base plus 584 years at most: no `Instant` overflows there.
        base() + Duration::from_nanos(self.0)
    }
}

crate::internal::sync::thread_local_const! {
    static READ: Cell<Option<Nanos>> = const { Cell::new(None) };
}

/// Forgets the instant the thread read last: [`taken_or_now`] then finds only one read
/// after this.
#[inline]
pub(crate) fn forget() {
    let _ = READ.try_with(|read| read.set(None));
}

/// Now, from the clock, left for the layer around this one (see the module docs).
#[inline]
pub(crate) fn read() -> Nanos {
    let now = Nanos::now();
    let _ = READ.try_with(|read| read.set(Some(now)));
    now
}

/// The instant an inner layer [`read`] since the thread's last [`forget`], or now from
/// the clock when none did.
#[inline]
pub(crate) fn taken_or_now() -> Nanos {
    READ.try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(Nanos::now)
}

/// The instant an inner layer [`read`] since the thread's last [`forget`], or now from the
/// clock when none did; left for the layer around either way (a middle layer that shares
/// an inner read with an outer one).
#[inline]
pub(crate) fn shared_or_read() -> Nanos {
    READ.try_with(Cell::get).ok().flatten().unwrap_or_else(read)
}

/// Leaves `now` as if an inner layer had read it: a layer between two that share a read
/// (the hedge layer, between the retry layer and the attempt timeout) takes it and leaves
/// it for the layer around; and the tests of the layers around.
#[cfg_attr(not(feature = "hedge"), allow(dead_code))]
#[inline]
pub(crate) fn leave(now: Nanos) {
    let _ = READ.try_with(|read| read.set(Some(now)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_instant_read_since_forget_is_taken_once_and_none_else() {
        let before = read();
        forget();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            taken_or_now(),
            before.saturating_add(Duration::from_secs(1)),
            "nothing read since forget: now"
        );
        forget();
        let inner = read();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(taken_or_now(), inner, "the inner read, not now");
        assert_eq!(
            taken_or_now(),
            inner.saturating_add(Duration::from_secs(1)),
            "taken once: the next is now"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nanoseconds_follow_tokios_clock_and_never_overflow() {
        let start = Instant::now();
        let then = Nanos::now();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        let now = Nanos::now();
        assert_eq!(now.saturating_since(then), Duration::from_millis(1_500));
        assert_eq!(then.saturating_since(now), Duration::ZERO);
        assert_eq!(Nanos::of(start), Some(then));
        assert_eq!(then.instant(), start);
        assert_eq!(
            then.checked_add(Duration::from_millis(1_500)),
            Some(now),
            "exact to the nanosecond"
        );
        // Past 584 years: never.
        assert_eq!(then.checked_add(Duration::MAX), None);
        assert_eq!(
            then.checked_add(Duration::from_secs(600 * 365 * 86_400)),
            None
        );
        assert_eq!(then.saturating_add(Duration::MAX), Nanos(u64::MAX));
        // Before the base: none, or the base.
        let long_before = base().checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(Nanos::of(long_before), None);
        assert_eq!(Nanos::saturating(long_before), Nanos(0));
        assert!(Nanos::of(start + Duration::from_secs(20_000_000_000)).is_none());
    }
}
