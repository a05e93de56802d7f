//! A backend that plays a script of answers on tokio's clock and counts its calls, the
//! attempts it saw cancelled, and each call's method; its readiness can be refused.

#![allow(dead_code)]

use http::{Method, Request, Response};
use std::{
    collections::VecDeque,
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::hedge::{Hedge, HedgeBuilder, HedgeLayer};

/// What the backend does with one call.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// Answers `200` with the call's number as the body after this long.
    Ok(Duration),
    /// Fails (connection reset) after this long.
    Err(Duration),
    /// Never answers.
    Hang,
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Default)]
struct State {
    plan: VecDeque<Step>,
    calls: Vec<(Instant, Method, String)>,
    cancelled: usize,
    /// Readiness refused (an error) while set.
    refuse: bool,
}

/// The scripted backend: clones share the script and the record. A call past the script
/// answers at once.
#[derive(Clone, Debug, Default)]
pub struct Backend {
    state: Arc<Mutex<State>>,
}

impl Backend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `steps` to the script.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) -> &Self {
        self.state.lock().unwrap().plan.extend(steps);
        self
    }

    /// Refuses readiness (`poll_ready` fails) while `refuse` is set.
    pub fn refuse(&self, refuse: bool) {
        self.state.lock().unwrap().refuse = refuse;
    }

    /// Calls that reached the backend.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls.len()
    }

    /// Calls dropped before they answered.
    pub fn cancelled(&self) -> usize {
        self.state.lock().unwrap().cancelled
    }

    /// The methods of the calls, in order.
    pub fn methods(&self) -> Vec<Method> {
        let state = self.state.lock().unwrap();
        state.calls.iter().map(|c| c.1.clone()).collect()
    }

    /// When the last two calls came, apart.
    pub fn last_gap(&self) -> Duration {
        let state = self.state.lock().unwrap();
        let n = state.calls.len();
        state.calls[n - 1].0 - state.calls[n - 2].0
    }

    /// The bodies of the calls, in order.
    pub fn bodies(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.calls.iter().map(|c| c.2.clone()).collect()
    }
}

/// Counts the call as cancelled if dropped before it answers.
struct Pending {
    state: Arc<Mutex<State>>,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.state.lock().unwrap().cancelled += 1;
        }
    }
}

impl Service<Request<String>> for Backend {
    type Response = Response<String>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Response<String>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state.lock().unwrap().refuse {
            return Poll::Ready(Err(io::Error::other("not ready")));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        let (number, step) = {
            let mut state = self.state.lock().unwrap();
            state.calls.push((
                Instant::now(),
                request.method().clone(),
                request.body().clone(),
            ));
            let step = state.plan.pop_front().unwrap_or(Step::Ok(Duration::ZERO));
            (state.calls.len(), step)
        };
        let pending = Pending {
            state: Arc::clone(&self.state),
            done: false,
        };
        Box::pin(async move {
            // The whole guard, not only its field, lives in the future.
            let mut pending = pending;
            let result = match step {
                Step::Ok(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok(Response::new(format!("call {number}")))
                }
                Step::Err(delay) => {
                    tokio::time::sleep(delay).await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("call {number}"),
                    ))
                }
                Step::Hang => std::future::pending().await,
            };
            pending.done = true;
            result
        })
    }
}

/// A GET to `host` with `body`.
pub fn get(host: &str) -> Request<String> {
    Request::get(format!("http://{host}/"))
        .body(String::new())
        .unwrap()
}

/// A POST to `host`.
pub fn post(host: &str) -> Request<String> {
    Request::post(format!("http://{host}/"))
        .body(String::from("order"))
        .unwrap()
}

/// The tests' settings: p95, no floor, 5 samples before the first hedge.
pub fn builder() -> HedgeBuilder {
    HedgeLayer::builder()
        .percentile(95.0)
        .min_delay(Duration::ZERO)
        .min_samples(5)
}

/// Five GETs to `host` answered in 20 ms: the host's hedge delay is then 20 ms (the
/// bucket of 20 ms holds up to 20.479 ms).
pub async fn warm<S>(svc: &S, backend: &Backend, host: &str)
where
    S: Service<Request<String>, Response = Response<String>> + Clone,
    S::Error: std::fmt::Debug,
{
    backend.script([Step::Ok(ms(20)); 5]);
    for _ in 0..5 {
        svc.clone().oneshot(get(host)).await.unwrap();
    }
}

/// The warmed hedge delay.
pub const DELAY: Duration = Duration::from_micros(20_479);

/// A hedge layer with `builder`'s settings around `backend`, warmed for `host`.
pub async fn warmed(builder: HedgeBuilder, backend: &Backend, host: &str) -> Hedge<Backend> {
    let svc = builder.build().unwrap().layer(backend.clone());
    warm(&svc, backend, host).await;
    svc
}

/// `actual` is `want`, or at most a millisecond later (tokio's timer granularity).
#[track_caller]
pub fn near(actual: Duration, want: Duration) {
    assert!(
        actual >= want && actual <= want + ms(1),
        "{actual:?}, expected {want:?} (to the millisecond above)"
    );
}
