//! The report: one section per stage, then the verdict.

use super::format::days;
use crate::classify::{FailureKind, Stage};
use serde::{Serialize, Serializer};
use std::{fmt, net::SocketAddr, time::Duration};

fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

fn opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ms(d, s),
        None => s.serialize_none(),
    }
}

fn stage<S: Serializer>(stage: &Option<Stage>, s: S) -> Result<S::Ok, S::Error> {
    match stage {
        Some(stage) => s.serialize_str(stage_name(*stage)),
        None => s.serialize_none(),
    }
}

fn kind<S: Serializer>(kind: &Option<FailureKind>, s: S) -> Result<S::Ok, S::Error> {
    match kind {
        Some(kind) => s.serialize_str(kind.as_str()),
        None => s.serialize_none(),
    }
}

/// The report's name of a stage: `dns`, `tcp`, `tls`, `http`.
pub(crate) fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Resolve => "dns",
        Stage::Connect => "tcp",
        Stage::TlsHandshake => "tls",
        _ => "http",
    }
}

/// What [`diagnose`](super::diagnose) found, stage by stage. A stage that was not reached
/// (because an earlier one failed) is `None` or empty.
///
/// `Display` prints a table (plain text; [`Report::table`] can add colour), and the report
/// serializes to JSON ([`Report::to_json`]) with durations in milliseconds.
///
/// ```no_run
/// use tower_fortify::diagnose::{diagnose, Options};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
/// let report = diagnose("https://example.com/", &Options::new()).await?;
/// println!("{report}");
/// if let Some(kind) = report.verdict.kind {
///     eprintln!("a client would fail with {kind}: {}", report.verdict.hint);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The URL probed.
    pub url: String,
    /// Name resolution.
    pub dns: DnsReport,
    /// One TCP connect per address, in the resolver's order, until one succeeds.
    pub tcp: Vec<TcpAttempt>,
    /// The TLS handshake and the certificate chain (`https` only, once a connection is up).
    pub tls: Option<TlsReport>,
    /// The response to a `GET` of the URL's path, once TLS is up and verified.
    pub http: Option<HttpReport>,
    /// What failed, what the crate makes of it, and what to fix.
    pub verdict: Verdict,
}

/// Name resolution.
///
/// ```
/// use tower_fortify::diagnose::DnsSource;
///
/// assert_eq!(DnsSource::Override.to_string(), "override (--resolve)");
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DnsReport {
    /// The host name of the URL.
    pub host: String,
    /// The port (the URL's, or the scheme's default).
    pub port: u16,
    /// Where the addresses came from.
    pub source: DnsSource,
    /// The addresses, in the resolver's order.
    pub addresses: Vec<SocketAddr>,
    /// How long resolution took.
    #[serde(rename = "elapsed_ms", serialize_with = "ms")]
    pub elapsed: Duration,
    /// Why resolution failed, when it did.
    pub error: Option<String>,
}

/// Where the addresses of a [`DnsReport`] came from.
///
/// ```
/// use tower_fortify::diagnose::{diagnose, DnsSource, Options};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
/// // An IP address: nothing to resolve (and nothing listens on port 1 of the loopback address).
/// let report = diagnose("https://127.0.0.1:1/", &Options::new()).await?;
/// assert_eq!(report.dns.source, DnsSource::Literal);
/// let options = Options::new().resolve("example.com:1:127.0.0.1")?;
/// let report = diagnose("https://example.com:1/", &options).await?;
/// assert_eq!(report.dns.source, DnsSource::Override);
/// assert_eq!(report.dns.addresses, ["127.0.0.1:1".parse().unwrap()]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DnsSource {
    /// The host is an IP address: nothing to resolve.
    Literal,
    /// An [`Options::resolve`](super::Options::resolve) entry (curl's `--resolve`).
    Override,
    /// The resolver given to [`Options::resolver`](super::Options::resolver).
    Custom,
    /// The system's resolver.
    System,
}

impl fmt::Display for DnsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            DnsSource::Literal => "literal address",
            DnsSource::Override => "override (--resolve)",
            DnsSource::Custom => "custom resolver",
            DnsSource::System => "system resolver",
        })
    }
}

/// One TCP connect.
///
/// ```
/// # use tower_fortify::diagnose::TcpAttempt;
/// fn connected(attempt: &TcpAttempt) -> bool {
///     attempt.error.is_none()
/// }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TcpAttempt {
    /// The address tried.
    pub address: SocketAddr,
    /// How long the connect took, or until it failed.
    #[serde(rename = "elapsed_ms", serialize_with = "ms")]
    pub elapsed: Duration,
    /// Why the connect failed, when it did.
    pub error: Option<String>,
}

/// The TLS handshake.
///
/// ```
/// # use tower_fortify::diagnose::TlsReport;
/// fn trusted(tls: &TlsReport) -> bool {
///     tls.error.is_none() && tls.problem.is_none()
/// }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TlsReport {
    /// The name sent in SNI and verified against the certificate.
    pub server_name: String,
    /// How long the handshake took, or until it failed.
    #[serde(rename = "elapsed_ms", serialize_with = "ms")]
    pub elapsed: Duration,
    /// The negotiated protocol version (`TLSv1_3`), when the handshake finished.
    pub version: Option<String>,
    /// The negotiated cipher suite, when the handshake finished.
    pub cipher_suite: Option<String>,
    /// The protocol agreed through ALPN, if any.
    pub alpn: Option<String>,
    /// The certificates as the server sent them, its own first.
    pub chain: Vec<CertificateInfo>,
    /// Whether the chain verified against the roots (`false` when it was never seen).
    pub verified: bool,
    /// Why the chain did not verify, when it did not.
    pub problem: Option<ChainProblem>,
    /// The handshake's or the verifier's error, as rustls reports it.
    pub error: Option<String>,
}

/// One certificate of the chain the server sent, read with `x509-parser`.
///
/// ```
/// # use tower_fortify::diagnose::CertificateInfo;
/// fn expired(cert: &CertificateInfo) -> bool {
///     cert.days_left < 0
/// }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The subject's distinguished name.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The DNS names and IP addresses of the subject alternative names.
    pub sans: Vec<String>,
    /// Start of validity, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_before: String,
    /// End of validity, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_after: String,
    /// Whole days from now to `not_after` (negative once expired).
    pub days_left: i64,
    /// `not_before` is still in the future.
    pub not_before_in_future: bool,
    /// The key type and size (`EC P-256`, `RSA 2048`, `Ed25519`).
    pub key: String,
    /// Subject and issuer are the same name.
    pub self_signed: bool,
    /// The certificate may issue others (basic constraints `CA:TRUE`).
    pub is_ca: bool,
    /// Where its issuer's certificate can be fetched (authority information access).
    pub ca_issuers: Vec<String>,
}

/// Why a certificate chain did not verify.
///
/// ```
/// use tower_fortify::diagnose::ChainProblem;
///
/// assert_eq!(ChainProblem::MissingIntermediate.to_string(), "missing intermediate");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChainProblem {
    /// The server's certificate (or one above it) is past its `not_after`.
    Expired,
    /// A certificate's `not_before` is in the future: its clock or this one is wrong.
    NotYetValid,
    /// The certificate does not name the host.
    WrongHost,
    /// The chain leads to a CA this client does not trust.
    UnknownIssuer,
    /// The server's certificate signs itself.
    SelfSigned,
    /// The server did not send the intermediate that links its certificate to a root.
    MissingIntermediate,
    /// Anything else the verifier rejected (bad signature, wrong purpose, revoked...).
    Other,
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ChainProblem::Expired => "expired",
            ChainProblem::NotYetValid => "not yet valid",
            ChainProblem::WrongHost => "wrong host",
            ChainProblem::UnknownIssuer => "unknown issuer",
            ChainProblem::SelfSigned => "self-signed",
            ChainProblem::MissingIntermediate => "missing intermediate",
            ChainProblem::Other => "rejected",
        })
    }
}

/// The response.
///
/// ```
/// # use tower_fortify::diagnose::HttpReport;
/// fn ok(http: &HttpReport) -> bool {
///     http.status.is_some_and(|s| s < 400)
/// }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HttpReport {
    /// The status code, when a response head arrived.
    pub status: Option<u16>,
    /// From the request written to the response head read.
    #[serde(rename = "time_to_first_byte_ms", serialize_with = "opt_ms")]
    pub time_to_first_byte: Option<Duration>,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The `Server` header, as sent.
    pub server: Option<String>,
    /// Why no response arrived, when none did.
    pub error: Option<String>,
}

/// The conclusion: the stage that failed, the [`FailureKind`] this crate's classifier gives
/// the real error, whether the retry presets would retry a `GET`, and what to fix.
///
/// ```
/// # use tower_fortify::diagnose::Verdict;
/// fn healthy(verdict: &Verdict) -> bool {
///     verdict.stage.is_none() && verdict.kind.is_none()
/// }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Verdict {
    /// The stage that failed (`None`: every stage succeeded).
    #[serde(serialize_with = "stage")]
    pub stage: Option<Stage>,
    /// The kind the crate gives the failure (`None` for a response, failed or not).
    #[serde(serialize_with = "kind")]
    pub kind: Option<FailureKind>,
    /// What happened, in one line.
    pub explanation: String,
    /// Whether `RetryPolicy::default()` (urllib3's `Retry.DEFAULT`) retries a `GET` that
    /// ends like this.
    pub retried_by_default_policy: bool,
    /// Whether `RetryPolicy::production()` retries a `GET` that ends like this.
    pub retried_by_production_preset: bool,
    /// What to fix, in one line.
    pub hint: String,
}

impl Report {
    /// The report as pretty-printed JSON (durations in milliseconds).
    ///
    /// ```no_run
    /// # use tower_fortify::diagnose::{diagnose, Options};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
    /// let report = diagnose("https://example.com/", &Options::new()).await?;
    /// let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    /// assert_eq!(json["url"], "https://example.com/");
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The table of `Display`, with ANSI colours when `color` is true (for a terminal).
    ///
    /// ```no_run
    /// # use std::io::IsTerminal;
    /// # use tower_fortify::diagnose::{diagnose, Options};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
    /// let report = diagnose("https://example.com/", &Options::new()).await?;
    /// println!("{}", report.table(std::io::stdout().is_terminal()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn table(&self, color: bool) -> Table<'_> {
        Table {
            report: self,
            color,
        }
    }
}

/// A [`Report`] printed as a table, with or without colour (from [`Report::table`]).
///
/// ```
/// use tower_fortify::diagnose::{diagnose, Options, Table};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
/// // Nothing listens on port 1 of the loopback address.
/// let report = diagnose("https://127.0.0.1:1/", &Options::new()).await?;
/// let plain: Table<'_> = report.table(false);
/// assert_eq!(plain.to_string(), report.to_string()); // what `Display` prints
/// assert!(plain.to_string().starts_with("diagnosis of https://127.0.0.1:1/"));
/// assert!(report.table(true).to_string().contains("\x1b[31;1mFAIL\x1b[0m"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    report: &'a Report,
    color: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table(false).fmt(f)
    }
}

#[derive(Clone, Copy)]
enum Mark {
    Ok,
    Fail,
    Warn,
    Skip,
}

impl Table<'_> {
    fn mark(&self, mark: Mark) -> String {
        let (text, code) = match mark {
            Mark::Ok => ("ok  ", "32"),
            Mark::Fail => ("FAIL", "31;1"),
            Mark::Warn => ("warn", "33"),
            Mark::Skip => ("--  ", "2"),
        };
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn paint(&self, mark: Mark, text: &str) -> String {
        let code = match mark {
            Mark::Ok => "32",
            Mark::Fail => "31;1",
            Mark::Warn => "33",
            Mark::Skip => "2",
        };
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn bold(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.report;
        writeln!(f, "{} {}", self.bold("diagnosis of"), r.url)?;

        // DNS
        let dns = &r.dns;
        let mark = if dns.error.is_some() {
            Mark::Fail
        } else {
            Mark::Ok
        };
        let what = match &dns.error {
            Some(error) => format!("{}:{} failed: {error}", dns.host, dns.port),
            None => {
                let addrs: Vec<String> = dns.addresses.iter().map(|a| a.ip().to_string()).collect();
                format!("{} -> {}", dns.host, addrs.join(", "))
            }
        };
        writeln!(
            f,
            "{} {:<5} {:>10}  {what} [{}]",
            self.mark(mark),
            "dns",
            fmt_ms(dns.elapsed),
            dns.source
        )?;

        // TCP
        if r.tcp.is_empty() {
            writeln!(
                f,
                "{} {:<5} {:>10}  not reached",
                self.mark(Mark::Skip),
                "tcp",
                ""
            )?;
        }
        for attempt in &r.tcp {
            let (mark, what) = match &attempt.error {
                Some(error) => (Mark::Fail, format!("{} {error}", attempt.address)),
                None => (Mark::Ok, format!("{} connected", attempt.address)),
            };
            writeln!(
                f,
                "{} {:<5} {:>10}  {what}",
                self.mark(mark),
                "tcp",
                fmt_ms(attempt.elapsed)
            )?;
        }

        // TLS
        match &r.tls {
            None => writeln!(
                f,
                "{} {:<5} {:>10}  not reached",
                self.mark(Mark::Skip),
                "tls",
                ""
            )?,
            Some(tls) => {
                let mark = if tls.error.is_some() {
                    Mark::Fail
                } else {
                    Mark::Ok
                };
                let negotiated = match (&tls.version, &tls.cipher_suite) {
                    (Some(v), Some(c)) => {
                        format!("{v} {c}, ALPN {}", tls.alpn.as_deref().unwrap_or("none"))
                    }
                    _ => "handshake did not finish".to_owned(),
                };
                writeln!(
                    f,
                    "{} {:<5} {:>10}  {negotiated} (SNI {})",
                    self.mark(mark),
                    "tls",
                    fmt_ms(tls.elapsed),
                    tls.server_name
                )?;
                for (i, cert) in tls.chain.iter().enumerate() {
                    let left = if cert.days_left < 0 {
                        self.paint(
                            Mark::Fail,
                            &format!("expired {} ago", days(-cert.days_left)),
                        )
                    } else if cert.not_before_in_future {
                        self.paint(Mark::Fail, "not valid yet")
                    } else if cert.days_left < 14 {
                        self.paint(Mark::Warn, &format!("{} left", days(cert.days_left)))
                    } else {
                        format!("{} left", days(cert.days_left))
                    };
                    writeln!(f, "{:>18} [{i}] subject  {}", "", cert.subject)?;
                    writeln!(f, "{:>18}     issuer   {}", "", cert.issuer)?;
                    if !cert.sans.is_empty() {
                        writeln!(f, "{:>18}     names    {}", "", cert.sans.join(", "))?;
                    }
                    writeln!(
                        f,
                        "{:>18}     valid    {} .. {} ({left})",
                        "", cert.not_before, cert.not_after,
                    )?;
                    let mut notes = vec![cert.key.clone()];
                    if cert.self_signed {
                        notes.push("self-signed".into());
                    }
                    if cert.is_ca {
                        notes.push("CA".into());
                    }
                    writeln!(f, "{:>18}     key      {}", "", notes.join(", "))?;
                }
                let (mark, trust) = match (tls.verified, tls.problem, &tls.error) {
                    (true, _, _) => (Mark::Ok, "chains to a trusted root".to_owned()),
                    (false, Some(ChainProblem::Other), Some(error)) => {
                        (Mark::Fail, format!("NOT trusted: {error}"))
                    }
                    (false, Some(problem), _) => (Mark::Fail, format!("NOT trusted: {problem}")),
                    (false, _, Some(error)) => (Mark::Fail, format!("failed: {error}")),
                    (false, _, None) => (Mark::Fail, "not verified".to_owned()),
                };
                writeln!(f, "{} {:<5} {:>10}  {trust}", self.mark(mark), "trust", "")?;
            }
        }

        // HTTP
        match &r.http {
            None => writeln!(
                f,
                "{} {:<5} {:>10}  not reached",
                self.mark(Mark::Skip),
                "http",
                ""
            )?,
            Some(http) => {
                let (mark, what) = match (http.status, &http.error) {
                    (Some(status), _) => {
                        let mut what = format!("status {status}");
                        if let Some(server) = &http.server {
                            what.push_str(&format!(", server {server}"));
                        }
                        if let Some(retry_after) = &http.retry_after {
                            what.push_str(&format!(", retry-after {retry_after}"));
                        }
                        let mark = if status >= 500 || status == 429 {
                            Mark::Fail
                        } else if status >= 400 {
                            Mark::Warn
                        } else {
                            Mark::Ok
                        };
                        (mark, what)
                    }
                    (None, Some(error)) => (Mark::Fail, error.clone()),
                    (None, None) => (Mark::Fail, "no response".to_owned()),
                };
                let ttfb = http.time_to_first_byte.map(fmt_ms).unwrap_or_default();
                writeln!(f, "{} {:<5} {:>10}  {what}", self.mark(mark), "http", ttfb)?;
            }
        }

        // Verdict
        let v = &r.verdict;
        writeln!(f)?;
        let stage = v.stage.map_or("none", stage_name);
        let kind = v.kind.map_or("none", FailureKind::as_str);
        writeln!(f, "{}   {}", self.bold("result"), v.explanation)?;
        writeln!(f, "  failed stage {stage}, failure kind {kind}")?;
        writeln!(
            f,
            "  retried (GET): default policy {}, production preset {}",
            yes_no(v.retried_by_default_policy),
            yes_no(v.retried_by_production_preset)
        )?;
        write!(f, "{}     {}", self.bold("hint"), v.hint)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
