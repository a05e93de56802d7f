//! The client's resolver, type-erased so that the client's type does not depend on it.

use crate::BoxError;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use std::{fmt, net::SocketAddr};
use tower::{util::BoxCloneSyncService, ServiceExt};
use tower_service::Service;

/// A resolver as the connector uses it: any `Service<Name>` answering with addresses.
#[derive(Clone)]
pub(crate) struct Resolver {
    inner: BoxCloneSyncService<Name, Vec<SocketAddr>, BoxError>,
    custom: bool,
}

impl Resolver {
    pub(crate) fn new<R>(resolver: R) -> Self
    where
        R: Service<Name> + Clone + Send + Sync + 'static,
        R::Response: IntoIterator<Item = SocketAddr>,
        R::Error: Into<BoxError>,
        R::Future: Send + 'static,
    {
        Resolver {
            inner: BoxCloneSyncService::new(
                resolver
                    .map_response(|addrs| addrs.into_iter().collect())
                    .map_err(Into::into),
            ),
            custom: true,
        }
    }

    /// hyper-util's resolver: the system's `getaddrinfo` on tokio's blocking pool.
    pub(crate) fn system() -> Self {
        Resolver {
            custom: false,
            ..Resolver::new(GaiResolver::new())
        }
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::system()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.custom {
            "Resolver(custom)"
        } else {
            "Resolver(GaiResolver)"
        })
    }
}

impl Service<Name> for Resolver {
    type Response = Vec<SocketAddr>;
    type Error = BoxError;
    type Future = <BoxCloneSyncService<Name, Vec<SocketAddr>, BoxError> as Service<Name>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        self.inner.call(name)
    }
}
