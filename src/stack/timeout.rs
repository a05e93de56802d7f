//! The preset's per-attempt timeout: tower's `Timeout`, with its timer made at the attempt's
//! first pending poll instead of at the call, so that an attempt answered at once reads no
//! clock and makes no timer.

use crate::BoxError;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::Sleep;
use tower::timeout::error::Elapsed;
use tower_service::Service;

/// Fails an attempt with tower's [`Elapsed`] when it has been pending for `timeout`.
///
/// `pub` in a private module: it is part of [`ClientStack`](super::ClientStack)'s service
/// and future types, never nameable from outside.
#[allow(unreachable_pub)]
#[derive(Clone, Debug)]
pub struct AttemptTimeout<S> {
    pub(crate) inner: S,
    timeout: Duration,
}

impl<S> AttemptTimeout<S> {
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        AttemptTimeout { inner, timeout }
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
            sleep: None,
            timeout: self.timeout,
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
        #[pin]
        sleep: Option<Sleep>,
        timeout: Duration,
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        if this.sleep.is_none() {
            // `sleep` saturates a deadline too far to represent.
            this.sleep.set(Some(tokio::time::sleep(*this.timeout)));
        }
        let sleep = this.sleep.as_pin_mut().expect("set above");
        ready!(sleep.poll(cx));
        Poll::Ready(Err(Elapsed::new().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_pending_attempt_times_out_and_a_ready_one_makes_no_timer() {
        let slow = tower::service_fn(|()| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok::<_, std::io::Error>(())
        });
        let err = AttemptTimeout::new(slow, Duration::from_secs(2))
            .oneshot(())
            .await
            .unwrap_err();
        assert!(err.is::<Elapsed>());
        let at_once = tower::service_fn(|()| async { Ok::<_, std::io::Error>(1) });
        let mut svc = AttemptTimeout::new(at_once, Duration::from_secs(2));
        let mut future = std::pin::pin!(svc.call(()));
        assert!(matches!(
            future
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop())),
            Poll::Ready(Ok(1))
        ));
        assert!(future.sleep.is_none());
        let fast = tower::service_fn(|()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(2)
        });
        let svc = AttemptTimeout::new(fast, Duration::from_secs(2));
        assert_eq!(svc.oneshot(()).await.unwrap(), 2);
    }
}
