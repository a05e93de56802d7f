//! The diagnosis table: misbehaving servers on 127.0.0.1 (and a resolver that fails), each
//! walked by the crate's own probe, [`tower_fortify::diagnose::diagnose`] (the `doctor`
//! example's probe): DNS, TCP, TLS with the certificate chain, then one `GET`. Prints the
//! stage that failed, the failure kind, its urllib3 retry category, whether a `GET` and a
//! `POST` are retried by default, how long the probe took, and the probe's one-line
//! explanation and hint.

use fortify_test_support::{pki, servers};
use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};
use tower_fortify::diagnose::{diagnose, Options, Report};

struct Row {
    scenario: &'static str,
    report: Report,
    took: Duration,
}

/// Where a probe goes: a URL, the options (roots, resolver) and what must live as long
/// as the probe (a listener whose accept queue is full).
struct Probe {
    scenario: &'static str,
    url: String,
    options: Options,
    keep: Option<Box<dyn std::any::Any + Send>>,
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub(super) async fn run() {
    let timeouts = servers::Timeouts::default();
    let root = pki::ca("Demo Root CA", None);
    let base = Options::new()
        .webpki_roots(false)
        .root_certificate(root.der().clone())
        .connect_timeout(timeouts.connect)
        .tls_timeout(timeouts.handshake)
        .read_timeout(timeouts.request);
    // `localhost` on a server's port, through the probe's override (no real DNS).
    let https = |addr: SocketAddr| {
        let options = base
            .clone()
            .resolve(&format!("localhost:{}:127.0.0.1", addr.port()))
            .expect("a valid override");
        (format!("https://localhost:{}/", addr.port()), options)
    };
    let root = &root;
    let tls = |case| async move { pki::tls_server(&pki::served(case, root), pki::OK).await };

    let http_ok = servers::ok().await;
    let busy = servers::answers(
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let refused = servers::refused().await;
    let stalled = servers::stalled_connect().await;
    let stalled_addr = stalled.addr;
    let closes = servers::close_after_request().await;
    let silent = servers::never_answers().await;
    let garbage = servers::garbage().await;
    let plain = |scenario, addr: SocketAddr| Probe {
        scenario,
        url: format!("http://{addr}/"),
        options: base.clone(),
        keep: None,
    };
    let secure = |scenario, addr: SocketAddr| {
        let (url, options) = https(addr);
        Probe {
            scenario,
            url,
            options,
            keep: None,
        }
    };

    let probes = vec![
        plain("healthy server", http_ok),
        secure("healthy TLS server", tls(pki::Case::Valid).await),
        plain("503 with Retry-After", busy),
        Probe {
            scenario: "unknown host (resolver fails)",
            url: "http://no-such-host.invalid/".to_owned(),
            options: base.clone().resolver(|host, _port| async move {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host}: NXDOMAIN (the demo's resolver)"),
                ))
            }),
            keep: None,
        },
        plain("port with no listener", refused),
        Probe {
            keep: Some(Box::new(stalled) as Box<dyn std::any::Any + Send>),
            ..plain("accept queue full (SYN dropped)", stalled_addr)
        },
        secure(
            "TLS server never answers hello",
            servers::tls_stalls().await,
        ),
        secure(
            "TLS to a plain HTTP server",
            servers::speaks_http_first().await,
        ),
        secure("expired certificate", tls(pki::Case::Expired).await),
        secure(
            "certificate for another name",
            tls(pki::Case::WrongHost).await,
        ),
        secure("self-signed certificate", tls(pki::Case::SelfSigned).await),
        secure("unknown CA", tls(pki::Case::UnknownCa).await),
        plain("closes after reading request", closes),
        plain("reads request, never answers", silent),
        plain("answers with non-HTTP bytes", garbage),
    ];

    let started = Instant::now();
    let handles: Vec<_> = probes
        .into_iter()
        .map(|probe| {
            tokio::spawn(async move {
                let begun = Instant::now();
                let report = diagnose(&probe.url, &probe.options)
                    .await
                    .expect("the demo's URLs and options are valid");
                let took = begun.elapsed();
                drop(probe.keep);
                Row {
                    scenario: probe.scenario,
                    report,
                    took,
                }
            })
        })
        .collect();
    let mut rows = Vec::with_capacity(handles.len());
    for handle in handles {
        rows.push(handle.await.expect("probe task"));
    }

    println!("tower-fortify: what a request meets, from DNS to HTTP (the doctor's probe)");
    println!(
        "(timeouts: connect {:?}, TLS handshake {:?}, request {:?}; all servers on 127.0.0.1)\n",
        timeouts.connect, timeouts.handshake, timeouts.request
    );
    let header = [
        "scenario",
        "failed at",
        "outcome",
        "category",
        "retry GET",
        "retry POST",
        "took",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let verdict = &row.report.verdict;
            let status = row.report.http.as_ref().and_then(|http| http.status);
            let (outcome, category, post) = match (verdict.kind, status) {
                (Some(kind), _) => (
                    kind.to_string(),
                    kind.category()
                        .map_or("never retried".to_owned(), |c| c.to_string()),
                    kind.retried_by_default(false),
                ),
                // A response: retried by status only when the server asks to come back
                // later, and only for methods allowed to be retried.
                (None, Some(status)) => (
                    format!("HTTP {status}"),
                    if verdict.retried_by_default_policy {
                        "status"
                    } else {
                        "-"
                    }
                    .to_owned(),
                    false,
                ),
                (None, None) => ("-".to_owned(), "-".to_owned(), false),
            };
            [
                row.scenario.to_owned(),
                verdict
                    .stage
                    .map_or("-".to_owned(), |stage| stage.to_string()),
                outcome,
                category,
                yes(verdict.retried_by_default_policy).to_owned(),
                yes(post).to_owned(),
                format!("{:.1} ms", row.took.as_secs_f64() * 1e3),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cols: [&str; 7]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(std::array::from_fn(|i| row[i].as_str()));
    }

    println!("\nWhat the probe says about each (`doctor` prints the whole report):");
    for row in &rows {
        let verdict = &row.report.verdict;
        println!("  {:<32} {}", row.scenario, verdict.explanation);
        if !verdict.hint.is_empty() {
            println!("  {:<32} fix: {}", "", verdict.hint);
        }
    }
    println!(
        "\n{} probes in {:.2} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
}
