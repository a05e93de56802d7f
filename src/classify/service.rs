use super::{
    future::{Observer, ResponseFuture},
    Failure, Stage,
};
use crate::BoxError;
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Classifies every error of the inner service as a [`Failure`], boxed as a [`BoxError`].
///
/// Responses pass through untouched. Errors the inner service returns, from `poll_ready`
/// or from its response future, are classified at the service's [`Stage`] (see
/// [`classify_error`](super::classify_error)); an error that already is a `Failure`
/// keeps its kind and is not boxed again.
///
/// With the `metrics` feature, each call's duration and each error's kind are recorded (see
/// the [module docs](super#metrics)); with `tracing`, each error is reported as an event.
/// Whether a call is timed is decided when it starts: when no recorder took the duration
/// histogram and no subscriber wants the events, a call reads no clock (its error, if any,
/// is still counted), and a thread that calls the same service again and again reaches the
/// handles through a reference it keeps, so that a call clones nothing.
///
/// # Clone
///
/// Clones share the metric handles registered when the service was built.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::classify::{ErrorClassify, Failure, FailureKind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let inner = tower::service_fn(|_: ()| async {
///     Err::<(), _>(tower::timeout::error::Elapsed::new())
/// });
/// let err = ErrorClassify::new(inner).oneshot(()).await.unwrap_err();
/// assert_eq!(err.downcast_ref::<Failure>().unwrap().kind(), FailureKind::ReadTimeout);
/// # }
/// ```
#[derive(Debug)]
pub struct ErrorClassify<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for ErrorClassify<S> {
    /// The inner service cloned last, so that it is written in place (cloned first, it
    /// would be moved in: a copy of the whole stack below per layer and clone).
    #[inline]
    fn clone(&self) -> Self {
        ErrorClassify {
            shared: Arc::clone(&self.shared),
            inner: self.inner.clone(),
        }
    }
}

/// What all clones of one service share: its settings and metric handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stage: Stage,
    pub(crate) name: &'static str,
    #[cfg(feature = "metrics")]
    pub(crate) instruments: super::metrics::Instruments,
}

impl<S> ErrorClassify<S> {
    /// Wraps `inner`, classifying its errors at [`Stage::Request`].
    ///
    /// ```
    /// use tower_fortify::classify::{ErrorClassify, Stage};
    ///
    /// let svc = ErrorClassify::new(tower::service_fn(|req: u32| async move {
    ///     Ok::<_, std::io::Error>(req)
    /// }));
    /// assert_eq!(svc.stage(), Stage::Request);
    /// assert_eq!(svc.name(), "request");
    /// ```
    pub fn new(inner: S) -> Self {
        Self::with_settings(inner, Stage::Request, Stage::Request.as_str())
    }

    pub(crate) fn with_settings(inner: S, stage: Stage, name: &'static str) -> Self {
        ErrorClassify {
            inner,
            shared: Arc::new(Shared::new(stage, name)),
        }
    }

    /// The stage at which this service classifies errors.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::classify::{ErrorClassifyLayer, Stage};
    ///
    /// assert_eq!(ErrorClassifyLayer::connector().layer(()).stage(), Stage::Connect);
    /// assert_eq!(ErrorClassifyLayer::tls_handshake().layer(()).stage(), Stage::TlsHandshake);
    /// ```
    pub fn stage(&self) -> Stage {
        self.shared.stage
    }

    /// The `name` label of this service's metrics and tracing events.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::classify::ErrorClassifyLayer;
    ///
    /// assert_eq!(ErrorClassifyLayer::connector().layer(()).name(), "connect");
    /// let layer = ErrorClassifyLayer::builder().name("search").build().unwrap();
    /// assert_eq!(layer.layer(()).name(), "search");
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// let svc = tower_fortify::classify::ErrorClassify::new("inner");
    /// assert_eq!(*svc.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// ```
    /// let mut svc = tower_fortify::classify::ErrorClassify::new("inner");
    /// *svc.get_mut() = "replaced";
    /// assert_eq!(*svc.get_ref(), "replaced");
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// let svc = tower_fortify::classify::ErrorClassify::new("inner");
    /// assert_eq!(svc.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for ErrorClassify<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|err| self.shared.failed(err.into(), None))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The observer first; the future is built right after the inner call, with nothing
        // between them (a timed call's start is set at its first poll).
        let observer = Observer::start(&self.shared);
        ResponseFuture {
            inner: self.inner.call(request),
            stage: self.shared.stage,
            observer,
        }
    }
}

impl Shared {
    /// A service's shared state, its metric handles registered now.
    pub(crate) fn new(stage: Stage, name: &'static str) -> Self {
        Shared {
            stage,
            name,
            #[cfg(feature = "metrics")]
            instruments: super::metrics::Instruments::register(name, stage),
        }
    }

    /// Whether calls are timed: a recorder took the duration histogram, or a tracing
    /// subscriber listens to the failure events.
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    #[inline]
    pub(crate) fn timed(&self) -> bool {
        #[cfg(feature = "metrics")]
        if self.instruments.live() {
            return true;
        }
        #[cfg(feature = "tracing")]
        if tracing::enabled!(target: "tower_fortify::classify", tracing::Level::DEBUG) {
            return true;
        }
        false
    }

    /// Records a call that succeeded, after `elapsed` if timed.
    #[cfg(any(feature = "retry", feature = "metrics"))]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[inline]
    pub(crate) fn record_ok(&self, elapsed: Option<std::time::Duration>) {
        #[cfg(feature = "metrics")]
        self.instruments.ok(elapsed);
    }

    /// Classifies an error of the call at this service's stage (a [`Failure`] keeps its kind)
    /// and records it: what the service's future does with an error.
    pub(crate) fn failed(&self, err: BoxError, elapsed: Option<std::time::Duration>) -> BoxError {
        let failure = Failure::boxed_failure_at(err, self.stage);
        self.record_error(&failure, elapsed);
        failure
    }

    /// Records a classified error, and how long the call took.
    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    fn record_error(&self, failure: &Failure, elapsed: Option<std::time::Duration>) {
        let kind = failure.kind();
        #[cfg(feature = "metrics")]
        self.instruments.error(kind, elapsed);
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::classify",
            name = self.name,
            stage = self.stage.as_str(),
            kind = kind.as_str(),
            category = kind.category_label(),
            elapsed_ms = elapsed.map(|d| d.as_secs_f64() * 1e3),
            error = %format_args!("{failure:#}"),
            "call failed"
        );
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use tower_layer::Layer;

    /// A call is timed (the clock read at its start and end) only for a recorder that took
    /// the duration histogram: without one (and with no tracing subscriber in these tests),
    /// the success path reads no clock.
    #[test]
    fn calls_are_timed_only_for_a_recorder() {
        let plain = crate::classify::ErrorClassifyLayer::new().layer(());
        assert!(!plain.shared.timed(), "no recorder: not timed");
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let recorded = metrics::with_local_recorder(&recorder, || {
            crate::classify::ErrorClassifyLayer::new().layer(())
        });
        assert!(recorded.shared.timed(), "a recorder: timed");
    }
}
