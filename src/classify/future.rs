//! [`Future`] types.

use super::{service::Shared, Failure};
use crate::BoxError;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

pin_project! {
    /// Response future of [`ErrorClassify`](super::ErrorClassify).
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner future and records nothing.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        shared: Arc<Shared>,
        timer: Timer,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, shared: Arc<Shared>) -> Self {
        ResponseFuture {
            inner,
            timer: Timer::start(&shared),
            shared,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match ready!(this.inner.poll(cx)) {
            Ok(response) => {
                #[cfg(feature = "metrics")]
                this.shared.instruments.ok(this.timer.elapsed());
                Poll::Ready(Ok(response))
            }
            Err(err) => {
                let err = Failure::boxed_at(err.into(), this.shared.stage);
                this.shared.record_error(&err, this.timer.elapsed());
                Poll::Ready(Err(err))
            }
        }
    }
}

/// The start of a call, when anything will report its duration: a metrics recorder that
/// took the handles, or a tracing subscriber that wants the failure events. Otherwise no
/// clock is read.
#[derive(Debug)]
struct Timer {
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    start: Option<tokio::time::Instant>,
}

impl Timer {
    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    fn start(shared: &Shared) -> Self {
        Timer {
            #[cfg(any(feature = "metrics", feature = "tracing"))]
            start: shared.timed().then(tokio::time::Instant::now),
        }
    }

    fn elapsed(&self) -> Option<std::time::Duration> {
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        return self.start.map(|start| start.elapsed());
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        return None;
    }
}
