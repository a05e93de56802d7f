//! A diagnosis of the whole chain from TCP to HTTP.
//!
//! Starts misbehaving servers on 127.0.0.1, sends one GET to each through a hyper-util
//! client whose resolver, TCP connector, TLS connector and requests are each wrapped in
//! `ErrorClassifyLayer`, and prints what the request met: the failure kind, its urllib3
//! retry category, whether it is retried by default, and how long it took.
//!
//! ```text
//! cargo run --release --example demo
//! ```

#[path = "../tests/support/servers.rs"]
mod servers;

use std::time::{Duration, Instant};
use tower_fortify::{
    classify::{is_idempotent, Failure, ResponseClass},
    BoxError,
};

struct Row {
    scenario: &'static str,
    outcome: String,
    category: String,
    get: bool,
    post: bool,
    took: Duration,
    chain: Option<String>,
}

async fn probe(
    scenario: &'static str,
    stack: servers::Stack,
    uri: String,
    keep: Option<Box<dyn std::any::Any + Send>>,
) -> Row {
    let started = Instant::now();
    let result: Result<servers::Response, BoxError> = servers::get(&stack, &uri).await;
    let took = started.elapsed();
    drop(keep);
    match result {
        Ok(response) => {
            let class = ResponseClass::of(&response);
            // A response is retried (by status) when the server asks to come back later,
            // and only for methods allowed to be retried.
            let retried = |method: &http::Method| class.asks_retry_after() && is_idempotent(method);
            Row {
                scenario,
                outcome: format!("HTTP {}", response.status().as_u16()),
                category: if class.asks_retry_after() {
                    "status"
                } else {
                    "-"
                }
                .into(),
                get: retried(&http::Method::GET),
                post: retried(&http::Method::POST),
                took,
                chain: None,
            }
        }
        Err(err) => {
            let (outcome, category, get, post, chain) = match err.downcast_ref::<Failure>() {
                Some(failure) => {
                    let kind = failure.kind();
                    (
                        format!("{kind:?}"),
                        kind.category().to_string(),
                        kind.retried_by_default(true),
                        kind.retried_by_default(false),
                        format!("{failure:#}"),
                    )
                }
                None => (
                    "unclassified".into(),
                    "?".into(),
                    false,
                    false,
                    err.to_string(),
                ),
            };
            Row {
                scenario,
                outcome,
                category,
                get,
                post,
                took,
                chain: Some(chain),
            }
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[tokio::main]
async fn main() {
    let timeouts = servers::Timeouts::default();
    let trusted = servers::self_signed(&["localhost"]);
    let other_name = servers::self_signed(&["api.example.test"]);

    let plain = servers::default_stack(&[]);
    let trusting = servers::default_stack(&[trusted.cert.clone(), other_name.cert.clone()]);
    let no_dns = servers::stack(
        servers::connector(
            servers::failing_resolver(),
            servers::client_tls(&[]),
            timeouts,
        ),
        timeouts,
    );

    let ok = servers::ok().await;
    let busy = servers::answers(
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let refused = servers::refused().await;
    let stalled = servers::stalled_connect().await;
    let stalled_addr = stalled.addr;
    let tls_ok = servers::tls_server(&trusted).await;
    let tls_untrusted = servers::tls_server(&trusted).await;
    let tls_wrong_name = servers::tls_server(&other_name).await;
    let tls_stall = servers::tls_stalls().await;
    let closes = servers::close_after_request().await;
    let silent = servers::never_answers().await;
    let garbage = servers::garbage().await;
    let http_first = servers::speaks_http_first().await;

    let probes = vec![
        (
            "healthy server",
            trusting.clone(),
            format!("http://{ok}/"),
            None,
        ),
        (
            "healthy TLS server",
            trusting.clone(),
            format!("https://localhost:{}/", tls_ok.port()),
            None,
        ),
        (
            "503 with Retry-After",
            plain.clone(),
            format!("http://{busy}/"),
            None,
        ),
        (
            "unknown host (resolver fails)",
            no_dns,
            "http://no-such-host.invalid/".to_string(),
            None,
        ),
        (
            "port with no listener",
            plain.clone(),
            format!("http://{refused}/"),
            None,
        ),
        (
            "accept queue full (SYN dropped)",
            plain.clone(),
            format!("http://{stalled_addr}/"),
            Some(Box::new(stalled) as Box<dyn std::any::Any + Send>),
        ),
        (
            "TLS server never answers hello",
            plain.clone(),
            format!("https://localhost:{}/", tls_stall.port()),
            None,
        ),
        (
            "TLS to a plain HTTP server",
            plain.clone(),
            format!("https://localhost:{}/", http_first.port()),
            None,
        ),
        (
            "self-signed certificate",
            plain.clone(),
            format!("https://localhost:{}/", tls_untrusted.port()),
            None,
        ),
        (
            "certificate for another name",
            trusting.clone(),
            format!("https://localhost:{}/", tls_wrong_name.port()),
            None,
        ),
        (
            "closes after reading request",
            plain.clone(),
            format!("http://{closes}/"),
            None,
        ),
        (
            "reads request, never answers",
            plain.clone(),
            format!("http://{silent}/"),
            None,
        ),
        (
            "answers with non-HTTP bytes",
            plain.clone(),
            format!("http://{garbage}/"),
            None,
        ),
    ];

    let started = Instant::now();
    let handles: Vec<_> = probes
        .into_iter()
        .map(|(scenario, stack, uri, keep)| tokio::spawn(probe(scenario, stack, uri, keep)))
        .collect();
    let mut rows = Vec::with_capacity(handles.len());
    for handle in handles {
        rows.push(handle.await.expect("probe task"));
    }

    println!("tower-fortify: what a request through ErrorClassifyLayer met, from TCP to HTTP");
    println!(
        "(timeouts: connect {:?}, TLS handshake {:?}, request {:?}; all servers on 127.0.0.1)\n",
        timeouts.connect, timeouts.handshake, timeouts.request
    );
    let header = [
        "scenario",
        "outcome",
        "category",
        "retry GET",
        "retry POST",
        "took",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.to_string(),
                r.outcome.clone(),
                r.category.clone(),
                yes(r.get).to_string(),
                yes(r.post).to_string(),
                format!("{:.1} ms", r.took.as_secs_f64() * 1e3),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cols: [&str; 6]| {
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
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }

    println!("\nThe chain behind each failure (Failure's `{{:#}}`):");
    for row in &rows {
        if let Some(chain) = &row.chain {
            println!("  {:<32} {chain}", row.scenario);
        }
    }
    println!(
        "\n{} probes in {:.2} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
}
