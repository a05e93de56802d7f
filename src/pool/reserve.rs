//! The `poll_ready` half of a single pool: reserve a permit, or decide what the next call
//! gets instead.

use super::permit::{Acquire, Mode, Permit, Pool};
use crate::BoxError;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::{Instant, Sleep};

/// What the next `call` gets.
#[derive(Debug)]
pub(crate) enum Reservation {
    /// A permit of the pool.
    Permit(Permit),
    /// No permit: go through anyway (`block=False`), counted when the call is made.
    Overflow,
    /// No permit: fail (the error was counted when it was decided).
    Fail(BoxError),
    /// No permit: fail fast, counted when the call is made.
    Reject,
}

/// A service's reservation, and its wait when the pool is full (`block=True`).
pub(crate) struct Reserver {
    reserved: Option<Reservation>,
    waiting: Option<Acquire>,
    /// The `pool_timeout` timer: allocated at the first wait of this service, then reset in
    /// place for every later one.
    timer: Option<Pin<Box<Sleep>>>,
}

impl fmt::Debug for Reserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (&self.reserved, &self.waiting) {
            (Some(Reservation::Permit(_)), _) => "permit",
            (Some(Reservation::Overflow), _) => "overflow",
            (Some(Reservation::Fail(_)), _) => "timed out",
            (Some(Reservation::Reject), _) => "rejected",
            (None, Some(_)) => "waiting",
            (None, None) => "idle",
        };
        f.debug_struct("Reserver")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Reserver {
    pub(crate) const fn new() -> Self {
        Reserver {
            reserved: None,
            waiting: None,
            timer: None,
        }
    }

    /// Whether the next call may call the inner service (so `poll_ready` must drive it).
    #[inline]
    pub(crate) fn calls_inner(&self) -> bool {
        matches!(
            self.reserved,
            Some(Reservation::Permit(_) | Reservation::Overflow)
        )
    }

    /// Drops whatever is reserved or awaited.
    pub(crate) fn reset(&mut self) {
        self.reserved = None;
        self.waiting = None;
    }

    /// Takes the reservation for a call.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<Reservation> {
        self.reserved.take()
    }

    /// Reserves a permit of `pool`, or decides what the next call gets instead.
    #[inline]
    pub(crate) fn poll_reserve(&mut self, pool: &Arc<Pool>, cx: &mut Context<'_>) -> Poll<()> {
        if self.reserved.is_some() {
            return Poll::Ready(());
        }
        if self.waiting.is_none() {
            if let Some(permit) = pool.try_acquire() {
                self.reserved = Some(Reservation::Permit(permit));
                return Poll::Ready(());
            }
        }
        self.poll_full(pool, cx)
    }

    /// The pool was full: decide, or wait.
    #[cold]
    fn poll_full(&mut self, pool: &Arc<Pool>, cx: &mut Context<'_>) -> Poll<()> {
        let acquire = match &mut self.waiting {
            Some(acquire) => acquire,
            None => {
                pool.on_full();
                let timeout = match pool.core.mode {
                    Mode::Overflow => {
                        self.reserved = Some(Reservation::Overflow);
                        return Poll::Ready(());
                    }
                    Mode::FailFast => {
                        self.reserved = Some(Reservation::Reject);
                        return Poll::Ready(());
                    }
                    Mode::Block(timeout) => timeout,
                };
                let now = Instant::now();
                if let Some(timeout) = timeout {
                    let deadline = now + timeout;
                    match &mut self.timer {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                self.waiting.insert(pool.acquire(now))
            }
        };
        if let Poll::Ready(permit) = acquire.poll(cx) {
            self.waiting = None;
            self.reserved = Some(Reservation::Permit(permit));
            return Poll::Ready(());
        }
        let Mode::Block(Some(_)) = pool.core.mode else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .as_mut()
            .expect("a wait with a pool_timeout has a timer");
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let error = acquire.pool().timed_out(acquire.since().elapsed());
        // Dropping the wait leaves the queue.
        self.waiting = None;
        self.reserved = Some(Reservation::Fail(error));
        Poll::Ready(())
    }
}
