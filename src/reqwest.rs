//! The layers around a [`reqwest::Client`]: an adapter that makes it an
//! `http::Request` service, and a resolver whose failures are classified as DNS failures.
//!
//! Every layer of this crate, and the preset stack, wrap services of `http::Request<B>`:
//! the retry layer copies the request (method, URI, headers, a body it can replay), the
//! breaker and the pool read its authority. reqwest's own `Service` implementation takes a
//! `reqwest::Request`, and its `Body` cannot be copied, so [`ReqwestService`] turns an
//! `http::Request<B>` of any body into reqwest's request (the body is wrapped, not read)
//! and reqwest's response back into an `http::Response`.
//!
//! (`tower-reqwest`'s adapter takes `http::Request<reqwest::Body>` only: a body no retry
//! layer can replay, since `reqwest::Body` is not `Clone`.)
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::ServiceBuilder;
//! use tower_fortify::{classify::ErrorClassifyLayer, reqwest::ReqwestService};
//!
//! # let _ = rustls::crypto::ring::default_provider().install_default();
//! let client = reqwest::Client::builder()
//!     .connect_timeout(std::time::Duration::from_secs(3))
//!     .build()?;
//! // Any layer of this crate, or the preset stack (`examples/reqwest_client.rs`), goes here.
//! let http = ServiceBuilder::new()
//!     .layer(ErrorClassifyLayer::new())
//!     .service(ReqwestService::new(client));
//! // `http` is a `Service<http::Request<Full<Bytes>>>`, `Clone`, `Send` and `Sync`.
//! # fn check<S: tower::Service<http::Request<Full<Bytes>>> + Clone + Send + Sync>(_: &S) {}
//! # check(&http);
//! # Ok::<(), tower_fortify::BoxError>(())
//! ```
//!
//! # Classification
//!
//! A `reqwest::Error` is classified by walking its `source()` chain as any other error
//! ([`classify_error`](crate::classify::classify_error)): refused connects, resets, TLS
//! certificate and handshake errors come from the io, hyper and rustls errors inside it.
//! reqwest's own timers are read from the error itself, since their error type is private:
//! a timeout with [`is_connect`](reqwest::Error::is_connect) is a
//! [`ConnectTimeout`](crate::classify::FailureKind::ConnectTimeout) (reqwest's
//! `connect_timeout`, which covers the TLS handshake too: a stalled handshake is a connect
//! timeout here, not a `TlsHandshake`), any other a
//! [`ReadTimeout`](crate::classify::FailureKind::ReadTimeout) (`timeout`, `read_timeout`).
//!
//! A resolver's error reaches the chain as whatever type the resolver returned, so plug
//! [`ClassifiedResolver`] in with `ClientBuilder::dns_resolver`: its failures are `Dns`.
//!
//! The feature adds reqwest without default features; TLS is the application's choice of
//! reqwest's features (the examples here build reqwest with `rustls-no-provider` and install
//! rustls's `ring` provider first, as that feature requires).

use crate::{
    classify::{Failure, Stage},
    BoxError,
};
use ::reqwest::dns::{Addrs, Name, Resolve, Resolving};
use bytes::Bytes;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// A [`reqwest::Client`] as a service of `http::Request<B>` for any body
/// `B`, answering `http::Response<reqwest::Body>`; see the [module docs](self).
///
/// # Clone
///
/// Clones share the client's connection pool, as clones of a `reqwest::Client` do.
///
/// # Cost
///
/// One allocation per request beyond reqwest's own: `reqwest::Body::wrap` boxes the body.
///
/// ```
/// use tower::ServiceExt;
/// use tower_fortify::reqwest::ReqwestService;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let _ = rustls::crypto::ring::default_provider().install_default();
/// let svc = ReqwestService::new(reqwest::Client::new());
/// // Nothing listens on port 9 of 127.0.0.1.
/// let request = http::Request::get("http://127.0.0.1:9/").body(String::new()).unwrap();
/// let err = svc.oneshot(request).await.unwrap_err();
/// assert!(err.is_connect());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ReqwestService {
    client: ::reqwest::Client,
}

impl ReqwestService {
    /// Wraps `client`.
    ///
    /// ```
    /// use tower_fortify::reqwest::ReqwestService;
    ///
    /// # let _ = rustls::crypto::ring::default_provider().install_default();
    /// let client = reqwest::Client::builder().user_agent("inventory/1.0").build()?;
    /// let svc = ReqwestService::new(client);
    /// // Clones share the client's connection pool.
    /// let _other = svc.clone();
    /// # Ok::<(), reqwest::Error>(())
    /// ```
    pub fn new(client: ::reqwest::Client) -> Self {
        ReqwestService { client }
    }

    /// The client.
    ///
    /// ```
    /// use tower_fortify::reqwest::ReqwestService;
    ///
    /// # let _ = rustls::crypto::ring::default_provider().install_default();
    /// let svc = ReqwestService::new(reqwest::Client::new());
    /// // The client itself, for what the service does not do (a `reqwest::RequestBuilder`).
    /// let request = svc.get_ref().get("http://127.0.0.1:9/items").build()?;
    /// assert_eq!(request.url().path(), "/items");
    /// # Ok::<(), reqwest::Error>(())
    /// ```
    pub fn get_ref(&self) -> &::reqwest::Client {
        &self.client
    }

    /// The client, mutably.
    ///
    /// ```
    /// use tower_fortify::reqwest::ReqwestService;
    ///
    /// # let _ = rustls::crypto::ring::default_provider().install_default();
    /// let mut svc = ReqwestService::new(reqwest::Client::new());
    /// // Another client from now on (its own connection pool).
    /// *svc.get_mut() = reqwest::Client::builder().https_only(true).build()?;
    /// let request = http::Request::get("http://127.0.0.1:9/").body(String::new()).unwrap();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use tower::ServiceExt;
    /// let err = svc.oneshot(request).await.unwrap_err();
    /// assert!(err.is_builder(), "https_only refuses an http URL: {err}");
    /// # });
    /// # Ok::<(), reqwest::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut ::reqwest::Client {
        &mut self.client
    }

    /// The client.
    ///
    /// ```
    /// use tower_fortify::reqwest::ReqwestService;
    ///
    /// # let _ = rustls::crypto::ring::default_provider().install_default();
    /// let svc = ReqwestService::new(reqwest::Client::new());
    /// let client: reqwest::Client = svc.into_inner();
    /// let request = client.get("http://127.0.0.1:9/health").build()?;
    /// assert_eq!(request.method(), reqwest::Method::GET);
    /// # Ok::<(), reqwest::Error>(())
    /// ```
    pub fn into_inner(self) -> ::reqwest::Client {
        self.client
    }
}

impl<B> Service<http::Request<B>> for ReqwestService
where
    B: http_body::Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<::reqwest::Body>;
    type Error = ::reqwest::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // reqwest's client is always ready: its pool is inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let request = request.map(::reqwest::Body::wrap);
        ResponseFuture {
            state: match ::reqwest::Request::try_from(request) {
                Ok(request) => Ok(Service::call(&mut self.client, request)),
                Err(err) => Err(Some(err)),
            },
        }
    }
}

/// The response future of [`ReqwestService`].
///
/// # Cancel safety
///
/// Dropping it drops reqwest's pending request, which closes its connection if the
/// request was in flight.
///
/// ```
/// use tower::{Service, ServiceExt};
/// use tower_fortify::reqwest::{ResponseFuture, ReqwestService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let _ = rustls::crypto::ring::default_provider().install_default();
/// let mut svc = ReqwestService::new(reqwest::Client::new());
/// // Nothing listens on port 9 of 127.0.0.1.
/// let request = http::Request::get("http://127.0.0.1:9/").body(String::new()).unwrap();
/// let ready = ServiceExt::<http::Request<String>>::ready(&mut svc).await.unwrap();
/// let future: ResponseFuture = ready.call(request);
/// assert!(future.await.unwrap_err().is_connect());
/// # }
/// ```
pub struct ResponseFuture {
    state: Result<Pending, Option<::reqwest::Error>>,
}

/// reqwest's pending request: its type is public only as the client's `Service::Future`.
type Pending = <::reqwest::Client as Service<::reqwest::Request>>::Future;

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<::reqwest::Body>, ::reqwest::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            // `Pending` is `Unpin`: it boxes its state.
            Ok(pending) => Pin::new(pending).poll(cx).map_ok(http::Response::from),
            Err(err) => Poll::Ready(Err(err
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

/// A reqwest resolver whose failures are [`Dns`](crate::classify::FailureKind::Dns)
/// failures, whatever error type the resolver it wraps returns (as
/// [`ErrorClassifyLayer::resolver`](crate::classify::ErrorClassifyLayer::resolver) does for
/// hyper-util's resolvers).
///
/// [`system`](Self::system) resolves with the operating system's resolver (tokio's
/// `lookup_host`); [`new`](Self::new) wraps any other `reqwest::dns::Resolve`.
///
/// ```
/// use std::sync::Arc;
/// use tower_fortify::reqwest::ClassifiedResolver;
///
/// # let _ = rustls::crypto::ring::default_provider().install_default();
/// let client = reqwest::Client::builder()
///     .dns_resolver(Arc::new(ClassifiedResolver::system()))
///     .build()?;
/// # let _ = client;
/// # Ok::<(), reqwest::Error>(())
/// ```
#[derive(Clone)]
pub struct ClassifiedResolver {
    inner: Option<Arc<dyn Resolve>>,
}

impl ClassifiedResolver {
    /// Classifies the failures of `resolver`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use reqwest::dns::{Name, Resolve, Resolving};
    /// use tower_fortify::classify::{Failure, FailureKind};
    /// use tower_fortify::reqwest::ClassifiedResolver;
    ///
    /// /// A resolver that knows no name.
    /// struct Nothing;
    ///
    /// impl Resolve for Nothing {
    ///     fn resolve(&self, _name: Name) -> Resolving {
    ///         Box::pin(async { Err("no such host".into()) })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let resolver = ClassifiedResolver::new(Nothing);
    /// let name: Name = "api.example".parse().unwrap();
    /// let err = resolver.resolve(name).await.err().unwrap();
    /// assert_eq!(err.downcast_ref::<Failure>().unwrap().kind(), FailureKind::Dns);
    /// # }
    /// ```
    pub fn new(resolver: impl Resolve + 'static) -> Self {
        ClassifiedResolver {
            inner: Some(Arc::new(resolver)),
        }
    }

    /// The operating system's resolver, through tokio's `lookup_host`.
    ///
    /// ```
    /// use reqwest::dns::{Name, Resolve};
    /// use tower_fortify::reqwest::ClassifiedResolver;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let resolver = ClassifiedResolver::system();
    /// // An IP address is its own answer: no DNS query (the port is reqwest's to set).
    /// let name: Name = "127.0.0.1".parse().unwrap();
    /// let addrs: Vec<_> = resolver.resolve(name).await.unwrap().collect();
    /// assert_eq!(addrs, ["127.0.0.1:0".parse().unwrap()]);
    /// # }
    /// ```
    pub fn system() -> Self {
        ClassifiedResolver { inner: None }
    }
}

impl fmt::Debug for ClassifiedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifiedResolver")
            .field("system", &self.inner.is_none())
            .finish()
    }
}

impl Resolve for ClassifiedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolving: Resolving = match &self.inner {
            Some(inner) => inner.resolve(name),
            None => {
                let host = name.as_str().to_owned();
                Box::pin(async move {
                    // The port is reqwest's to set: it replaces this one.
                    let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
                    Ok(Box::new(addrs.collect::<Vec<_>>().into_iter()) as Addrs)
                })
            }
        };
        Box::pin(async move {
            resolving
                .await
                .map_err(|err| Failure::classify(err, Stage::Resolve).into())
        })
    }
}
