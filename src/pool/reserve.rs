//! The `poll_ready` half of a single pool: reserve a permit, or decide what the next call
//! gets instead.

use super::permit::{deadline, Acquire, Mode, Permit, Pool};
use crate::{
    classify::{Failure, Stage},
    BoxError,
};
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

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

impl Reservation {
    /// The permit the call runs with, or the error it fails with (an overflow or a
    /// rejection is counted now, when the call is made).
    #[inline]
    fn into_permit(self, pool: &Arc<Pool>) -> Result<Permit, BoxError> {
        match self {
            Reservation::Permit(permit) => Ok(permit),
            Reservation::Overflow => Ok(pool.overflow()),
            Reservation::Fail(error) => Err(error),
            Reservation::Reject => Err(pool.rejected()),
        }
    }
}

/// A service's reservation, and its wait when the pool is full (`block=True`).
pub(crate) struct Reserver {
    reserved: Option<Reservation>,
    waiting: Option<Acquire>,
    /// The `pool_timeout` timer: allocated at the first wait of this service, then reset in
    /// place for every later one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the current wait has a deadline (the timer is armed for it).
    timed: bool,
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
            timed: false,
        }
    }

    /// Whether the next call may call the inner service (so `poll_ready` must drive it).
    #[inline]
    fn calls_inner(&self) -> bool {
        matches!(
            self.reserved,
            Some(Reservation::Permit(_) | Reservation::Overflow)
        )
    }

    /// The `poll_ready` of a service with one pool: reserves a permit of `pool`, then, if
    /// the call will reach it, drives `inner`; an error of `inner` ends the reservation
    /// (the service is done).
    #[inline]
    pub(crate) fn poll_ready<S, Req>(
        &mut self,
        pool: &Arc<Pool>,
        inner: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BoxError>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        ready!(self.poll_reserve(pool, cx));
        if !self.calls_inner() {
            // The call fails without the inner service.
            return Poll::Ready(Ok(()));
        }
        // An error of the inner service ends the reservation (the service is done).
        // (After a reservation nothing waits: `waiting` is already empty.)
        inner.poll_ready(cx).map_err(|err| {
            self.reserved = None;
            Failure::boxed_at(err.into(), Stage::Request)
        })
    }

    /// Takes the reservation for a call on `pool`: its permit, or the error it fails with.
    ///
    /// # Panics
    ///
    /// When `poll_ready` did not reserve first.
    #[inline]
    pub(crate) fn take(&mut self, pool: &Arc<Pool>) -> Result<Permit, BoxError> {
        self.reserved
            .take()
            .expect("poll_ready must be called first")
            .into_permit(pool)
    }

    /// Reserves a permit of `pool`, or decides what the next call gets instead.
    #[inline]
    fn poll_reserve(&mut self, pool: &Arc<Pool>, cx: &mut Context<'_>) -> Poll<()> {
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
                let deadline = timeout.and_then(|timeout| deadline(now, timeout));
                self.timed = deadline.is_some();
                if let Some(deadline) = deadline {
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
        if !self.timed {
            return Poll::Pending;
        }
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
