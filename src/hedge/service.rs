use super::{
    future::{ResponseFuture, Timing},
    shared::Shared,
};
use crate::retry::{Kept, NoRetry, TryCloneBody};
use http::Request;
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Sends a second attempt of an idempotent request when the first has not answered after
/// its host's latency percentile, and takes the first answer.
///
/// See the [module docs](super). Errors are the inner service's: the layer adds no failure
/// of its own (a hedge that cannot be sent is not sent).
///
/// # Clone
///
/// Clones share the latency tracker, the hedges in flight per host, the budget and the
/// breaker handle.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::hedge::Hedge;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let inner = tower::service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::io::Error>(http::Response::new("ok"))
/// });
/// let mut svc = Hedge::new(inner)?;
/// let response = svc.ready().await?.call(http::Request::new(String::new())).await?;
/// assert_eq!(*response.body(), "ok");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Hedge<S> {
    inner: S,
    shared: Arc<Shared>,
    /// What hedges are sent with (a clone of it each), made at the first call that may be
    /// hedged and shared by every clone of this service: the calls carry a reference to
    /// it, not a clone of the service. Behind a lock, only taken to clone it for a hedge,
    /// so that it needs no `Sync`. Beside it, the layer's `Shared`: a call's one reference
    /// serves for both.
    template: SharedRef<S>,
}

/// The service hedges are cloned from (see [`Hedge`]'s field).
pub(crate) use crate::internal::template::Template;

/// A tracked call's reference to its layer's [`Shared`] and to the service's template,
/// in one (the template's allocation holds a reference to `Shared`).
pub(crate) type SharedRef<S> = Template<S, Arc<Shared>>;

impl<S> Hedge<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Hedge {
            inner,
            template: Template::with(Arc::clone(&shared)),
            shared,
        }
    }

    /// The `name` label of this service's metrics and tracing events.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::hedge::HedgeLayer;
    ///
    /// let svc = HedgeLayer::builder().name("search").build()?.layer(());
    /// assert_eq!(svc.name(), "search");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// let svc = tower_fortify::hedge::Hedge::new("inner")?;
    /// assert_eq!(*svc.get_ref(), "inner");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// Hedges are sent with clones of the service as it was at the first call that could be
    /// hedged: a change made through this reference later reaches the first attempts only.
    ///
    /// ```
    /// let mut svc = tower_fortify::hedge::Hedge::new("inner")?;
    /// *svc.get_mut() = "replaced";
    /// assert_eq!(*svc.get_ref(), "replaced");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// let svc = tower_fortify::hedge::Hedge::new("inner")?;
    /// assert_eq!(svc.into_inner(), "inner");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for Hedge<S>
where
    S: Service<Request<B>> + Clone,
    B: TryCloneBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Always inlined: in a stack (the preset's retry around it) a call of its own returns
    // the future through memory, to be copied again into the caller's; inlined, it is
    // built where the caller keeps it.
    #[inline(always)]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = &self.shared;
        // The retry layer's rule: only a request that may be sent again is tracked and
        // hedged; any other goes through untouched.
        let may_resend = request.extensions().get::<NoRetry>().is_none()
            && shared.allowed_methods.may_resend(&request);
        let Some(slot) = may_resend.then(|| shared.slot_of(&request)).flatten() else {
            return ResponseFuture::untracked(self.inner.call(request));
        };
        // A copy of the request, and a service to send it with, only when a hedge may
        // follow: the host has its delay, and room for one more hedge.
        let tracker = &shared.tracker;
        let warm = tracker.delay(slot).is_some();
        let timing = if warm { Timing::Warm } else { Timing::Cold };
        let kept = if warm && tracker.in_flight(slot) < shared.max_in_flight {
            Kept::of(&request)
        } else {
            None
        };
        // The hedge is sent with a clone of the template, made when the delay is over and
        // driven to readiness then; the template is made only for a call that may be
        // hedged.
        let shared = if kept.is_some() {
            self.template.share(&self.inner)
        } else {
            self.template.clone()
        };
        // At most 4096 slots (`max_keys`): an index fits in a `u16`.
        ResponseFuture::tracked(self.inner.call(request), slot as u16, kept, timing, shared)
    }
}
