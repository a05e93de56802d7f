//! A hyper server on 127.0.0.1 that records each request's method and answers `ok` after
//! the delay the test scripted for it: a slow first answer for the hedging tests.

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

#[derive(Debug, Default)]
struct Record {
    arrivals: Vec<Method>,
    delays: Vec<Duration>,
}

/// The server's record: each request's method in order of arrival, and the delays it
/// answers them after. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct Delayed {
    record: Arc<Mutex<Record>>,
}

/// Starts the server: every request is answered `200 ok`, at once unless
/// [`Delayed::slow_after`] said otherwise.
pub async fn delayed() -> (SocketAddr, Delayed) {
    let delayed = Delayed::default();
    let record = Arc::clone(&delayed.record);
    let addr = crate::servers::serve_http(service_fn(move |request: Request<Incoming>| {
        let delay = {
            let mut record = record.lock().unwrap();
            record.arrivals.push(request.method().clone());
            let n = record.arrivals.len();
            record.delays.get(n - 1).copied().unwrap_or_default()
        };
        async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    }))
    .await;
    (addr, delayed)
}

impl Delayed {
    /// The methods of the requests so far, in order of arrival.
    pub fn arrivals(&self) -> Vec<Method> {
        self.record.lock().unwrap().arrivals.clone()
    }

    /// The request after the first `answered` is answered after `delay`, the others at once.
    pub fn slow_after(&self, answered: usize, delay: Duration) {
        let mut delays = vec![Duration::ZERO; answered];
        delays.push(delay);
        self.record.lock().unwrap().delays = delays;
    }
}
