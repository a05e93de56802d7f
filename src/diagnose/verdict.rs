//! What failed, in one line, and what to fix.

use super::{
    format::{days, human_duration},
    report::{ChainProblem, Report, TlsReport, Verdict},
};
use crate::classify::{FailureKind, ResponseClass, Stage};
use http::{HeaderMap, StatusCode};
use std::{error::Error, fmt::Write as _, io, net::SocketAddr, time::Duration};

/// The statuses `RetryPolicy::production()` puts in its `status_forcelist`.
const PRODUCTION_FORCELIST: [u16; 3] = [502, 503, 504];

/// A failure at one stage, explained.
#[derive(Debug)]
pub(crate) struct Failed {
    stage: Stage,
    kind: Option<FailureKind>,
    explanation: String,
    hint: String,
    /// For a response: whether the default policy and the production preset retry it.
    status_retries: Option<(bool, bool)>,
}

pub(crate) fn healthy(report: Option<&Report>) -> Verdict {
    let explanation = match report.and_then(|r| r.http.as_ref()) {
        Some(http) => format!(
            "every stage passed: HTTP {} in {}",
            http.status.unwrap_or_default(),
            http.time_to_first_byte
                .map(human_duration)
                .unwrap_or_default()
        ),
        None => "not probed".to_owned(),
    };
    Verdict {
        stage: None,
        kind: None,
        explanation,
        retried_by_default_policy: false,
        retried_by_production_preset: false,
        hint: "nothing to fix".to_owned(),
    }
}

/// An I/O error's text, with the error it wraps (tokio-rustls puts rustls's there).
pub(crate) fn io_text(error: &io::Error) -> String {
    match error.get_ref() {
        Some(inner) => inner.to_string(),
        None => error.to_string(),
    }
}

/// The error and its sources, joined with `: `, without repeating a message.
pub(crate) fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    let mut depth = 0;
    while let Some(err) = next {
        let message = err.to_string();
        if !text.contains(&message) {
            let _ = write!(text, ": {message}");
        }
        depth += 1;
        if depth >= crate::classify::MAX_DEPTH {
            break;
        }
        next = err.source();
    }
    text
}

fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

impl Failed {
    fn new(stage: Stage, kind: FailureKind, explanation: String, hint: impl Into<String>) -> Self {
        Failed {
            stage,
            kind: Some(kind),
            explanation,
            hint: hint.into(),
            status_retries: None,
        }
    }

    pub(crate) fn into_verdict(self) -> Verdict {
        // Both presets allow GET and have retries left on a first failure, so a failure is
        // retried when its kind's category is (the same matrix the retry layer applies).
        let (default, production) = match (self.status_retries, self.kind) {
            (Some(retries), _) => retries,
            (None, Some(kind)) => (kind.retried_by_default(true), kind.retried_by_default(true)),
            (None, None) => (false, false),
        };
        Verdict {
            stage: Some(self.stage),
            kind: self.kind,
            explanation: self.explanation,
            retried_by_default_policy: default,
            retried_by_production_preset: production,
            hint: self.hint,
        }
    }

    pub(crate) fn dns(kind: FailureKind, host: &str, error: &io::Error) -> Self {
        let explanation = match error.kind() {
            io::ErrorKind::TimedOut => format!("DNS: no answer for {host} ({error})"),
            _ => format!("DNS: no such host {host} ({})", io_text(error)),
        };
        Failed::new(
            Stage::Resolve,
            kind,
            explanation,
            "check the host name and the resolver; `--resolve host:port:addr` tests the server \
             without DNS",
        )
    }

    pub(crate) fn tcp(
        kind: FailureKind,
        address: SocketAddr,
        error: &io::Error,
        timed_out: Option<Duration>,
    ) -> Self {
        let (explanation, hint) = match (timed_out, error.kind()) {
            (Some(after), _) => (
                format!(
                    "no answer from {address} in {} (packets dropped)",
                    human_duration(after)
                ),
                "a firewall drops the packets, the address is wrong, or the host is down: check \
                 the address and the firewall rules",
            ),
            (None, io::ErrorKind::ConnectionRefused) => (
                format!("connection refused by {address} (nothing listening)"),
                "start the server, or fix the port: nothing accepts connections on it",
            ),
            (None, _) => (
                format!("cannot connect to {address}: {}", io_text(error)),
                "check the route to the host (network, firewall, VPN)",
            ),
        };
        Failed::new(Stage::Connect, kind, explanation, hint)
    }

    pub(crate) fn tls_other(host: &str, error: &dyn Error) -> Self {
        Failed::new(
            Stage::TlsHandshake,
            FailureKind::TlsHandshake,
            format!("{host} is not a valid TLS server name: {error}"),
            "use a DNS name or an IP address",
        )
    }

    pub(crate) fn certificate(
        kind: FailureKind,
        problem: ChainProblem,
        host: &str,
        tls: &TlsReport,
        error: &rustls::Error,
    ) -> Self {
        let leaf = tls.chain.first();
        let (explanation, hint) = match (problem, leaf) {
            (ChainProblem::Expired, Some(leaf)) => {
                let cert = tls.chain.iter().find(|c| c.days_left < 0).unwrap_or(leaf);
                let whose = if std::ptr::eq(cert, leaf) {
                    format!("certificate for {host}")
                } else {
                    format!("certificate {} in the chain of {host}", cert.subject)
                };
                (
                    format!(
                        "{whose} expired on {} ({} ago)",
                        &cert.not_after[..10.min(cert.not_after.len())],
                        days(-cert.days_left)
                    ),
                    "renew the certificate on the server (and check its automatic renewal); \
                     do not turn verification off"
                        .to_owned(),
                )
            }
            (ChainProblem::NotYetValid, Some(leaf)) => (
                format!(
                    "certificate for {host} is not valid before {} (clock skew?)",
                    leaf.not_before
                ),
                "check the clocks of this machine and of the server (NTP); reissue the \
                 certificate if its start date is wrong"
                    .to_owned(),
            ),
            (ChainProblem::WrongHost, Some(leaf)) => (
                format!(
                    "certificate is valid for {}, not {host}",
                    if leaf.sans.is_empty() {
                        "no name".to_owned()
                    } else {
                        leaf.sans.join(", ")
                    }
                ),
                format!(
                    "connect with a name the certificate lists, or reissue it with {host} among \
                     its names"
                ),
            ),
            (ChainProblem::SelfSigned, Some(leaf)) => (
                format!("server certificate is self-signed ({})", leaf.subject),
                "serve a certificate from a trusted CA, or trust this one explicitly (--ca \
                 FILE, Options::ca_pem); never turn verification off"
                    .to_owned(),
            ),
            (ChainProblem::MissingIntermediate, Some(_)) => {
                let last = tls.chain.last().expect("the chain has a leaf");
                (
                    format!(
                        "the server did not send the intermediate certificate {} (its issuer)",
                        last.issuer
                    ),
                    format!(
                        "configure the server with the full chain (its certificate, then the \
                         intermediates: fullchain.pem); the missing one is at {}",
                        last.ca_issuers.join(", ")
                    ),
                )
            }
            (ChainProblem::UnknownIssuer, Some(_)) => {
                let last = tls.chain.last().expect("the chain has a leaf");
                (
                    format!(
                        "certificate issued by {}, a CA this client does not trust",
                        last.issuer
                    ),
                    "if the CA is your own, trust it with --ca FILE (Options::ca_pem); if it is \
                     an intermediate, the server must send it"
                        .to_owned(),
                )
            }
            _ => (
                format!("certificate rejected: {error}"),
                "inspect the chain above; reissue the certificate".to_owned(),
            ),
        };
        Failed::new(Stage::TlsHandshake, kind, explanation, hint)
    }

    pub(crate) fn handshake(
        kind: FailureKind,
        peer: Option<SocketAddr>,
        error: &io::Error,
    ) -> Self {
        use rustls::{AlertDescription as Alert, Error as E};
        let peer = peer.map_or_else(|| "the server".to_owned(), |p| p.to_string());
        let never = "no retry can change this";
        let (explanation, hint) = match rustls_error(error) {
            Some(E::AlertReceived(Alert::ProtocolVersion))
            | Some(E::PeerIncompatible(rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13)) => {
                (
                    format!(
                        "{peer} speaks no TLS version this client accepts (TLS 1.2 or 1.3): \
                         it likely speaks only TLS 1.1 or older"
                    ),
                    format!("enable TLS 1.2 and 1.3 on the server; {never}"),
                )
            }
            Some(E::AlertReceived(Alert::HandshakeFailure | Alert::InsufficientSecurity))
            | Some(E::PeerIncompatible(_)) => (
                format!("{peer} shares no cipher suite or key exchange with this client"),
                format!(
                    "enable modern suites on the server (ECDHE with AES-GCM or ChaCha20-Poly1305); \
                     {never}"
                ),
            ),
            Some(E::AlertReceived(alert)) => (
                format!("{peer} ended the handshake with the alert {alert:?}"),
                "read the server's TLS logs for why it refused this client".to_owned(),
            ),
            Some(E::InvalidMessage(_) | E::InappropriateHandshakeMessage { .. })
            | Some(E::InappropriateMessage { .. }) => (
                format!(
                    "{peer} answered the TLS hello with something that is not TLS (plain HTTP on \
                     a TLS port?)"
                ),
                "use http:// for this port, or the port where the server speaks TLS".to_owned(),
            ),
            Some(other) => (
                format!("TLS handshake with {peer} failed: {other}"),
                "check the server's TLS configuration".to_owned(),
            ),
            None => match error.kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => (
                    format!("{peer} closed the connection during the TLS handshake"),
                    "the port may not speak TLS, or the server rejects this client (SNI, \
                     versions); read its logs"
                        .to_owned(),
                ),
                _ => (
                    format!("TLS handshake with {peer} failed: {}", io_text(error)),
                    "check the server's TLS configuration".to_owned(),
                ),
            },
        };
        Failed::new(Stage::TlsHandshake, kind, explanation, hint)
    }

    pub(crate) fn handshake_stalled(
        kind: FailureKind,
        peer: Option<SocketAddr>,
        after: Duration,
    ) -> Self {
        let peer = peer.map_or_else(|| "the server".to_owned(), |p| p.to_string());
        Failed::new(
            Stage::TlsHandshake,
            kind,
            format!(
                "{peer} accepted the connection but did not answer the TLS hello in {}",
                human_duration(after)
            ),
            "the server is overloaded or the port does not speak TLS; check its load and the port",
        )
    }

    pub(crate) fn http(
        kind: FailureKind,
        error: &(dyn Error + 'static),
        timed_out: Option<Duration>,
    ) -> Self {
        let (explanation, hint) = match (timed_out, kind) {
            (Some(after), _) => (
                format!(
                    "no response within {} of the request (read timeout)",
                    human_duration(after)
                ),
                "the server or what it waits for is slow: fix the backend or raise read_timeout",
            ),
            (None, FailureKind::ConnectionClosed) => (
                format!(
                    "the server closed the connection without a response ({})",
                    chain_text(error)
                ),
                "read the server's logs: it dropped the request (crash, limit, proxy timeout)",
            ),
            (None, FailureKind::Protocol) => (
                format!("the response is not valid HTTP/1.1 ({})", chain_text(error)),
                "the port speaks another protocol, or a proxy mangles the response",
            ),
            (None, _) => (
                format!("request failed: {}", chain_text(error)),
                "read the server's logs",
            ),
        };
        Failed::new(Stage::Request, kind, explanation, hint)
    }

    /// A response that says the request failed (4xx, 5xx); `None` for a success.
    pub(crate) fn status(status: StatusCode, headers: &HeaderMap) -> Option<Self> {
        if !status.is_client_error() && !status.is_server_error() {
            return None;
        }
        let class = ResponseClass::new(status, headers);
        let asked = class.asks_retry_after();
        let default = asked;
        let production = asked || PRODUCTION_FORCELIST.contains(&status.as_u16());
        let reason = status.canonical_reason().unwrap_or("");
        let hint = if status.is_server_error() {
            "the server reached is failing: read its logs (or its upstream's, for 502/504)"
        } else if asked {
            "the server asks to come back later: slow down and honour Retry-After"
        } else {
            "the request reached the server, which refused it: check the path, the method and \
             the credentials"
        };
        Some(Failed {
            stage: Stage::Request,
            kind: None,
            explanation: format!("server answered {} {reason}", status.as_u16())
                .trim_end()
                .to_owned(),
            hint: hint.to_owned(),
            status_retries: Some((default, production)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose source is the next one.
    #[derive(Debug)]
    struct Link(String, Option<Box<Link>>);

    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl Error for Link {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// The errors `messages`, each the source of the one before.
    fn chain<S: ToString>(messages: &[S]) -> Link {
        messages
            .iter()
            .rev()
            .fold(None, |next, m| {
                Some(Link(m.to_string(), next.map(Box::new)))
            })
            .expect("one message at least")
    }

    #[test]
    fn a_chain_is_joined_without_repeats_and_bounded() {
        let text = chain_text(&chain(&[
            "connect failed: refused",
            "refused",
            "os error 111",
        ]));
        assert_eq!(text, "connect failed: refused: os error 111");
        // The error and 32 sources at most.
        let names: Vec<String> = (0..40).map(|i| format!("e{i:02}")).collect();
        let text = chain_text(&chain(&names));
        assert!(text.ends_with(": e32"), "{text}");
    }

    #[test]
    fn statuses_and_the_presets() {
        let mut headers = HeaderMap::new();
        assert!(Failed::status(StatusCode::OK, &headers).is_none());
        let not_found = Failed::status(StatusCode::NOT_FOUND, &headers).unwrap();
        assert!(!not_found.into_verdict().retried_by_production_preset);
        let gateway = Failed::status(StatusCode::BAD_GATEWAY, &headers)
            .unwrap()
            .into_verdict();
        assert_eq!(
            (
                gateway.retried_by_default_policy,
                gateway.retried_by_production_preset
            ),
            (false, true)
        );
        headers.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        let busy = Failed::status(StatusCode::TOO_MANY_REQUESTS, &headers)
            .unwrap()
            .into_verdict();
        assert_eq!(
            (
                busy.retried_by_default_policy,
                busy.retried_by_production_preset
            ),
            (true, true)
        );
        assert!(busy.hint.contains("Retry-After"));
    }
}
