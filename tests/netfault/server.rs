//! The server: a hyper server on the namespace's loopback that counts what it received.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the server received: requests per id, and the POSTs without key among them.
#[derive(Default)]
pub struct Received {
    by_id: Mutex<HashMap<u64, u32>>,
    pub total: AtomicU64,
}

impl Received {
    /// Ids of requests without an idempotency key that arrived more than once.
    pub fn duplicated_unkeyed(&self, unkeyed: &[u64]) -> Vec<u64> {
        let by_id = self.by_id.lock().unwrap();
        unkeyed
            .iter()
            .copied()
            .filter(|id| by_id.get(id).copied().unwrap_or(0) > 1)
            .collect()
    }
}

/// A hyper server on 127.0.0.1 that answers 200 to everything and counts what it received.
pub async fn server(keep_alive: bool) -> (u16, Arc<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Received::default());
    let counts = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counts = counts.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let counts = counts.clone();
                    async move {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(u64::MAX);
                        let _ = req.into_body().collect().await;
                        counts.total.fetch_add(1, Ordering::Relaxed);
                        *counts.by_id.lock().unwrap().entry(id).or_default() += 1;
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(&[b'x'; 512]),
                        )))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, received)
}
