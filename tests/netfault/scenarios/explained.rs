//! The one-line explanations of failures only the kernel makes: a connect to an address
//! with no route, a connect answered by an ICMP "host unreachable", and a connection the
//! kernel gives up on after its retransmissions (its own `ETIMEDOUT`, not a timer of ours).
//! Each through the one-call client (its connector names the peer), with
//! every timer of the stack longer than the kernel's, so that the kernel's error is the one
//! explained.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_fortify::{
    classify::{Failure, FailureKind},
    client::HttpsClient,
    retry::RetryPolicy,
    stack::ClientConfig,
};

use crate::{
    checks::check,
    netns::{nft, run, table, TABLE},
    server::server,
    Rt,
};

/// The one-call client, without retries (the failure itself is returned), with every timer
/// longer than the kernel's (its retransmissions give up after about 1.4 s with
/// `tcp_retries2` at 2).
fn patient_client() -> HttpsClient {
    ClientConfig::default()
        .name("netfault-explained")
        .retry(RetryPolicy::production().total(Some(0)))
        .connect_timeout(Duration::from_secs(20))
        .attempt_timeout(Duration::from_secs(30))
        .https()
        .expect("a valid configuration")
}

/// A GET to `uri`, its body read to the end.
async fn get(client: &HttpsClient, uri: &str) -> Result<(), tower_fortify::BoxError> {
    let request = http::Request::get(uri).body(Full::<Bytes>::default())?;
    let response = client.clone().oneshot(request).await?;
    response.into_body().collect().await?;
    Ok(())
}

/// The failure of a GET to `uri`: its kind and its one line.
async fn failure(client: &HttpsClient, uri: &str) -> Result<(FailureKind, String), String> {
    match get(client, uri).await {
        Ok(()) => Err(format!("{uri}: expected a failure, got a response")),
        Err(err) => match err.downcast_ref::<Failure>() {
            Some(failure) => {
                println!("  {uri}: {failure}");
                Ok((failure.kind(), failure.to_string()))
            }
            None => Err(format!("{uri}: not classified: {err:?}")),
        },
    }
}

fn expect(got: (FailureKind, String), kind: FailureKind, line: &str) -> Result<(), String> {
    if got != (kind, line.to_owned()) {
        return Err(format!(
            "expected {kind:?}: {line:?}\n  got {:?}: {:?}",
            got.0, got.1
        ));
    }
    check(true, format!("{kind:?}: {line:?}"))
}

pub fn explained(rt: &Rt) -> Result<(), String> {
    rt.0.block_on(async {
        let client = patient_client();

        // No route: the namespace has its loopback and nothing else.
        let got = failure(&client, "http://192.0.2.1:9/").await?;
        expect(
            got,
            FailureKind::ConnectRefused,
            "max retries exceeded: 1 attempt; last: connect refused: cannot connect to 192.0.2.1:9: Network is unreachable (os error 101)",
        )?;

        // A firewall that answers the SYN with ICMP "host unreachable".
        let (port, _) = server(true).await;
        table(
            &[],
            &[format!(
                "tcp dport {port} tcp flags syn reject with icmpx type host-unreachable"
            )],
        );
        let got = failure(&client, &format!("http://127.0.0.1:{port}/")).await?;
        expect(
            got,
            FailureKind::ConnectRefused,
            &format!(
                "max retries exceeded: 1 attempt; last: connect refused: cannot connect to 127.0.0.1:{port}: No route to host (os error 113)"
            ),
        )?;
        nft(&format!("flush chain inet {TABLE} input"));

        // The kernel's own timeout: a kept-alive connection whose packets to the server are
        // dropped after its first answer, so that the request's segments are retransmitted
        // until the kernel gives up (`tcp_retries2`, this namespace's own).
        run("sysctl", &["-qw", "net.ipv4.tcp_retries2=2"])?;
        let uri = format!("http://127.0.0.1:{port}/");
        get(&client, &uri)
            .await
            .map_err(|e| format!("the first GET, before the drop: {e}"))?;
        nft(&format!(
            "add rule inet {TABLE} input tcp dport {port} drop"
        ));
        let sent = Instant::now();
        let got = failure(&client, &uri).await?;
        let took = sent.elapsed();
        expect(
            got,
            FailureKind::ReadTimeout,
            "max retries exceeded: 1 attempt; last: read timeout: no response in time after the request was sent",
        )?;
        check(
            took < Duration::from_secs(20),
            format!("the kernel gave up before any timer of the stack: after {took:?}"),
        )?;
        Ok(())
    })
}
