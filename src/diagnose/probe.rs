//! The stages, one after the other.

use super::{
    cert::{self, Recorder, Seen},
    options::Options,
    report::{DnsReport, DnsSource, HttpReport, Report, TcpAttempt, TlsReport},
    verdict::{self, Failed},
};
use crate::{
    classify::{classify_error, Stage},
    InvalidConfig,
};
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::{
    client::WebPkiServerVerifier,
    pki_types::{CertificateDer, ServerName},
    RootCertStore,
};
use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::{timeout, Instant},
};

/// Probes `url` (`https://host[:port]/path`, or `http://`) stage by stage and reports what
/// each stage saw and what failed. The probe itself does not fail: a failure at any stage
/// is in the report. It sends one `GET` of the path, and only over a verified connection.
///
/// # Errors
///
/// [`InvalidConfig`] naming `url` when the URL is not an absolute `http`/`https` URL with a
/// host, a timeout of zero (naming the timeout), or no root to trust (naming
/// `webpki_roots`).
///
/// ```
/// use tower_fortify::diagnose::{diagnose, Options};
/// use tower_fortify::classify::{FailureKind, Stage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::InvalidConfig> {
/// // Nothing listens on port 1 of the loopback address.
/// let report = diagnose("https://127.0.0.1:1/", &Options::new()).await?;
/// assert_eq!(report.verdict.stage, Some(Stage::Connect));
/// assert_eq!(report.verdict.kind, Some(FailureKind::ConnectRefused));
/// assert!(report.verdict.explanation.contains("refused"));
///
/// assert_eq!(diagnose("ftp://example.com/", &Options::new()).await.unwrap_err().field(), "url");
/// # Ok(())
/// # }
/// ```
pub async fn diagnose(url: &str, options: &Options) -> Result<Report, InvalidConfig> {
    options.validate()?;
    let bad_url = || InvalidConfig::new("url", "must be an absolute http:// or https:// URL");
    let uri: Uri = url.parse().map_err(|_| bad_url())?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad_url()),
    };
    let authority = uri.authority().ok_or_else(bad_url)?.clone();
    let host = uri.host().ok_or_else(bad_url)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let tls_config = if tls {
        Some(client_config(options)?)
    } else {
        None
    };

    let (dns, failed) = resolve(&host, port, options).await;
    let mut report = Report {
        url: url.to_owned(),
        dns,
        tcp: Vec::new(),
        tls: None,
        http: None,
        verdict: verdict::healthy(None),
    };
    if let Some(failed) = failed {
        report.verdict = failed.into_verdict();
        return Ok(report);
    }

    let addresses = report.dns.addresses.clone();
    let mut stream = None;
    let mut tcp_failure = None;
    for address in addresses {
        let (attempt, result) = connect(address, options.connect_timeout).await;
        report.tcp.push(attempt);
        match result {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(failed) => tcp_failure = tcp_failure.or(Some(failed)),
        }
    }
    let Some(stream) = stream else {
        let failed = tcp_failure.expect("resolution gave at least one address");
        report.verdict = failed.into_verdict();
        return Ok(report);
    };

    let (http, failed) = match tls_config {
        None => get(stream, &authority, &path, options.read_timeout).await,
        Some((config, seen)) => {
            let (tls, result) = handshake(stream, &host, (config, seen), options.tls_timeout).await;
            report.tls = Some(tls);
            match result {
                Ok(stream) => get(stream, &authority, &path, options.read_timeout).await,
                Err(failed) => {
                    report.verdict = failed.into_verdict();
                    return Ok(report);
                }
            }
        }
    };
    report.http = Some(http);
    report.verdict = match failed {
        Some(failed) => failed.into_verdict(),
        None => verdict::healthy(Some(&report)),
    };
    Ok(report)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn timed_out(after: Duration) -> String {
    format!("timed out after {}", super::format::human_duration(after))
}

// ===== DNS =====

async fn resolve(host: &str, port: u16, options: &Options) -> (DnsReport, Option<Failed>) {
    let start = Instant::now();
    let (source, result): (DnsSource, io::Result<Vec<SocketAddr>>) =
        if let Ok(ip) = host.parse::<IpAddr>() {
            (DnsSource::Literal, Ok(vec![SocketAddr::new(ip, port)]))
        } else if let Some(entry) = options.override_for(host, port) {
            let addrs = entry.addrs.iter().map(|ip| SocketAddr::new(*ip, port));
            (DnsSource::Override, Ok(addrs.collect()))
        } else {
            let lookup = async {
                match &options.resolver {
                    Some(resolver) => (DnsSource::Custom, resolver(host.to_owned(), port).await),
                    None => (
                        DnsSource::System,
                        tokio::net::lookup_host((host, port))
                            .await
                            .map(Iterator::collect),
                    ),
                }
            };
            let source = if options.resolver.is_some() {
                DnsSource::Custom
            } else {
                DnsSource::System
            };
            match timeout(options.dns_timeout, lookup).await {
                Ok(answer) => answer,
                Err(_) => (
                    source,
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        timed_out(options.dns_timeout),
                    )),
                ),
            }
        };
    let result = result.and_then(|addrs| {
        if addrs.is_empty() {
            Err(io::Error::new(io::ErrorKind::NotFound, "no address"))
        } else {
            Ok(addrs)
        }
    });
    let elapsed = start.elapsed();
    let (addresses, error, failed) = match result {
        Ok(addrs) => (addrs, None, None),
        Err(error) => {
            let kind = classify_error(&error, Stage::Resolve);
            let failed = Failed::dns(kind, host, &error);
            (Vec::new(), Some(error.to_string()), Some(failed))
        }
    };
    let dns = DnsReport {
        host: host.to_owned(),
        port,
        source,
        addresses,
        elapsed,
        error,
    };
    (dns, failed)
}

// ===== TCP =====

async fn connect(
    address: SocketAddr,
    connect_timeout: Duration,
) -> (TcpAttempt, Result<TcpStream, Failed>) {
    let start = Instant::now();
    let result = timeout(connect_timeout, TcpStream::connect(address)).await;
    let elapsed = start.elapsed();
    let (error, result) = match result {
        Ok(Ok(stream)) => (None, Ok(stream)),
        Ok(Err(error)) => {
            let kind = classify_error(&error, Stage::Connect);
            let text = verdict::io_text(&error);
            let failed = Failed::tcp(kind, address, &error, None);
            (Some(text), Err(failed))
        }
        Err(elapsed_error) => {
            let kind = classify_error(&elapsed_error, Stage::Connect);
            let error = io::Error::new(io::ErrorKind::TimedOut, timed_out(connect_timeout));
            let failed = Failed::tcp(kind, address, &error, Some(connect_timeout));
            (Some(error.to_string()), Err(failed))
        }
    };
    let attempt = TcpAttempt {
        address,
        elapsed,
        error,
    };
    (attempt, result)
}

// ===== TLS =====

type TlsSetup = (Arc<rustls::ClientConfig>, Arc<Mutex<Seen>>);

fn client_config(options: &Options) -> Result<TlsSetup, InvalidConfig> {
    let mut roots = RootCertStore::empty();
    if options.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let (_, rejected) = roots.add_parsable_certificates(options.roots.iter().cloned());
    if rejected > 0 {
        return Err(InvalidConfig::new(
            "ca_pem",
            "a certificate is not a valid trust anchor",
        ));
    }
    if roots.is_empty() {
        return Err(InvalidConfig::new(
            "webpki_roots",
            "no root to trust: keep the webpki roots or add one with ca_pem",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|_| InvalidConfig::new("ca_pem", "the roots cannot build a verifier"))?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = Recorder {
        inner,
        seen: seen.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(recorder))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), seen))
}

async fn handshake(
    stream: TcpStream,
    host: &str,
    (config, seen): TlsSetup,
    tls_timeout: Duration,
) -> (
    TlsReport,
    Result<tokio_rustls::client::TlsStream<TcpStream>, Failed>,
) {
    let peer = stream.peer_addr().ok();
    let mut report = TlsReport {
        server_name: host.to_owned(),
        elapsed: Duration::ZERO,
        version: None,
        cipher_suite: None,
        alpn: None,
        chain: Vec::new(),
        verified: false,
        problem: None,
        error: None,
    };
    let name = match ServerName::try_from(host.to_owned()) {
        Ok(name) => name,
        Err(error) => {
            report.error = Some(error.to_string());
            let failed = Failed::tls_other(host, &error);
            return (report, Err(failed));
        }
    };
    let start = Instant::now();
    let result = timeout(
        tls_timeout,
        tokio_rustls::TlsConnector::from(config).connect(name, stream),
    )
    .await;
    report.elapsed = start.elapsed();
    let (chain, verify_error) = {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut seen.chain), seen.error.take())
    };
    let now = unix_now();
    report.chain = chain
        .iter()
        .filter_map(|der: &CertificateDer<'_>| cert::read(der, now))
        .collect();
    match result {
        Ok(Ok(stream)) => {
            let (_, conn) = stream.get_ref();
            report.version = conn.protocol_version().map(|v| format!("{v:?}"));
            report.cipher_suite = conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()));
            report.alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            match verify_error {
                None => {
                    report.verified = true;
                    (report, Ok(stream))
                }
                Some(error) => {
                    let problem = cert::problem(&error, &report.chain);
                    report.problem = Some(problem);
                    report.error = Some(error.to_string());
                    let kind = classify_error(&error, Stage::TlsHandshake);
                    let failed = Failed::certificate(kind, problem, host, &report, &error);
                    // Nothing is sent over a connection whose chain did not verify.
                    drop(stream);
                    (report, Err(failed))
                }
            }
        }
        Ok(Err(error)) => {
            let kind = classify_error(&error, Stage::TlsHandshake);
            report.error = Some(verdict::io_text(&error));
            (report, Err(Failed::handshake(kind, peer, &error)))
        }
        Err(elapsed) => {
            let kind = classify_error(&elapsed, Stage::TlsHandshake);
            report.error = Some(timed_out(tls_timeout));
            (
                report,
                Err(Failed::handshake_stalled(kind, peer, tls_timeout)),
            )
        }
    }
}

// ===== HTTP =====

async fn get<IO>(
    io: IO,
    authority: &http::uri::Authority,
    path: &str,
    read_timeout: Duration,
) -> (HttpReport, Option<Failed>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut report = HttpReport {
        status: None,
        time_to_first_byte: None,
        retry_after: None,
        server: None,
        error: None,
    };
    let request = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "tower-fortify-doctor")
        .header(http::header::ACCEPT, "*/*")
        .body(String::new());
    let request = match request {
        Ok(request) => request,
        Err(error) => {
            report.error = Some(error.to_string());
            return (
                report,
                Some(Failed::http(
                    crate::classify::FailureKind::Other,
                    &error,
                    None,
                )),
            );
        }
    };
    let start = Instant::now();
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        let task = tokio::spawn(conn);
        let response = sender.send_request(request).await;
        task.abort();
        response
    };
    match timeout(read_timeout, exchange).await {
        Ok(Ok(response)) => {
            report.time_to_first_byte = Some(start.elapsed());
            report.status = Some(response.status().as_u16());
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .map(|v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
            };
            report.retry_after = header(http::header::RETRY_AFTER);
            report.server = header(http::header::SERVER);
            let failed = Failed::status(response.status(), response.headers());
            (report, failed)
        }
        Ok(Err(error)) => {
            let kind = classify_error(&error, Stage::Request);
            report.error = Some(verdict::chain_text(&error));
            (report, Some(Failed::http(kind, &error, None)))
        }
        Err(elapsed) => {
            let kind = classify_error(&elapsed, Stage::Request);
            report.error = Some(timed_out(read_timeout));
            (
                report,
                Some(Failed::http(kind, &elapsed, Some(read_timeout))),
            )
        }
    }
}
