//! The HTTPS client's settings, held by [`ClientConfig`](super::ClientConfig) (feature
//! `client`): plain values the `client` module builds its connector and client from.

mod resolve;
mod roots;

pub(crate) use resolve::Resolver;
pub use roots::TlsRoots;
use std::time::Duration;

/// The settings only the HTTPS client uses.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) pool_idle_timeout: Option<Duration>,
    pub(crate) tls_roots: TlsRoots,
    pub(crate) resolver: Resolver,
    #[cfg(feature = "http2")]
    pub(crate) http2: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tls_handshake_timeout: Duration::from_secs(3),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            tls_roots: TlsRoots::default(),
            resolver: Resolver::default(),
            #[cfg(feature = "http2")]
            http2: false,
        }
    }
}
