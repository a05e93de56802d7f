//! The error-chain classifier: the walk down an error's `source()` chain, by [`Stage`].

use super::{Failure, FailureKind, Stage, MAX_DEPTH};
use crate::BoxError;
use std::{error::Error, fmt, io};

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
    super::links(error).find_map(|err| err.downcast_ref::<Failure>().map(Failure::kind))
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

/// The constructors that classify: they walk the chain with [`classify_error`].
impl Failure {
    /// Classifies `error` as a failure at `stage` (see [`classify_error`]):
    /// [`Stage::Request`] for an error met sending a request or reading its response.
    ///
    /// If `error` already is a `Failure`, it is returned as it is.
    ///
    /// [`classify_error`]: classify_error
    ///
    /// ```
    /// use std::io;
    /// use tower_fortify::classify::{Failure, FailureKind, Stage};
    ///
    /// let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
    /// assert_eq!(Failure::classify(eof, Stage::Request).kind(), FailureKind::ConnectionClosed);
    /// let elapsed = tower::timeout::error::Elapsed::new();
    /// assert_eq!(Failure::classify(elapsed, Stage::Connect).kind(), FailureKind::ConnectTimeout);
    /// ```
    pub fn classify(error: impl Into<BoxError>, stage: Stage) -> Self {
        match error.into().downcast::<Failure>() {
            Ok(failure) => *failure,
            Err(source) => Failure::at(classify_error(&*source, stage), stage, source),
        }
    }

    /// Boxes `error` as a classified [`BoxError`], without boxing it again when it already
    /// is a boxed `Failure`.
    #[cfg(any(feature = "retry", feature = "circuit-breaker", feature = "pool"))]
    pub(crate) fn boxed_at(error: BoxError, stage: Stage) -> BoxError {
        Self::boxed_failure_at(error, stage)
    }

    /// Classifies `error` at `stage` as a boxed `Failure`, without boxing it again when it
    /// already is one: for a caller that reads the failure before it hands it on as a
    /// [`BoxError`].
    pub(crate) fn boxed_failure_at(error: BoxError, stage: Stage) -> Box<Failure> {
        match error.downcast::<Failure>() {
            Ok(failure) => failure,
            Err(error) => Box::new(Failure::at(classify_error(&*error, stage), stage, error)),
        }
    }
}
