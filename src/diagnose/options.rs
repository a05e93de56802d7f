//! What the probe is told: extra roots, resolver overrides, timeouts.

use crate::InvalidConfig;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::{
    fmt,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

/// The future a custom resolver returns.
pub(crate) type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

type ResolverFn = dyn Fn(String, u16) -> ResolveFuture + Send + Sync;

/// The settings of a [`diagnose`](super::diagnose) run. Setters only, each named after its
/// field; every timeout must be greater than zero (checked when the probe starts, which
/// returns an [`InvalidConfig`] naming the field).
///
/// | setting | default | curl counterpart |
/// |---|---|---|
/// | [`ca_pem`](Self::ca_pem) / [`root_certificate`](Self::root_certificate) | none (the webpki roots only) | `--cacert` (which replaces the roots; this adds to them) |
/// | [`webpki_roots`](Self::webpki_roots) | `true`: Mozilla's roots from `webpki-roots` | |
/// | [`resolve`](Self::resolve) | none | `--resolve host:port:addr` |
/// | [`resolver`](Self::resolver) | the system's (`getaddrinfo`) | |
/// | [`dns_timeout`](Self::dns_timeout) | 5 s | |
/// | [`connect_timeout`](Self::connect_timeout) | 5 s per address | `--connect-timeout` |
/// | [`tls_timeout`](Self::tls_timeout) | 10 s | |
/// | [`read_timeout`](Self::read_timeout) | 10 s to the response head | |
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::diagnose::Options;
///
/// let options = Options::new()
///     .resolve("api.example.com:443:127.0.0.1")?
///     .connect_timeout(Duration::from_secs(2));
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) webpki_roots: bool,
    pub(crate) overrides: Vec<Override>,
    pub(crate) resolver: Option<Arc<ResolverFn>>,
    pub(crate) dns_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

/// One `--resolve host:port:addr` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) addrs: Vec<IpAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            roots: Vec::new(),
            webpki_roots: true,
            overrides: Vec::new(),
            resolver: None,
            dns_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            tls_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("roots", &self.roots.len())
            .field("webpki_roots", &self.webpki_roots)
            .field("overrides", &self.overrides)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .field("dns_timeout", &self.dns_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_timeout", &self.tls_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl Options {
    /// The defaults (see the table above).
    ///
    /// ```
    /// use tower_fortify::classify::{FailureKind, Stage};
    /// use tower_fortify::diagnose::{diagnose, DnsSource, Options};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
    /// // The defaults are valid: the probe runs, and stops where the host fails (nothing
    /// // listens on port 1 of the loopback address).
    /// let report = diagnose("https://127.0.0.1:1/", &Options::new()).await?;
    /// assert_eq!(report.dns.source, DnsSource::Literal);
    /// assert_eq!(report.verdict.stage, Some(Stage::Connect));
    /// assert_eq!(report.verdict.kind, Some(FailureKind::ConnectRefused));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the certificates of a PEM file (every `CERTIFICATE` block) besides the roots
    /// already trusted.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming `ca_pem` when the text holds no certificate or a block
    /// that does not decode.
    ///
    /// ```
    /// use tower_fortify::diagnose::Options;
    ///
    /// let err = Options::new().ca_pem(b"not a certificate").unwrap_err();
    /// assert_eq!(err.field(), "ca_pem");
    /// ```
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, InvalidConfig> {
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(pem.as_ref()) {
            let cert =
                cert.map_err(|_| InvalidConfig::new("ca_pem", "a PEM block does not decode"))?;
            self.roots.push(cert);
            found = true;
        }
        if !found {
            return Err(InvalidConfig::new("ca_pem", "holds no CERTIFICATE block"));
        }
        Ok(self)
    }

    /// Trusts one DER-encoded certificate besides the roots already trusted.
    ///
    /// ```
    /// use tower_fortify::diagnose::Options;
    ///
    /// let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
    /// let options = Options::new().root_certificate(ca.cert.der().clone());
    /// # let _ = options;
    /// ```
    pub fn root_certificate(mut self, der: CertificateDer<'static>) -> Self {
        self.roots.push(der);
        self
    }

    /// Whether Mozilla's roots (the `webpki-roots` crate) are trusted. Default `true`. Off
    /// with no root of your own ([`ca_pem`](Self::ca_pem),
    /// [`root_certificate`](Self::root_certificate)), an `https://` probe is rejected, naming
    /// `webpki_roots`.
    ///
    /// ```
    /// use tower_fortify::diagnose::{diagnose, Options};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
    /// // No root left to trust: an https:// probe is refused before it starts.
    /// let options = Options::new().webpki_roots(false);
    /// let err = diagnose("https://127.0.0.1:1/", &options).await.unwrap_err();
    /// assert_eq!(err.field(), "webpki_roots");
    /// // A private CA of its own (a test server's, say): the probe runs.
    /// let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
    /// let options = options.root_certificate(ca.cert.der().clone());
    /// assert!(diagnose("https://127.0.0.1:1/", &options).await.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn webpki_roots(mut self, trust: bool) -> Self {
        self.webpki_roots = trust;
        self
    }

    /// Answers the lookup of `host` for `port` with the addresses given, as curl's
    /// `--resolve host:port:addr[,addr]...` does: `spec` is that argument (an IPv6 address
    /// in brackets). The report says the addresses came from an override.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming `resolve` when `spec` is not `host:port:addr[,addr]...`.
    ///
    /// ```
    /// use tower_fortify::diagnose::Options;
    ///
    /// let options = Options::new().resolve("example.com:443:127.0.0.1,[::1]")?;
    /// assert!(Options::new().resolve("example.com:443").is_err());
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn resolve(mut self, spec: &str) -> Result<Self, InvalidConfig> {
        const USAGE: &str = "must be host:port:addr[,addr]...";
        let invalid = || InvalidConfig::new("resolve", USAGE);
        let (host, rest) = spec.split_once(':').ok_or_else(invalid)?;
        let (port, addrs) = rest.split_once(':').ok_or_else(invalid)?;
        if host.is_empty() {
            return Err(invalid());
        }
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        let addrs = addrs
            .split(',')
            .map(|addr| {
                let addr = addr.trim();
                let addr = addr
                    .strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .unwrap_or(addr);
                addr.parse::<IpAddr>().map_err(|_| invalid())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.overrides.push(Override {
            host: host.to_ascii_lowercase(),
            port,
            addrs,
        });
        Ok(self)
    }

    /// Resolves names no [`resolve`](Self::resolve) entry covers with `resolver` instead of
    /// the system's resolver: a test's way to a DNS failure without real DNS, or a client's
    /// own resolver.
    ///
    /// ```
    /// use std::io;
    /// use tower_fortify::classify::{FailureKind, Stage};
    /// use tower_fortify::diagnose::{diagnose, DnsSource, Options};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
    /// let options = Options::new().resolver(|host, _port| async move {
    ///     Err(io::Error::new(io::ErrorKind::NotFound, format!("no such host {host}")))
    /// });
    /// let report = diagnose("https://api.test/", &options).await?;
    /// assert_eq!(report.dns.source, DnsSource::Custom);
    /// assert_eq!((report.verdict.stage, report.verdict.kind), (Some(Stage::Resolve), Some(FailureKind::Dns)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn resolver<F, Fut>(mut self, resolver: F) -> Self
    where
        F: Fn(String, u16) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
    {
        self.resolver = Some(Arc::new(move |host, port| {
            Box::pin(resolver(host, port)) as ResolveFuture
        }));
        self
    }

    /// How long name resolution may take. Default 5 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::{classify::Stage, diagnose::{diagnose, Options}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
    /// // A resolver that never answers (no real DNS is asked).
    /// let options = Options::new()
    ///     .resolver(|_host, _port| std::future::pending())
    ///     .dns_timeout(Duration::from_secs(1));
    /// let report = diagnose("https://api.test/", &options).await?;
    /// assert_eq!(report.verdict.stage, Some(Stage::Resolve));
    /// assert_eq!(report.dns.error.as_deref(), Some("timed out after 1 s"));
    /// let zero = Options::new().dns_timeout(Duration::ZERO);
    /// assert_eq!(diagnose("https://127.0.0.1:1/", &zero).await.unwrap_err().field(), "dns_timeout");
    /// # Ok(())
    /// # }
    /// ```
    pub fn dns_timeout(mut self, timeout: Duration) -> Self {
        self.dns_timeout = timeout;
        self
    }

    /// How long each TCP connect may take. Default 5 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::{classify::FailureKind, diagnose::{diagnose, Options}};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
    /// // A refused connect fails at once: the timeout bounds a connect that gets no answer.
    /// let options = Options::new().connect_timeout(Duration::from_secs(1));
    /// let report = diagnose("https://127.0.0.1:1/", &options).await?;
    /// assert_eq!(report.verdict.kind, Some(FailureKind::ConnectRefused));
    /// let zero = Options::new().connect_timeout(Duration::ZERO);
    /// assert_eq!(diagnose("https://127.0.0.1:1/", &zero).await.unwrap_err().field(), "connect_timeout");
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the TLS handshake may take. Default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::{classify::Stage, diagnose::{diagnose, Options}};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // A server that takes the connection (the kernel does) and never answers the handshake.
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("https://{}/", silent.local_addr()?);
    /// let options = Options::new().tls_timeout(Duration::from_millis(100));
    /// let report = diagnose(&url, &options).await?;
    /// assert_eq!(report.verdict.stage, Some(Stage::TlsHandshake));
    /// assert_eq!(report.tls.unwrap().error.as_deref(), Some("timed out after 100 ms"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls_timeout(mut self, timeout: Duration) -> Self {
        self.tls_timeout = timeout;
        self
    }

    /// How long the response head may take once the request is sent. Default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::classify::{FailureKind, Stage};
    /// use tower_fortify::diagnose::{diagnose, Options};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // A server that takes the connection (the kernel does) and never answers the request.
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("http://{}/", silent.local_addr()?);
    /// let report = diagnose(&url, &Options::new().read_timeout(Duration::from_millis(100))).await?;
    /// assert_eq!(report.verdict.stage, Some(Stage::Request));
    /// assert_eq!(report.verdict.kind, Some(FailureKind::ReadTimeout));
    /// assert_eq!(report.http.unwrap().error.as_deref(), Some("timed out after 100 ms"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidConfig> {
        for (field, value) in [
            ("dns_timeout", self.dns_timeout),
            ("connect_timeout", self.connect_timeout),
            ("tls_timeout", self.tls_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if value.is_zero() {
                return Err(InvalidConfig::new(field, "must be greater than zero"));
            }
        }
        Ok(())
    }

    pub(crate) fn override_for(&self, host: &str, port: u16) -> Option<&Override> {
        self.overrides
            .iter()
            .rev()
            .find(|o| o.port == port && o.host.eq_ignore_ascii_case(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_shows_every_setting_but_the_roots_bytes() {
        let options = Options::new()
            .webpki_roots(false)
            .root_certificate(vec![1, 2, 3].into())
            .resolve("api.test:443:127.0.0.1")
            .unwrap()
            .dns_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(2))
            .tls_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(4));
        let shown = format!("{options:?}");
        for wanted in [
            "Options",
            "roots: 1",
            "webpki_roots: false",
            "api.test",
            "resolver: None",
            "dns_timeout: 1s",
            "connect_timeout: 2s",
            "tls_timeout: 3s",
            "read_timeout: 4s",
        ] {
            assert!(shown.contains(wanted), "{wanted} not in {shown}");
        }
    }

    proptest! {
        /// Every timeout is accepted unless it is zero; a huge one saturates in
        /// `tokio::time::timeout` (no `Instant + Duration` overflow).
        #[test]
        fn timeouts_are_rejected_only_at_zero(secs in any::<u64>(), nanos in 0u32..1_000_000_000, which in 0usize..4) {
            let d = Duration::new(secs, nanos);
            let options = match which {
                0 => Options::new().dns_timeout(d),
                1 => Options::new().connect_timeout(d),
                2 => Options::new().tls_timeout(d),
                _ => Options::new().read_timeout(d),
            };
            let field = ["dns_timeout", "connect_timeout", "tls_timeout", "read_timeout"][which];
            match options.validate() {
                Ok(()) => prop_assert!(!d.is_zero()),
                Err(err) => {
                    prop_assert!(d.is_zero());
                    prop_assert_eq!(err.field(), field);
                }
            }
        }
    }

    #[test]
    fn resolve_entries_parse_like_curl() {
        let options = Options::new()
            .resolve("Example.COM:8443:127.0.0.1,[::1]")
            .unwrap();
        let entry = options.override_for("example.com", 8443).unwrap();
        assert_eq!(
            entry.addrs,
            vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            ]
        );
        assert!(options.override_for("example.com", 443).is_none());
        for bad in [
            "",
            "host",
            "host:1",
            ":1:127.0.0.1",
            "host:x:127.0.0.1",
            "host:1:nope",
        ] {
            assert_eq!(
                Options::new().resolve(bad).unwrap_err().field(),
                "resolve",
                "{bad}"
            );
        }
    }
}
