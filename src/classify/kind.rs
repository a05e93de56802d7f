use std::fmt;

/// What went wrong, in the vocabulary every layer of this crate shares.
///
/// The variants follow the taxonomy of the crate's design: each names a failure an HTTP
/// client meets in production, at the stage where it happens. Each kind belongs to one of
/// urllib3's retry [`Category`]s, which decides whether and for which methods it is retried,
/// or to none: those kinds are never retried.
///
/// | kind | when | category |
/// |---|---|---|
/// | [`Dns`](Self::Dns) | name resolution failed | connect |
/// | [`ConnectRefused`](Self::ConnectRefused) | refused, unreachable, or reset during connect | connect |
/// | [`ConnectTimeout`](Self::ConnectTimeout) | TCP connect did not finish in time | connect |
/// | [`TlsHandshake`](Self::TlsHandshake) | TLS handshake stalled, or the connection was reset or closed during it (request not yet sent) | other |
/// | [`TlsNegotiation`](Self::TlsNegotiation) | client and server cannot agree: no common TLS version, cipher suite or ALPN protocol, a fatal alert no retry can change, or a peer that does not speak TLS | never retried |
/// | [`TlsCertificate`](Self::TlsCertificate) | certificate or hostname verification failed | never retried |
/// | [`ReadTimeout`](Self::ReadTimeout) | request sent, response did not arrive in time | read |
/// | [`ConnectionClosed`](Self::ConnectionClosed) | reset, EOF or incomplete message after the request was sent | read |
/// | [`Protocol`](Self::Protocol) | malformed response | read |
/// | [`PoolTimeout`](Self::PoolTimeout) | the pool limit waited `pool_timeout` for a slot | never retried |
/// | [`PoolFull`](Self::PoolFull) | the pool limit, failing fast, was full | never retried |
/// | [`CircuitOpen`](Self::CircuitOpen) | the circuit breaker rejected the call | never retried |
/// | [`Other`](Self::Other) | anything else | other |
///
/// ```
/// use tower_fortify::classify::{Category, FailureKind};
///
/// assert_eq!(FailureKind::ReadTimeout.category(), Some(Category::Read));
/// assert_eq!(FailureKind::ReadTimeout.as_str(), "read_timeout");
/// assert_eq!(FailureKind::ReadTimeout.to_string(), "read timeout");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// Name resolution failed.
    Dns,
    /// The connection was refused, the host or network was unreachable, or the connection
    /// was reset while it was being set up.
    ConnectRefused,
    /// The TCP connection was not established in time.
    ConnectTimeout,
    /// The TLS handshake stalled, or the connection was reset or closed (or a TLS error
    /// no one can call permanent happened) during it. The request was not sent; a retry may
    /// succeed.
    TlsHandshake,
    /// Client and server cannot agree on how to speak TLS: no common protocol version, no
    /// shared cipher suite, key exchange group or ALPN protocol, a fatal alert that says so
    /// (`protocol_version`, `handshake_failure`, `insufficient_security`,
    /// `illegal_parameter`, `no_application_protocol`), or a peer that answers the TLS hello
    /// with something that is not TLS (plain HTTP on the port). The same configurations
    /// meet again on a retry, so it is never retried: it is a configuration to fix.
    TlsNegotiation,
    /// The peer's certificate or host name failed verification.
    TlsCertificate,
    /// The request was sent but the response did not arrive in time.
    ReadTimeout,
    /// The connection was reset or closed, or the message was cut short, after the request
    /// was sent.
    ConnectionClosed,
    /// The response was malformed.
    Protocol,
    /// A pool limit waited its `pool_timeout` for a free slot (urllib3's `EmptyPoolError`).
    PoolTimeout,
    /// A pool limit in fail-fast mode was full.
    PoolFull,
    /// A circuit breaker rejected the call without calling the service.
    CircuitOpen,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// Every kind, in declaration order.
    ///
    /// ```
    /// use tower_fortify::classify::FailureKind;
    ///
    /// assert_eq!(FailureKind::ALL.len(), 13);
    /// assert_eq!(FailureKind::ALL[0], FailureKind::Dns);
    /// ```
    pub const ALL: [FailureKind; 13] = [
        FailureKind::Dns,
        FailureKind::ConnectRefused,
        FailureKind::ConnectTimeout,
        FailureKind::TlsHandshake,
        FailureKind::TlsNegotiation,
        FailureKind::TlsCertificate,
        FailureKind::ReadTimeout,
        FailureKind::ConnectionClosed,
        FailureKind::Protocol,
        FailureKind::PoolTimeout,
        FailureKind::PoolFull,
        FailureKind::CircuitOpen,
        FailureKind::Other,
    ];

    /// The urllib3 retry category of this kind: the counter a retry after it decrements, or
    /// `None` for the kinds never retried (a rejected certificate or a failed TLS
    /// negotiation, which retrying cannot fix, and this crate's own decisions to shed load:
    /// pool timeout, pool full, circuit open).
    ///
    /// ```
    /// use tower_fortify::classify::{Category, FailureKind};
    ///
    /// assert_eq!(FailureKind::Dns.category(), Some(Category::Connect));
    /// assert_eq!(FailureKind::TlsHandshake.category(), Some(Category::Other));
    /// assert_eq!(FailureKind::TlsCertificate.category(), None);
    /// assert_eq!(FailureKind::TlsNegotiation.category(), None);
    /// ```
    pub const fn category(self) -> Option<Category> {
        Some(match self {
            FailureKind::Dns | FailureKind::ConnectRefused | FailureKind::ConnectTimeout => {
                Category::Connect
            }
            FailureKind::ReadTimeout | FailureKind::ConnectionClosed | FailureKind::Protocol => {
                Category::Read
            }
            FailureKind::TlsHandshake | FailureKind::Other => Category::Other,
            FailureKind::TlsCertificate
            | FailureKind::TlsNegotiation
            | FailureKind::PoolTimeout
            | FailureKind::PoolFull
            | FailureKind::CircuitOpen => return None,
        })
    }

    /// The `category` label of this kind's metrics and events: its category's name, or
    /// `"not_retried"`.
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    pub(crate) const fn category_label(self) -> &'static str {
        match self.category() {
            Some(category) => category.as_str(),
            None => "not_retried",
        }
    }

    /// Whether a failure of this kind is retried by default, for a request whose method is
    /// idempotent (or that is marked idempotent) or not.
    ///
    /// Connect and other failures happen before the request can have reached the server,
    /// so they are retried for any method; read failures happen after it was sent, so they
    /// are retried only for idempotent requests.
    ///
    /// ```
    /// use tower_fortify::classify::FailureKind;
    ///
    /// assert!(FailureKind::ConnectRefused.retried_by_default(false));
    /// assert!(FailureKind::ReadTimeout.retried_by_default(true));
    /// assert!(!FailureKind::ReadTimeout.retried_by_default(false));
    /// assert!(!FailureKind::CircuitOpen.retried_by_default(true));
    /// ```
    pub const fn retried_by_default(self, idempotent: bool) -> bool {
        match self.category() {
            Some(Category::Connect | Category::Other) => true,
            Some(Category::Read) => idempotent,
            Some(Category::Status) | None => false,
        }
    }

    /// A stable `snake_case` name, used as a metrics label value.
    ///
    /// ```
    /// use tower_fortify::classify::FailureKind;
    ///
    /// assert_eq!(FailureKind::ConnectRefused.as_str(), "connect_refused");
    /// assert_eq!(FailureKind::TlsCertificate.as_str(), "tls_certificate");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::TlsHandshake => "tls_handshake",
            FailureKind::TlsNegotiation => "tls_negotiation",
            FailureKind::TlsCertificate => "tls_certificate",
            FailureKind::ReadTimeout => "read_timeout",
            FailureKind::ConnectionClosed => "connection_closed",
            FailureKind::Protocol => "protocol",
            FailureKind::PoolTimeout => "pool_timeout",
            FailureKind::PoolFull => "pool_full",
            FailureKind::CircuitOpen => "circuit_open",
            FailureKind::Other => "other",
        }
    }

    /// Position of this kind in [`FailureKind::ALL`].
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    const fn description(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns resolution failed",
            FailureKind::ConnectRefused => "connect refused",
            FailureKind::ConnectTimeout => "connect timeout",
            FailureKind::TlsHandshake => "tls handshake failed",
            FailureKind::TlsNegotiation => "tls negotiation failed",
            FailureKind::TlsCertificate => "tls certificate rejected",
            FailureKind::ReadTimeout => "read timeout",
            FailureKind::ConnectionClosed => "connection closed",
            FailureKind::Protocol => "protocol error",
            FailureKind::PoolTimeout => "pool timeout",
            FailureKind::PoolFull => "pool full",
            FailureKind::CircuitOpen => "circuit open",
            FailureKind::Other => "other failure",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.description())
    }
}

/// urllib3's retry categories: the counter a retry decrements (`Retry.connect`, `read`,
/// `other`, `status`), and for a failure, for which methods it is retried.
///
/// A failure's category is [`FailureKind::category`]; a retried response is
/// [`Status`](Self::Status). The retry layer sets a backoff per category with
/// [`RetryPolicy::backoff_for`][backoff_for] and counts retries by
/// category.
///
/// ```
/// use tower_fortify::classify::{Category, FailureKind};
///
/// assert_eq!(FailureKind::ConnectionClosed.category(), Some(Category::Read));
/// assert_eq!(Category::Read.as_str(), "read");
/// ```
#[cfg_attr(
    feature = "retry",
    doc = "[backoff_for]: crate::retry::RetryPolicy::backoff_for"
)]
#[cfg_attr(
    not(feature = "retry"),
    doc = "[backoff_for]: https://docs.rs/tower-fortify/latest/tower_fortify/retry/struct.RetryPolicy.html#method.backoff_for"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// The request never reached the server: retried for any method (`Retry.connect`).
    Connect,
    /// The request was sent, so the server may have acted on it: retried for idempotent
    /// methods only (`Retry.read`).
    Read,
    /// Neither connect nor read: retried for any method (`Retry.other`).
    Other,
    /// A response judged retryable by its status (`Retry.status`).
    Status,
}

impl Category {
    /// Every category, in declaration order.
    #[cfg_attr(not(all(feature = "metrics", feature = "retry")), allow(dead_code))]
    pub(crate) const ALL: [Category; 4] = [
        Category::Connect,
        Category::Read,
        Category::Other,
        Category::Status,
    ];

    /// A stable `snake_case` name, used as a metrics label value.
    ///
    /// ```
    /// use tower_fortify::classify::Category;
    ///
    /// assert_eq!(Category::Status.as_str(), "status");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Connect => "connect",
            Category::Read => "read",
            Category::Other => "other",
            Category::Status => "status",
        }
    }

    /// The category's place in [`ALL`](Self::ALL).
    #[cfg_attr(not(feature = "retry"), allow(dead_code))]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, kind) in FailureKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<_> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        for name in &names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FailureKind::ALL.len());
    }

    #[test]
    fn categories_follow_the_design_table() {
        use Category::*;
        use FailureKind::*;
        let table = [
            (Dns, Some(Connect)),
            (ConnectRefused, Some(Connect)),
            (ConnectTimeout, Some(Connect)),
            (TlsHandshake, Some(Category::Other)),
            (TlsNegotiation, None),
            (TlsCertificate, None),
            (ReadTimeout, Some(Read)),
            (ConnectionClosed, Some(Read)),
            (Protocol, Some(Read)),
            (PoolTimeout, None),
            (PoolFull, None),
            (CircuitOpen, None),
            (FailureKind::Other, Some(Category::Other)),
        ];
        assert_eq!(table.len(), FailureKind::ALL.len());
        for (kind, category) in table {
            assert_eq!(kind.category(), category, "{kind:?}");
        }
    }

    #[test]
    fn retried_by_default_for_idempotent_requests_and_for_others() {
        use FailureKind::*;
        // (kind, retried for an idempotent request, retried for any other)
        let table = [
            (Dns, true, true),
            (ConnectRefused, true, true),
            (ConnectTimeout, true, true),
            (TlsHandshake, true, true),
            (TlsNegotiation, false, false),
            (TlsCertificate, false, false),
            (ReadTimeout, true, false),
            (ConnectionClosed, true, false),
            (Protocol, true, false),
            (PoolTimeout, false, false),
            (PoolFull, false, false),
            (CircuitOpen, false, false),
            (Other, true, true),
        ];
        assert_eq!(table.len(), FailureKind::ALL.len());
        for (kind, idempotent, other) in table {
            assert_eq!(kind.retried_by_default(true), idempotent, "{kind:?}");
            assert_eq!(kind.retried_by_default(false), other, "{kind:?}");
        }
    }

    #[test]
    fn a_category_displays_as_its_label_and_pads() {
        for category in Category::ALL {
            assert_eq!(category.to_string(), category.as_str());
        }
        assert_eq!(format!("[{:>8}]", Category::Read), "[    read]");
    }

    #[test]
    fn every_category_is_at_its_index() {
        for (i, category) in Category::ALL.iter().enumerate() {
            assert_eq!(category.index(), i);
        }
    }
}
