//! A per-thread spare reference: a thread that calls the same layer again and again moves
//! one `Arc` between its calls and a thread-local slot, instead of incrementing and
//! decrementing a shared reference count for every call (two atomic read-modify-writes).
//! The retry layer keeps its shared policy this way, the circuit breaker its lanes. A
//! thread keeps at most one spare per slot alive, until it calls another layer or exits.

use std::{cell::Cell, sync::Arc};

/// A reference to `want`: the thread's spare if that is the one, a new one otherwise (the
/// spare, if it is another, stays). Give the reference back with `spare.replace(Some(..))`.
#[inline]
pub(crate) fn take<T>(spare: &Cell<Option<Arc<T>>>, want: &Arc<T>) -> Arc<T> {
    match spare.take() {
        Some(own) if Arc::ptr_eq(&own, want) => own,
        other => {
            spare.set(other);
            Arc::clone(want)
        }
    }
}
