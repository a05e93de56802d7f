//! The `poll_ready` half of a single pool: reserve a permit, or decide what the next call
//! gets instead.

use super::{
    acquire::Acquire,
    permit::{deadline, Mode, Permit, Pool},
};
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

/// What the next `call` gets when the pool had no permit for it.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Go through anyway (`block=False`), counted when the call is made.
    Overflow,
    /// Fail (the error was counted when it was decided).
    Fail(BoxError),
    /// Fail fast, counted when the call is made.
    Reject,
}

impl Decision {
    /// The permit the call runs with, or the error it fails with (an overflow or a
    /// rejection is counted now, when the call is made).
    fn into_permit(self, pool: &Arc<Pool>) -> Result<Permit, BoxError> {
        match self {
            Decision::Overflow => Ok(pool.overflow()),
            Decision::Fail(error) => Err(error),
            Decision::Reject => Err(pool.rejected()),
        }
    }
}

/// A service's reservation, and its wait when the pool is full (`block=True`).
///
/// The reserved permit has a field of its own, apart from the rarer decisions, so that
/// `call` takes it with one test and moves two words.
pub(crate) struct Reserver {
    permit: Permit,
    decided: Option<Decision>,
    waiting: Option<Acquire>,
    /// The `pool_timeout` timer: allocated at the first wait of this service, then reset in
    /// place for every later one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the current wait has a deadline (the timer is armed for it).
    timed: bool,
}

impl fmt::Debug for Reserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (self.permit.is_held(), &self.decided, &self.waiting) {
            (true, _, _) => "permit",
            (false, Some(Decision::Overflow), _) => "overflow",
            (false, Some(Decision::Fail(_)), _) => "timed out",
            (false, Some(Decision::Reject), _) => "rejected",
            (false, None, Some(_)) => "waiting",
            (false, None, None) => "idle",
        };
        f.debug_struct("Reserver")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Reserver {
    pub(crate) const fn new() -> Self {
        Reserver {
            permit: Permit::NONE,
            decided: None,
            waiting: None,
            timer: None,
            timed: false,
        }
    }

    /// Whether the next call may call the inner service (so `poll_ready` must drive it).
    #[inline]
    fn calls_inner(&self) -> bool {
        self.permit.is_held() || matches!(self.decided, Some(Decision::Overflow))
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
            self.permit = Permit::NONE;
            self.decided = None;
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
        if self.permit.is_held() {
            Ok(self.permit.take())
        } else {
            self.take_decided(pool)
        }
    }

    #[cold]
    fn take_decided(&mut self, pool: &Arc<Pool>) -> Result<Permit, BoxError> {
        self.decided
            .take()
            .expect("poll_ready must be called first")
            .into_permit(pool)
    }

    /// Reserves a permit of `pool`, or decides what the next call gets instead.
    #[inline]
    fn poll_reserve(&mut self, pool: &Arc<Pool>, cx: &mut Context<'_>) -> Poll<()> {
        if self.permit.is_held() || self.decided.is_some() {
            return Poll::Ready(());
        }
        if self.waiting.is_none() {
            if let Some(permit) = pool.try_acquire() {
                self.permit = permit;
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
                        self.decided = Some(Decision::Overflow);
                        return Poll::Ready(());
                    }
                    Mode::FailFast => {
                        self.decided = Some(Decision::Reject);
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
            self.permit = permit;
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
        self.decided = Some(Decision::Fail(error));
        Poll::Ready(())
    }
}
