use super::{body::TryCloneBody, future::ResponseFuture, Idempotent, NoRetry, RetryPolicy};
use crate::{
    classify::ClassifyShared,
    internal::{template::Template, ticker::Ticker},
    BoxError,
};
use http::{header::HeaderName, Extensions, HeaderValue, Method, Request, Response, Uri, Version};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Retries failed calls and retryable responses of the inner service, the urllib3 way.
///
/// See the [module docs](super) for the decision matrix. Errors come back as a classified
/// [`Failure`](crate::classify::Failure) when the failure is not retried, or as a
/// [`RetryError`](super::error::RetryError) when retries stop.
///
/// Each retry waits for the inner service to be ready again, then sends a copy of the
/// original request (method, URI, version, headers, extensions and body, through
/// [`TryCloneBody`]).
///
/// # Clone
///
/// Clones share the policy and the budget.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::retry::{Retry, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let inner = tower::service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::io::Error>(http::Response::new("ok"))
/// });
/// let mut svc = Retry::new(inner, RetryPolicy::default())?;
/// let response = svc.ready().await?.call(http::Request::new(String::new())).await?;
/// assert_eq!(*response.body(), "ok");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    /// The layer's state, beside what retries are sent with: a clone of the service as it
    /// was at the first call, made only when a call is retried.
    shared: SharedRef<S>,
}

/// What a service's calls share: the layer's state, and in the preset the classification
/// layer's, whose job the retry layer does there (one future fewer, and no reference of
/// its own per call).
#[derive(Debug)]
pub(crate) struct Calls {
    retry: Arc<Shared>,
    /// The classification of the call's errors and its metrics, as `ErrorClassify` around
    /// this service would do them.
    pub(crate) classify: Option<Arc<ClassifyShared>>,
}

impl std::ops::Deref for Calls {
    type Target = Shared;

    #[inline]
    fn deref(&self) -> &Shared {
        &self.retry
    }
}

/// What every clone of a layer's services shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) policy: RetryPolicy,
    pub(crate) name: &'static str,
    /// How long an attempt can last at most from its first pending poll, when the layers
    /// inside bound it (the preset: its attempt timeout, plus the longest wait for a pool
    /// permit): an attempt that must end before the call's deadline needs no timer for the
    /// deadline. It must count every delay before the inner timeout starts.
    pub(crate) attempt_bound: Option<std::time::Duration>,
    /// The one timer of the layer's calls' deadlines and backoffs (the preset's is also its
    /// attempt timeouts'): a call that waits takes a slot in its table.
    pub(crate) ticker: Arc<Ticker>,
    #[cfg(feature = "metrics")]
    pub(crate) instruments: super::metrics::Instruments,
}

/// A service's (and its calls') reference to its layer's [`Shared`], in one allocation with
/// the service's template: a call takes one reference for both (it dereferences to the
/// layer's `Arc<Shared>`).
pub(crate) type SharedRef<S> = Template<S, Calls>;

impl Shared {
    pub(crate) fn new(policy: RetryPolicy, name: &'static str, ticker: Arc<Ticker>) -> Self {
        Shared {
            policy,
            name,
            attempt_bound: None,
            ticker,
            #[cfg(feature = "metrics")]
            instruments: super::metrics::Instruments::register(name),
        }
    }
}

impl<S> Retry<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Retry {
            inner,
            shared: Template::with(Calls {
                retry: shared,
                classify: None,
            }),
        }
    }

    /// A service that also does `classify`'s job: its errors, and its futures' errors, are
    /// classified and recorded as `ErrorClassify` around it would (the preset).
    #[cfg(feature = "stack")]
    pub(crate) fn classified(inner: S, shared: Arc<Shared>, classify: Arc<ClassifyShared>) -> Self {
        Retry {
            inner,
            shared: Template::with(Calls {
                retry: shared,
                classify: Some(classify),
            }),
        }
    }

    /// The policy.
    ///
    /// ```
    /// use tower_fortify::retry::{Retry, RetryPolicy};
    ///
    /// let inner = tower::service_fn(|_: http::Request<()>| async { http::Response::builder().body(()) });
    /// let svc = Retry::new(inner, RetryPolicy::default().total(Some(5)))?;
    /// assert!(format!("{:?}", svc.policy()).starts_with("RetryPolicy { total: Some(5),"));
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    /// The `name` label of this service's metrics and tracing events.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::retry::{RetryLayer, RetryPolicy};
    ///
    /// let svc = RetryLayer::builder().name("search").build()?.layer(());
    /// assert_eq!(svc.name(), "search");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Gets a reference to the inner service.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::retry::RetryLayer;
    ///
    /// // Any inner service: here a client for one host.
    /// #[derive(Clone)]
    /// struct Backend { host: &'static str }
    ///
    /// let svc = RetryLayer::builder().build()?.layer(Backend { host: "inventory.internal" });
    /// assert_eq!(svc.get_ref().host, "inventory.internal");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    ///
    /// Retries are sent with clones of the service as it was at the first call (shared by
    /// this service's clones): a change made through this reference later reaches the first
    /// attempts only.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::retry::RetryLayer;
    ///
    /// // Any inner service: here a client for one host.
    /// #[derive(Clone)]
    /// struct Backend { host: &'static str }
    ///
    /// let mut svc = RetryLayer::builder().build()?.layer(Backend { host: "inventory.internal" });
    /// svc.get_mut().host = "inventory-2.internal";
    /// assert_eq!(svc.get_ref().host, "inventory-2.internal");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_fortify::retry::RetryLayer;
    ///
    /// // Any inner service: here a client for one host.
    /// #[derive(Clone)]
    /// struct Backend { host: &'static str }
    ///
    /// let svc = RetryLayer::builder().build()?.layer(Backend { host: "inventory.internal" });
    /// let backend: Backend = svc.into_inner();
    /// assert_eq!(backend.host, "inventory.internal");
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<Request<B>> for Retry<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|err| {
            let failure =
                crate::classify::Failure::boxed_at(err.into(), crate::classify::Stage::Request);
            match &self.shared.classify {
                Some(classify) => classify.failed(failure, None),
                None => failure,
            }
        })
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let retryable = request.extensions().get::<NoRetry>().is_none();
        // The copy for the next attempt, made before the body is consumed.
        let kept = if retryable { Kept::of(&request) } else { None };
        #[cfg(feature = "metrics")]
        self.shared.instruments.request();

        // The service that was driven to readiness serves this call; a retry is sent with a
        // clone of the template, made and driven to readiness when the retry is due. The
        // budget's deposit and the deadline wait for the first poll (see `ResponseFuture`),
        // which shares a clock read with the inner layers.
        let shared = self.shared.share(&self.inner);
        let future = self.inner.call(request);
        ResponseFuture::new(future, kept, shared)
    }
}

/// The copy of a request every retry is made from: its head (method, URI, version, headers,
/// extensions) and body.
///
/// The head's fields are cloned one by one from the borrowed request, into this struct:
/// the request is not taken apart and put together again on every call, and no default
/// head is built only to be overwritten. A retry builds its request from a copy of this.
#[derive(Debug)]
pub(crate) struct Kept<B> {
    method: Method,
    uri: Uri,
    version: Version,
    /// The header fields in order, not a `HeaderMap`: one allocation where a map's clone
    /// makes two (its index and its entries). A retry builds its map from these. `None`
    /// for none: a boxed slice, not a `Vec`, so that the copy is smaller and one without
    /// header fields drops with a test, not a call.
    headers: Option<Box<[(HeaderName, HeaderValue)]>>,
    /// How many distinct names they have: what a map reserves (by names, not values). A
    /// map holds at most 32,768 fields.
    names: u32,
    extensions: Extensions,
    body: B,
}

impl<B> Kept<B> {
    /// Whether the request may be sent again after it may have reached the server (the
    /// read-category and status rules): its method is allowed, or it is marked
    /// [`Idempotent`].
    pub(crate) fn is_idempotent(&self, policy: &RetryPolicy) -> bool {
        policy.is_method_allowed(&self.method) || self.extensions.get::<Idempotent>().is_some()
    }
}

impl<B: TryCloneBody> Kept<B> {
    /// A copy of `request`, or `None` when its body cannot be copied.
    #[inline(always)]
    pub(crate) fn of(request: &Request<B>) -> Option<Self> {
        let body = request.body().try_clone_body()?;
        let headers = request.headers();
        // A request without header fields skips the map's iterator.
        let (fields, names) = if headers.is_empty() {
            (None, 0)
        } else {
            // Exactly as many as the map holds: the conversion to a boxed slice keeps the
            // allocation.
            let mut fields = Vec::with_capacity(headers.len());
            for (name, value) in headers {
                fields.push((name.clone(), value.clone()));
            }
            let names = u32::try_from(headers.keys_len()).unwrap_or(u32::MAX);
            (Some(fields.into_boxed_slice()), names)
        };
        Some(Kept {
            body,
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: fields,
            names,
            extensions: request.extensions().clone(),
        })
    }

    /// A request for the next attempt, or `None` when the body cannot be copied again.
    pub(crate) fn request(&self) -> Option<Request<B>> {
        let mut request = Request::new(self.body.try_clone_body()?);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        // As many names as the map the fields came from held: neither this reservation nor
        // the appends can exceed a map's limits.
        let headers = request.headers_mut();
        headers.reserve(self.names as usize);
        for (name, value) in self.headers.iter().flatten() {
            headers.append(name.clone(), value.clone());
        }
        *request.extensions_mut() = self.extensions.clone();
        Some(request)
    }
}
