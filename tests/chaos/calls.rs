//! One logical call through the stack: its request, and how it ended (its outcome, with
//! the retries its history holds).

use std::time::{Duration, Instant};

use crate::harness::{Body, Stack};
use bytes::Bytes;
use fortify_test_support::flaky::{self, FlakyBackend};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::{error::RetryError, Idempotent, RetryCause, RetryHistory, Stop},
    BoxError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Get,
    KeyedPost,
    Post,
}

/// One logical request and what to do with it.
pub struct Call {
    pub op: Op,
    pub id: u64,
    /// Drop the response without reading its body.
    pub drop_body: bool,
    /// Drop the whole call (cancel it) if it has not finished after this long.
    pub cancel_after: Option<Duration>,
}

impl Call {
    pub fn new(op: Op, id: u64) -> Self {
        Call {
            op,
            id,
            drop_body: false,
            cancel_after: None,
        }
    }
}

/// The request of `op` number `id`: `x-request-id` on every request, `idempotency-key` and
/// the [`Idempotent`] marker on keyed POSTs.
pub fn request(backend: &FlakyBackend, op: Op, id: u64) -> http::Request<Body> {
    let (method, path, body) = match op {
        Op::Get => (http::Method::GET, format!("/item/{id}"), Bytes::new()),
        Op::KeyedPost | Op::Post => (
            http::Method::POST,
            "/orders".to_owned(),
            Bytes::from(format!("{{\"order\":{id}}}")),
        ),
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(backend.uri(&path))
        .header(flaky::REQUEST_ID, id.to_string());
    if op == Op::KeyedPost {
        builder = builder.header(flaky::IDEMPOTENCY_KEY, id.to_string());
    }
    let mut request = builder.body(Full::new(body)).expect("a valid request");
    if op == Op::KeyedPost {
        request.extensions_mut().insert(Idempotent);
    }
    request
}

/// How a call ended.
#[derive(Debug, Clone)]
pub enum End {
    /// A response, whose body was read to its end (or dropped, when asked).
    Response(StatusCode),
    /// An error of the stack, or of the response body.
    Failed {
        kind: Option<FailureKind>,
        /// The status of a `RetryError` that ran out of status retries.
        status: Option<StatusCode>,
        message: String,
    },
    /// Dropped by the caller before it ended.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub op: Op,
    pub id: u64,
    pub end: End,
    /// What each retry was made after (from the `RetryHistory`).
    pub retries: Vec<RetryCause>,
    pub stop: Option<Stop>,
    pub started: Instant,
    pub finished: Instant,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self.end, End::Response(status) if status.is_success())
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self.end {
            End::Response(status) => Some(status),
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<FailureKind> {
        match self.end {
            End::Failed { kind, .. } => kind,
            _ => None,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.end, End::Failed { .. })
    }

    pub fn retried_after(&self, kind: FailureKind) -> usize {
        self.retries
            .iter()
            .filter(|c| c.failure_kind() == Some(kind))
            .count()
    }

    /// A short label for tallies: `201`, `failed:connection_closed`, `cancelled`, ...
    pub fn label(&self) -> String {
        match &self.end {
            End::Response(status) => status.as_str().to_owned(),
            End::Failed { kind, status, .. } => match (kind, status) {
                (Some(kind), _) => format!("failed:{}", kind.as_str()),
                (None, Some(status)) => format!("failed:status_{}", status.as_str()),
                (None, None) => "failed:unclassified".to_owned(),
            },
            End::Cancelled => "cancelled".to_owned(),
        }
    }
}

/// The kind, status and history of a stack error: a `RetryError` (inside the stack's
/// `Failure`) whenever a retry was made, or a `Failure` never retried (no history).
pub fn describe(
    err: &BoxError,
) -> (
    Option<FailureKind>,
    Option<StatusCode>,
    Option<RetryHistory>,
) {
    let retry = err.downcast_ref::<RetryError>().or_else(|| {
        err.downcast_ref::<Failure>()
            .and_then(|f| f.get_ref().downcast_ref::<RetryError>())
    });
    if let Some(retry) = retry {
        return (
            retry.failure().map(Failure::kind),
            retry.status(),
            Some(retry.history().clone()),
        );
    }
    let failure = err.downcast_ref::<Failure>();
    (failure.map(Failure::kind), None, None)
}

/// Sends one call through the stack and reads (or drops) the response body.
pub async fn execute(stack: Stack, backend: FlakyBackend, call: Call) -> Outcome {
    let Call {
        op,
        id,
        drop_body,
        cancel_after,
    } = call;
    let started = Instant::now();
    let work = async move {
        match stack.oneshot(request(&backend, op, id)).await {
            Ok(response) => {
                let status = response.status();
                let history = response.extensions().get::<RetryHistory>().cloned();
                let body = if drop_body {
                    drop(response);
                    Ok(())
                } else {
                    response.into_body().collect().await.map(drop)
                };
                let end = match body {
                    Ok(()) => End::Response(status),
                    Err(err) => End::Failed {
                        kind: Some(
                            Failure::classify(err, tower_fortify::classify::Stage::Request).kind(),
                        ),
                        status: None,
                        message: "response body failed".to_owned(),
                    },
                };
                (end, history)
            }
            Err(err) => {
                let (kind, status, history) = describe(&err);
                let end = End::Failed {
                    kind,
                    status,
                    message: err.to_string(),
                };
                (end, history)
            }
        }
    };
    let (end, history) = match cancel_after {
        Some(after) => match tokio::time::timeout(after, work).await {
            Ok(ended) => ended,
            Err(_) => (End::Cancelled, None),
        },
        None => work.await,
    };
    Outcome {
        op,
        id,
        end,
        retries: history
            .as_ref()
            .map(|h| h.records().iter().map(|r| r.cause()).collect())
            .unwrap_or_default(),
        stop: history.and_then(|h| h.stop()),
        started,
        finished: Instant::now(),
    }
}
