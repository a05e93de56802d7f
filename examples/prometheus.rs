//! The crate's `fortify_*` metrics in Prometheus, and the classic dashboard's queries.
//!
//! Installs `metrics-exporter-prometheus` with its HTTP listener on 127.0.0.1 (a free port,
//! found by binding 127.0.0.1:0 first), with histogram buckets for the `_seconds`
//! histograms so that they are rendered as Prometheus histograms (`_bucket` series) rather
//! than summaries. Then it builds the fortified HTTPS client in one call (after the
//! recorder: the layers register their metric handles when they are built), runs traffic
//! through it against a local flaky HTTPS server (a certificate authority made at start-up;
//! 503s, slow answers that hit the per-attempt timeout) and a refused port (a port bound,
//! then closed), fetches `/metrics` from the exporter over loopback with a hyper client,
//! prints the `fortify_*` samples and the PromQL of each dashboard panel: error rate by
//! kind, retry rate, pool utilisation, breaker state, p99 latency, TLS handshake p99 and
//! connections opened per request.
//!
//! It checks that every metric a query uses is in the scraped output, and fails if not.
//!
//! ```text
//! cargo run --example prometheus --features client
//! ```

use bytes::Bytes;
use fortify_test_support::local_tls::LocalTls;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_fortify::{
    classify::Failure,
    client::{HttpsClient, TlsRoots},
    stack::ClientConfig,
    BoxError,
};

/// Requests sent to the flaky server, and how many at once.
const REQUESTS: u32 = 120;
const CONCURRENCY: usize = 32;
/// Requests sent to the refused port.
const REFUSED_REQUESTS: u32 = 6;

/// Bucket bounds of the `_seconds` histograms: 1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The dashboard's panels: title and PromQL.
const PANELS: &[(&str, &str)] = &[
    (
        "Error rate by kind (errors per second)",
        r#"sum by (kind) (rate(fortify_errors_total{name="api"}[5m]))"#,
    ),
    (
        "Error ratio (failed calls / calls)",
        r#"sum(rate(fortify_errors_total{name="api"}[5m])) / sum(rate(fortify_request_duration_seconds_count{name="api"}[5m]))"#,
    ),
    (
        "Retry rate (requests retried / requests)",
        r#"sum(rate(fortify_retry_retried_requests_total{name="api"}[5m])) / sum(rate(fortify_retry_requests_total{name="api"}[5m]))"#,
    ),
    (
        "Retries by category",
        r#"sum by (category) (rate(fortify_retries_total{name="api"}[5m]))"#,
    ),
    (
        "Pool utilisation (in use / max)",
        r#"sum(fortify_pool_in_use{name="api"}) / sum(fortify_pool_max{name="api"})"#,
    ),
    (
        "Breaker state (breakers per state)",
        r#"sum by (state) (fortify_circuit_state{name="api"})"#,
    ),
    (
        "Calls rejected by open breakers",
        r#"sum(rate(fortify_circuit_rejected_total{name="api"}[5m]))"#,
    ),
    (
        "TLS handshake p99 (seconds)",
        r#"histogram_quantile(0.99, sum by (le) (rate(fortify_connection_setup_seconds_bucket{name="api", stage="tls_handshake", outcome="ok"}[5m])))"#,
    ),
    (
        "Connection set-up failures by phase and kind",
        r#"sum by (stage, outcome) (rate(fortify_connection_setup_seconds_count{name="api", outcome!="ok"}[5m]))"#,
    ),
    (
        "Connections opened per request (connection reuse)",
        r#"sum(rate(fortify_connections_opened_total{name="api"}[5m])) / sum(rate(fortify_request_duration_seconds_count{name="api", stage="request"}[5m]))"#,
    ),
    (
        "p99 latency (seconds)",
        r#"histogram_quantile(0.99, sum by (le) (rate(fortify_request_duration_seconds_bucket{name="api", stage="request"}[5m])))"#,
    ),
];

// ===== the flaky server =====

/// Answers by request number over HTTPS: every 4th a 503, every 9th after 1.5 s (longer
/// than the stack's per-attempt timeout), the rest a 200.
async fn start_flaky(tls: &LocalTls) -> io::Result<SocketAddr> {
    let counter = Arc::new(AtomicU32::new(0));
    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            if n.is_multiple_of(9) {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            let status = if n.is_multiple_of(4) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::from_static(b"{}")))
        }
    });
    tls.serve(service).await
}

/// A loopback address nothing listens on.
async fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0").await?.local_addr()
}

/// The metric names a query uses.
fn names_in(query: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    let mut rest = query;
    while let Some(start) = rest.find("fortify_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

/// The value of a sample line (`name{labels} value`).
fn value_of(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // 1. The exporter, on a free loopback port, before any layer is built.
    let exporter_addr = free_addr().await?;
    PrometheusBuilder::new()
        .with_http_listener(exporter_addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install()?;

    // 2. The HTTPS client in one call, trusting the local CA, with a short per-attempt
    // timeout so that slow answers show (it must exceed the connection set-up's two).
    let tls = LocalTls::new()?;
    let client: HttpsClient = ClientConfig::default()
        .name("api")
        .connect_timeout(Duration::from_millis(250))
        .tls_handshake_timeout(Duration::from_millis(500))
        .attempt_timeout(Duration::from_millis(1000))
        .tls_roots(TlsRoots::Custom(tls.roots()))
        .https()?;

    // 3. Traffic.
    let flaky = start_flaky(&tls).await?;
    let refused = free_addr().await?;
    println!("exporter on http://{exporter_addr}/metrics, flaky server on {flaky}, refused port {refused}");
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut uris: Vec<String> = (0..REQUESTS)
        .map(|n| format!("https://{flaky}/items/{n}"))
        .collect();
    uris.extend((0..REFUSED_REQUESTS).map(|_| format!("https://{refused}/items")));
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending = uris.into_iter();
    loop {
        while tasks.len() < CONCURRENCY {
            let Some(uri) = pending.next() else { break };
            let client = client.clone();
            tasks.spawn(async move {
                let request = Request::get(uri).body(Full::new(Bytes::new()))?;
                let response = client.oneshot(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                Ok::<_, BoxError>(status)
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let outcome = match done? {
            Ok(status) => format!("HTTP {}", status.as_u16()),
            Err(err) => match err.downcast_ref::<Failure>() {
                Some(failure) => format!("failure {}", failure.kind()),
                None => format!("error {err}"),
            },
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("\noutcomes of {} requests:", REQUESTS + REFUSED_REQUESTS);
    for (outcome, count) in &outcomes {
        println!("    {count:>4} x {outcome}");
    }

    // 4. Scrape the exporter over loopback.
    let scraper = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = scraper
        .get(format!("http://{exporter_addr}/metrics").parse()?)
        .await?;
    if response.status() != StatusCode::OK {
        return Err(format!("the exporter answered {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8(body.to_vec())?;

    let samples: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("fortify_"))
        .collect();
    let (shown, zero): (Vec<&str>, Vec<&str>) = samples
        .iter()
        .partition(|line| value_of(line) != 0.0 && !line.contains("_bucket{"));
    println!(
        "\nfortify_* samples scraped from /metrics ({} in all; {} zero and the _bucket lines left out):",
        samples.len(),
        zero.len()
    );
    for line in &shown {
        println!("    {line}");
    }
    let buckets: Vec<&&str> = samples
        .iter()
        .filter(|line| {
            line.starts_with("fortify_request_duration_seconds_bucket{")
                && line.contains("outcome=\"ok\"")
        })
        .collect();
    println!("  the ok outcome's buckets:");
    for line in buckets {
        println!("    {line}");
    }

    // 5. The dashboard, checked against what the exporter really renders.
    let present: BTreeSet<&str> = samples
        .iter()
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    let mut missing = Vec::new();
    println!("\ndashboard panels (PromQL):");
    for (title, query) in PANELS {
        println!("  {title}\n    {query}");
        for name in names_in(query) {
            if !present.contains(name) {
                missing.push(name);
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!("queries use metrics the exporter did not render: {missing:?}").into());
    }
    println!("\nevery metric the queries use is in the scraped output");
    Ok(())
}
