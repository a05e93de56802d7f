//! [`Future`] types.

use super::{
    body::TryCloneBody,
    decision::{may_retry, Attempts, Decision},
    error::{DeadlineElapsed, RetryError, RetryReason},
    service::{Calls, Kept, Shared, SharedRef},
    RetryHistory, Stop,
};
use crate::{
    classify::{Failure, FailureKind, Stage},
    internal::{
        clock::{self, Nanos},
        ticker::Wait,
    },
    BoxError,
};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};
use tower_service::Service;

pin_project! {
    /// Response future of [`Retry`](super::Retry).
    ///
    /// ```
    /// use tower::{Service, ServiceExt};
    /// use tower_fortify::retry::{future::ResponseFuture, Retry, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let inner = tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(204).body(())
    /// });
    /// let mut svc = Retry::new(inner, RetryPolicy::default())?;
    /// let future: ResponseFuture<_, ()> = svc.ready().await?.call(http::Request::new(()));
    /// assert_eq!(future.await?.status(), 204);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the attempt in flight or the sleep, and the request copy; a retry
    /// taken from the budget is not given back.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        // One wait on the layer's timer, started when first needed: the call's deadline
        // while an attempt or the wait for readiness is pending, the backoff while sleeping
        // (a retry never sleeps past the deadline).
        timer: Wait,
        // Set at the first poll (see `begin`).
        deadline_at: Option<Nanos>,
        // When a call whose errors this layer classifies (the preset) started, if timed.
        start: Option<Nanos>,
        // The copy every retry is copied from.
        kept: Option<Kept<B>>,
        // Counters, history and the copy the next retry sends: boxed, made when a failure
        // or a retryable response first needs them, so a call answered at once never pays.
        retry: Option<Box<RetryState<S, B>>>,
        // Whether the attempt in flight ends by its own timeout before the deadline, so that
        // no timer watches the deadline meanwhile (see `Shared::attempt_bound`).
        covered: bool,
        // Whether the call began: deposited into the budget and set its deadline (`begin`).
        begun: bool,
        // The layer's state, and the template a retry's service is cloned from.
        shared: SharedRef<S>,
    }

    impl<S, B> PinnedDrop for ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.timer.stop(&this.shared.ticker);
        }
    }
}

/// What a call carries once it met a failure or a retryable response.
struct RetryState<S, B> {
    attempts: Attempts,
    next: Option<Request<B>>,
    /// The service retries are sent with, cloned from the template for the first one.
    service: Option<S>,
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling {
            #[pin]
            future: F,
        },
        Sleeping,
        Ready,
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.retry.as_ref().map(|r| &r.attempts))
            .field(
                "idempotent",
                &self
                    .kept
                    .as_ref()
                    .map(|k| k.is_idempotent(&self.shared.policy)),
            )
            .field("deadline_at", &self.deadline_at)
            .finish_non_exhaustive()
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline(always)]
    pub(crate) fn new(future: S::Future, kept: Option<Kept<B>>, shared: SharedRef<S>) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            timer: Wait::Idle,
            deadline_at: None,
            start: None,
            kept,
            retry: None,
            covered: false,
            begun: false,
            shared,
        }
    }
}

/// The call's start, at its first poll, after the first attempt's first poll: the budget's
/// deposit, and the deadline (`None` for none). The clock is read once for both, and only
/// if one of them needs it: the read an inner layer made during that poll when there is one
/// (the preset's attempt timeout, when the attempt is pending: `internal::clock`), else its
/// own; left for the layer around either way. Returns the instant, if read.
///
/// At the first poll rather than at the call: the inner layers' read is shared, where a
/// read in the call would be one more per call (and a future is not sent anywhere, or
/// waited for, before its first poll).
///
/// A call whose errors this layer classifies (the preset) and whose duration is recorded
/// starts at the same instant.
#[inline]
fn begin(
    shared: &Calls,
    deadline_at: &mut Option<Nanos>,
    start: &mut Option<Nanos>,
) -> Option<Nanos> {
    let policy = &shared.policy;
    let deposits = policy.budget.as_ref().is_some_and(|b| b.deposits());
    #[cfg(any(feature = "metrics", feature = "tracing"))]
    let timed = shared.classify.as_ref().is_some_and(|c| c.timed());
    #[cfg(not(any(feature = "metrics", feature = "tracing")))]
    let timed = false;
    if !deposits && policy.deadline.is_none() && !timed {
        return None;
    }
    let now = clock::shared_or_read();
    if let Some(budget) = policy.budget.as_ref() {
        budget.deposit_at(now);
    }
    // A deadline too far to represent is no deadline.
    *deadline_at = policy.deadline.and_then(|limit| now.checked_add(limit));
    if timed {
        *start = Some(now);
    }
    Some(now)
}

/// The call's result, classified and recorded when this layer does the classification's
/// job (the preset), as `ErrorClassify` around it would.
fn observed<T>(
    shared: &Calls,
    start: Option<Nanos>,
    result: Result<T, BoxError>,
) -> Result<T, BoxError> {
    match result {
        Ok(response) => {
            record_ok(shared, start);
            Ok(response)
        }
        Err(err) => match &shared.classify {
            Some(classify) => Err(classify.failed(err, elapsed_since(start))),
            None => Err(err),
        },
    }
}

/// Records a call that succeeded, when this layer does the classification's job.
#[inline]
fn record_ok(shared: &Calls, start: Option<Nanos>) {
    if let Some(classify) = &shared.classify {
        classify.record_ok(elapsed_since(start));
    }
}

/// How long a timed call (`start`) took.
#[inline]
fn elapsed_since(start: Option<Nanos>) -> Option<Duration> {
    start.map(|start| Nanos::now().saturating_since(start))
}

fn draw() -> f64 {
    rand::RngExt::random::<f64>(&mut rand::rng())
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let policy = &this.shared.policy;
                    // Whether this poll asks if a pending attempt ends in time (or begins the
                    // call): then with the clock its attempt timeout reads when it starts, if
                    // it does.
                    let first = !*this.begun;
                    let asks = first
                        || (!*this.covered
                            && this.timer.is_idle()
                            && this.shared.attempt_bound.is_some()
                            && this.deadline_at.is_some());
                    if asks {
                        clock::forget();
                    }
                    let poll = future.poll(cx);
                    let mut now = None;
                    if first {
                        *this.begun = true;
                        now = begin(this.shared, this.deadline_at, this.start);
                    }
                    let result = match poll {
                        // A response no rule could retry, before any retry: the common case,
                        // handed on as it came.
                        Poll::Ready(Ok(response))
                            if this.retry.is_none()
                                && !may_retry(policy, response.status(), response.headers()) =>
                        {
                            record_ok(this.shared, *this.start);
                            return Poll::Ready(Ok(response));
                        }
                        Poll::Ready(result) => result,
                        Poll::Pending => {
                            // An attempt still pending at the deadline is dropped; one that
                            // ends by its own timeout before the deadline needs no timer.
                            if asks && this.deadline_at.is_some() {
                                *this.covered = ends_in_time(
                                    this.shared.attempt_bound,
                                    *this.deadline_at,
                                    now.unwrap_or_else(clock::taken_or_now),
                                );
                            }
                            return if !*this.covered
                                && deadline_passed(this.timer, this.shared, *this.deadline_at, cx)
                            {
                                Poll::Ready(observed(
                                    this.shared,
                                    *this.start,
                                    Err(deadline_error(this.retry, this.shared)),
                                ))
                            } else {
                                Poll::Pending
                            };
                        }
                    };
                    match decide(
                        result,
                        this.shared,
                        this.kept.as_ref(),
                        this.retry,
                        *this.deadline_at,
                        this.timer,
                        this.state.as_mut(),
                        cx,
                    ) {
                        Some(result) => {
                            return Poll::Ready(observed(this.shared, *this.start, result))
                        }
                        None => continue,
                    }
                }
                StateProj::Sleeping => {
                    // Found due, the wait stops: the deadline is watched again when the
                    // retry waits for readiness, or its attempt is pending.
                    if !this.timer.is_idle() && !this.timer.poll_due(&this.shared.ticker, cx) {
                        return Poll::Pending;
                    }
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    let service = this
                        .retry
                        .as_mut()
                        .and_then(|r| r.service.as_mut())
                        .expect("a retry always has its service");
                    let Poll::Ready(ready) = service.poll_ready(cx) else {
                        // So is the wait for readiness.
                        return if deadline_passed(this.timer, this.shared, *this.deadline_at, cx) {
                            Poll::Ready(observed(
                                this.shared,
                                *this.start,
                                Err(deadline_error(this.retry, this.shared)),
                            ))
                        } else {
                            Poll::Pending
                        };
                    };
                    if let Err(err) = ready {
                        let history = take_history(this.retry);
                        let failure = Failure::boxed_failure_at(err.into(), Stage::Request);
                        let err = with_history(failure, history);
                        return Poll::Ready(observed(this.shared, *this.start, Err(err)));
                    }
                    // No retry is sent past the deadline, even when its sleep ended in time
                    // and the task was polled late: one clock read per retry.
                    if this.deadline_at.is_some_and(|at| Nanos::now() >= at) {
                        let err = deadline_error(this.retry, this.shared);
                        return Poll::Ready(observed(this.shared, *this.start, Err(err)));
                    }
                    let state = this.retry.as_deref_mut().expect("a retry has its state");
                    let request = state
                        .next
                        .take()
                        .expect("a retry always prepares its request");
                    let future = state
                        .service
                        .as_mut()
                        .expect("a retry always has its service")
                        .call(request);
                    this.state.set(State::Calling { future });
                    *this.covered = false;
                }
            }
        }
    }
}

/// What follows an answer that a rule may retry (a failure, a retryable response, or any
/// answer once retrying began): the decision and, for a retry, its request and service.
/// `None` when the retry is due (`phase` says when); else the call's result. Out of line:
/// the common answer, handed on as it is, does not carry this frame.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn decide<S, B, ResB>(
    result: Result<Response<ResB>, S::Error>,
    shared: &SharedRef<S>,
    kept: Option<&Kept<B>>,
    retry: &mut Option<Box<RetryState<S, B>>>,
    deadline_at: Option<Nanos>,
    timer: &mut Wait,
    mut phase: Pin<&mut State<S::Future>>,
    cx: &mut Context<'_>,
) -> Option<Result<Response<ResB>, BoxError>>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
{
    let policy = &shared.policy;
    let result = result.map_err(|err| Failure::boxed_failure_at(err.into(), Stage::Request));
    let Some(kept) = kept else {
        // Not retryable at all (NoRetry, or a body that could not be copied).
        return Some(result.map_err(|failure| failure as BoxError));
    };
    // Read from the copy, only once a rule may retry: not on every call.
    let idempotent = kept.is_idempotent(policy);
    let state = retry.get_or_insert_with(|| {
        Box::new(RetryState {
            attempts: Attempts::new(policy),
            next: None,
            service: None,
        })
    });
    let attempts = &mut state.attempts;
    let decision = match &result {
        Ok(response) => attempts.on_response(
            policy,
            response.status(),
            response.headers(),
            idempotent,
            SystemTime::now,
            draw,
        ),
        Err(failure) => attempts.on_failure(policy, failure.kind(), idempotent, draw),
    };
    #[cfg(feature = "metrics")]
    shared
        .instruments
        .invalid_retry_after(std::mem::take(&mut attempts.invalid_retry_after));
    let decision = match decision {
        Decision::Retry(sleep) => {
            let now = Nanos::now();
            match prepare(shared, Some(kept), deadline_at, now, sleep) {
                Ok(next) => {
                    state.next = Some(next);
                    if state.service.is_none() {
                        state.service = Some(shared.service());
                    }
                    shared.retried(&state.attempts);
                    let wake = now.saturating_add(sleep);
                    if sleep.is_zero() || timer.until(&shared.ticker, Some(wake), sleep, cx) {
                        phase.set(State::Ready);
                    } else {
                        phase.set(State::Sleeping);
                    }
                    return None;
                }
                Err(stop) => {
                    attempts.unrecord();
                    Decision::Stop(stop)
                }
            }
        }
        other => other,
    };
    Some(finish(shared, attempts, result, decision))
}

/// Whether the call's deadline (if any) has passed, asked while an attempt or the wait for
/// readiness is pending. The wait on the layer's timer starts only then: a call answered
/// at once (or rejected at once by an open breaker or a full pool) never takes a slot. An
/// answer that is ready is taken even if the deadline has just passed; a retry is not sent
/// once it has (checked before the retry's call).
fn deadline_passed(
    timer: &mut Wait,
    shared: &Shared,
    deadline_at: Option<Nanos>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(deadline_at) = deadline_at else {
        return false;
    };
    if timer.is_idle() {
        return timer.start(&shared.ticker, Some(deadline_at), Duration::ZERO, cx);
    }
    timer.poll_due(&shared.ticker, cx)
}

/// Whether an attempt pending `now` ends, by the inner layers' own bound on it (the preset's
/// attempt timeout, started at the attempt's first pending poll, before this one), before
/// the deadline. Asked once per attempt, when it is first pending and no timer exists yet:
/// no timer registered and cancelled, and no clock read of its own when the attempt timeout
/// started in this poll (its start is `now`: the attempt ends by `now + bound`).
fn ends_in_time(bound: Option<Duration>, deadline_at: Option<Nanos>, now: Nanos) -> bool {
    match (bound, deadline_at) {
        (Some(bound), Some(deadline_at)) => {
            now.checked_add(bound).is_some_and(|end| end <= deadline_at)
        }
        _ => false,
    }
}

/// Checks what the decision alone could not (deadline, replay, budget) and copies the
/// request for the retry.
fn prepare<B: TryCloneBody>(
    shared: &Shared,
    kept: Option<&Kept<B>>,
    deadline_at: Option<Nanos>,
    now: Nanos,
    sleep: Duration,
) -> Result<Request<B>, Stop> {
    if let Some(deadline_at) = deadline_at {
        // A wake too far to represent is after any deadline.
        if now
            .checked_add(sleep)
            .is_none_or(|wake| wake >= deadline_at)
        {
            return Err(Stop::Deadline);
        }
    }
    let request = kept.and_then(Kept::request).ok_or(Stop::NotReplayable)?;
    if let Some(budget) = &shared.policy.budget {
        if !budget.withdraw_at(now) {
            return Err(Stop::Budget);
        }
    }
    Ok(request)
}

/// The call's result once no retry is made.
fn finish<ResB>(
    shared: &Shared,
    attempts: &mut Attempts,
    result: Result<Response<ResB>, Box<Failure>>,
    decision: Decision,
) -> Result<Response<ResB>, BoxError> {
    let mut history = std::mem::take(&mut attempts.history);
    let stop = match decision {
        Decision::Stop(stop) => {
            shared.stopped(stop);
            Some(stop)
        }
        _ => None,
    };
    match result {
        Ok(mut response) => {
            let status = response.status();
            // A response is a result: it comes back (with the history saying why retrying
            // stopped) unless status retries ran out and raise_on_status says to fail, or
            // the server asked for a wait the policy refuses.
            let raise = match stop {
                Some(Stop::Exhausted) => shared.policy.raise_on_status,
                Some(Stop::RetryAfterTooLong(_)) => true,
                _ => false,
            };
            match stop {
                Some(stop) if raise => Err(Box::new(RetryError::new(
                    RetryReason::Status(status),
                    history,
                    Some(stop),
                ))),
                _ => {
                    history.stop = stop;
                    if !history.records.is_empty() || history.stop.is_some() {
                        response.extensions_mut().insert(history);
                    }
                    Ok(response)
                }
            }
        }
        Err(failure) => match stop {
            Some(stop) => Err(Box::new(RetryError::new(
                RetryReason::Failure(*failure),
                history,
                Some(stop),
            ))),
            None => Err(with_history(failure, history)),
        },
    }
}

/// The retries made so far (none if the call was not retried).
fn take_history<S, B>(retry: &mut Option<Box<RetryState<S, B>>>) -> RetryHistory {
    retry
        .as_mut()
        .map(|r| std::mem::take(&mut r.attempts.history))
        .unwrap_or_default()
}

/// The error of a call stopped by its deadline, with the history of its retries.
fn deadline_error<S, B>(retry: &mut Option<Box<RetryState<S, B>>>, shared: &Shared) -> BoxError {
    let failure = Failure::new(FailureKind::ReadTimeout, DeadlineElapsed(()));
    shared.stopped(Stop::Deadline);
    let history = take_history(retry);
    Box::new(RetryError::new(
        RetryReason::Failure(failure),
        history,
        Some(Stop::Deadline),
    ))
}

/// A failure the layer does not retry: the failure itself when no retry was made, else a
/// [`RetryError`] that holds it and the history, with no stop.
fn with_history(failure: Box<Failure>, history: RetryHistory) -> BoxError {
    if history.records.is_empty() {
        return failure;
    }
    Box::new(RetryError::new(
        RetryReason::Failure(*failure),
        history,
        None,
    ))
}

impl Shared {
    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    fn retried(&self, attempts: &Attempts) {
        let Some(record) = attempts.history.records.last() else {
            return;
        };
        #[cfg(feature = "metrics")]
        self.instruments
            .retry(record.category(), attempts.history.records.len() == 1);
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::retry",
            name = self.name,
            retry = attempts.history.records.len(),
            category = record.category().as_str(),
            cause = ?record.cause(),
            sleep_ms = record.sleep().as_secs_f64() * 1e3,
            "retrying"
        );
    }

    #[cfg_attr(
        not(any(feature = "metrics", feature = "tracing")),
        allow(unused_variables)
    )]
    fn stopped(&self, stop: Stop) {
        #[cfg(feature = "metrics")]
        self.instruments.stopped(stop);
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_fortify::retry",
            name = self.name,
            stop = stop.as_str(),
            "stopped retrying"
        );
    }
}

#[cfg(test)]
mod tests;

/// The preset's retry layer does the classification layer's job: the same errors, counters
/// and durations as `ErrorClassify` around a plain retry layer.
#[cfg(all(test, feature = "metrics", feature = "stack"))]
mod classified;
