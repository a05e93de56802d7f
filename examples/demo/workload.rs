//! The workload: its request mix, what became of each request, and the loop that sends it.

use crate::{client::DemoClient, options::Options};
use bytes::Bytes;
use fortify_test_support::flaky::{self, FlakyBackend};
use http_body_util::{BodyExt, Full};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};
use tower_fortify::{
    classify::Failure,
    retry::{error::RetryError, Idempotent, Stop},
    BoxError,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Get,
    KeyedPost,
    UnkeyedPost,
}

impl Class {
    pub(crate) const ALL: [Class; 3] = [Class::Get, Class::KeyedPost, Class::UnkeyedPost];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Get => "GET",
            Class::KeyedPost => "POST with idempotency-key",
            Class::UnkeyedPost => "POST without key",
        }
    }

    /// The class of request `id`, the same in both runs: a share `unkeyed` of unkeyed
    /// POSTs, 20% keyed POSTs, the rest GETs.
    fn of(seed: u64, id: u64, unkeyed: f64) -> Class {
        let mut z = seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x6B6C_6173_7365_7321;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        if u < unkeyed {
            Class::UnkeyedPost
        } else if u < unkeyed + 0.2 {
            Class::KeyedPost
        } else {
            Class::Get
        }
    }
}

fn request(backend: &FlakyBackend, id: u64, class: Class) -> http::Request<Full<Bytes>> {
    let builder = http::Request::builder().header(flaky::REQUEST_ID, id);
    let mut request = match class {
        Class::Get => builder
            .method(http::Method::GET)
            .uri(backend.uri(&format!("/item/{id}")))
            .body(Full::default()),
        Class::KeyedPost | Class::UnkeyedPost => builder
            .method(http::Method::POST)
            .uri(backend.uri("/orders"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(format!("{{\"order\":{id}}}")))),
    }
    .expect("a valid request");
    if class == Class::KeyedPost {
        request
            .headers_mut()
            .insert(flaky::IDEMPOTENCY_KEY, http::HeaderValue::from(id));
        // The server deduplicates it: the retry layer may retry it like a GET.
        request.extensions_mut().insert(Idempotent);
    }
    request
}

/// What happened to one logical request.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) class: Class,
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    /// `None` for a 2xx answer, else the failure's name.
    pub(crate) failure: Option<String>,
    /// Attempts that reached the backend (its arrivals of this request id).
    pub(crate) attempts: u32,
}

impl Record {
    pub(crate) fn latency(&self) -> Duration {
        self.end - self.start
    }
}

/// The failure's name: the crate's `FailureKind`, or the final status.
fn failure_name(err: BoxError) -> String {
    // The stack's outer classification wraps a `RetryError`; find it in the chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(e) = cause {
        if let Some(retry) = e.downcast_ref::<RetryError>() {
            let what = match (retry.status(), retry.failure()) {
                (Some(status), _) => format!("status {}", status.as_u16()),
                (None, Some(failure)) => failure.kind().as_str().to_string(),
                (None, None) => "other".to_string(),
            };
            return match retry.stop() {
                Some(Stop::Budget) => format!("{what} (budget)"),
                Some(Stop::Deadline) => format!("{what} (deadline)"),
                _ => what,
            };
        }
        cause = e.source();
    }
    // The bare client's errors are classified here, as `ErrorClassifyLayer` would.
    let kind = match err.downcast::<Failure>() {
        Ok(failure) => failure.kind(),
        Err(err) => Failure::classify(err, tower_fortify::classify::Stage::Request).kind(),
    };
    kind.as_str().to_string()
}

pub(crate) struct Progress {
    pub(crate) done: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
}

/// The workload: how many requests, how fast, how many in flight at most, and its mix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Workload {
    pub(crate) requests: usize,
    /// Requests started per second (0: as fast as the concurrency allows).
    pub(crate) rate: f64,
    pub(crate) concurrency: usize,
    pub(crate) seed: u64,
    pub(crate) unkeyed: f64,
}

impl Workload {
    pub(crate) fn of(options: &Options) -> Workload {
        Workload {
            requests: options.requests,
            rate: options.rate,
            concurrency: options.concurrency,
            seed: options.seed,
            unkeyed: options.unkeyed,
        }
    }
}

/// Sends the workload through `service`, request `i` due `i / rate` after `started`, at
/// most `concurrency` in flight; returns what happened to each request, in order.
pub(crate) async fn drive(
    service: DemoClient,
    backend: &FlakyBackend,
    workload: &Workload,
    started: Instant,
    progress: &Arc<Progress>,
) -> Vec<Record> {
    let semaphore = Arc::new(Semaphore::new(workload.concurrency));
    let mut tasks = Vec::with_capacity(workload.requests);
    for i in 0..workload.requests {
        let id = i as u64 + 1;
        if workload.rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / workload.rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let class = Class::of(workload.seed, id, workload.unkeyed);
        let request = request(backend, id, class);
        let progress = progress.clone();
        progress.in_flight.fetch_add(1, Relaxed);
        let task = tokio::spawn(send(
            service.clone(),
            request,
            class,
            started,
            progress,
            permit,
        ));
        tasks.push((id, task));
    }
    let mut records = Vec::with_capacity(tasks.len());
    for (id, task) in tasks {
        let mut record = task.await.expect("request task");
        record.attempts = backend.arrivals(id);
        records.push(record);
    }
    records
}

/// Sends one logical request and reads the whole answer; `permit` is the request's place
/// among the `--concurrency` in flight.
async fn send<S, B>(
    service: S,
    request: http::Request<Full<Bytes>>,
    class: Class,
    started: Instant,
    progress: Arc<Progress>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Record
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    let start = started.elapsed();
    let failure = match service.oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            match response.into_body().collect().await {
                Err(err) => Some(failure_name(err.into())),
                Ok(_) if status.is_success() => None,
                Ok(_) => Some(format!("status {}", status.as_u16())),
            }
        }
        Err(err) => Some(failure_name(err.into())),
    };
    drop(permit);
    progress.in_flight.fetch_sub(1, Relaxed);
    progress.done.fetch_add(1, Relaxed);
    Record {
        class,
        start,
        end: started.elapsed(),
        failure,
        attempts: 0,
    }
}
