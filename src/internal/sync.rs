//! The synchronization primitives of the lock-free cores, from one place: `loom`'s under
//! `cfg(all(test, fortify_loom))`, where the loom models (`mod loom` beside the code they
//! model) explore every interleaving of them, the standard library's otherwise. As in
//! tokio, only the crate's own unit tests use loom.
//!
//! The cfg is `fortify_loom`, not the usual `loom`: under `--cfg loom` tokio leaves out
//! `tokio::net`, which hyper-util and the other dev-dependencies need, so the test build
//! would not compile. Run the models with
//! `RUSTFLAGS="--cfg fortify_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib loom`
//! (`.ci/run`).
//!
//! Statics (the breaker's lane claims) keep `std` atomics: loom's cannot live in a static.
//! `Arc`s that other modules share (a pool, a breaker, a budget) stay `std`'s too: loom
//! checks the atomics and locks behind them, which is where the interleavings matter.

#[cfg(all(test, fortify_loom))]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize},
    Arc, Mutex, MutexGuard, RwLock,
};

#[cfg(not(all(test, fortify_loom)))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize},
    Arc, Mutex, MutexGuard, RwLock,
};

#[allow(unused_imports)]
pub(crate) use std::sync::atomic::Ordering;

/// What `try_with` on a thread-local returns once the thread's locals are gone.
#[cfg(all(test, fortify_loom))]
pub(crate) use loom::lazy_static::AccessError;
#[cfg(not(all(test, fortify_loom)))]
pub(crate) use std::thread::AccessError;

/// A thread-local with a `const` initializer, that a model's threads must not share (the
/// breaker's lanes, the spare references): loom runs its threads on one OS thread, so a
/// `std` thread-local would be one for all of them. `std::thread_local!` normally,
/// `loom::thread_local!` (which takes no `const` block) in the models.
macro_rules! thread_local_const {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr };) => {
        #[cfg(not(all(test, fortify_loom)))]
        ::std::thread_local! {
            $(#[$attr])* $vis static $name: $t = const { $init };
        }
        #[cfg(all(test, fortify_loom))]
        ::loom::thread_local! {
            $(#[$attr])* $vis static $name: $t = $init;
        }
    };
}
pub(crate) use thread_local_const;

/// The models' clock: each model thread's own reading of the time since a breaker's start,
/// which the thread sets (`set`) before it calls. Per thread, as loom runs its threads on one
/// OS thread: a model gives each its own reading, older or newer than another's, as real
/// threads read the clock at different moments. Zero until set, so that a model that sets
/// none sees a clock that stands still.
#[cfg(all(test, fortify_loom))]
pub(crate) mod model_clock {
    use std::{cell::Cell, time::Duration};

    ::loom::thread_local! {
        static NOW: Cell<Duration> = Cell::new(Duration::ZERO);
    }

    /// Sets the current model thread's clock.
    pub(crate) fn set(now: Duration) {
        NOW.with(|n| n.set(now));
    }

    /// The current model thread's clock.
    pub(crate) fn elapsed() -> Duration {
        NOW.with(Cell::get)
    }
}
