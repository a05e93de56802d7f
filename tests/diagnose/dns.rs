//! The DNS stage with a resolver of the test's own: one that fails, one that never
//! answers, one that answers with no address. No test here asks real DNS.

use super::assert_verdict;
use tower_fortify::{
    classify::{FailureKind, Stage},
    diagnose::{diagnose, DnsSource, Options, Report},
};

/// The report of `https://api.invalid/` through `options`' resolver: a failed DNS stage,
/// retried by both presets, whose verdict says `words`.
async fn failed_dns(options: Options, words: &[&str]) -> Report {
    let report = diagnose("https://api.invalid/", &options).await.unwrap();
    assert_eq!(report.dns.source, DnsSource::Custom);
    assert_verdict(
        &report,
        Stage::Resolve,
        Some(FailureKind::Dns),
        (true, true),
        words,
    );
    assert!(report.tcp.is_empty());
    report
}

#[tokio::test]
async fn failing_resolver() {
    let options = Options::new().resolver(|host, _port| async move {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such host: {host}"),
        ))
    });
    let report = failed_dns(options, &["DNS: no such host api.invalid", "--resolve"]).await;
    assert!(report.dns.addresses.is_empty());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["verdict"]["stage"], "dns");
}

#[tokio::test(start_paused = true)]
async fn a_resolver_that_never_answers() {
    let options = Options::new()
        .resolver(|_host, _port| std::future::pending())
        .dns_timeout(std::time::Duration::from_secs(2));
    failed_dns(
        options,
        &["DNS: no answer for api.invalid (timed out after 2 s)"],
    )
    .await;
}

#[tokio::test]
async fn resolver_with_no_address() {
    let options = Options::new().resolver(|_host, _port| async move { Ok(Vec::new()) });
    failed_dns(options, &["no address"]).await;
}
