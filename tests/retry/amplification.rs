//! How much load the production preset's retries add during a total outage, measured on
//! tokio's paused clock: every attempt is refused, so every request is retried as long as
//! its counters and the budget allow. The figures are the ones the budget's docs state.

use http::{Request, Response};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::{RetryLayer, RetryPolicy},
    BoxError,
};

/// Sends `requests` requests, one every `interval` (all at once for zero), through one
/// production retry layer in front of a backend that refuses every connection; returns
/// the backend's calls per request.
async fn amplification(requests: u64, interval: Duration) -> f64 {
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let backend = tower::service_fn(move |_req: Request<()>| {
        seen.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Err::<Response<()>, BoxError>(Box::new(Failure::new(
            FailureKind::ConnectRefused,
            "connection refused",
        ))))
    });
    let svc = RetryLayer::builder()
        .policy(RetryPolicy::production())
        .build()
        .unwrap()
        .layer(backend);
    for i in 0..requests {
        if i > 0 && !interval.is_zero() {
            tokio::time::advance(interval).await;
        }
        let result = svc.clone().oneshot(Request::new(())).await;
        assert!(result.is_err(), "the backend is down");
    }
    calls.load(Ordering::Relaxed) as f64 / requests as f64
}

fn per_sec(rate: u64) -> Duration {
    Duration::from_nanos(1_000_000_000 / rate)
}

/// The documented rows: requests, interval, amplification (calls per request, to 0.01).
#[tokio::test(start_paused = true)]
async fn a_total_outage_amplifies_load_by_the_documented_factor_per_rate() {
    let rows = [
        ("burst of 200", 200, Duration::ZERO, 1.70),
        ("200 req/s for 2 s", 400, per_sec(200), 1.45),
        ("200 req/s for 30 s", 6_000, per_sec(200), 1.25),
        ("20,000 req/s for 2 s", 40_000, per_sec(20_000), 1.20),
    ];
    let mut measured = Vec::new();
    for (name, requests, interval, documented) in rows {
        let factor = amplification(requests, interval).await;
        measured.push(format!("{name}: {factor:.4}x"));
        assert!(
            (factor - documented).abs() < 0.005,
            "{name}: measured {factor:.4}x, documented {documented:.2}x"
        );
    }
    println!("{}", measured.join("\n"));
}
