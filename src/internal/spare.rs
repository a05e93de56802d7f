//! A per-thread spare reference: a thread that calls the same layer again and again moves
//! one `Arc` between its calls and a thread-local slot, instead of incrementing and
//! decrementing a shared reference count for every call (two atomic read-modify-writes).
//! The classify and hedge layers keep their shared state this way ([`SpareRef`]), the
//! circuit breaker its lanes ([`take`]). A thread keeps at most one spare per slot alive,
//! until it calls another layer or exits.

use super::sync::AccessError;
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

/// A type with a thread-local spare slot (see [`spare_slot!`]).
pub(crate) trait Spared: Sized + 'static {
    /// Runs `f` on the thread's slot, unless the thread is exiting.
    fn with_slot<R>(f: impl FnOnce(&Cell<Option<Arc<Self>>>) -> R) -> Result<R, AccessError>;
}

/// Gives a type its thread-local spare slot.
macro_rules! spare_slot {
    ($ty:ty) => {
        impl $crate::internal::spare::Spared for $ty {
            #[inline]
            fn with_slot<R>(
                f: impl FnOnce(&::std::cell::Cell<Option<::std::sync::Arc<Self>>>) -> R,
            ) -> Result<R, $crate::internal::sync::AccessError> {
                $crate::internal::sync::thread_local_const! {
                    static SPARE: ::std::cell::Cell<Option<::std::sync::Arc<$ty>>> =
                        const { ::std::cell::Cell::new(None) };
                }
                SPARE.try_with(f)
            }
        }
    };
}
pub(crate) use spare_slot;

/// A reference to shared state, taken from the thread's spare when it is the one and given
/// back to it when dropped.
pub(crate) struct SpareRef<T: Spared>(Option<Arc<T>>);

impl<T: Spared> SpareRef<T> {
    /// A reference to `shared`: the thread's spare if that is the one, a new one otherwise.
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    #[inline]
    pub(crate) fn of(shared: &Arc<T>) -> Self {
        let own = T::with_slot(|spare| take(spare, shared)).unwrap_or_else(|_| Arc::clone(shared));
        SpareRef(Some(own))
    }
}

impl<T: Spared> std::ops::Deref for SpareRef<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match &self.0 {
            Some(shared) => shared,
            // Taken only by `drop`.
            None => unreachable!("a SpareRef is only emptied when dropped"),
        }
    }
}

impl<T: Spared> Drop for SpareRef<T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(own) = self.0.take() {
            // The thread's spare from now on; the one it replaces, if any, is dropped (and
            // while the thread exits, when the slot is gone, `own` is dropped instead).
            let _ = T::with_slot(move |spare| spare.set(Some(own)));
        }
    }
}

impl<T: Spared + std::fmt::Debug> std::fmt::Debug for SpareRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SpareRef").field(&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct State(u32);
    spare_slot!(State);

    #[test]
    fn a_thread_reuses_its_spare_reference() {
        let a = Arc::new(State(1));
        let first = SpareRef::of(&a);
        assert_eq!(Arc::strong_count(&a), 2);
        drop(first);
        assert_eq!(Arc::strong_count(&a), 2, "kept as the thread's spare");
        let again = SpareRef::of(&a);
        assert_eq!(Arc::strong_count(&a), 2, "taken from the spare, not cloned");
        // A second reference in use at once is one of its own.
        let other = SpareRef::of(&a);
        assert_eq!(Arc::strong_count(&a), 3);
        assert_eq!(((*again).0, (*other).0), (1, 1), "both reach the state");
        drop((again, other));
        assert_eq!(Arc::strong_count(&a), 2, "one spare, the other dropped");
    }

    #[test]
    fn a_thread_keeps_one_alive_at_most() {
        let (a, b) = (Arc::new(State(1)), Arc::new(State(2)));
        drop(SpareRef::of(&a));
        assert_eq!(Arc::strong_count(&a), 2);
        let on_b = SpareRef::of(&b);
        assert_eq!(
            Arc::strong_count(&a),
            2,
            "a's spare waits while b is in use"
        );
        drop(on_b);
        assert_eq!(Arc::strong_count(&a), 1, "b's reference replaced a's");
        assert_eq!(Arc::strong_count(&b), 2);
        // Another thread has a spare of its own, gone with it.
        let b2 = Arc::clone(&b);
        std::thread::spawn(move || drop(SpareRef::of(&b2)))
            .join()
            .unwrap();
        assert_eq!(Arc::strong_count(&b), 2);
    }
}
