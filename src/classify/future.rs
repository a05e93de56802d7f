//! [`Future`] types.

use super::{service::Shared, Failure, Stage};
#[cfg(any(feature = "metrics", feature = "tracing"))]
use crate::internal::clock::{self, Nanos};
use crate::BoxError;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

pin_project! {
    /// Response future of [`ErrorClassify`](super::ErrorClassify).
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner future and records nothing.
    ///
    /// ```
    /// use tower::{Service, ServiceExt};
    /// use tower_fortify::classify::{future::ResponseFuture, ErrorClassify};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let inner = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) });
    /// let mut svc = ErrorClassify::new(inner);
    /// let fut: ResponseFuture<_> = svc.ready().await?.call(21);
    /// assert_eq!(fut.await?, 42);
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // Written by `ErrorClassify::call` in place (see there).
        #[pin]
        pub(super) inner: F,
        pub(super) stage: Stage,
        pub(super) observer: Option<Observer>,
    }
}

#[cfg(all(test, feature = "metrics"))]
impl<F> ResponseFuture<F> {
    fn new(shared: &Arc<Shared>, call: impl FnOnce() -> F) -> Self {
        let observer = Observer::start(shared);
        ResponseFuture {
            inner: call(),
            stage: shared.stage,
            observer,
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
        let begins = Observer::begins(this.observer);
        // The inner poll's result is looked at in place and handed on whole: bound and
        // rebuilt, the response would be copied once more for each binding.
        let poll = this.inner.poll(cx);
        if begins {
            Observer::started(this.observer);
        }
        if poll.is_pending() {
            return Poll::Pending;
        }
        // Taken, so that the reference goes back to the thread's spare now.
        let observer = this.observer.take();
        #[cfg(feature = "metrics")]
        if let (Poll::Ready(Ok(_)), Some(observer)) = (&poll, &observer) {
            observer.shared.record_ok(observer.elapsed());
        }
        let stage = *this.stage;
        poll.map_err(|err| match &observer {
            Some(observer) => observer.shared.failed(err.into(), observer.elapsed()),
            None => Failure::boxed_failure_at(err.into(), stage),
        })
    }
}

/// What a call needs to be reported: its service's shared handles, and when the call
/// started if anything will use its duration.
///
/// A timed call starts at its first poll: at the clock read an inner layer made during that
/// poll when one did (the preset's attempt timeout, when the attempt is pending, whose read
/// the retry layer shares too), else at the observer's own read after it (see
/// `internal::clock`). The duration leaves out the work of the inner poll before that read,
/// nanoseconds, and errs short by that much; a future does nothing before its first poll.
///
/// With the `metrics` feature every call takes one, because an error is counted whether or
/// not the recorder keeps the duration histogram (a counters-only recorder, or a filter on
/// the histogram's name), and `metrics` cannot tell a live counter from a no-op one. The
/// clock is read only for a recorder that took the histogram, or a tracing subscriber that
/// wants the failure events; the handles come from the thread's spare reference
/// ([`SharedRef`]), so that a call touches no shared reference count either.
#[derive(Debug)]
pub(super) struct Observer {
    shared: SharedRef,
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    start: Start,
}

/// When a call started, if it is timed.
#[cfg(any(feature = "metrics", feature = "tracing"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Not timed.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    Untimed,
    /// Timed, not polled yet.
    Unpolled,
    /// Timed, from this instant.
    At(Nanos),
}

impl Observer {
    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    /// The observer of a call about to be made.
    #[inline]
    pub(super) fn start(shared: &Arc<Shared>) -> Option<Self> {
        #[cfg(feature = "metrics")]
        return Some(Observer {
            shared: SharedRef::of(shared),
            start: if shared.timed() {
                Start::Unpolled
            } else {
                Start::Untimed
            },
        });
        #[cfg(all(feature = "tracing", not(feature = "metrics")))]
        return shared.timed().then(|| Observer {
            shared: SharedRef::of(shared),
            start: Start::Unpolled,
        });
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        return None;
    }

    /// Whether this poll is a timed call's first: then the thread's last clock read is
    /// forgotten, so that [`started`](Self::started) takes only one made during the poll.
    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    #[inline]
    fn begins(observer: &Option<Self>) -> bool {
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        if let Some(Observer {
            start: Start::Unpolled,
            ..
        }) = observer
        {
            clock::forget();
            return true;
        }
        false
    }

    /// Sets a timed call's start, after its first inner poll (see the type's docs).
    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    #[inline]
    fn started(observer: &mut Option<Self>) {
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        if let Some(observer) = observer {
            observer.start = Start::At(clock::taken_or_now());
        }
    }

    fn elapsed(&self) -> Option<std::time::Duration> {
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        return match self.start {
            Start::At(start) => Some(Nanos::now().saturating_since(start)),
            Start::Untimed | Start::Unpolled => None,
        };
        #[cfg(not(any(feature = "metrics", feature = "tracing")))]
        return None;
    }
}

/// A response future's reference to its service's [`Shared`], taken from and given back to
/// the thread's spare (see `crate::internal::spare`): no shared reference count is written per call.
type SharedRef = crate::internal::spare::SpareRef<Shared>;

crate::internal::spare::spare_slot!(Shared);

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;
    use crate::classify::metrics::Instruments;
    use std::{future::Ready, io};

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            stage: Stage::Request,
            name: "spare-test",
            instruments: Instruments::register("spare-test", Stage::Request),
        })
    }

    fn call(shared: &Arc<Shared>) -> ResponseFuture<Ready<Result<(), io::Error>>> {
        ResponseFuture::new(shared, || std::future::ready(Ok(())))
    }

    #[test]
    fn a_call_reuses_the_threads_spare_reference() {
        let a = shared();
        let first = call(&a);
        assert_eq!(Arc::strong_count(&a), 2, "every call can count its error");
        drop(first);
        assert_eq!(Arc::strong_count(&a), 2, "kept as the thread's spare");
        let again = call(&a);
        assert_eq!(Arc::strong_count(&a), 2, "taken from the spare, not cloned");
        // A second call in flight at once needs a reference of its own.
        let other = call(&a);
        assert_eq!(Arc::strong_count(&a), 3);
        drop((again, other));
        assert_eq!(Arc::strong_count(&a), 2, "one spare, the other dropped");
    }

    /// A timed call starts at the clock read an inner layer made during its first poll (left
    /// one second early here, so that it shows), never one made before that poll, and not
    /// when the future was made.
    #[tokio::test(start_paused = true)]
    async fn a_calls_start_is_the_read_made_during_its_first_poll() {
        use crate::classify::{ErrorClassify, ErrorClassifyLayer};
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        use std::time::Duration;
        use tower::{Layer, Service, ServiceExt};

        // Handles are registered when the layer builds the service.
        fn classified<S>(recorder: &DebuggingRecorder, inner: S) -> ErrorClassify<S> {
            ::metrics::with_local_recorder(recorder, || {
                ErrorClassifyLayer::builder()
                    .name("start")
                    .build()
                    .unwrap()
                    .layer(inner)
            })
        }
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let durations = || -> Vec<f64> {
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .filter(|(key, ..)| key.key().name() == "fortify_request_duration_seconds")
                .flat_map(|(.., value)| match value {
                    DebugValue::Histogram(samples) => {
                        samples.into_iter().map(|s| s.into_inner()).collect()
                    }
                    _ => Vec::new(),
                })
                .collect()
        };
        let second_early = || Nanos::from_nanos(Nanos::now().get() - 1_000_000_000);
        let two_seconds = || async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, io::Error>(())
        };

        let reads = classified(
            &recorder,
            tower::service_fn(move |_: ()| async move {
                clock::leave(second_early());
                two_seconds().await
            }),
        );
        reads.oneshot(()).await.unwrap();
        assert_eq!(durations(), [3.0], "the inner read is the start");

        // A read left before the first poll (here in the inner call) is not taken.
        let reads_in_its_call = classified(
            &recorder,
            tower::service_fn(move |_: ()| {
                clock::leave(second_early());
                two_seconds()
            }),
        );
        reads_in_its_call.oneshot(()).await.unwrap();
        assert_eq!(
            durations(),
            [2.0],
            "a read before the first poll is not taken"
        );

        // Made, then first polled a second later.
        let mut late = classified(&recorder, tower::service_fn(|_: ()| two_seconds()));
        std::future::poll_fn(|cx| late.poll_ready(cx))
            .await
            .unwrap();
        let call = late.call(());
        tokio::time::advance(Duration::from_secs(1)).await;
        call.await.unwrap();
        assert_eq!(durations(), [2.0], "from the first poll");
    }

    #[test]
    fn a_finished_call_gives_its_reference_back() {
        let (a, b) = (shared(), shared());
        let mut on_a = std::pin::pin!(call(&a));
        drop(call(&b));
        assert_eq!(Arc::strong_count(&b), 2, "b's spare");
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(on_a.as_mut().poll(&mut cx).is_ready());
        // Given back when the call finished, before the future is dropped.
        assert_eq!(Arc::strong_count(&a), 2, "a's spare now");
        assert_eq!(Arc::strong_count(&b), 1, "a's reference replaced b's");
    }
}
