use super::super::{service::Shared, Retry, RetryPolicy};
use crate::{
    classify::{ClassifyShared, ErrorClassify, Failure, Stage},
    internal::ticker::Ticker,
    BoxError,
};
use http::{Request, Response};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tower::{Service, ServiceExt};

/// Refused twice, then answers after a second, and again; its readiness fails on every
/// third call.
#[derive(Clone)]
struct Flaky(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Service<Request<String>> for Flaky {
    type Response = Response<String>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<String>, std::io::Error>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        if self.1.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n % 3 < 2 {
                return Err(std::io::ErrorKind::ConnectionRefused.into());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Response::new(String::new()))
        })
    }
}

/// What a series of calls through `svc` gives: each result (the error's kind and text),
/// and what the recorder holds.
async fn outcomes<S>(
    recorder: &DebuggingRecorder,
    mut svc: S,
) -> (Vec<Result<u16, String>>, Vec<String>)
where
    S: Service<Request<String>, Response = Response<String>, Error = BoxError>,
{
    let mut results = Vec::new();
    for _ in 0..4 {
        let result = match svc.ready().await {
            Err(err) => Err(err),
            Ok(ready) => ready.call(Request::new(String::new())).await,
        };
        results.push(match result {
            Ok(response) => Ok(response.status().as_u16()),
            Err(err) => {
                let failure = err.downcast_ref::<Failure>().expect("a Failure");
                Err(format!("{:?}: {failure:#}", failure.kind()))
            }
        });
    }
    let mut recorded: Vec<String> = recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name().starts_with("fortify_re") || key.key().name() == "fortify_errors_total"
        })
        .filter(|(key, ..)| !key.key().name().starts_with("fortify_retr"))
        .map(|(key, _, _, value)| {
            let value = match value {
                DebugValue::Counter(n) => format!("{n}"),
                DebugValue::Histogram(samples) => {
                    format!(
                        "{:?}",
                        samples.iter().map(|s| s.into_inner()).collect::<Vec<_>>()
                    )
                }
                DebugValue::Gauge(g) => format!("{}", g.into_inner()),
            };
            format!("{:?} {value}", key.key())
        })
        .collect();
    recorded.sort();
    (results, recorded)
}

#[tokio::test(start_paused = true)]
async fn the_same_errors_and_metrics_as_errorclassify_around_it() {
    let flaky = || Flaky(Arc::default(), Arc::default());
    let shared = || {
        let ticker = Arc::new(Ticker::new());
        Arc::new(Shared::new(RetryPolicy::default(), "fused", ticker))
    };
    let around = DebuggingRecorder::new();
    let plain = metrics::with_local_recorder(&around, || {
        ErrorClassify::with_settings(
            Retry::from_shared(flaky(), shared()),
            Stage::Request,
            "fused",
        )
    });
    let within = DebuggingRecorder::new();
    let fused = metrics::with_local_recorder(&within, || {
        Retry::classified(
            flaky(),
            shared(),
            Arc::new(ClassifyShared::new(Stage::Request, "fused")),
        )
    });
    let expected = outcomes(&around, plain).await;
    assert!(expected.0.iter().any(Result::is_ok), "{expected:?}");
    assert!(expected.0.iter().any(Result::is_err), "{expected:?}");
    assert!(
        expected.1.iter().any(|line| line.contains("errors_total")),
        "{expected:?}"
    );
    assert!(
        expected
            .1
            .iter()
            .any(|line| line.contains("\"ok\")") && line.ends_with("[1.0, 1.0]")),
        "a timed success: {expected:?}"
    );
    assert_eq!(outcomes(&within, fused).await, expected);
}
