//! One clock read shared by the nested layers of a call: an inner layer that reads the
//! clock ([`read`]) leaves the instant in a per-thread cell, and the layer around it,
//! which needs the time of the same moment give or take the inner layer's own work, takes
//! it from there ([`taken_or_now`]) instead of reading the clock again (a clock read is
//! a call into the kernel's vDSO; the cell, a few instructions).
//!
//! The outer layer [`forget`]s the cell before it calls or polls the inner one, so that it
//! only ever takes an instant read during that call or poll: never one left by another
//! call, another layer or another stack on the thread. With nothing read meanwhile (the
//! inner layer had no reason to read the clock) it reads the clock itself.
//!
//! Who shares (the preset): the attempt timeout's read at its start (the attempt's first
//! pending poll) is the retry layer's "now" when it asks whether that attempt ends before
//! the call's deadline. That instant is a little *earlier* than the retry layer's own read
//! would be, and exact: it is when the attempt's bound started, so the attempt ends by it
//! plus the bound.

use std::cell::Cell;
use tokio::time::Instant;

crate::internal::sync::thread_local_const! {
    static READ: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Forgets the instant the thread read last: [`taken_or_now`] then finds only one read
/// after this.
#[inline]
pub(crate) fn forget() {
    let _ = READ.try_with(|read| read.set(None));
}

/// Now, from the clock, left for the layer around this one (see the module docs).
#[cfg_attr(not(feature = "stack"), allow(dead_code))]
#[inline]
pub(crate) fn read() -> Instant {
    let now = Instant::now();
    let _ = READ.try_with(|read| read.set(Some(now)));
    now
}

/// The instant an inner layer [`read`] since the thread's last [`forget`], or now from
/// the clock when none did.
#[inline]
pub(crate) fn taken_or_now() -> Instant {
    READ.try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn an_instant_read_since_forget_is_taken_once_and_none_else() {
        let before = read();
        forget();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            taken_or_now(),
            before + Duration::from_secs(1),
            "nothing read since forget: now"
        );
        forget();
        let inner = read();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(taken_or_now(), inner, "the inner read, not now");
        assert_eq!(
            taken_or_now(),
            inner + Duration::from_secs(1),
            "taken once: the next is now"
        );
    }
}
