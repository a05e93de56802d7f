use super::{FailureKind, Stage};
use crate::BoxError;
use std::{error::Error, net::SocketAddr};

/// A classified failure: the error type the layers of this crate return.
///
/// A `Failure` pairs a [`FailureKind`] with the original error, which stays reachable
/// through [`source`](Error::source) (and [`Failure::get_ref`]). Layers return it boxed as a
/// [`BoxError`]; callers find it with `downcast_ref::<Failure>()`.
///
/// A `Failure` is never classified twice: classifying an error that is (or wraps) a
/// `Failure` keeps its kind.
///
/// ```
/// use std::io;
/// use tower_fortify::classify::{Failure, FailureKind};
///
/// let failure = Failure::new(FailureKind::ConnectRefused, io::Error::from(io::ErrorKind::ConnectionRefused));
/// assert_eq!(failure.kind(), FailureKind::ConnectRefused);
/// assert!(failure.to_string().starts_with("connect refused: "));
/// assert!(failure.get_ref().is::<io::Error>());
/// ```
#[derive(Debug)]
pub struct Failure {
    kind: FailureKind,
    stage: Stage,
    peer: Option<SocketAddr>,
    source: BoxError,
}

impl Failure {
    /// Creates a failure of the given kind caused by `source`.
    ///
    /// ```
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let failure = Failure::new(FailureKind::PoolTimeout, "no free slot in 1s");
    /// assert_eq!(failure.to_string(), "pool timeout: no free slot in 1s");
    /// ```
    pub fn new(kind: FailureKind, source: impl Into<BoxError>) -> Self {
        Self::at(kind, Stage::Request, source.into())
    }

    /// A failure of `kind` met at `stage`: the kind's own stage when it has one.
    pub(super) fn at(kind: FailureKind, stage: Stage, source: BoxError) -> Self {
        let stage = match kind {
            FailureKind::Dns => Stage::Resolve,
            FailureKind::ConnectRefused | FailureKind::ConnectTimeout => Stage::Connect,
            FailureKind::TlsHandshake
            | FailureKind::TlsNegotiation
            | FailureKind::TlsCertificate => Stage::TlsHandshake,
            FailureKind::ReadTimeout | FailureKind::ConnectionClosed | FailureKind::Protocol => {
                Stage::Request
            }
            _ => stage,
        };
        Failure {
            kind,
            stage,
            peer: None,
            source,
        }
    }

    /// Records the address of the peer the failure happened with (the connector knows it).
    ///
    /// ```
    /// use std::io;
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let addr = "127.0.0.1:8443".parse().unwrap();
    /// let failure = Failure::new(FailureKind::ConnectRefused, io::Error::from(io::ErrorKind::ConnectionRefused))
    ///     .with_peer_addr(addr);
    /// assert_eq!(failure.peer_addr(), Some(addr));
    /// assert_eq!(
    ///     failure.to_string(),
    ///     "connect refused: connection refused by 127.0.0.1:8443 (nothing listening)"
    /// );
    /// ```
    #[must_use]
    pub fn with_peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer = Some(addr);
        self
    }

    /// The address of the peer, when the code that met the failure knew it (this failure
    /// or one classified further in, in its `source()` chain). hyper-util's connector keeps
    /// it private, so its failures have none; the crate's HTTPS client records it.
    ///
    /// ```
    /// use std::io;
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let addr = "127.0.0.1:8443".parse().unwrap();
    /// let refused = Failure::new(FailureKind::ConnectRefused, io::Error::from(io::ErrorKind::ConnectionRefused))
    ///     .with_peer_addr(addr);
    /// // Found in the source chain too, under a failure that does not know it.
    /// let outer = Failure::new(FailureKind::Other, refused);
    /// assert_eq!(outer.peer_addr(), Some(addr));
    /// assert_eq!(Failure::new(FailureKind::Other, "boom").peer_addr(), None);
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        super::links(self).find_map(|err| err.downcast_ref::<Failure>()?.peer)
    }

    /// Where the failure happened: the kind's own stage (`Dns` resolving, `ConnectRefused`
    /// connecting, a TLS kind in the handshake, a read kind after the request was sent),
    /// else the stage it was classified at ([`Stage::Request`] for [`Failure::new`]).
    ///
    /// ```
    /// use tower_fortify::classify::{Failure, FailureKind, Stage};
    ///
    /// let failure = Failure::new(FailureKind::TlsNegotiation, "no shared cipher suite");
    /// assert_eq!(failure.stage(), Stage::TlsHandshake);
    /// ```
    pub const fn stage(&self) -> Stage {
        self.stage
    }

    /// What went wrong.
    ///
    /// ```
    /// use std::io;
    /// use tower_fortify::classify::{Failure, FailureKind, Stage};
    ///
    /// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    /// let failure = Failure::classify(refused, Stage::Connect);
    /// assert_eq!(failure.kind(), FailureKind::ConnectRefused);
    /// assert_eq!(failure.kind().as_str(), "connect_refused");
    /// ```
    pub const fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The original error.
    ///
    /// ```
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let failure = Failure::new(FailureKind::Other, "boom");
    /// assert_eq!(failure.get_ref().to_string(), "boom");
    /// ```
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.source
    }

    /// Consumes the failure, returning the original error.
    ///
    /// ```
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let source = Failure::new(FailureKind::Other, "boom").into_inner();
    /// assert_eq!(source.to_string(), "boom");
    /// ```
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}
