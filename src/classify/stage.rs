//! Where in the life of a request an error happened.

use super::FailureKind;

/// Where in the life of a request an error happened, as far as the caller knows.
///
/// The same low-level error means different things at different stages: a timeout while
/// connecting is a [`ConnectTimeout`](FailureKind::ConnectTimeout) (nothing was sent, any
/// method may be retried), after it a [`ReadTimeout`](FailureKind::ReadTimeout) (the server
/// may have acted on the request). [`classify_error`](super::classify_error) at [`Stage::Request`] moves
/// to [`Stage::Connect`] when it meets an error that says so (hyper-util's client error
/// with `is_connect()`); an [`ErrorClassify`](super::ErrorClassify) wrapped around a resolver
/// or a connector is told its stage.
///
/// | signal | `Resolve` | `Connect` | `TlsHandshake` | `Request` |
/// |---|---|---|---|---|
/// | timeout (`Elapsed`, `TimedOut`) | `Dns` | `ConnectTimeout` | `TlsHandshake` | `ReadTimeout` |
/// | reset, aborted, broken pipe | `Dns` | `ConnectRefused` | `TlsHandshake` | `ConnectionClosed` |
/// | unexpected EOF | `Dns` | `TlsHandshake` | `TlsHandshake` | `ConnectionClosed` |
/// | invalid data | `Dns` | `TlsHandshake` | `TlsHandshake` | `Protocol` |
/// | nothing recognised | `Dns` | `Other` | `TlsHandshake` | `Other` |
///
/// ```
/// use tower_fortify::classify::{classify_error, FailureKind, Stage};
///
/// let elapsed = tower::timeout::error::Elapsed::new();
/// assert_eq!(classify_error(&elapsed, Stage::Request), FailureKind::ReadTimeout);
/// assert_eq!(classify_error(&elapsed, Stage::Connect), FailureKind::ConnectTimeout);
/// assert_eq!(classify_error(&elapsed, Stage::TlsHandshake), FailureKind::TlsHandshake);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Resolving a host name: every failure is [`FailureKind::Dns`].
    Resolve,
    /// Establishing the connection (TCP, and TLS when the connector does both).
    Connect,
    /// The TLS handshake, around a TLS connector.
    TlsHandshake,
    /// Sending the request and receiving the response, or unknown.
    Request,
}

impl Stage {
    /// A stable `snake_case` name, used as a metrics label value.
    ///
    /// ```
    /// use tower_fortify::classify::Stage;
    ///
    /// assert_eq!(Stage::TlsHandshake.as_str(), "tls_handshake");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Connect => "connect",
            Stage::TlsHandshake => "tls_handshake",
            Stage::Request => "request",
        }
    }

    pub(super) const fn timeout(self) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::Connect => FailureKind::ConnectTimeout,
            Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Request => FailureKind::ReadTimeout,
        }
    }

    /// A connection that broke (reset, aborted, EOF) at this stage.
    pub(super) const fn broken(self) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::Connect => FailureKind::ConnectRefused,
            Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Request => FailureKind::ConnectionClosed,
        }
    }

    /// An end of stream or bad bytes at this stage: during connect only a handshake reads.
    pub(super) const fn garbled(self, request: FailureKind) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::Connect | Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Request => request,
        }
    }

    pub(super) const fn unrecognised(self) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Connect | Stage::Request => FailureKind::Other,
        }
    }
}
