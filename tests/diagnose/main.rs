//! The diagnose probe against real servers on 127.0.0.1: rustls servers presenting
//! rcgen-made chains, misbehaving TCP servers, and a real `openssl s_server`.

mod dns;
mod openssl;

use fortify_test_support::{pki, servers};

use pki::{Case, OK};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use tower_fortify::{
    classify::{Failure, FailureKind, Stage},
    diagnose::{diagnose, ChainProblem, DnsSource, Options, Report},
    retry::{RetryLayer, RetryPolicy},
};

/// Options trusting only `root`, given as PEM as `doctor --ca FILE` gives it.
fn trusting(root: &pki::Ca) -> Options {
    Options::new()
        .webpki_roots(false)
        .ca_pem(root.pem())
        .expect("the root's PEM")
        .tls_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(5))
}

/// Probes `https://localhost:PORT/` with `localhost` resolved to `addr` by an override, so
/// that no test asks real DNS.
async fn probe(addr: SocketAddr, options: Options) -> Report {
    let options = options
        .resolve(&format!("localhost:{}:{}", addr.port(), addr.ip()))
        .expect("resolve entry");
    diagnose(
        &format!("https://localhost:{}/health", addr.port()),
        &options,
    )
    .await
    .expect("valid options")
}

/// Probes a rustls server presenting `case`'s chain and answering `response`, trusting
/// the test root.
async fn probe_case(case: Case, response: &'static [u8]) -> Report {
    let root = pki::ca("Test Root CA", None);
    let addr = pki::tls_server(&pki::served(case, &root), response).await;
    probe(addr, trusting(&root)).await
}

/// Whether the real retry layer with `policy` calls again after a `GET` that ends as
/// `report` did (a failure of its kind, or its response). Runs on a paused clock in a
/// runtime of its own, so that backoff and `Retry-After` sleeps take no real time.
fn real_layer_retries(policy: RetryPolicy, report: &Report) -> bool {
    let kind = report.verdict.kind;
    let http = report.http.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let calls = Arc::new(AtomicUsize::new(0));
            let counted = calls.clone();
            let svc = tower::ServiceBuilder::new()
                .layer(
                    RetryLayer::builder()
                        .policy(policy)
                        .build()
                        .expect("policy"),
                )
                .service_fn(move |_req: http::Request<String>| {
                    let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
                    let kind = kind;
                    let http = http.clone();
                    async move {
                        let mut response = http::Response::new(String::new());
                        if first {
                            if let Some(kind) = kind {
                                return Err(Failure::new(kind, "as the probe met it"));
                            }
                            let http = http.expect("a response");
                            *response.status_mut() =
                                http::StatusCode::from_u16(http.status.expect("status")).unwrap();
                            if let Some(value) = http.retry_after {
                                response
                                    .headers_mut()
                                    .insert("retry-after", value.parse().unwrap());
                            }
                        }
                        Ok(response)
                    }
                });
            let request = http::Request::get("https://localhost/")
                .body(String::new())
                .unwrap();
            let _ = svc.oneshot(request).await;
            calls.load(Ordering::SeqCst) > 1
        })
    })
    .join()
    .expect("retry check")
}

/// Asserts the stage and kind of the verdict, the retry decisions, and that the
/// explanation and hint hold `words` (case-insensitive).
#[track_caller]
fn assert_verdict(
    report: &Report,
    stage: Stage,
    kind: Option<FailureKind>,
    retried: (bool, bool),
    words: &[&str],
) {
    let v = &report.verdict;
    assert_eq!(v.stage, Some(stage), "stage; report:\n{report}");
    assert_eq!(v.kind, kind, "kind; report:\n{report}");
    assert_eq!(
        (v.retried_by_default_policy, v.retried_by_production_preset),
        retried,
        "retry decisions; report:\n{report}"
    );
    // The report's answer is the retry layer's own.
    assert_eq!(
        (
            real_layer_retries(RetryPolicy::default(), report),
            real_layer_retries(RetryPolicy::production(), report)
        ),
        retried,
        "the retry layer disagrees with the report:\n{report}"
    );
    let text = format!("{} / {}", v.explanation, v.hint).to_lowercase();
    for word in words {
        assert!(
            text.contains(&word.to_lowercase()),
            "{word:?} missing from {text:?}; report:\n{report}"
        );
    }
}

#[track_caller]
fn assert_certificate(report: &Report, problem: ChainProblem, words: &[&str]) {
    assert_verdict(
        report,
        Stage::TlsHandshake,
        Some(FailureKind::TlsCertificate),
        (false, false),
        words,
    );
    let tls = report.tls.as_ref().expect("tls stage");
    assert!(!tls.verified);
    assert_eq!(tls.problem, Some(problem), "report:\n{report}");
    assert!(
        !tls.chain.is_empty(),
        "the chain is shown even when it fails"
    );
    assert!(
        report.http.is_none(),
        "nothing is sent over an unverified connection"
    );
}

#[tokio::test]
async fn valid_chain_reports_every_stage() {
    let root = pki::ca("Test Root CA", None);
    let served = pki::served(Case::Valid, &root);
    let addr = pki::tls_server(&served, OK).await;
    let report = probe(addr, trusting(&root)).await;

    assert_eq!(report.verdict.stage, None, "report:\n{report}");
    assert_eq!(report.verdict.kind, None);
    assert!(report.verdict.explanation.contains("HTTP 200"));
    assert_eq!(report.dns.source, DnsSource::Override);
    assert_eq!(report.dns.addresses, vec![addr]);
    assert_eq!(report.tcp.len(), 1);
    assert!(report.tcp[0].error.is_none());
    let tls = report.tls.as_ref().expect("tls");
    assert!(tls.verified && tls.problem.is_none() && tls.error.is_none());
    assert_eq!(tls.version.as_deref(), Some("TLSv1_3"));
    assert!(tls
        .cipher_suite
        .as_deref()
        .is_some_and(|s| s.starts_with("TLS13_")));
    assert_eq!(tls.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(tls.chain.len(), 1);
    let leaf = &tls.chain[0];
    assert_eq!(leaf.sans, vec!["localhost"]);
    assert!(leaf.issuer.contains("Test Root CA"));
    assert!((88..=90).contains(&leaf.days_left), "{}", leaf.days_left);
    assert_eq!(leaf.key, "EC P-256");
    assert!(!leaf.self_signed && !leaf.is_ca);
    let http = report.http.as_ref().expect("http");
    assert_eq!(http.status, Some(200));
    assert_eq!(http.server.as_deref(), Some("fortify-test"));
    assert!(http.time_to_first_byte.is_some());

    let table = report.to_string();
    assert!(
        table.contains("TLSv1_3") && table.contains("status 200"),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "no colour unless asked");
    assert_colour_only_added(&report);
    assert!(report
        .table(true)
        .to_string()
        .contains("\x1b[32mok  \x1b[0m"));
}

/// The coloured table is the plain one with colour codes added, and nothing else.
#[track_caller]
fn assert_colour_only_added(report: &Report) {
    let coloured = report.table(true).to_string();
    let mut stripped = String::new();
    let mut rest = coloured.as_str();
    while let Some(start) = rest.find("\x1b[") {
        stripped.push_str(&rest[..start]);
        let end = rest[start..]
            .find('m')
            .expect("an SGR sequence ends with m");
        rest = &rest[start + end + 1..];
    }
    stripped.push_str(rest);
    assert!(coloured.contains('\x1b'), "{coloured}");
    assert_eq!(stripped, report.to_string());
}

#[tokio::test]
async fn expired_certificate() {
    let report = probe_case(Case::Expired, OK).await;
    assert_certificate(
        &report,
        ChainProblem::Expired,
        &[
            "certificate for localhost expired on 2021-01-01",
            "days ago",
            "renew",
        ],
    );
    let tls = report.tls.as_ref().unwrap();
    assert!(tls.chain[0].days_left < -1_000);
    assert_eq!(
        tls.version.as_deref(),
        Some("TLSv1_3"),
        "the handshake finished"
    );
    assert_colour_only_added(&report);
    assert!(report
        .table(true)
        .to_string()
        .contains("\x1b[31;1mFAIL\x1b[0m"));
    let table = report.to_string();
    for words in [
        "diagnosis of https://localhost:",
        "(expired ",
        " days ago)",
        "\nresult ",
        "retried (GET): default policy no, production preset no",
        "\nhint ",
    ] {
        assert!(table.contains(words), "{words:?} not in\n{table}");
    }
    // The handshake's time, in milliseconds to a tenth.
    let ms = format!("{:.1} ms", tls.elapsed.as_secs_f64() * 1e3);
    assert!(table.contains(&ms), "{ms:?} not in\n{table}");
    assert_eq!(ChainProblem::Expired.to_string(), "expired");
}

#[tokio::test]
async fn not_yet_valid_certificate() {
    let report = probe_case(Case::NotYetValid, OK).await;
    assert_certificate(
        &report,
        ChainProblem::NotYetValid,
        &["not valid before 2099-01-01", "clock"],
    );
}

#[tokio::test]
async fn wrong_host() {
    let report = probe_case(Case::WrongHost, OK).await;
    assert_certificate(
        &report,
        ChainProblem::WrongHost,
        &[
            "certificate is valid for other.example, not localhost",
            "reissue",
        ],
    );
}

#[tokio::test]
async fn self_signed() {
    let report = probe_case(Case::SelfSigned, OK).await;
    assert_certificate(
        &report,
        ChainProblem::SelfSigned,
        &["server certificate is self-signed", "--ca"],
    );
    assert!(report.tls.as_ref().unwrap().chain[0].self_signed);
}

#[tokio::test]
async fn unknown_ca() {
    let report = probe_case(Case::UnknownCa, OK).await;
    assert_certificate(
        &report,
        ChainProblem::UnknownIssuer,
        &["Untrusted Test CA", "does not trust", "--ca"],
    );
    assert_eq!(report.tls.as_ref().unwrap().chain.len(), 2);
}

#[tokio::test]
async fn missing_intermediate() {
    let report = probe_case(Case::MissingIntermediate, OK).await;
    assert_certificate(
        &report,
        ChainProblem::MissingIntermediate,
        &[
            "did not send the intermediate",
            "Test Intermediate CA",
            "full chain",
            "http://ca.test/intermediate.der",
        ],
    );
}

#[tokio::test]
async fn refused_port() {
    let addr = servers::refused().await;
    let report = probe(addr, Options::new()).await;
    assert_verdict(
        &report,
        Stage::Connect,
        Some(FailureKind::ConnectRefused),
        (true, true),
        &[
            &format!("connection refused by {addr}"),
            "nothing listening",
            "start the server",
        ],
    );
    assert_eq!(report.tcp.len(), 1);
    assert!(report.tls.is_none() && report.http.is_none());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["verdict"]["stage"], "tcp");
}

#[tokio::test]
async fn override_to_a_refused_address_says_it_is_an_override() {
    let addr = servers::refused().await;
    // A name no DNS knows, sent to a refused port by the override.
    let options = Options::new()
        .resolve(&format!("api.test:{}:{}", addr.port(), addr.ip()))
        .unwrap();
    let report = diagnose(&format!("https://api.test:{}/", addr.port()), &options)
        .await
        .unwrap();
    assert_eq!(report.dns.source, DnsSource::Override);
    assert!(report.to_string().contains("override (--resolve)"));
    assert_verdict(
        &report,
        Stage::Connect,
        Some(FailureKind::ConnectRefused),
        (true, true),
        &["refused"],
    );
}

#[tokio::test]
async fn plain_http_on_a_tls_port() {
    // An HTTP server reads the ClientHello as a bad request and answers in plain text.
    let addr = servers::spawn_server(|mut stream| async move {
        let mut buf = [0u8; 2048];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
    let report = probe(addr, Options::new()).await;
    assert_verdict(
        &report,
        Stage::TlsHandshake,
        Some(FailureKind::TlsNegotiation),
        (false, false),
        &["not TLS", "plain HTTP", "http://"],
    );
    assert!(report.tls.as_ref().unwrap().chain.is_empty());
}

#[tokio::test]
async fn closed_during_the_handshake() {
    // Reads the ClientHello, then closes: the server ended the handshake.
    let addr = servers::spawn_server(|mut stream| async move {
        let mut buf = [0u8; 2048];
        let _ = stream.read(&mut buf).await;
        drop(stream);
    })
    .await;
    let report = probe(addr, Options::new()).await;
    assert_eq!(report.verdict.stage, Some(Stage::TlsHandshake), "{report}");
    assert!(
        report
            .verdict
            .explanation
            .contains("closed the connection during the TLS handshake"),
        "{report}"
    );
}

#[tokio::test]
async fn stalled_handshake() {
    let addr = servers::tls_stalls().await;
    let options = Options::new().tls_timeout(Duration::from_millis(300));
    let report = probe(addr, options).await;
    assert_verdict(
        &report,
        Stage::TlsHandshake,
        Some(FailureKind::TlsHandshake),
        (true, true),
        &["did not answer the TLS hello in 300 ms", "overloaded"],
    );
}

#[tokio::test]
async fn unavailable_with_retry_after() {
    let report = probe_case(
        Case::Valid,
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\nserver: busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    // A 503 with Retry-After is retried by urllib3's default; the preset forces 503 too.
    assert_verdict(
        &report,
        Stage::Request,
        None,
        (true, true),
        &["server answered 503", "logs"],
    );
    let http = report.http.as_ref().unwrap();
    assert_eq!(http.retry_after.as_deref(), Some("7"));
    assert_eq!(http.server.as_deref(), Some("busy"));

    let report = probe_case(
        Case::Valid,
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    // Only the production preset's forcelist holds 502.
    assert_verdict(
        &report,
        Stage::Request,
        None,
        (false, true),
        &["server answered 502"],
    );
}

#[tokio::test]
async fn read_timeout_after_the_request() {
    let root = pki::ca("Test Root CA", None);
    let served = pki::served(Case::Valid, &root);
    let acceptor = tokio_rustls::TlsAcceptor::from(pki::server_config(&served));
    let addr = servers::spawn_server(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut buf = [0u8; 2048];
            let _ = tls.read(&mut buf).await;
            std::future::pending::<()>().await;
        }
    })
    .await;
    let report = probe(
        addr,
        trusting(&root).read_timeout(Duration::from_millis(300)),
    )
    .await;
    // A read timeout is retried for a GET (idempotent) by both presets.
    assert_verdict(
        &report,
        Stage::Request,
        Some(FailureKind::ReadTimeout),
        (true, true),
        &["no response within 300 ms", "read_timeout"],
    );
}

#[tokio::test]
async fn json_form() {
    let report = probe_case(Case::Expired, OK).await;
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["verdict"]["stage"], "tls");
    assert_eq!(json["verdict"]["kind"], "tls_certificate");
    assert_eq!(json["verdict"]["retried_by_production_preset"], false);
    assert_eq!(json["tls"]["problem"], "expired");
    assert_eq!(
        json["tls"]["chain"][0]["not_after"],
        "2021-01-01 00:00:00 UTC"
    );
    assert_eq!(json["dns"]["source"], "override");
    // Milliseconds, to the microsecond.
    let elapsed = json["tls"]["elapsed_ms"].as_f64().unwrap();
    let exact = report.tls.as_ref().unwrap().elapsed.as_secs_f64() * 1e3;
    assert!(
        elapsed > 0.0 && (elapsed - exact).abs() <= 0.000_5 + 1e-9,
        "{elapsed} {exact}"
    );
    assert!(json["http"].is_null());
}

#[tokio::test]
async fn invalid_options_are_rejected() {
    let err = diagnose(
        "https://localhost/",
        &Options::new().tls_timeout(Duration::ZERO),
    )
    .await
    .unwrap_err();
    assert_eq!(err.field(), "tls_timeout");
    let err = diagnose("localhost:443", &Options::new())
        .await
        .unwrap_err();
    assert_eq!(err.field(), "url");
    let err = diagnose("https://localhost/", &Options::new().webpki_roots(false))
        .await
        .unwrap_err();
    assert_eq!(err.field(), "webpki_roots");
    // DER that is no certificate, given as a root: rejected when the TLS stage is set up.
    let not_a_root = Options::new().root_certificate(vec![0x30, 0x03, 1, 2, 3].into());
    let err = diagnose("https://localhost/", &not_a_root)
        .await
        .unwrap_err();
    assert_eq!(err.field(), "ca_pem");
    assert_eq!(
        Options::new().resolve("a:b:c").unwrap_err().field(),
        "resolve"
    );
}

/// Probes `http://localhost:PORT/` (no TLS stage) with `localhost` resolved to `addr`.
async fn probe_plain(addr: SocketAddr, options: Options) -> Report {
    let options = options
        .resolve(&format!("localhost:{}:{}", addr.port(), addr.ip()))
        .expect("resolve entry");
    diagnose(&format!("http://localhost:{}/", addr.port()), &options)
        .await
        .expect("valid options")
}

#[tokio::test]
async fn full_accept_queue() {
    let stalled = servers::stalled_connect().await;
    let options = Options::new().connect_timeout(Duration::from_millis(300));
    let report = probe(stalled.addr, options).await;
    assert_verdict(
        &report,
        Stage::Connect,
        Some(FailureKind::ConnectTimeout),
        (true, true),
        &[
            &format!("no answer from {} in 300 ms", stalled.addr),
            "firewall",
        ],
    );
}

#[tokio::test]
async fn reset_after_the_request() {
    let addr = servers::close_after_request().await;
    let report = probe_plain(addr, Options::new()).await;
    assert!(report.tls.is_none(), "http:// has no TLS stage");
    assert_verdict(
        &report,
        Stage::Request,
        Some(FailureKind::ConnectionClosed),
        (true, true),
        &["closed the connection without a response", "logs"],
    );
}

#[tokio::test]
async fn not_http() {
    let addr = servers::garbage().await;
    let report = probe_plain(addr, Options::new()).await;
    assert_verdict(
        &report,
        Stage::Request,
        Some(FailureKind::Protocol),
        (true, true),
        &["not valid HTTP/1.1", "another protocol"],
    );
}

#[tokio::test]
async fn huge_timeouts_saturate() {
    let addr = servers::refused().await;
    let options = Options::new()
        .dns_timeout(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .tls_timeout(Duration::MAX)
        .read_timeout(Duration::MAX);
    let report = probe(addr, options).await;
    assert_eq!(report.verdict.kind, Some(FailureKind::ConnectRefused));
}
