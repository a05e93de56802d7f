//! The conformance rows of `shared/urllib3-retry.md`, V01-V37, driven through the public
//! layer on tokio's paused clock, plus rows of our own for the rules and deviations the
//! table does not cover.

use http::{Method, Request, Response};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_fortify::{
    classify::{Failure, FailureKind},
    retry::{error::RetryError, RetryHistory, RetryLayer, RetryPolicy, Stop},
    BoxError,
};

/// One outcome of the scripted inner service.
pub use fortify_test_support::scripted::Answer as Ev;

use Ev::*;

const OK: Ev = Success;
const C: Ev = Fail(FailureKind::ConnectRefused);
const R: Ev = Fail(FailureKind::ReadTimeout);
const X: Ev = Fail(FailureKind::ConnectionClosed);
const O: Ev = Fail(FailureKind::TlsHandshake);
/// A failed TLS negotiation (D7): never retried.
const N: Ev = Fail(FailureKind::TlsNegotiation);

fn s(status: u16) -> Ev {
    Status(status, None)
}

fn ra(status: u16, value: &str) -> Ev {
    Status(status, Some(value.to_owned()))
}

/// An inner service that plays a script and records when it was called, and with what.
pub type Script = fortify_test_support::scripted::Scripted<String>;

/// What a row expects the call to end with.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A response with this status.
    Response(u16),
    /// The failure itself, not a RetryError.
    Failure(FailureKind),
    /// A RetryError whose reason is a failure of this kind.
    RetryFailure(FailureKind),
    /// A RetryError "too many <status> error responses".
    RetryStatus(u16),
}

pub struct Row {
    pub id: &'static str,
    pub policy: RetryPolicy,
    pub method: Method,
    pub events: Vec<Ev>,
    pub calls: usize,
    pub sleeps: Vec<Duration>,
    pub outcome: Outcome,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn row(
    id: &'static str,
    policy: RetryPolicy,
    events: Vec<Ev>,
    calls: usize,
    sleeps: Vec<Duration>,
    outcome: Outcome,
) -> Row {
    Row {
        id,
        policy,
        method: Method::GET,
        events,
        calls,
        sleeps,
        outcome,
    }
}

fn post(mut row: Row) -> Row {
    row.method = Method::POST;
    row
}

fn with_method(mut row: Row, method: Method) -> Row {
    row.method = method;
    row
}

pub async fn run(row: Row) -> (Result<Response<()>, BoxError>, Script) {
    let script = Script::new(&row.events);
    let layer = RetryLayer::builder()
        .policy(row.policy)
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", row.id));
    let svc = layer.layer(script.clone());
    let request = Request::builder()
        .method(row.method)
        .uri("http://127.0.0.1/")
        .body("payload".to_owned())
        .unwrap();
    (svc.oneshot(request).await, script)
}

pub fn check(id: &str, result: &Result<Response<()>, BoxError>, outcome: &Outcome) {
    match (outcome, result) {
        (Outcome::Response(status), Ok(response)) => {
            assert_eq!(response.status().as_u16(), *status, "{id}: status")
        }
        (Outcome::Failure(kind), Err(err)) => {
            assert!(
                !err.is::<RetryError>(),
                "{id}: expected the failure itself, got {err}"
            );
            let failure = err
                .downcast_ref::<Failure>()
                .unwrap_or_else(|| panic!("{id}: {err}"));
            assert_eq!(failure.kind(), *kind, "{id}: kind");
        }
        (Outcome::RetryFailure(kind), Err(err)) => {
            let err = err
                .downcast_ref::<RetryError>()
                .unwrap_or_else(|| panic!("{id}: expected a RetryError, got {err}"));
            assert_eq!(
                err.failure().map(Failure::kind),
                Some(*kind),
                "{id}: reason"
            );
        }
        (Outcome::RetryStatus(status), Err(err)) => {
            let err = err
                .downcast_ref::<RetryError>()
                .unwrap_or_else(|| panic!("{id}: expected a RetryError, got {err}"));
            assert_eq!(
                err.status().map(|s| s.as_u16()),
                Some(*status),
                "{id}: reason"
            );
            let display = err.to_string();
            assert!(
                display.starts_with("max retries exceeded: ")
                    && display.ends_with(&format!("; last: too many {status} error responses")),
                "{id}: display {display}"
            );
        }
        (outcome, result) => panic!("{id}: expected {outcome:?}, got {result:?}"),
    }
}

fn d() -> RetryPolicy {
    RetryPolicy::default()
}

fn table() -> Vec<Row> {
    use Outcome::*;
    let factor = |ms_: u64| d().backoff_factor(ms(ms_));
    vec![
        row(
            "V01",
            d().total(Some(2)).connect(Some(3)),
            vec![C, C, C],
            3,
            vec![ms(0); 2],
            RetryFailure(FailureKind::ConnectRefused),
        ),
        row(
            "V02",
            d().total(Some(3)).connect(Some(2)),
            vec![C, C, C],
            3,
            vec![ms(0); 2],
            RetryFailure(FailureKind::ConnectRefused),
        ),
        row(
            "V03",
            d().total(Some(3)).read(Some(2)),
            vec![R, R, R],
            3,
            vec![ms(0); 2],
            RetryFailure(FailureKind::ReadTimeout),
        ),
        row(
            "V04",
            d().total(None).connect(Some(2)),
            vec![C, C, C],
            3,
            vec![ms(0); 2],
            RetryFailure(FailureKind::ConnectRefused),
        ),
        row(
            "V05",
            d().total(None).connect(Some(2)),
            vec![R, R, R, R, R, OK],
            6,
            vec![ms(0); 5],
            Response(200),
        ),
        row(
            "V06",
            d().total(Some(10)).other(Some(1)),
            vec![O, O],
            2,
            vec![ms(0)],
            RetryFailure(FailureKind::TlsHandshake),
        ),
        row(
            "V07",
            d().total(Some(10)).read(Some(0)),
            vec![R],
            1,
            vec![],
            RetryFailure(FailureKind::ReadTimeout),
        ),
        row(
            "V08",
            d().total(Some(10)).status(Some(2)).status_forcelist([400]),
            vec![s(400), s(400), s(400)],
            3,
            vec![ms(0); 2],
            RetryStatus(400),
        ),
        post(row(
            "V09",
            d(),
            vec![R],
            1,
            vec![],
            Failure(FailureKind::ReadTimeout),
        )),
        post(row(
            "V10",
            d(),
            vec![X],
            1,
            vec![],
            Failure(FailureKind::ConnectionClosed),
        )),
        post(row("V11", d(), vec![C, OK], 2, vec![ms(0)], Response(200))),
        post(row("V12", d(), vec![O, OK], 2, vec![ms(0)], Response(200))),
        post(row(
            "V13",
            d().allowed_methods([]),
            vec![R, OK],
            2,
            vec![ms(0)],
            Response(200),
        )),
        with_method(
            row(
                "V14",
                d(),
                vec![R],
                1,
                vec![],
                Failure(FailureKind::ReadTimeout),
            ),
            Method::PATCH,
        ),
        row(
            "V15",
            d().total(Some(0)),
            vec![C],
            1,
            vec![],
            RetryFailure(FailureKind::ConnectRefused),
        ),
        row(
            "V16",
            d(),
            vec![Fail(FailureKind::TlsCertificate)],
            1,
            vec![],
            Failure(FailureKind::TlsCertificate),
        ),
        // D7: a failed negotiation is never retried, for any method; a stalled or reset
        // handshake (V06, V12) still is.
        row(
            "D7a",
            d(),
            vec![N, OK],
            1,
            vec![],
            Failure(FailureKind::TlsNegotiation),
        ),
        post(row(
            "D7b",
            d(),
            vec![N, OK],
            1,
            vec![],
            Failure(FailureKind::TlsNegotiation),
        )),
        row(
            "D7c",
            d().total(Some(10)).other(Some(5)),
            vec![O, N, OK],
            2,
            vec![ms(0)],
            RetryFailure(FailureKind::TlsNegotiation),
        ),
        row(
            "D7d",
            d().allowed_methods([]),
            vec![N, OK],
            1,
            vec![],
            Failure(FailureKind::TlsNegotiation),
        ),
        row(
            "V17",
            d(),
            vec![Fail(FailureKind::PoolTimeout)],
            1,
            vec![],
            Failure(FailureKind::PoolTimeout),
        ),
        row(
            "V18",
            d().status_forcelist(500..=599),
            vec![s(500), OK],
            2,
            vec![ms(0)],
            Response(200),
        ),
        row(
            "V19",
            d().total(Some(1)).status_forcelist([418]),
            vec![s(400)],
            1,
            vec![],
            Response(400),
        ),
        row(
            "V20/GET",
            d().status_forcelist([500]).allowed_methods([Method::POST]),
            vec![s(500), OK],
            1,
            vec![],
            Response(500),
        ),
        post(row(
            "V20/POST",
            d().status_forcelist([500]).allowed_methods([Method::POST]),
            vec![s(500), OK],
            2,
            vec![ms(0)],
            Response(200),
        )),
        row(
            "V21",
            d(),
            vec![ra(503, "1"), ra(503, "1"), ra(503, "1"), ra(503, "1")],
            4,
            vec![secs(1); 3],
            Response(503),
        ),
        row("V22", d(), vec![s(503)], 1, vec![], Response(503)),
        row("V23", d(), vec![ra(500, "1")], 1, vec![], Response(500)),
        post(row(
            "V24",
            d(),
            vec![ra(503, "1")],
            1,
            vec![],
            Response(503),
        )),
        row(
            "V25",
            d().total(None).status(Some(2)),
            vec![ra(503, "1")],
            1,
            vec![],
            Response(503),
        ),
        row(
            "V26",
            d().respect_retry_after_header(false),
            vec![ra(503, "1")],
            1,
            vec![],
            Response(503),
        ),
        row(
            "V27",
            d().total(None).status(Some(2)).status_forcelist([503]),
            vec![ra(503, "1"), ra(503, "1"), ra(503, "1")],
            3,
            vec![secs(1); 2],
            RetryStatus(503),
        ),
        row(
            "V28",
            factor(200).total(Some(3)).status_forcelist([500]),
            vec![s(500); 4],
            4,
            vec![ms(0), ms(400), ms(800)],
            RetryStatus(500),
        ),
        row(
            "V29",
            factor(200)
                .total(Some(3))
                .status_forcelist([500])
                .raise_on_status(false),
            vec![s(500); 4],
            4,
            vec![ms(0), ms(400), ms(800)],
            Response(500),
        ),
        row(
            "V30",
            d().total(Some(10)).status(Some(1)),
            vec![ra(503, "1"), ra(503, "1")],
            2,
            vec![secs(1)],
            RetryStatus(503),
        ),
        row(
            "V31",
            factor(200).total(Some(100)),
            [vec![C; 12], vec![OK]].concat(),
            13,
            [
                0, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 102400, 120000, 120000,
            ]
            .map(ms)
            .to_vec(),
            Response(200),
        ),
        row(
            "V32",
            factor(200).backoff_max(secs(1)).total(Some(10)),
            [vec![C; 6], vec![OK]].concat(),
            7,
            [0, 400, 800, 1000, 1000, 1000].map(ms).to_vec(),
            Response(200),
        ),
        row(
            "V33",
            factor(500).total(Some(3)),
            vec![ra(429, "0"); 4],
            4,
            vec![ms(0), secs(1), secs(2)],
            Response(429),
        ),
        row(
            "V34",
            d().backoff_factor(secs(10))
                .total(Some(5))
                .status_forcelist([500]),
            vec![s(500), s(500), ra(500, "3"), OK],
            4,
            vec![ms(0), secs(20), secs(3)],
            Response(200),
        ),
        row(
            "V36",
            d().status_forcelist([503]),
            vec![ra(503, "soon"), OK],
            2,
            vec![ms(0)],
            Response(200),
        ),
        row(
            "V37",
            d().total(Some(10)),
            vec![C, OK],
            2,
            vec![ms(0)],
            Response(200),
        ),
    ]
}

#[tokio::test(start_paused = true)]
async fn conformance_rows() {
    for row in table() {
        let id = row.id;
        let (calls, sleeps, outcome) = (row.calls, row.sleeps.clone(), row.outcome.clone());
        let (result, script) = run(row).await;
        assert_eq!(script.calls(), calls, "{id}: calls");
        assert_eq!(script.sleeps(), sleeps, "{id}: sleeps");
        check(id, &result, &outcome);
        // Every attempt sent the same body.
        assert!(
            script.bodies().iter().all(|b| b == "payload"),
            "{id}: bodies"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn v35_retry_after_http_date() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    let row = row(
        "V35",
        d(),
        vec![ra(503, &date), OK],
        2,
        vec![],
        Outcome::Response(200),
    );
    let (result, script) = run(row).await;
    check("V35", &result, &Outcome::Response(200));
    assert_eq!(script.calls(), 2);
    let sleep = script.sleeps()[0];
    assert!(
        sleep >= secs(29) && sleep <= secs(31),
        "V35: slept {sleep:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn v37_history_in_response_extensions() {
    let (result, _) = run(row(
        "V37",
        d().total(Some(10)),
        vec![C, OK],
        2,
        vec![],
        Outcome::Response(200),
    ))
    .await;
    let response = result.unwrap();
    let history = response
        .extensions()
        .get::<RetryHistory>()
        .expect("history");
    assert_eq!(history.records().len(), 1);
    assert_eq!(
        history.records()[0].cause().failure_kind(),
        Some(FailureKind::ConnectRefused)
    );
    assert_eq!(history.stop(), None);
}

#[tokio::test(start_paused = true)]
async fn retry_error_history_and_display() {
    let (result, _) = run(row(
        "V01",
        d().total(Some(2)).connect(Some(3)),
        vec![C, C, C],
        3,
        vec![],
        Outcome::Response(0),
    ))
    .await;
    let err = result.unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert_eq!(err.history().records().len(), 2);
    assert_eq!(err.stop(), Some(Stop::Exhausted));
    assert_eq!(
        err.to_string(),
        "max retries exceeded: 3 attempts; last: connect refused: scripted"
    );
    // The last failure is the error's source, so an outer classification sees its kind.
    assert_eq!(
        tower_fortify::classify::classify_error(err, tower_fortify::classify::Stage::Request),
        FailureKind::ConnectRefused
    );
}
