//! The chain walk on errors built by hand: the rules, one by one.

use std::{error::Error, fmt, io};
use tower_fortify::classify::{classify_error, Failure, FailureKind, Stage};

/// An error with an optional source, to build chains.
#[derive(Debug)]
struct Wrap(Option<Box<dyn Error + Send + Sync>>);

impl fmt::Display for Wrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapper")
    }
}

impl Error for Wrap {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.as_ref().map(|e| &**e as _)
    }
}

fn wrap(err: impl Into<Box<dyn Error + Send + Sync>>) -> Wrap {
    Wrap(Some(err.into()))
}

fn io(kind: io::ErrorKind) -> io::Error {
    io::Error::from(kind)
}

#[test]
fn io_kinds_by_stage() {
    use io::ErrorKind as K;
    use FailureKind::*;
    let rows = [
        (
            K::ConnectionRefused,
            ConnectRefused,
            ConnectRefused,
            ConnectRefused,
        ),
        (
            K::HostUnreachable,
            ConnectRefused,
            ConnectRefused,
            ConnectRefused,
        ),
        (
            K::NetworkUnreachable,
            ConnectRefused,
            ConnectRefused,
            ConnectRefused,
        ),
        (K::TimedOut, ReadTimeout, ConnectTimeout, TlsHandshake),
        (
            K::ConnectionReset,
            ConnectionClosed,
            ConnectRefused,
            TlsHandshake,
        ),
        (
            K::ConnectionAborted,
            ConnectionClosed,
            ConnectRefused,
            TlsHandshake,
        ),
        (
            K::BrokenPipe,
            ConnectionClosed,
            ConnectRefused,
            TlsHandshake,
        ),
        (
            K::UnexpectedEof,
            ConnectionClosed,
            TlsHandshake,
            TlsHandshake,
        ),
        (K::InvalidData, Protocol, TlsHandshake, TlsHandshake),
        (K::PermissionDenied, Other, Other, TlsHandshake),
    ];
    for (kind, request, connect, tls) in rows {
        let err = io(kind);
        assert_eq!(
            classify_error(&err, Stage::Request),
            request,
            "{kind:?} request"
        );
        assert_eq!(
            classify_error(&err, Stage::Connect),
            connect,
            "{kind:?} connect"
        );
        assert_eq!(
            classify_error(&err, Stage::TlsHandshake),
            tls,
            "{kind:?} tls"
        );
        assert_eq!(
            classify_error(&err, Stage::Resolve),
            Dns,
            "{kind:?} resolve"
        );
        assert_eq!(classify_error(&err, Stage::Request), request);
    }
}

#[test]
fn timeouts_by_stage() {
    let tower = tower::timeout::error::Elapsed::new();
    for (stage, kind) in [
        (Stage::Request, FailureKind::ReadTimeout),
        (Stage::Connect, FailureKind::ConnectTimeout),
        (Stage::TlsHandshake, FailureKind::TlsHandshake),
        (Stage::Resolve, FailureKind::Dns),
    ] {
        assert_eq!(classify_error(&tower, stage), kind);
        assert_eq!(
            classify_error(&wrap(tower::timeout::error::Elapsed::new()), stage),
            kind
        );
    }
}

#[tokio::test(start_paused = true)]
async fn tokio_elapsed_is_a_timeout() {
    let elapsed = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        std::future::pending::<()>(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        classify_error(&elapsed, Stage::Request),
        FailureKind::ReadTimeout
    );
    assert_eq!(
        classify_error(&elapsed, Stage::Connect),
        FailureKind::ConnectTimeout
    );
    // hyper-util's connect timeout wraps tokio's Elapsed in an io::Error of kind TimedOut.
    let io = io::Error::new(io::ErrorKind::TimedOut, elapsed);
    assert_eq!(
        classify_error(&io, Stage::Connect),
        FailureKind::ConnectTimeout
    );
}

#[test]
fn walks_nested_sources() {
    let err = wrap(wrap(wrap(io(io::ErrorKind::ConnectionRefused))));
    assert_eq!(
        classify_error(&err, Stage::Request),
        FailureKind::ConnectRefused
    );
}

#[test]
fn looks_inside_io_errors() {
    // io::Error::source skips the error it wraps; the walk must not.
    let inner = Failure::new(FailureKind::CircuitOpen, "open");
    let err = io::Error::other(inner);
    assert_eq!(
        classify_error(&err, Stage::Request),
        FailureKind::CircuitOpen
    );
    // An io::Error whose inner error says nothing falls back to its own kind.
    let err = io::Error::new(io::ErrorKind::ConnectionReset, wrap(Wrap(None)));
    assert_eq!(
        classify_error(&err, Stage::Request),
        FailureKind::ConnectionClosed
    );
}

#[test]
fn the_peer_address_is_found_inside_io_errors_too() {
    // As the walk above: a failure that knew its peer, wrapped in an io::Error (whose
    // source() would skip it).
    let addr = "127.0.0.1:8443".parse().unwrap();
    let known = || {
        Failure::new(
            FailureKind::ConnectRefused,
            io(io::ErrorKind::ConnectionRefused),
        )
        .with_peer_addr(addr)
    };
    // Under a failure that did not know it.
    let outer = Failure::new(FailureKind::Other, wrap(io::Error::other(known())));
    assert_eq!(outer.peer_addr(), Some(addr));
    // As a layer meets it: an io error from below, classified. Its kind and its peer are
    // the failure's inside.
    let classified = Failure::classify(io::Error::other(known()), Stage::Connect);
    assert_eq!(classified.kind(), FailureKind::ConnectRefused);
    assert_eq!(classified.peer_addr(), Some(addr));
}

#[test]
fn an_existing_failure_is_kept() {
    for kind in FailureKind::ALL {
        let failure = Failure::new(kind, io(io::ErrorKind::TimedOut));
        for stage in [
            Stage::Request,
            Stage::Connect,
            Stage::TlsHandshake,
            Stage::Resolve,
        ] {
            assert_eq!(classify_error(&failure, stage), kind);
            assert_eq!(classify_error(&wrap(Failure::new(kind, "x")), stage), kind);
        }
        // Classifying a Failure again returns it as it is.
        let again = Failure::classify(Failure::new(kind, "x"), Stage::Resolve);
        assert_eq!(again.kind(), kind);
        assert_eq!(again.get_ref().to_string(), "x");
    }
}

/// `{:#}` follows the whole chain: a nested failure of another kind adds its kind, one of
/// the same kind does not; 32 errors at most.
#[test]
fn the_alternate_form_names_each_kind_once_and_is_bounded() {
    let inner = Failure::new(FailureKind::ConnectTimeout, "boom");
    let outer = Failure::new(FailureKind::PoolTimeout, inner);
    assert_eq!(
        format!("{outer:#}"),
        format!(
            "{}: {}: boom",
            FailureKind::PoolTimeout,
            FailureKind::ConnectTimeout
        )
    );
    let same = Failure::new(
        FailureKind::ConnectTimeout,
        Failure::new(FailureKind::ConnectTimeout, "boom"),
    );
    assert_eq!(
        format!("{same:#}"),
        format!("{}: boom", FailureKind::ConnectTimeout)
    );
    let wrappers = |n: usize| {
        let mut err = wrap(Wrap(None));
        for _ in 1..n {
            err = wrap(err);
        }
        Failure::new(FailureKind::Other, err)
    };
    for (errors, shown) in [(32, 32), (40, 32)] {
        let text = format!("{:#}", wrappers(errors));
        assert_eq!(text.matches(": wrapper").count(), shown, "{text}");
    }
}

#[test]
fn the_outermost_failure_wins() {
    let inner = Failure::new(FailureKind::ConnectTimeout, "inner");
    let outer = Failure::new(FailureKind::PoolTimeout, inner);
    assert_eq!(
        classify_error(&outer, Stage::Request),
        FailureKind::PoolTimeout
    );
}

#[test]
fn unknown_errors_are_other_or_the_stage() {
    let err = wrap(Wrap(None));
    assert_eq!(classify_error(&err, Stage::Request), FailureKind::Other);
    assert_eq!(classify_error(&err, Stage::Connect), FailureKind::Other);
    assert_eq!(
        classify_error(&err, Stage::TlsHandshake),
        FailureKind::TlsHandshake
    );
    assert_eq!(classify_error(&err, Stage::Resolve), FailureKind::Dns);
}

/// An error that is its own source: the walk must end.
#[derive(Debug)]
struct Cycle;

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cycle")
    }
}

impl Error for Cycle {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&Cycle)
    }
}

#[test]
fn cyclic_chains_end() {
    assert_eq!(classify_error(&Cycle, Stage::Request), FailureKind::Other);
    assert_eq!(classify_error(&Cycle, Stage::Resolve), FailureKind::Dns);
    let failure = Failure::new(FailureKind::Other, Cycle);
    // Display with the whole chain ends too.
    assert!(format!("{failure:#}").starts_with("other failure: cycle: cycle"));
}

/// The walk reads 32 errors of a chain: a cause 32 deep is found, one 33 deep is not.
#[test]
fn the_walk_reads_32_errors() {
    let chain = |wrappers: usize| {
        let mut err: Box<dyn Error + Send + Sync> = Box::new(io(io::ErrorKind::ConnectionRefused));
        for _ in 0..wrappers {
            err = Box::new(wrap(err));
        }
        err
    };
    assert_eq!(
        classify_error(&*chain(31), Stage::Request),
        FailureKind::ConnectRefused
    );
    assert_eq!(
        classify_error(&*chain(32), Stage::Request),
        FailureKind::Other
    );
}

/// While resolving, a refused or unreachable error is the resolver's: `Dns`.
#[test]
fn unreachable_while_resolving_is_dns() {
    for kind in [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::HostUnreachable,
        io::ErrorKind::NetworkUnreachable,
        io::ErrorKind::AddrNotAvailable,
        io::ErrorKind::NetworkDown,
    ] {
        assert_eq!(
            classify_error(&io(kind), Stage::Resolve),
            FailureKind::Dns,
            "{kind:?}"
        );
    }
}

#[test]
fn stages_display_as_their_names() {
    assert_eq!(Stage::Connect.to_string(), "connect");
    assert_eq!(format!("{:>8}", Stage::Resolve), " resolve");
}

#[cfg(feature = "rustls")]
#[test]
fn rustls_certificate_errors_are_tls_certificate() {
    use rustls::{AlertDescription, CertificateError, Error as E};
    let certificate = [
        E::InvalidCertificate(CertificateError::UnknownIssuer),
        E::InvalidCertificate(CertificateError::Expired),
        E::InvalidCertificate(CertificateError::NotValidForName),
        E::NoCertificatesPresented,
        E::AlertReceived(AlertDescription::BadCertificate),
        E::AlertReceived(AlertDescription::UnknownCA),
    ];
    for err in certificate {
        // As tokio-rustls and hyper-rustls return it: io::Error(Other, io::Error(InvalidData, rustls)).
        let wrapped = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, err.clone()));
        for stage in [Stage::Request, Stage::Connect, Stage::TlsHandshake] {
            assert_eq!(
                classify_error(&err, stage),
                FailureKind::TlsCertificate,
                "{err:?}"
            );
            assert_eq!(
                classify_error(&wrapped, stage),
                FailureKind::TlsCertificate,
                "{err:?}"
            );
        }
    }
    // Transient, or not known to be permanent: retried.
    let handshake = [
        E::HandshakeNotComplete,
        E::DecryptError,
        E::AlertReceived(AlertDescription::DecodeError),
        E::AlertReceived(AlertDescription::InternalError),
        E::InvalidMessage(rustls::InvalidMessage::MessageTooShort),
        E::PeerMisbehaved(rustls::PeerMisbehaved::MissingKeyShare),
    ];
    // What the two sides offer does not meet: never retried.
    let negotiation = [
        E::AlertReceived(AlertDescription::HandshakeFailure),
        E::AlertReceived(AlertDescription::ProtocolVersion),
        E::AlertReceived(AlertDescription::InsufficientSecurity),
        E::AlertReceived(AlertDescription::IllegalParameter),
        E::AlertReceived(AlertDescription::NoApplicationProtocol),
        E::NoApplicationProtocol,
        E::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
        E::PeerIncompatible(rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13),
        E::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        E::InvalidMessage(rustls::InvalidMessage::UnknownProtocolVersion),
    ];
    let rows = handshake
        .into_iter()
        .map(|e| (e, FailureKind::TlsHandshake))
        .chain(
            negotiation
                .into_iter()
                .map(|e| (e, FailureKind::TlsNegotiation)),
        );
    for (err, kind) in rows {
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, err.clone());
        for stage in [Stage::Request, Stage::Connect, Stage::TlsHandshake] {
            assert_eq!(classify_error(&err, stage), kind, "{err:?}");
            assert_eq!(classify_error(&wrapped, stage), kind, "{err:?}");
        }
    }
}

#[test]
fn failure_classify_does_not_box_twice() {
    let err: tower_fortify::BoxError = Box::new(Failure::new(FailureKind::PoolFull, "full"));
    let failure = Failure::classify(err, Stage::Request);
    assert_eq!(failure.kind(), FailureKind::PoolFull);
    assert!(!failure.get_ref().is::<Failure>());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [io::ErrorKind; 12] = [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::TimedOut,
        io::ErrorKind::UnexpectedEof,
        io::ErrorKind::InvalidData,
        io::ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied,
        io::ErrorKind::HostUnreachable,
        io::ErrorKind::Other,
        io::ErrorKind::WouldBlock,
    ];

    const STAGES: [Stage; 4] = [
        Stage::Request,
        Stage::Connect,
        Stage::TlsHandshake,
        Stage::Resolve,
    ];

    /// Wraps `err` in `depth` layers, alternating plain wrappers and io::Errors of kind Other
    /// (which say nothing themselves, so the walk must look through them).
    fn nest(
        mut err: Box<dyn Error + Send + Sync>,
        layers: &[bool],
    ) -> Box<dyn Error + Send + Sync> {
        for &as_io in layers {
            err = if as_io {
                Box::new(io::Error::other(err))
            } else {
                Box::new(wrap(err))
            };
        }
        err
    }

    proptest! {
        #[test]
        fn wrappers_do_not_change_the_verdict(
            kind in 0..KINDS.len(),
            stage in 0..STAGES.len(),
            layers in proptest::collection::vec(any::<bool>(), 0..20),
        ) {
            let stage = STAGES[stage];
            let bare = io(KINDS[kind]);
            let expected = classify_error(&bare, stage);
            let nested = nest(Box::new(io(KINDS[kind])), &layers);
            prop_assert_eq!(classify_error(&*nested, stage), expected);
        }

        #[test]
        fn a_failure_anywhere_in_the_chain_decides(
            failure in 0..FailureKind::ALL.len(),
            kind in 0..KINDS.len(),
            stage in 0..STAGES.len(),
            inner in proptest::collection::vec(any::<bool>(), 0..10),
            outer in proptest::collection::vec(any::<bool>(), 0..10),
        ) {
            let failure = FailureKind::ALL[failure];
            let chain = nest(Box::new(io(KINDS[kind])), &inner);
            let chain = nest(Box::new(Failure::new(failure, chain)), &outer);
            prop_assert_eq!(classify_error(&*chain, STAGES[stage]), failure);
        }

        #[test]
        fn any_depth_terminates(depth in 0usize..200, stage in 0..STAGES.len()) {
            let layers = vec![false; depth];
            let chain = nest(Box::new(io(io::ErrorKind::ConnectionRefused)), &layers);
            let kind = classify_error(&*chain, STAGES[stage]);
            // Past the depth guard the cause is not reached: the stage's fallback answers.
            prop_assert!(FailureKind::ALL.contains(&kind));
            if depth < 30 && STAGES[stage] != Stage::Resolve {
                prop_assert_eq!(kind, FailureKind::ConnectRefused);
            }
        }
    }
}
