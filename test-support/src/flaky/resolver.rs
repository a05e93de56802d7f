//! The backend's resolver: its "DNS/load balancer", which refuses by answering a dead port.

use std::{
    future::Ready,
    io,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::client::legacy::connect::dns::Name;

use super::{shared::Shared, HOST};

/// The backend's "DNS/load balancer": `backend.test` resolves to the live port, or to the
/// dead port at the `refuse` rate and during [`Outage::Refused`](super::Outage::Refused); any other name fails.
#[derive(Clone)]
pub struct FlakyResolver {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for FlakyResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlakyResolver")
            .field("live", &self.shared.live)
            .finish_non_exhaustive()
    }
}

impl tower::Service<Name> for FlakyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Ready<io::Result<Self::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let result = if name.as_str().eq_ignore_ascii_case(HOST) {
            Ok(vec![self.shared.resolve()].into_iter())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such host: {name}"),
            ))
        };
        std::future::ready(result)
    }
}
