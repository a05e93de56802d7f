//! The stack's inner service in the HTTPS client: hyper-util's legacy client and the
//! client's handles behind one `Arc`.

use super::Connector;
use crate::{circuit_breaker::CircuitBreakerHandle, pool::PoolHandle};
use hyper_util::client::legacy::{Client, Error, ResponseFuture};
use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// hyper-util's legacy client over the classified [`Connector`], shared by every clone of
/// an [`HttpsClient`](super::HttpsClient): the service the preset stack wraps.
///
/// A clone is one reference count. hyper-util's `Client` clones its executor, pool,
/// connector and builders (a reference count each), and the stack clones its inner
/// service whenever the client is cloned, which callers do per request or per task.
///
/// ```
/// use tower_fortify::client::{HttpsClient, SharedClient};
/// use tower_fortify::stack::ClientConfig;
///
/// let client: HttpsClient = ClientConfig::default().https()?;
/// let shared: &SharedClient = client.get_ref().get_ref();
/// let _legacy: &hyper_util::client::legacy::Client<_, _> = shared.get_ref();
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
pub struct SharedClient<B = http_body_util::Full<bytes::Bytes>> {
    shared: Arc<Shared<B>>,
}

struct Shared<B> {
    client: Client<Connector, B>,
    // hyper-util does not hand its connector out; the client's getters do.
    connector: Connector,
    pool: PoolHandle,
    breakers: CircuitBreakerHandle,
}

impl<B> SharedClient<B> {
    pub(crate) fn new(
        client: Client<Connector, B>,
        connector: Connector,
        pool: PoolHandle,
        breakers: CircuitBreakerHandle,
    ) -> Self {
        SharedClient {
            shared: Arc::new(Shared {
                client,
                connector,
                pool,
                breakers,
            }),
        }
    }

    /// hyper-util's legacy client.
    ///
    /// ```
    /// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
    /// let _legacy: &hyper_util::client::legacy::Client<_, String> =
    ///     client.get_ref().get_ref().get_ref();
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn get_ref(&self) -> &Client<Connector, B> {
        &self.shared.client
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.shared.connector
    }

    pub(crate) fn pool(&self) -> &PoolHandle {
        &self.shared.pool
    }

    pub(crate) fn breakers(&self) -> &CircuitBreakerHandle {
        &self.shared.breakers
    }
}

// No `B: Clone` bound: the body type is only a marker here.
impl<B> Clone for SharedClient<B> {
    fn clone(&self) -> Self {
        SharedClient {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B> fmt::Debug for SharedClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedClient")
            .field("connector", &self.shared.connector)
            .finish_non_exhaustive()
    }
}

impl<B> Service<http::Request<B>> for SharedClient<B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<crate::BoxError>,
{
    type Response = http::Response<hyper::body::Incoming>;
    type Error = Error;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // hyper-util's client is always ready: its pool waits inside the future.
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.shared.client.request(request)
    }
}
