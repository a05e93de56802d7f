//! The certificate and negotiation cases against a real `openssl s_server`: a TLS stack
//! this project did not write. With `CI` set, a missing `openssl` fails the test.

use super::{assert_certificate, assert_verdict, pki, probe, trusting};
use pki::Case;
use tower_fortify::{
    classify::{FailureKind, Stage},
    diagnose::ChainProblem,
};

/// `true` when the test can run; panics under CI when it cannot.
fn openssl_or_skip() -> bool {
    match pki::openssl_available() {
        Ok(()) => true,
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and openssl cannot run: {reason} (.ci/run installs it)")
        }
        Err(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}

/// Probes an `openssl s_server` presenting `case`'s chain, started with `extra`
/// arguments; `None` when the test is skipped.
async fn probe_openssl(case: Case, extra: &[&str]) -> Option<tower_fortify::diagnose::Report> {
    if !openssl_or_skip() {
        return None;
    }
    let root = pki::ca("Test Root CA", None);
    let server = pki::openssl_server(&pki::served(case, &root), extra);
    Some(probe(server.addr, trusting(&root)).await)
}

#[tokio::test]
async fn openssl_valid_chain() {
    let Some(report) = probe_openssl(Case::Valid, &[]).await else {
        return;
    };
    assert_eq!(report.verdict.stage, None, "report:\n{report}");
    assert_eq!(report.http.as_ref().and_then(|h| h.status), Some(200));
    assert!(report.tls.as_ref().unwrap().verified);
}

#[tokio::test]
async fn openssl_expired() {
    let Some(report) = probe_openssl(Case::Expired, &[]).await else {
        return;
    };
    assert_certificate(
        &report,
        ChainProblem::Expired,
        &[
            "certificate for localhost expired on 2021-01-01",
            "days ago",
        ],
    );
}

#[tokio::test]
async fn openssl_wrong_host() {
    let Some(report) = probe_openssl(Case::WrongHost, &[]).await else {
        return;
    };
    assert_certificate(
        &report,
        ChainProblem::WrongHost,
        &["valid for other.example, not localhost"],
    );
}

#[tokio::test]
async fn openssl_self_signed() {
    let Some(report) = probe_openssl(Case::SelfSigned, &[]).await else {
        return;
    };
    assert_certificate(&report, ChainProblem::SelfSigned, &["self-signed"]);
}

#[tokio::test]
async fn openssl_unknown_ca() {
    let Some(report) = probe_openssl(Case::UnknownCa, &[]).await else {
        return;
    };
    assert_certificate(
        &report,
        ChainProblem::UnknownIssuer,
        &["Untrusted Test CA", "does not trust"],
    );
    assert_eq!(
        report.tls.as_ref().unwrap().chain.len(),
        2,
        "-cert_chain was sent"
    );
}

#[tokio::test]
async fn openssl_missing_intermediate() {
    let Some(report) = probe_openssl(Case::MissingIntermediate, &[]).await else {
        return;
    };
    assert_certificate(
        &report,
        ChainProblem::MissingIntermediate,
        &["did not send the intermediate"],
    );
}

#[tokio::test]
async fn openssl_tls_1_1_only() {
    let Some(report) =
        probe_openssl(Case::Valid, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]).await
    else {
        return;
    };
    // No common version: a failed negotiation, which neither preset retries.
    assert_verdict(
        &report,
        Stage::TlsHandshake,
        Some(FailureKind::TlsNegotiation),
        (false, false),
        &[
            "no TLS version",
            "TLS 1.1 or older",
            "no retry can change this",
        ],
    );
}

#[tokio::test]
async fn openssl_no_shared_cipher() {
    // CBC suites with RSA key exchange only: rustls offers none of them.
    let Some(report) = probe_openssl(
        Case::Valid,
        &["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"],
    )
    .await
    else {
        return;
    };
    assert_verdict(
        &report,
        Stage::TlsHandshake,
        Some(FailureKind::TlsNegotiation),
        (false, false),
        &["shares no cipher suite", "no retry can change this"],
    );
}

#[tokio::test]
async fn openssl_an_rsa_key_is_named_with_its_size() {
    if !openssl_or_skip() {
        return;
    }
    // A key ring cannot make, in a self-signed certificate from `openssl req`: the chain is
    // read whether or not it is trusted. (A P-521 key cannot be shown so: this client
    // offers no signature scheme for it, and the server ends the hello.)
    let (cert, key) = pki::openssl_self_signed(&["rsa:2048"]);
    let server = pki::openssl_server_pem(&[cert], &key, &[]);
    let report = probe(server.addr, tower_fortify::diagnose::Options::new()).await;
    let chain = &report.tls.as_ref().expect("a TLS report").chain;
    assert_eq!(chain[0].key, "RSA 2048", "report:\n{report}");
    // `openssl req -x509` makes a CA certificate: served as the server's own, webpki's
    // `CaUsedAsEndEntity`, which the doctor reads as a self-signed certificate.
    assert_certificate(&report, ChainProblem::SelfSigned, &["self-signed"]);
}
