//! The scripted backend as the breaker tests drive it, and helpers shared by the tests.

#![allow(dead_code)]

use fortify_test_support::scripted::{Answer, Plan, Scripted};
use http::{Request, Response};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{error::Open, CircuitBreakerBuilder, GenericCircuitBreaker, State},
    classify::{Failure, FailureKind},
    BoxError,
};

/// What the backend does with the next calls: the breaker tests' shorthand for the
/// scripted backend's [`Answer`]s.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Answer at once with this status.
    Status(u16),
    /// Answer with this status and a `Retry-After` header.
    RetryAfter(u16, &'static str),
    /// Fail at once with this kind.
    Fail(FailureKind),
    /// Answer with this status after a sleep (tokio's clock).
    Slow(Duration, u16),
    /// Never answer.
    Hang,
}

impl From<Mode> for Answer {
    fn from(mode: Mode) -> Answer {
        match mode {
            Mode::Status(status) => Answer::Status(status, None),
            Mode::RetryAfter(status, value) => Answer::Status(status, Some(value.to_owned())),
            Mode::Fail(kind) => Answer::Fail(kind),
            Mode::Slow(delay, status) => Answer::Slow(delay, status),
            Mode::Hang => Answer::Hang,
        }
    }
}

/// The same answer to every call, until the test switches it.
impl From<Mode> for Plan {
    fn from(mode: Mode) -> Plan {
        Plan::Always(mode.into())
    }
}

/// A backend whose behaviour the test switches, counting the calls that reach it.
pub type Backend = Scripted;

/// A breaker built from `builder` around a fresh `Backend` answering by `mode`, and that
/// backend (to change its mode).
pub fn breaker(
    builder: CircuitBreakerBuilder,
    mode: Mode,
) -> (GenericCircuitBreaker<Backend>, Backend) {
    let backend = Backend::new(mode);
    let svc = builder.build_generic().unwrap().layer(backend.clone());
    (svc, backend)
}

pub fn response(status: u16) -> Response<()> {
    Response::builder().status(status).body(()).unwrap()
}

pub fn request() -> Request<()> {
    Request::get("http://backend.test/").body(()).unwrap()
}

pub fn request_to(host: &str) -> Request<()> {
    Request::get(format!("http://{host}/")).body(()).unwrap()
}

/// One call through `svc`.
pub async fn send<S>(svc: &mut S) -> Result<Response<()>, BoxError>
where
    S: Service<Request<()>, Response = Response<()>, Error = BoxError>,
{
    svc.ready().await?.call(request()).await
}

/// `n` calls; returns how many were rejected by the breaker.
pub async fn send_n<S>(svc: &mut S, n: usize) -> usize
where
    S: Service<Request<()>, Response = Response<()>, Error = BoxError>,
{
    let mut rejected = 0;
    for _ in 0..n {
        if let Err(err) = send(svc).await {
            rejected += usize::from(open_of(&err).is_some());
        }
    }
    rejected
}

/// The breaker's rejection, if `err` is one.
pub fn open_of(err: &BoxError) -> Option<&Open> {
    let failure = err.downcast_ref::<Failure>()?;
    if failure.kind() != FailureKind::CircuitOpen {
        return None;
    }
    failure.get_ref().downcast_ref::<Open>()
}

/// Asserts that `err` is a rejection while in `state`.
pub fn assert_rejected(err: &BoxError, state: State) -> &Open {
    let open = open_of(err).unwrap_or_else(|| panic!("not a rejection: {err}"));
    assert_eq!(open.state(), state, "{err}");
    open
}
