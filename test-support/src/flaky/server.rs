//! The server: plain HTTP/1.1 (one request per connection) or HTTPS with keep-alive, the
//! faults drawn per connection and per request, and the certificate authority it presents.

use std::{
    convert::Infallible,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpStream, sync::Notify};

use super::{
    faults::{
        unit, Faults, Outage, STREAM_RESET, STREAM_SLOW, STREAM_TLS_RESET, STREAM_TLS_STALL,
        STREAM_UNAVAILABLE,
    },
    shared::Shared,
    HOST, IDEMPOTENCY_KEY, REQUEST_ID,
};

pub(super) async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let n = shared.counters.connections.fetch_add(1, Relaxed);
    let _ = stream.set_nodelay(true);
    if shared.tls.is_some() {
        return serve_tls(shared, stream, n).await;
    }
    let reset = unit(shared.faults.seed, STREAM_RESET, n, 0) < shared.faults.reset;
    if reset {
        // Dropping the socket now sends RST instead of FIN.
        let _ = stream.set_zero_linger();
    }
    serve_http(shared, TokioIo::new(stream), Some(reset)).await;
}

/// Serves HTTP/1.1 on one connection; `reset` is the connection's draw, or `None` to draw
/// per request (keep-alive).
async fn serve_http<I>(shared: Arc<Shared>, io: I, reset: Option<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let abort = Arc::new(Notify::new());
    let service = {
        let abort = abort.clone();
        service_fn(move |request| handle(shared.clone(), request, reset, abort.clone()))
    };
    let mut builder = http1::Builder::new();
    builder.keep_alive(reset.is_none()).timer(TokioTimer::new());
    let connection = builder.serve_connection(io, service);
    tokio::select! {
        _ = connection => {}
        // The connection (and its socket, with SO_LINGER 0) is dropped: RST.
        _ = abort.notified() => {}
    }
}

/// One TLS connection: the handshake's faults, the handshake (timed), then HTTP/1.1 with
/// keep-alive.
async fn serve_tls(shared: Arc<Shared>, mut stream: TcpStream, n: u64) {
    use tokio::io::AsyncReadExt;
    let tls = shared.tls.as_ref().expect("a TLS backend");
    let seed = shared.faults.seed;
    // Every close of a TLS connection is a reset, so that a request's reset (drawn per
    // request) is one; a client that closed first does not see it.
    let _ = stream.set_zero_linger();
    let mut buf = [0u8; 4096];
    if unit(seed, STREAM_TLS_STALL, n, 0) < tls.faults.stall {
        shared.counters.handshake_stalls.fetch_add(1, Relaxed);
        // Read and ignore until the client gives up (bounded, so no task outlives a run).
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while matches!(stream.read(&mut buf).await, Ok(1..)) {}
        })
        .await;
        return;
    }
    if unit(seed, STREAM_TLS_RESET, n, 0) < tls.faults.reset {
        shared.counters.handshake_resets.fetch_add(1, Relaxed);
        // The client's hello arrives, then the reset (the socket dropped with SO_LINGER 0).
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        return;
    }
    let started = tokio::time::Instant::now();
    let Ok(Ok(stream)) =
        tokio::time::timeout(Duration::from_secs(10), tls.acceptor.accept(stream)).await
    else {
        return;
    };
    let took = started.elapsed();
    shared.counters.handshakes.fetch_add(1, Relaxed);
    tls.handshake_times
        .lock()
        .expect("handshake times lock")
        .push(took);
    serve_http(shared.clone(), TokioIo::new(stream), None).await;
}

fn response(status: u16, body: &'static str) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid response")
}

async fn handle(
    shared: Arc<Shared>,
    request: http::Request<Incoming>,
    reset: Option<bool>,
    abort: Arc<Notify>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let counters = &shared.counters;
    if reset.is_none() && shared.outage() == Outage::Refused {
        // A backend that went away: a connection opened before dies, the request unread.
        counters.outage_resets.fetch_add(1, Relaxed);
        abort.notify_one();
        return std::future::pending().await;
    }
    let n = counters.requests.fetch_add(1, Relaxed);
    let _in_flight = shared.load.enter();
    // Keep-alive (TLS): the reset is drawn per request, so its rate stays per request.
    let reset =
        reset.unwrap_or_else(|| unit(shared.faults.seed, STREAM_RESET, n, 1) < shared.faults.reset);
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let keyed = request.headers().contains_key(IDEMPOTENCY_KEY);
    let is_post = request.method() == http::Method::POST;
    // The n-th arrival of this request id (0 for the first), or a counter for requests
    // without one.
    let (a, b) = match id {
        Some(id) => {
            let mut arrivals = shared.arrivals.lock().expect("arrivals lock");
            let seen = arrivals.entry(id).or_insert(0);
            *seen += 1;
            (id, u64::from(*seen - 1))
        }
        None => (u64::MAX, shared.anonymous.fetch_add(1, Relaxed)),
    };
    if is_post && id.is_some() && b > 0 {
        if keyed {
            counters.keyed_post_duplicates.fetch_add(1, Relaxed);
        } else {
            counters.posts_without_key_duplicates.fetch_add(1, Relaxed);
        }
    }

    if reset {
        counters.resets.fetch_add(1, Relaxed);
        abort.notify_one();
        // The connection future, and this one with it, is dropped.
        return std::future::pending().await;
    }
    if shared.outage() == Outage::Unavailable {
        counters.outage_requests.fetch_add(1, Relaxed);
        return Ok(response(503, "outage\n"));
    }
    let Faults {
        seed,
        unavailable,
        slow,
        slow_delay,
        ..
    } = shared.faults;
    if unit(seed, STREAM_UNAVAILABLE, a, b) < unavailable {
        counters.unavailable.fetch_add(1, Relaxed);
        let mut busy = response(503, "busy\n");
        busy.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        return Ok(busy);
    }
    shared.workers.process().await;
    if unit(seed, STREAM_SLOW, a, b) < slow {
        counters.slow.fetch_add(1, Relaxed);
        tokio::time::sleep(slow_delay).await;
    }
    let path = request.uri().path();
    let answer = if request.method() == http::Method::GET && path.starts_with("/item/") {
        response(200, "{\"item\":\"ok\"}\n")
    } else if is_post && path == "/orders" {
        if request.into_body().collect().await.is_err() {
            // The client went away mid-body: nothing to answer.
            return Ok(response(400, "incomplete body\n"));
        }
        response(201, "{\"order\":\"created\"}\n")
    } else {
        return Ok(response(404, "not found\n"));
    };
    counters.ok.fetch_add(1, Relaxed);
    Ok(answer)
}

/// A certificate authority made now, and an acceptor presenting a certificate it issued for
/// [`HOST`]; the roots hold that authority only.
pub(super) fn local_ca() -> (tokio_rustls::TlsAcceptor, rustls::RootCertStore) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.distinguished_name
        .push(DnType::CommonName, "flaky backend CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec![HOST.to_owned()]).expect("leaf parameters");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.der().clone())
        .expect("the CA is a valid root");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf_cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .expect("the server certificate");
    (tokio_rustls::TlsAcceptor::from(Arc::new(server)), roots)
}
