//! The client: the preset stack around hyper-util's client, the requests (GETs, POSTs with
//! and without an idempotency key) and the calls that send them.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tower::{Service, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::{Idempotent, RetryPolicy},
    stack::{ClientConfig, ClientStack},
};

pub type Fortified = ClientStack<Client<HttpConnector, Full<Bytes>>>;

pub fn fortified(config: ClientConfig) -> (Fortified, tower_fortify::stack::ClientStackLayer) {
    let layer = config.build().expect("a valid configuration");
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(layer.connect_timeout()));
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    (tower::Layer::layer(&layer, client), layer)
}

/// What a request is, for the retry rules.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    Get,
    KeyedPost,
    UnkeyedPost,
}

impl Class {
    /// 60% GETs, 25% POSTs with an idempotency key, 15% without.
    pub fn of(id: u64) -> Class {
        match splitmix(id) % 100 {
            0..=59 => Class::Get,
            60..=84 => Class::KeyedPost,
            _ => Class::UnkeyedPost,
        }
    }
}

pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn request(port: u16, id: u64) -> http::Request<Full<Bytes>> {
    let uri = format!("http://127.0.0.1:{port}/item/{id}");
    let builder = http::Request::builder()
        .uri(uri)
        .header("x-request-id", id.to_string());
    let mut req = match Class::of(id) {
        Class::Get => builder.method("GET").body(Full::default()),
        Class::KeyedPost => builder
            .method("POST")
            .header("idempotency-key", format!("key-{id}"))
            .body(Full::new(Bytes::from_static(b"{\"order\":1}"))),
        Class::UnkeyedPost => builder
            .method("POST")
            .body(Full::new(Bytes::from_static(b"{\"order\":1}"))),
    }
    .expect("a valid request");
    if Class::of(id) == Class::KeyedPost {
        req.extensions_mut().insert(Idempotent);
    }
    req
}

/// The outcome of one request.
#[derive(Debug)]
pub struct Outcome {
    pub id: u64,
    /// When the call ended, and how long it took.
    pub at: Instant,
    pub took: Duration,
    pub result: Result<(), FailureKind>,
}

pub async fn send(client: &Fortified, port: u16, id: u64) -> Outcome {
    let start = Instant::now();
    let mut client = client.clone();
    let result = async {
        let response = client.ready().await?.call(request(port, id)).await?;
        response.into_body().collect().await?;
        Ok::<_, tower_fortify::BoxError>(())
    }
    .await
    .map_err(|e| {
        e.downcast_ref::<Failure>()
            .map(Failure::kind)
            .unwrap_or(FailureKind::Other)
    });
    Outcome {
        id,
        at: Instant::now(),
        took: start.elapsed(),
        result,
    }
}

/// Sends `ids` from `concurrency` tasks, each taking the next id when its last request ends.
pub async fn send_all(
    client: &Fortified,
    port: u16,
    ids: std::ops::Range<u64>,
    concurrency: usize,
) -> Vec<Outcome> {
    let next = Arc::new(AtomicU64::new(ids.start));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, end) = (client.clone(), next.clone(), ids.end);
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= end {
                    return out;
                }
                out.push(send(&client, port, id).await);
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(out) = workers.join_next().await {
        outcomes.extend(out.expect("a worker"));
    }
    outcomes
}

pub fn base_config() -> ClientConfig {
    ClientConfig::default()
        .name("netfault")
        .connect_timeout(Duration::from_millis(250))
        .attempt_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::production().deadline(Some(Duration::from_secs(10))))
}
