//! One scripted backend: an inner service that answers by script, fails with a chosen
//! [`FailureKind`], answers late or never, and records when it was called and with what.

use std::{
    collections::VecDeque,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::Service;
use tower_fortify::{
    classify::{Failure, FailureKind},
    BoxError,
};

/// What the backend does with one call.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Fail at once with a [`Failure`] of this kind (message `scripted`).
    Fail(FailureKind),
    /// Answer at once with this status, and this `Retry-After` header when given.
    Status(u16, Option<String>),
    /// Answer `200` at once.
    Success,
    /// Answer with this status after a sleep (tokio's clock).
    Slow(Duration, u16),
    /// Never answer.
    Hang,
}

/// What a [`Scripted`] backend plays.
#[derive(Clone, Debug)]
pub enum Plan {
    /// These answers in order, one per call; a call past the end panics.
    Once(Vec<Answer>),
    /// This answer to every call.
    Always(Answer),
}

impl From<Answer> for Plan {
    fn from(answer: Answer) -> Self {
        Plan::Always(answer)
    }
}

impl From<&[Answer]> for Plan {
    fn from(answers: &[Answer]) -> Self {
        Plan::Once(answers.to_vec())
    }
}

impl<const N: usize> From<&[Answer; N]> for Plan {
    fn from(answers: &[Answer; N]) -> Self {
        Plan::Once(answers.to_vec())
    }
}

impl From<&Vec<Answer>> for Plan {
    fn from(answers: &Vec<Answer>) -> Self {
        Plan::Once(answers.clone())
    }
}

/// A request body the backend records as text.
pub trait RecordBody {
    /// The body as the backend records it.
    fn text(&self) -> String;
}

impl RecordBody for () {
    fn text(&self) -> String {
        String::new()
    }
}

impl RecordBody for String {
    fn text(&self) -> String {
        self.clone()
    }
}

/// A response body the backend answers with.
pub trait ReplyBody: Send + 'static {
    /// The body of every response.
    fn reply() -> Self;
}

impl ReplyBody for () {
    fn reply() {}
}

/// A one-chunk body, `ok`.
impl ReplyBody for Full<Bytes> {
    fn reply() -> Self {
        Full::new(Bytes::from_static(b"ok"))
    }
}

#[derive(Debug)]
struct State {
    answers: VecDeque<Answer>,
    always: Option<Answer>,
    /// When each call came (tokio's clock), and its body.
    calls: Vec<(Instant, String)>,
}

/// The scripted backend: clones share the script and the record. It serves
/// `Request<Q>` (`()`, or `String` to record the bodies) and answers `Response<B>` (`()`,
/// or `Full<Bytes>` for a layer that needs a real body).
#[derive(Debug)]
pub struct Scripted<Q = (), B = ()> {
    state: Arc<Mutex<State>>,
    _body: PhantomData<fn(Q) -> B>,
}

impl<Q, B> Clone for Scripted<Q, B> {
    fn clone(&self) -> Self {
        Scripted {
            state: Arc::clone(&self.state),
            _body: PhantomData,
        }
    }
}

impl<Q, B> Scripted<Q, B> {
    /// A backend playing `plan`: a list of answers (`&[..]`, one per call) or one
    /// [`Answer`] for every call.
    pub fn new(plan: impl Into<Plan>) -> Self {
        let (answers, always) = match plan.into() {
            Plan::Once(answers) => (answers.into(), None),
            Plan::Always(answer) => (VecDeque::new(), Some(answer)),
        };
        Scripted {
            state: Arc::new(Mutex::new(State {
                answers,
                always,
                calls: Vec::new(),
            })),
            _body: PhantomData,
        }
    }

    /// From the next call on, `answer` to every call.
    pub fn set(&self, answer: impl Into<Answer>) {
        let mut state = self.state.lock().unwrap();
        state.answers.clear();
        state.always = Some(answer.into());
    }

    /// The calls that reached the backend.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls.len()
    }

    /// The waits between consecutive calls.
    pub fn sleeps(&self) -> Vec<Duration> {
        let state = self.state.lock().unwrap();
        state.calls.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }

    /// The bodies of the calls, in order.
    pub fn bodies(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.calls.iter().map(|c| c.1.clone()).collect()
    }
}

fn response<B: ReplyBody>(status: u16, retry_after: Option<&str>) -> Response<B> {
    let mut response = Response::new(B::reply());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value.parse().unwrap());
    }
    response
}

impl<Q: RecordBody, B: ReplyBody> Service<Request<Q>> for Scripted<Q, B> {
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Q>) -> Self::Future {
        let answer = {
            let mut state = self.state.lock().unwrap();
            state.calls.push((Instant::now(), req.body().text()));
            match state.answers.pop_front() {
                Some(answer) => answer,
                None => state
                    .always
                    .clone()
                    .expect("the script ran out: more calls than the row expects"),
            }
        };
        Box::pin(async move {
            match answer {
                Answer::Fail(kind) => Err(Box::new(Failure::new(kind, "scripted")) as BoxError),
                Answer::Status(status, retry_after) => Ok(response(status, retry_after.as_deref())),
                Answer::Success => Ok(response(200, None)),
                Answer::Slow(delay, status) => {
                    tokio::time::sleep(delay).await;
                    Ok(response(status, None))
                }
                Answer::Hang => std::future::pending().await,
            }
        })
    }
}
