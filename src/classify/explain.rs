//! A failure's one-line explanation: what failed and why, in human terms, read from the
//! error chain with `downcast_ref` (never from message text).

use super::{Failure, FailureKind};
use std::{error::Error, fmt, io, net::SocketAddr, sync::OnceLock};

/// Recognises the errors, of layers built on this one, whose `Display` already explains a
/// failure in one line: a `Failure` wrapping one writes that text instead of its own. The
/// layer above registers it ([`explains_itself`]); `classify` does not know its types.
static OWN_TEXT: OnceLock<fn(&(dyn Error + 'static)) -> bool> = OnceLock::new();

/// Registers `check` as the recogniser of errors that explain themselves (see [`OWN_TEXT`]).
/// One layer registers one (the retry layer, when it makes its first error); a second
/// registration is ignored.
#[cfg(feature = "retry")]
pub(crate) fn explains_itself(check: fn(&(dyn Error + 'static)) -> bool) {
    let _ = OWN_TEXT.set(check);
}

/// What the walk down a failure's chain found.
struct Facts<'a> {
    /// The first rustls error in the chain.
    #[cfg(feature = "rustls")]
    tls: Option<&'a rustls::Error>,
    /// The kind of the deepest `io::Error`.
    io: Option<io::ErrorKind>,
    /// A timer fired (`Elapsed`, `TimedOut`).
    timed_out: bool,
    /// The deepest error: the root cause, without the wrappers' text.
    root: &'a (dyn Error + 'static),
}

fn facts(failure: &Failure) -> Facts<'_> {
    let mut facts = Facts {
        #[cfg(feature = "rustls")]
        tls: None,
        io: None,
        timed_out: false,
        root: failure.get_ref(),
    };
    for err in super::links(failure.get_ref()) {
        if err.is::<Failure>() {
            continue;
        }
        facts.root = err;
        #[cfg(feature = "rustls")]
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            facts.tls.get_or_insert(tls);
        }
        if err.is::<tower::timeout::error::Elapsed>() || err.is::<tokio::time::error::Elapsed>() {
            facts.timed_out = true;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            facts.io = Some(io.kind());
            facts.timed_out |= io.kind() == io::ErrorKind::TimedOut;
        }
    }
    facts
}

/// The peer, or `fallback`, as the subject of a sentence.
struct Peer<'a>(Option<SocketAddr>, &'a str);

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str(self.1),
        }
    }
}

/// ` by 127.0.0.1:8443`, or nothing.
struct Suffix<'a>(&'a str, Option<SocketAddr>);

impl fmt::Display for Suffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(addr) => write!(f, " {} {addr}", self.0),
            None => Ok(()),
        }
    }
}

/// Writes `failure`'s kind and the reason, in one line.
fn explain(failure: &Failure, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // A classification around a layer whose error already says it all (the retry layer's,
    // with the attempts and the last failure's kind): its own text.
    if OWN_TEXT.get().is_some_and(|own| own(failure.get_ref())) {
        return write!(f, "{}", failure.get_ref());
    }
    let facts = facts(failure);
    let peer = failure.peer_addr();
    let kind = failure.kind();
    write!(f, "{kind}: ")?;
    #[cfg(feature = "rustls")]
    if let Some(tls) = facts.tls {
        if explain_tls(tls, peer, f)? {
            return Ok(());
        }
    }
    let root = facts.root;
    match kind {
        FailureKind::ConnectRefused if facts.io == Some(io::ErrorKind::ConnectionRefused) => {
            write!(
                f,
                "connection refused{} (nothing listening)",
                Suffix("by", peer)
            )
        }
        FailureKind::ConnectRefused => match peer {
            Some(peer) => write!(f, "cannot connect to {peer}: {root}"),
            None => write!(f, "{root}"),
        },
        FailureKind::ConnectTimeout => write!(
            f,
            "no answer to the TCP connect{} in time (packets dropped, or the host is down)",
            Suffix("to", peer)
        ),
        FailureKind::Dns => write!(f, "DNS: {root}"),
        FailureKind::TlsHandshake if facts.timed_out => write!(
            f,
            "{} accepted the connection but did not finish the TLS handshake in time",
            Peer(peer, "the server")
        ),
        FailureKind::TlsHandshake
            if matches!(
                facts.io,
                Some(io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted)
            ) =>
        {
            write!(
                f,
                "{} reset the connection during the TLS handshake",
                Peer(peer, "the server")
            )
        }
        FailureKind::TlsHandshake if facts.io == Some(io::ErrorKind::UnexpectedEof) => write!(
            f,
            "{} closed the connection during the TLS handshake",
            Peer(peer, "the server")
        ),
        FailureKind::ReadTimeout if facts.timed_out => {
            f.write_str("no response in time after the request was sent")
        }
        FailureKind::ConnectionClosed => write!(
            f,
            "the connection closed before the response was complete ({root})"
        ),
        FailureKind::Protocol => write!(f, "the response is not valid HTTP ({root})"),
        _ => write!(f, "{root}"),
    }
}

/// Explains a rustls error; `false` when it has nothing better than the root cause.
#[cfg(feature = "rustls")]
fn explain_tls(
    err: &rustls::Error,
    peer: Option<SocketAddr>,
    f: &mut fmt::Formatter<'_>,
) -> Result<bool, fmt::Error> {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E, PeerIncompatible as P};
    let server = Peer(peer, "the server");
    match err {
        E::InvalidCertificate(C::ExpiredContext { time, not_after }) => {
            let ago = time.as_secs().saturating_sub(not_after.as_secs()) / 86_400;
            let ago = i64::try_from(ago).unwrap_or(i64::MAX);
            write!(
                f,
                "certificate expired on {} ({} ago)",
                Date(not_after.as_secs()),
                days(ago)
            )?;
        }
        E::InvalidCertificate(C::Expired) => f.write_str("certificate expired")?,
        E::InvalidCertificate(C::NotValidYetContext { time, not_before }) => {
            let ahead = not_before.as_secs().saturating_sub(time.as_secs()) / 86_400;
            let ahead = i64::try_from(ahead).unwrap_or(i64::MAX);
            write!(
                f,
                "certificate is not valid before {} ({} from now: clock skew?)",
                Date(not_before.as_secs()),
                days(ahead)
            )?;
        }
        E::InvalidCertificate(C::NotValidYet) => {
            f.write_str("certificate is not valid yet (clock skew?)")?
        }
        E::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => {
            let names = if presented.is_empty() {
                "no name".to_owned()
            } else {
                let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
                names.join(", ")
            };
            write!(
                f,
                "certificate is valid for {names}, not {}",
                expected.to_str()
            )?;
        }
        E::InvalidCertificate(C::NotValidForName) => {
            f.write_str("certificate is not valid for the host name")?
        }
        E::InvalidCertificate(C::UnknownIssuer) => f.write_str(
            "certificate issued by a CA this client does not trust, or self-signed (the \
             error does not say which)",
        )?,
        E::InvalidCertificate(C::Other(other))
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            f.write_str("server certificate is self-signed (a CA certificate served as its own)")?
        }
        E::InvalidCertificate(C::Revoked) => f.write_str("certificate was revoked")?,
        E::AlertReceived(A::ProtocolVersion)
        | E::PeerIncompatible(
            P::ServerDoesNotSupportTls12Or13 | P::SupportedVersionsExtensionRequired,
        ) => write!(
            f,
            "{server} speaks no TLS version this client enables (TLS 1.2 or 1.3 here; \
                 rustls does not report which versions the server speaks)"
        )?,
        E::PeerIncompatible(P::Tls12NotOffered | P::Tls12NotOfferedOrEnabled) => write!(
            f,
            "{server} requires TLS 1.2, which this client does not enable"
        )?,
        E::AlertReceived(A::HandshakeFailure | A::InsufficientSecurity)
        | E::PeerIncompatible(P::NoCipherSuitesInCommon | P::NoKxGroupsInCommon) => write!(
            f,
            "{server} shares no cipher suite or key exchange with this client"
        )?,
        E::AlertReceived(A::NoApplicationProtocol) | E::NoApplicationProtocol => write!(
            f,
            "{server} and this client share no application protocol (ALPN)"
        )?,
        E::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion,
        ) => write!(
            f,
            "{server} answered the TLS hello with something that is not TLS (plain HTTP on a \
             TLS port?)"
        )?,
        E::AlertReceived(alert) => write!(
            f,
            "{server} ended the TLS handshake with the alert {alert:?}"
        )?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A presented name as webpki writes it (`DnsName("a.example")`, `IpAddress(..)`), bare.
/// This is a field rustls documents as the certificate's names, not an error message.
#[cfg(feature = "rustls")]
fn bare_name(name: &str) -> &str {
    let Some((_, inner)) = name.split_once('(') else {
        return name;
    };
    let inner = inner.strip_suffix(')').unwrap_or(inner);
    inner.trim_matches('"')
}

/// `1.2 s`, `250 ms`, `0.7 ms`.
#[cfg_attr(not(any(feature = "retry", feature = "diagnose")), allow(dead_code))]
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    if d >= std::time::Duration::from_secs(1) {
        let secs = d.as_secs_f64();
        if secs.fract() < 0.05 {
            format!("{secs:.0} s")
        } else {
            format!("{secs:.1} s")
        }
    } else if d >= std::time::Duration::from_millis(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// `2,163 days`, `1 day`, `-1 day`.
#[cfg_attr(not(any(feature = "rustls", feature = "diagnose")), allow(dead_code))]
pub(crate) fn days(n: i64) -> String {
    if n.abs() == 1 {
        format!("{n} day")
    } else {
        format!("{} days", thousands(n))
    }
}

/// `2,163`.
#[cfg_attr(not(feature = "rustls"), allow(dead_code))]
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// A UNIX time as a UTC calendar date, `2021-01-01`.
#[cfg_attr(not(feature = "rustls"), allow(dead_code))]
pub(crate) struct Date(pub(crate) u64);

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Howard Hinnant's days-to-civil, for days since 1970-01-01.
        let z = i64::try_from(self.0 / 86_400).unwrap_or(i64::MAX / 2) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

/// `{}` says in one line what failed and why: the kind, then the cause in human terms,
/// read from the `source()` chain (a certificate's dates and names from rustls's error,
/// the peer address when known, the root cause's text without the wrappers' text). The
/// alternate form `{:#}` follows the whole `source()` chain, which is what a debugging log
/// line may want. In the chain, a nested `Failure` of the same kind is not repeated.
///
/// ```
/// use std::io;
/// use tower_fortify::classify::{Failure, FailureKind};
///
/// let io = io::Error::new(io::ErrorKind::TimedOut, tower::timeout::error::Elapsed::new());
/// let inner = Failure::new(FailureKind::ConnectTimeout, io);
/// let failure = Failure::new(FailureKind::ConnectTimeout, inner);
/// assert_eq!(
///     failure.to_string(),
///     "connect timeout: no answer to the TCP connect in time (packets dropped, or the host is down)"
/// );
/// assert_eq!(format!("{failure:#}"), "connect timeout: request timed out");
/// ```
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return explain(self, f);
        }
        write!(f, "{}", self.kind())?;
        let mut last_kind = self.kind();
        let mut next: Option<&(dyn Error + 'static)> = Some(self.get_ref());
        let mut depth = 0;
        while let Some(err) = next {
            depth += 1;
            if depth > super::MAX_DEPTH {
                break;
            }
            match err.downcast_ref::<Failure>() {
                // A nested failure prints its kind only; its source comes next.
                Some(failure) if failure.kind() == last_kind => {}
                Some(failure) => {
                    last_kind = failure.kind();
                    write!(f, ": {}", failure.kind())?;
                }
                None => write!(f, ": {err}")?,
            }
            next = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_numbers_read_like_prose() {
        assert_eq!(Date(0).to_string(), "1970-01-01");
        assert_eq!(Date(1_609_459_200).to_string(), "2021-01-01");
        assert_eq!(Date(951_782_400).to_string(), "2000-02-29");
        assert_eq!(Date(4_102_444_799).to_string(), "2099-12-31");
        assert_eq!(thousands(2_163), "2,163");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(thousands(123), "123");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(-123_456), "-123,456");
        assert_eq!(days(1), "1 day");
        assert_eq!(days(2_163), "2,163 days");
    }

    #[cfg(feature = "http")]
    proptest::proptest! {
        /// The date agrees with httpdate's formatting of the same instant.
        #[test]
        fn dates_agree_with_httpdate(secs in 0u64..253_402_300_799) {
            let date = Date(secs).to_string();
            let system = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let http = httpdate::fmt_http_date(system);
            // "Fri, 01 Jan 2021 00:00:00 GMT"
            let parts: Vec<&str> = http.split(' ').collect();
            let months = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"];
            let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
            proptest::prop_assert_eq!(date, format!("{}-{:02}-{}", parts[3], month, parts[1]));
        }
    }
}
