//! Why does a host fail? A probe that walks DNS, TCP, TLS and HTTP and says.
//!
//! [`diagnose`] connects to a URL the way a client does, one stage at a time, and returns a
//! [`Report`] of what each stage saw:
//!
//! | stage | what the report holds |
//! |---|---|
//! | DNS | the addresses, where they came from (system, a custom resolver, a `--resolve`-style override, a literal), the time |
//! | TCP | one connect per address until one succeeds: the time, or the failure |
//! | TLS | version, cipher suite, ALPN, handshake time, and the certificate chain as the server sent it: subject, issuer, names, validity with days left, key type and size; whether it chains to the roots and, if not, why ([`ChainProblem`]: expired, not yet valid, wrong host, unknown issuer, self-signed, missing intermediate) |
//! | HTTP | status, time to the response head, `Retry-After`, `Server` |
//!
//! and a [`Verdict`]: the stage that failed, the [`FailureKind`](crate::classify::FailureKind)
//! this crate's classifier gives the real error (the same walk as
//! [`classify_error`](crate::classify::classify_error) at that stage), whether
//! `RetryPolicy::default()` and `RetryPolicy::production()` would retry a `GET` that ends so,
//! and one line on what to fix.
//!
//! # Seeing the chain when verification fails
//!
//! The handshake runs with a verifier that records the chain, verifies it with rustls's
//! `WebPkiServerVerifier` against the roots (Mozilla's from `webpki-roots`, and those given
//! with [`Options::ca_pem`]), records that real verdict, and lets the handshake finish so
//! that the version and suite can be shown. When the chain did not verify, the probe stops
//! there: nothing is sent over the connection. Certificate fields are read with
//! `x509-parser`.
//!
//! A missing intermediate cannot be told from a private CA by the chain alone; the report
//! says *missing intermediate* when the last certificate sent names where its issuer can be
//! fetched (authority information access, which public CAs always set), and *unknown issuer*
//! otherwise.
//!
//! # JSON
//!
//! [`Report::to_json`] gives the same report for scripts; for a server whose certificate
//! expired (`cargo run --example doctor -- --json`, one stage a line):
//!
//! ```text
//! {
//!   "url": "https://localhost:36687/health",
//!   "dns": {"host": "localhost", "port": 36687, "source": "override", "addresses": ["127.0.0.1:36687"], "elapsed_ms": 0.003, "error": null},
//!   "tcp": [{"address": "127.0.0.1:36687", "elapsed_ms": 0.078, "error": null}],
//!   "tls": {"server_name": "localhost", "elapsed_ms": 18.241, "version": "TLSv1_3", "cipher_suite": "TLS13_AES_256_GCM_SHA384", "alpn": "http/1.1", "chain": [{"subject": "CN=localhost", "issuer": "CN=Doctor Demo Root CA", "sans": ["localhost"], "not_before": "2020-01-01 00:00:00 UTC", "not_after": "2021-01-01 00:00:00 UTC", "days_left": -2164, "not_before_in_future": false, "key": "EC P-256", "self_signed": false, "is_ca": false, "ca_issuers": []}], "verified": false, "problem": "expired", "error": "invalid peer certificate: certificate expired: verification time 1796427846 (UNIX), but certificate is not valid after 1609459200 (186968646 seconds ago)"},
//!   "http": null,
//!   "verdict": {"stage": "tls", "kind": "tls_certificate", "explanation": "certificate for localhost expired on 2021-01-01 (2,164 days ago)", "retried_by_default_policy": false, "retried_by_production_preset": false, "hint": "renew the certificate on the server (and check its automatic renewal); do not turn verification off"}
//! }
//! ```
//!
//! # Example
//!
//! `examples/doctor.rs` prints the report for a URL (`cargo run --example doctor --
//! https://host/` in a clone of the repository).
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_fortify::diagnose::{diagnose, Options};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
//! let options = Options::new()
//!     .resolve("api.example.com:443:10.0.0.7")?
//!     .tls_timeout(Duration::from_secs(3));
//! let report = diagnose("https://api.example.com/health", &options).await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```

mod cert;
mod format;
mod options;
mod probe;
mod report;
mod verdict;

pub use options::Options;
pub use probe::diagnose;
pub use report::{
    CertificateInfo, ChainProblem, DnsReport, DnsSource, HttpReport, Report, Table, TcpAttempt,
    TlsReport, Verdict,
};
