//! The error-chain classifier: the walk down an error's `source()` chain, by [`Stage`].

use super::{Failure, FailureKind};
use std::{error::Error, fmt, io};

/// Errors nested deeper than this are not inspected (a guard against cyclic chains).
pub(crate) const MAX_DEPTH: usize = 32;

/// Where in the life of a request an error happened, as far as the caller knows.
///
/// The same low-level error means different things at different stages: a timeout while
/// connecting is a [`ConnectTimeout`](FailureKind::ConnectTimeout) (nothing was sent, any
/// method may be retried), after it a [`ReadTimeout`](FailureKind::ReadTimeout) (the server
/// may have acted on the request). [`classify_error`] at [`Stage::Request`] moves
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

    const fn timeout(self) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::Connect => FailureKind::ConnectTimeout,
            Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Request => FailureKind::ReadTimeout,
        }
    }

    /// A connection that broke (reset, aborted, EOF) at this stage.
    const fn broken(self) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::Connect => FailureKind::ConnectRefused,
            Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Request => FailureKind::ConnectionClosed,
        }
    }

    /// An end of stream or bad bytes at this stage: during connect only a handshake reads.
    const fn garbled(self, request: FailureKind) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::Connect | Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Request => request,
        }
    }

    const fn unrecognised(self) -> FailureKind {
        match self {
            Stage::Resolve => FailureKind::Dns,
            Stage::TlsHandshake => FailureKind::TlsHandshake,
            Stage::Connect | Stage::Request => FailureKind::Other,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Classifies an error met at `stage`, by walking its `source()` chain.
///
/// The walk looks at each error of the chain with `downcast_ref`, outermost first, and
/// never at message text:
///
/// - an existing [`Failure`] keeps its kind;
/// - hyper-util's legacy client error with `is_connect()` moves the walk to
///   [`Stage::Connect`] (feature `hyper`);
/// - `hyper::Error`: its cause is inspected first, then its flags: parse errors are
///   [`Protocol`](FailureKind::Protocol), incomplete messages, closed channels and
///   cancelled requests [`ConnectionClosed`](FailureKind::ConnectionClosed), timeouts per
///   stage (feature `hyper`);
/// - `reqwest::Error` with `is_connect()` moves the walk to [`Stage::Connect`]; its
///   `is_timeout()` is a timeout at the stage (feature `reqwest`);
/// - rustls errors: certificate problems are [`TlsCertificate`](FailureKind::TlsCertificate);
///   a failed negotiation [`TlsNegotiation`](FailureKind::TlsNegotiation): rustls found no
///   common version, suite, group or protocol (`PeerIncompatible`), the peer sent a fatal
///   `protocol_version`, `handshake_failure`, `insufficient_security`, `illegal_parameter`
///   or `no_application_protocol` alert, or its first bytes were not a TLS record; every
///   other TLS error [`TlsHandshake`](FailureKind::TlsHandshake) (feature `rustls`);
/// - `tower::timeout::error::Elapsed` and `tokio::time::error::Elapsed`: a timeout at the
///   stage (see [`Stage`]);
/// - `std::io::Error`: the error it wraps (`get_ref`) first, then its kind:
///   `ConnectionRefused` and the unreachable kinds are
///   [`ConnectRefused`](FailureKind::ConnectRefused), the rest per stage (see [`Stage`]).
///
/// An error nothing in the chain explains is [`Other`](FailureKind::Other) (or the stage's
/// own kind for [`Stage::Resolve`] and [`Stage::TlsHandshake`]).
///
/// ```
/// use std::io;
/// use tower_fortify::classify::{classify_error, Failure, FailureKind, Stage};
///
/// // A resolver's error, whatever it is, is a DNS failure...
/// let err = io::Error::new(io::ErrorKind::NotFound, "no such host");
/// assert_eq!(classify_error(&err, Stage::Resolve), FailureKind::Dns);
///
/// // ...but a failure classified already keeps its kind.
/// let failure = Failure::new(FailureKind::PoolFull, "pool full");
/// assert_eq!(classify_error(&failure, Stage::Resolve), FailureKind::PoolFull);
/// ```
pub fn classify_error(error: &(dyn Error + 'static), stage: Stage) -> FailureKind {
    if stage == Stage::Resolve {
        // A failure classified further in keeps its kind; anything else failed to resolve.
        return find_failure(error).unwrap_or(FailureKind::Dns);
    }
    walk(error, stage, 0).unwrap_or_else(|| stage.unrecognised())
}

fn find_failure(error: &(dyn Error + 'static)) -> Option<FailureKind> {
    let mut next = Some(error);
    let mut depth = 0;
    while let Some(err) = next {
        if let Some(failure) = err.downcast_ref::<Failure>() {
            return Some(failure.kind());
        }
        depth += 1;
        if depth > MAX_DEPTH {
            return None;
        }
        next = match err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// Returns the kind the chain starting at `error` explains, if anything in it is recognised.
#[cfg_attr(not(any(feature = "hyper", feature = "reqwest")), allow(unused_mut))]
fn walk(error: &(dyn Error + 'static), mut stage: Stage, depth: usize) -> Option<FailureKind> {
    let mut next = Some(error);
    let mut depth = depth;
    while let Some(err) = next {
        depth += 1;
        if depth > MAX_DEPTH {
            return None;
        }
        if let Some(failure) = err.downcast_ref::<Failure>() {
            return Some(failure.kind());
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            // `io::Error::source` skips the error it wraps; look at that error itself.
            if let Some(inner) = io.get_ref() {
                if let Some(kind) = walk(inner, stage, depth) {
                    return Some(kind);
                }
            }
            return io_kind(io.kind(), stage);
        }
        if err.is::<tower::timeout::error::Elapsed>() || err.is::<tokio::time::error::Elapsed>() {
            return Some(stage.timeout());
        }
        #[cfg(feature = "reqwest")]
        if let Some(reqwest) = err.downcast_ref::<::reqwest::Error>() {
            if reqwest.is_connect() && stage == Stage::Request {
                stage = Stage::Connect;
            }
            // reqwest's own timers fail with an error type of its own, private: read the
            // flag. A failure classified further in (a resolver's) keeps its kind.
            if reqwest.is_timeout() {
                return Some(find_failure(err).unwrap_or(stage.timeout()));
            }
        }
        #[cfg(feature = "rustls")]
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(rustls_kind(tls));
        }
        #[cfg(feature = "hyper")]
        {
            if let Some(client) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
                if client.is_connect() && stage == Stage::Request {
                    stage = Stage::Connect;
                }
            } else if let Some(hyper) = err.downcast_ref::<hyper::Error>() {
                if let Some(cause) = hyper.source() {
                    if let Some(kind) = walk(cause, stage, depth) {
                        return Some(kind);
                    }
                }
                return hyper_kind(hyper, stage);
            }
        }
        next = err.source();
    }
    None
}

fn io_kind(kind: io::ErrorKind, stage: Stage) -> Option<FailureKind> {
    use io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::AddrNotAvailable
        | K::NetworkDown => match stage {
            Stage::Resolve => FailureKind::Dns,
            _ => FailureKind::ConnectRefused,
        },
        K::TimedOut => stage.timeout(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::NotConnected => {
            stage.broken()
        }
        K::UnexpectedEof => stage.garbled(FailureKind::ConnectionClosed),
        K::InvalidData => stage.garbled(FailureKind::Protocol),
        _ => return None,
    })
}

#[cfg(feature = "hyper")]
fn hyper_kind(err: &hyper::Error, stage: Stage) -> Option<FailureKind> {
    if err.is_parse() || err.is_parse_status() {
        Some(FailureKind::Protocol)
    } else if err.is_timeout() {
        Some(stage.timeout())
    } else if err.is_incomplete_message()
        || err.is_closed()
        || err.is_canceled()
        || err.is_body_write_aborted()
        || err.is_shutdown()
    {
        Some(stage.broken())
    } else {
        None
    }
}

#[cfg(feature = "rustls")]
fn rustls_kind(err: &rustls::Error) -> FailureKind {
    use rustls::{AlertDescription as A, Error as E, InvalidMessage};
    match err {
        E::InvalidCertificate(_)
        | E::InvalidCertRevocationList(_)
        | E::NoCertificatesPresented
        | E::UnsupportedNameType => FailureKind::TlsCertificate,
        // The peer rejected the certificate we presented.
        E::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::CertificateRequired,
        ) => FailureKind::TlsCertificate,
        // Negotiation: what one side offers and the other accepts do not meet, and a retry
        // offers the same again. rustls found it (`PeerIncompatible`), or the peer said so
        // with a fatal alert.
        E::PeerIncompatible(_)
        | E::NoApplicationProtocol
        | E::AlertReceived(
            A::ProtocolVersion
            | A::HandshakeFailure
            | A::InsufficientSecurity
            | A::IllegalParameter
            | A::NoApplicationProtocol,
        ) => FailureKind::TlsNegotiation,
        // The first bytes the peer sent are not a TLS record: it speaks another protocol
        // (plain HTTP on the port). rustls reads the record header before anything else.
        E::InvalidMessage(
            InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
        ) => FailureKind::TlsNegotiation,
        _ => FailureKind::TlsHandshake,
    }
}
