//! [`Future`] types.

use super::{service::Shared, Failure, Stage};
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
        stage: Stage,
        observer: Option<Observer>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, shared: &Arc<Shared>) -> Self {
        ResponseFuture {
            inner,
            stage: shared.stage,
            observer: Observer::start(shared),
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
                if let Some(observer) = this.observer {
                    observer.shared.instruments.ok(observer.elapsed());
                }
                Poll::Ready(Ok(response))
            }
            Err(err) => {
                let err = Failure::boxed_at(err.into(), *this.stage);
                if let Some(observer) = this.observer {
                    observer.shared.record_error(&err, observer.elapsed());
                }
                Poll::Ready(Err(err))
            }
        }
    }
}

/// What a call needs to be reported, taken only when something will report it: a metrics
/// recorder that took the handles, or a tracing subscriber that wants the failure events.
/// Otherwise a call reads no clock and touches no shared reference count.
#[derive(Debug)]
struct Observer {
    shared: Arc<Shared>,
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    start: tokio::time::Instant,
}

impl Observer {
    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    fn start(shared: &Arc<Shared>) -> Option<Self> {
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        return shared.timed().then(|| Observer {
            shared: Arc::clone(shared),
            start: tokio::time::Instant::now(),
        });
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        return None;
    }

    fn elapsed(&self) -> Option<std::time::Duration> {
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        return Some(self.start.elapsed());
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        return None;
    }
}
