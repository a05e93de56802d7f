//! The preset's per-attempt timeout: tower's `Timeout`, with its timer taken at the
//! attempt's first pending poll instead of at the call, so that an attempt answered at once
//! reads no clock and waits for no timer; and with the layer's pending attempts sharing one
//! timer (`internal::ticker`) instead of a tokio `Sleep` each, so that an attempt answered
//! before its timeout takes a slot in a table and gives it back, and never touches the
//! runtime's timer wheel.
//!
//! An attempt times out no earlier than its timeout after its first pending poll, and at
//! most one tokio timer tick (a millisecond) after it, as with a `Sleep` of its own (see
//! the ticker's precision). An attempt that finds no slot (more than 4096 of the layer's
//! attempts pending at once, or a timeout of centuries) makes its own `Sleep`, on the heap.

use crate::{
    internal::{
        clock,
        ticker::{Ticker, Wait},
    },
    BoxError,
};
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::timeout::error::Elapsed;
use tower_service::Service;

/// Fails an attempt with tower's [`Elapsed`] when it has been pending for `timeout`.
///
/// `pub` in a private module: it is part of [`ClientStack`](super::ClientStack)'s service
/// and future types, never nameable from outside.
///
/// # Clone
///
/// Clones share the layer's timer (its table of pending attempts and its ticker task).
#[allow(unreachable_pub)]
#[derive(Clone, Debug)]
pub struct AttemptTimeout<S> {
    pub(crate) inner: S,
    /// The layer's timer; its delay is the timeout.
    ticker: Arc<Ticker>,
}

impl<S> AttemptTimeout<S> {
    /// `ticker`'s [`delay`](Ticker::delay) is the timeout.
    pub(crate) fn new(inner: S, ticker: Arc<Ticker>) -> Self {
        AttemptTimeout { inner, ticker }
    }
}

impl<S, R> Service<R> for AttemptTimeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: R) -> Self::Future {
        TimeoutFuture {
            inner: self.inner.call(request),
            timer: Timer {
                ticker: Arc::clone(&self.ticker),
                wait: Wait::Idle,
            },
        }
    }
}

pin_project! {
    /// The future of [`AttemptTimeout`].
    #[allow(unreachable_pub)]
    #[derive(Debug)]
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        timer: Timer,
    }
}

/// An attempt's timer: the layer's, with the attempt's slot in its table once pending.
#[derive(Debug)]
struct Timer {
    ticker: Arc<Ticker>,
    wait: Wait,
}

impl Timer {
    /// Whether the attempt, pending, has timed out; starts the timer at the first call.
    #[inline]
    fn elapsed(&mut self, cx: &mut Context<'_>) -> bool {
        if self.wait.is_idle() {
            // A timeout too far to represent waits on a `Sleep` of its own, which
            // saturates.
            // Read for the retry layer around too (`internal::clock`).
            let at = self.ticker.after_delay(clock::read());
            return self.wait.start(&self.ticker, at, self.ticker.delay(), cx);
        }
        self.wait.poll_due(&self.ticker, cx)
    }

    /// Gives the slot back, if the attempt holds one.
    #[inline]
    fn stop(&mut self) {
        self.wait.stop(&self.ticker);
    }

    /// [`stop`](Self::stop) for an attempt dropped while it waits (cancelled): out of line,
    /// so that the common drop (stopped already, at its answer) saves no registers.
    #[cold]
    #[inline(never)]
    fn stop_dropped(&mut self) {
        self.wait.stop(&self.ticker);
    }
}

impl Drop for Timer {
    #[inline]
    fn drop(&mut self) {
        if !self.wait.is_idle() {
            self.stop_dropped();
        }
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The inner poll's result is handed on whole: bound and rebuilt, the response
        // would be copied once more.
        let poll = this.inner.poll(cx);
        if poll.is_ready() {
            this.timer.stop();
            return poll.map_err(Into::into);
        }
        if this.timer.elapsed(cx) {
            return Poll::Ready(Err(Elapsed::new().into()));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{convert::Infallible, time::Duration};
    use tokio::time::Instant;
    use tower::ServiceExt;

    /// An attempt that answers after `after`, behind `ticker`'s timer.
    fn answering(
        ticker: &Arc<Ticker>,
        after: Duration,
    ) -> AttemptTimeout<impl Service<(), Response = (), Error = Infallible, Future: Send> + Clone>
    {
        let slow = tower::service_fn(move |()| async move {
            tokio::time::sleep(after).await;
            Ok::<_, Infallible>(())
        });
        AttemptTimeout::new(slow, Arc::clone(ticker))
    }

    fn timer(timeout: Duration) -> Arc<Ticker> {
        Arc::new(Ticker::with_delay(timeout))
    }

    /// How long an attempt of `svc` took to fail with `Elapsed`; fails the test if it did
    /// not time out within an hour (a shared timer that never fires).
    async fn times_out<S>(svc: S) -> Duration
    where
        S: Service<(), Error = BoxError>,
    {
        let start = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(3_600), svc.oneshot(()))
            .await
            .expect("the attempt's timeout never fired");
        assert!(result.err().is_some_and(|e| e.is::<Elapsed>()));
        start.elapsed()
    }

    /// Within tokio's timer tick of its timeout, never before.
    fn on_time(elapsed: Duration, timeout: Duration) {
        assert!(elapsed >= timeout, "early: {elapsed:?} < {timeout:?}");
        assert!(
            elapsed <= timeout + Duration::from_millis(1),
            "late: {elapsed:?} for {timeout:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_attempt_times_out_and_a_ready_one_makes_no_timer() {
        let ticker = timer(Duration::from_secs(2));
        let elapsed = times_out(answering(&ticker, Duration::from_secs(3))).await;
        on_time(elapsed, Duration::from_secs(2));
        assert_eq!(ticker.waiting(), 0);

        let at_once = tower::service_fn(|()| async { Ok::<_, std::io::Error>(1) });
        let mut svc = AttemptTimeout::new(at_once, Arc::clone(&ticker));
        let mut future = std::pin::pin!(svc.call(()));
        assert!(matches!(
            future
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop())),
            Poll::Ready(Ok(1))
        ));
        assert!(matches!(future.timer.wait, Wait::Idle));

        // Answered before its timeout: its slot is given back.
        let fast = answering(&ticker, Duration::from_secs(1));
        fast.oneshot(()).await.unwrap();
        assert_eq!(ticker.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_is_given_back_at_the_answer_and_when_a_waiting_attempt_is_dropped() {
        let ticker = timer(Duration::from_secs(2));
        let svc = answering(&ticker, Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());

        // Answered: the slot is free before the future is dropped.
        let mut answered = Box::pin(svc.clone().call(()));
        assert!(answered.as_mut().poll(&mut cx).is_pending());
        assert_eq!(ticker.waiting(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            answered.as_mut().poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(ticker.waiting(), 0, "kept after the answer");
        drop(answered);

        // Cancelled while it waits: the drop gives the slot back.
        let mut cancelled = Box::pin(svc.clone().call(()));
        assert!(cancelled.as_mut().poll(&mut cx).is_pending());
        assert_eq!(ticker.waiting(), 1);
        drop(cancelled);
        assert_eq!(ticker.waiting(), 0, "kept by a dropped attempt");
    }

    #[test]
    fn the_inner_services_readiness_and_its_error_reach_the_caller() {
        let (mock, mut handle) = tower_test::mock::pair::<(), ()>();
        let mut readiness =
            tower_test::mock::Spawn::new(AttemptTimeout::new(mock, timer(Duration::from_secs(2))));
        handle.allow(0);
        handle.send_error(std::io::Error::other("no connection"));
        let Poll::Ready(Err(err)) = readiness.poll_ready() else {
            panic!("the inner service's error is not the caller's");
        };
        assert_eq!(err.to_string(), "no connection");
        assert!(readiness.poll_ready().is_pending(), "pending below");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_sharing_the_timer_each_time_out_at_their_own_deadline() {
        let timeout = Duration::from_millis(1_000);
        let ticker = timer(timeout);
        let stalled = Duration::from_secs(3_600);
        let mut tasks = Vec::new();
        // Started 0, 300, 301 and 700 ms in, with one answered in time (451 ms in) among
        // them: after the first times out, the ticker sleeps until the next deadline, and
        // so on; at 1,300 ms the one due 1 ms later is not due yet.
        for pause in [0, 300, 1, 150, 249] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if pause == 150 {
                let answered = answering(&ticker, Duration::from_millis(900));
                tasks.push(tokio::spawn(async move {
                    answered.oneshot(()).await.unwrap();
                    None
                }));
            } else {
                let stalled = answering(&ticker, stalled);
                tasks.push(tokio::spawn(async move { Some(times_out(stalled).await) }));
            }
        }
        let mut timed_out = 0;
        for task in tasks {
            if let Some(elapsed) = task.await.unwrap() {
                on_time(elapsed, timeout);
                timed_out += 1;
            }
        }
        assert_eq!(timed_out, 4);
        assert_eq!(ticker.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_finds_the_table_full_times_out_on_its_own_timer() {
        let ticker = timer(Duration::from_secs(2));
        let far = Instant::now() + Duration::from_secs(3_600);
        let taken: Vec<u32> =
            std::iter::from_fn(|| ticker.register(far, std::task::Waker::noop())).collect();
        assert_eq!(taken.len(), 4096);
        let elapsed = times_out(answering(&ticker, Duration::from_secs(3_600))).await;
        on_time(elapsed, Duration::from_secs(2));
        for index in taken {
            ticker.release(index);
        }
        assert_eq!(ticker.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_beyond_any_deadline_waits_like_tokios_own() {
        // `Instant + Duration::MAX` overflows: no slot, its own `sleep`, which saturates.
        let ticker = timer(Duration::MAX);
        answering(&ticker, Duration::from_secs(10))
            .oneshot(())
            .await
            .unwrap();
        assert_eq!(ticker.waiting(), 0);
    }
}
