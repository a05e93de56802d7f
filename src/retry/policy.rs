//! `RetryPolicy`: urllib3's `Retry` settings, and the decision they make for each attempt.

use super::{
    backoff::{Backoff, Jitter},
    budget::RetryBudget,
};
use crate::{classify::Category, InvalidConfig};
use http::{Method, Request, StatusCode};
use std::{fmt, time::Duration};

/// What to do when a server's `Retry-After` asks for a longer wait than `retry_after_max`.
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
/// use tower_fortify::retry::{RetryAfterOverMax, RetryHistory, RetryLayer, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// // A 503 asking for an hour, over a `retry_after_max` of a minute: the sleeps before each retry.
/// let busy = tower::service_fn(|_: http::Request<()>| async {
///     http::Response::builder().status(503).header("retry-after", "3600").body(())
/// });
/// for (over, sleep) in [(RetryAfterOverMax::Cap, 60), (RetryAfterOverMax::Ignore, 0)] {
///     let policy = RetryPolicy::default().retry_after_max(Duration::from_secs(60)).retry_after_over_max(over);
///     let response = RetryLayer::builder().policy(policy).build()?.layer(busy).oneshot(http::Request::new(())).await?;
///     let sleeps: Vec<Duration> = response.extensions().get::<RetryHistory>().unwrap().sleeps().collect();
///     assert_eq!(sleeps, [Duration::from_secs(sleep); 3]);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetryAfterOverMax {
    /// Wait `retry_after_max` (urllib3's behaviour).
    #[default]
    Cap,
    /// Ignore the header and wait the computed backoff.
    Ignore,
    /// Do not retry: end the call with a [`RetryError`](super::error::RetryError) whose
    /// [`stop`](super::error::RetryError::stop) carries the delay the server asked for.
    Stop,
}

/// Marks a request as idempotent: read failures and retryable statuses are then retried
/// whatever its method, as for a GET.
///
/// Put it in the request's extensions for a POST that carries an idempotency key (the
/// server deduplicates it), never for one that does not: a POST is otherwise never retried
/// after it may have reached the server.
///
/// ```
/// use tower_fortify::retry::Idempotent;
///
/// let mut request = http::Request::post("http://127.0.0.1/orders").body(()).unwrap();
/// request.headers_mut().insert("idempotency-key", "8e03978e".parse().unwrap());
/// request.extensions_mut().insert(Idempotent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Idempotent;

/// Turns retries off for one request: it is sent once, and its failure comes back as a
/// classified [`Failure`](crate::classify::Failure).
///
/// ```
/// use tower_fortify::retry::NoRetry;
///
/// let mut request = http::Request::get("http://127.0.0.1/").body(()).unwrap();
/// request.extensions_mut().insert(NoRetry);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoRetry;

/// The retry settings, named after urllib3's `Retry` parameters.
///
/// `RetryPolicy::default()` is urllib3's `Retry.DEFAULT` (what its pools use): 3 retries
/// in all, no per-category caps, the idempotent methods, no status forcelist, no backoff,
/// `Retry-After` honoured up to 6 hours, no budget. [`RetryPolicy::production`] is the
/// preset for production clients.
///
/// Counts are retries, not attempts: `total(Some(2))` allows at most 3 calls.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::retry::{RetryLayer, RetryPolicy};
///
/// // Retry(total=5, backoff_factor=0.5, status_forcelist=[502, 503])
/// let policy = RetryPolicy::default()
///     .total(Some(5))
///     .backoff_factor(Duration::from_millis(500))
///     .status_forcelist([502, 503]);
/// let layer = RetryLayer::builder().policy(policy).build()?;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub(crate) total: Option<u32>,
    pub(crate) connect: Option<u32>,
    pub(crate) read: Option<u32>,
    pub(crate) status: Option<u32>,
    pub(crate) other: Option<u32>,
    pub(crate) allowed_methods: AllowedMethods,
    pub(crate) status_forcelist: Vec<u16>,
    pub(crate) backoff: Backoff,
    pub(crate) category_backoff: [Option<Backoff>; 4],
    pub(crate) respect_retry_after_header: bool,
    pub(crate) retry_after_max: Duration,
    pub(crate) retry_after_over_max: RetryAfterOverMax,
    pub(crate) raise_on_status: bool,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) deadline: Option<Duration>,
}

/// The methods a layer may send more than once (`allowed_methods`): the retry layer's,
/// and the hedge layer's, which follows the same rule ([`may_resend`](Self::may_resend)).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AllowedMethods {
    methods: Vec<Method>,
    /// A bit per standard method in `methods`, checked on every call.
    mask: u16,
}

impl AllowedMethods {
    pub(crate) fn new(methods: impl IntoIterator<Item = Method>) -> Self {
        let methods: Vec<Method> = methods.into_iter().collect();
        AllowedMethods {
            mask: mask_of(&methods),
            methods,
        }
    }

    /// urllib3's `Retry.DEFAULT_ALLOWED_METHODS`: the idempotent methods.
    pub(crate) fn idempotent() -> Self {
        Self::new([
            Method::HEAD,
            Method::GET,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::TRACE,
        ])
    }

    /// Whether `method` is allowed (every method is when the list is empty).
    #[inline]
    pub(crate) fn allows(&self, method: &Method) -> bool {
        if self.methods.is_empty() {
            return true;
        }
        // The standard methods by a bit each, checked on every call; others by comparison.
        match method_bit(method) {
            Some(bit) => self.mask & bit != 0,
            None => self.methods.contains(method),
        }
    }

    /// Whether `request` may be sent again after it may have reached the server: its
    /// method is allowed, or it carries the [`Idempotent`] marker. (`Retry::call` spells
    /// the same rule out with `is_method_allowed`; it can call this instead.)
    #[cfg_attr(not(feature = "hedge"), allow(dead_code))]
    #[inline]
    pub(crate) fn may_resend<B>(&self, request: &Request<B>) -> bool {
        self.allows(request.method()) || request.extensions().get::<Idempotent>().is_some()
    }
}

impl fmt::Debug for AllowedMethods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.methods).finish()
    }
}

/// The bit of a standard method in `AllowedMethods::mask`.
fn method_bit(method: &Method) -> Option<u16> {
    let bit = match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::OPTIONS => 4,
        Method::TRACE => 5,
        Method::POST => 6,
        Method::PATCH => 7,
        Method::CONNECT => 8,
        _ => return None,
    };
    Some(1 << bit)
}

fn mask_of(methods: &[Method]) -> u16 {
    methods
        .iter()
        .filter_map(method_bit)
        .fold(0, |mask, bit| mask | bit)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            total: Some(3),
            connect: None,
            read: None,
            status: None,
            other: None,
            allowed_methods: AllowedMethods::idempotent(),
            status_forcelist: Vec::new(),
            backoff: Backoff::new(Duration::ZERO),
            category_backoff: [None; 4],
            respect_retry_after_header: true,
            retry_after_max: Duration::from_secs(6 * 60 * 60),
            retry_after_over_max: RetryAfterOverMax::Cap,
            raise_on_status: true,
            budget: None,
            deadline: None,
        }
    }
}

impl RetryPolicy {
    /// The preset for production clients, following the classic advice:
    ///
    /// | setting | value | why |
    /// |---|---|---|
    /// | `total` | 5 | enough to ride out a blip, not a storm |
    /// | connect failures | retried at once ([`Backoff::none`]) | nothing was sent; another address or a fresh connection usually works |
    /// | TLS handshake / other failures | 200 ms factor, full jitter | a handshake that failed once is given a moment |
    /// | read failures and statuses | 500 ms factor, full jitter, 30 s cap | exponential, spread below the cap |
    /// | `status_forcelist` | 502, 503, 504 | the gateway statuses a retry can fix |
    /// | `retry_after_max` | 60 s | a server cannot park the client for hours |
    /// | budget | 10 s window, 10 retries/s reserve, 20% of requests | an outage adds 20% of the requests plus 10 retries/s: from 1.2x the load at high traffic to 1.7x for a burst of 200 ([`RetryBudget`](super::RetryBudget#how-much-load-an-outage-adds)) |
    ///
    /// ```
    /// use tower_fortify::retry::{RetryLayer, RetryPolicy};
    ///
    /// let layer = RetryLayer::builder().policy(RetryPolicy::production()).build()?;
    /// # Ok::<(), tower_fortify::InvalidConfig>(())
    /// ```
    pub fn production() -> Self {
        let exponential = Backoff::new(Duration::from_millis(500))
            .max(Duration::from_secs(30))
            .jitter(Jitter::Full);
        let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)
            .expect("the preset's budget settings are valid");
        Self::default()
            .total(Some(5))
            .status_forcelist([502, 503, 504])
            .backoff_factor(Duration::from_millis(500))
            .backoff_max(Duration::from_secs(30))
            .jitter(Jitter::Full)
            .backoff_for(Category::Connect, Backoff::none())
            .backoff_for(
                Category::Other,
                Backoff::new(Duration::from_millis(200))
                    .max(Duration::from_secs(10))
                    .jitter(Jitter::Full),
            )
            .backoff_for(Category::Read, exponential)
            .backoff_for(Category::Status, exponential)
            .retry_after_max(Duration::from_secs(60))
            .budget(budget)
    }

    /// Retries of any kind (`None`: no global cap). Default `Some(3)`.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(total=1): counts are retries, so at most 2 attempts.
    /// let policy = RetryPolicy::default().total(Some(1));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<RetryError>().unwrap().history().records().len(), 1);
    /// assert!(err.to_string().starts_with("max retries exceeded: 2 attempts"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn total(mut self, total: Option<u32>) -> Self {
        self.total = total;
        self
    }

    /// Retries after connect failures (`Dns`, `ConnectRefused`, `ConnectTimeout`).
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(total=5, connect=2): a server refusing connections is tried 3 times, not 6.
    /// let policy = RetryPolicy::default().total(Some(5)).connect(Some(2));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.history().records().len(), 2);
    /// assert_eq!(err.stop(), Some(Stop::Exhausted));
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(mut self, connect: Option<u32>) -> Self {
        self.connect = connect;
        self
    }

    /// Retries after read failures (`ReadTimeout`, `ConnectionClosed`, `Protocol`).
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::{classify::FailureKind, retry::{error::RetryError, RetryLayer, RetryPolicy, Stop}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(read=0): a timeout waiting for the answer is not retried, a refused connect still is.
    /// let layer = RetryLayer::builder().policy(RetryPolicy::default().read(Some(0))).build()?;
    /// let failing = |kind: ErrorKind| tower::service_fn(move |_: http::Request<()>| async move {
    ///     Err::<http::Response<()>, _>(Error::from(kind))
    /// });
    /// let err = layer.layer(failing(ErrorKind::TimedOut)).oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.failure().unwrap().kind(), FailureKind::ReadTimeout);
    /// assert_eq!((err.history().records().len(), err.stop()), (0, Some(Stop::Exhausted))); // 1 attempt
    /// let err = layer.layer(failing(ErrorKind::ConnectionRefused)).oneshot(http::Request::new(())).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<RetryError>().unwrap().history().records().len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn read(mut self, read: Option<u32>) -> Self {
        self.read = read;
        self
    }

    /// Retries after responses judged retryable.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(status=2, status_forcelist=[503]): 3 attempts for a server that keeps answering 503.
    /// let policy = RetryPolicy::default().status(Some(2)).status_forcelist([503]);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).body(())
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.history().records().len(), 2);
    /// assert_eq!((err.status(), err.stop()), (Some(http::StatusCode::SERVICE_UNAVAILABLE), Some(Stop::Exhausted)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(mut self, status: Option<u32>) -> Self {
        self.status = status;
        self
    }

    /// Retries after other failures (`TlsHandshake`, `Other`). `TlsNegotiation` is never
    /// retried.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::classify::{Failure, FailureKind};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(other=1): one retry after a stalled TLS handshake, whatever `total` allows.
    /// let policy = RetryPolicy::default().other(Some(1));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     let stalled = std::io::Error::from(std::io::ErrorKind::TimedOut);
    ///     Err::<http::Response<()>, _>(Failure::new(FailureKind::TlsHandshake, stalled))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.history().records().len(), 1); // 2 attempts
    /// assert_eq!(err.stop(), Some(Stop::Exhausted));
    /// # Ok(())
    /// # }
    /// ```
    pub fn other(mut self, other: Option<u32>) -> Self {
        self.other = other;
        self
    }

    /// The methods whose read failures and retryable statuses are retried; empty means every
    /// method. Default: HEAD, GET, PUT, DELETE, OPTIONS, TRACE.
    ///
    /// ```
    /// use http::{Method, Request};
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::{classify::Failure, retry::{error::RetryError, RetryLayer, RetryPolicy}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let timing_out = tower::service_fn(|_: Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::TimedOut))
    /// });
    /// // Empty: every method. A POST's read timeout is retried (3 times).
    /// let any_method = RetryLayer::builder().policy(RetryPolicy::default().allowed_methods([])).build()?;
    /// let err = any_method.layer(timing_out).oneshot(Request::post("/").body(())?).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<RetryError>().unwrap().history().records().len(), 3);
    /// let only_get = RetryLayer::builder().policy(RetryPolicy::default().allowed_methods([Method::GET])).build()?;
    /// let err = only_get.layer(timing_out).oneshot(Request::put("/").body(())?).await.unwrap_err();
    /// assert!(err.downcast_ref::<Failure>().is_some()); // only GET: a PUT's comes back at once, bare
    /// # Ok(())
    /// # }
    /// ```
    pub fn allowed_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.allowed_methods = AllowedMethods::new(methods);
        self
    }

    /// Statuses to retry (method permitting), whatever `total` is. Default: none.
    ///
    /// # Errors
    ///
    /// The layer rejects (field `status_forcelist`) a code that is not a valid status or is
    /// below 300.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(status_forcelist=[502, 503, 504]): a 503 is retried (3 times), a 500 returned at once.
    /// let layer = RetryLayer::builder().policy(RetryPolicy::default().status_forcelist([502, 503, 504])).build()?;
    /// let answering = |status: u16| tower::service_fn(move |_: http::Request<()>| async move {
    ///     http::Response::builder().status(status).body(())
    /// });
    /// let err = layer.layer(answering(503)).oneshot(http::Request::new(())).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<RetryError>().unwrap().history().records().len(), 3);
    /// assert_eq!(layer.layer(answering(500)).oneshot(http::Request::new(())).await?.status(), 500);
    ///
    /// // A 2xx is not an error: the layer refuses it.
    /// let err = RetryLayer::builder().policy(RetryPolicy::default().status_forcelist([204])).build().unwrap_err();
    /// assert_eq!(err.field(), "status_forcelist");
    /// # Ok(())
    /// # }
    /// ```
    pub fn status_forcelist(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.status_forcelist = statuses.into_iter().collect();
        self
    }

    /// urllib3's `backoff_factor`: the sleep before retry `k >= 2` is
    /// `backoff_factor * 2^(k-1)` (the first retry is immediate). Default zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(backoff_factor=0.5), 3 retries: no sleep before the first, then
    /// // backoff_factor * 2^(k-1) before retry k: 1 s, 2 s (then 4 s, 8 s... with more retries).
    /// let policy = RetryPolicy::default().backoff_factor(Duration::from_millis(500));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let sleeps: Vec<Duration> = err.downcast_ref::<RetryError>().unwrap().history().sleeps().collect();
    /// assert_eq!(sleeps, [0, 1, 2].map(Duration::from_secs));
    /// # Ok(())
    /// # }
    /// ```
    pub fn backoff_factor(mut self, factor: Duration) -> Self {
        self.backoff = Backoff::new(factor)
            .max(self.backoff.max_value())
            .additive_jitter(self.backoff.additive_jitter_value())
            .jitter(self.backoff.jitter_value());
        self
    }

    /// urllib3's `backoff_max`: the cap on the computed backoff (not on `Retry-After`).
    /// Default 120 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(total=6, backoff_factor=1, backoff_max=10): 0, 2, 4, 8, then 16 and 32 capped.
    /// let policy = RetryPolicy::default()
    ///     .total(Some(6))
    ///     .backoff_factor(Duration::from_secs(1))
    ///     .backoff_max(Duration::from_secs(10));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let sleeps: Vec<Duration> = err.downcast_ref::<RetryError>().unwrap().history().sleeps().collect();
    /// assert_eq!(sleeps, [0, 2, 4, 8, 10, 10].map(Duration::from_secs));
    /// # Ok(())
    /// # }
    /// ```
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff = self.backoff.max(max);
        self
    }

    /// urllib3's `backoff_jitter`: `U[0,1) * backoff_jitter` added before the cap. Default
    /// zero. Only for [`Jitter::Additive`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fortify::retry::{Jitter, RetryLayer, RetryPolicy};
    ///
    /// // Retry(backoff_factor=0.5, backoff_jitter=0.25)
    /// let policy = RetryPolicy::default()
    ///     .backoff_factor(Duration::from_millis(500))
    ///     .backoff_jitter(Duration::from_millis(250));
    /// assert!(RetryLayer::builder().policy(policy.clone()).build().is_ok());
    ///
    /// // The other strategies draw their own randomness: the layer refuses both.
    /// let err = RetryLayer::builder().policy(policy.jitter(Jitter::Full)).build().unwrap_err();
    /// assert_eq!(err.field(), "backoff_jitter");
    /// ```
    pub fn backoff_jitter(mut self, jitter: Duration) -> Self {
        self.backoff = self.backoff.additive_jitter(jitter);
        self
    }

    /// The jitter strategy (extension): [`Jitter::Additive`] is urllib3's; the others keep
    /// the randomness below the cap.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, Jitter, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Each sleep drawn from [0, min(backoff_max, backoff_factor * 2^(k-1))); the first retry
    /// // is still immediate.
    /// let policy = RetryPolicy::default()
    ///     .backoff_factor(Duration::from_millis(500))
    ///     .jitter(Jitter::Full);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let sleeps: Vec<Duration> = err.downcast_ref::<RetryError>().unwrap().history().sleeps().collect();
    /// assert_eq!(sleeps[0], Duration::ZERO);
    /// assert!(sleeps[1] < Duration::from_secs(1) && sleeps[2] < Duration::from_secs(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.backoff = self.backoff.jitter(jitter);
        self
    }

    /// A backoff for one category of retries (extension), in place of the one set by
    /// `backoff_factor`, `backoff_max`, `backoff_jitter` and `jitter`.
    ///
    /// ```
    /// use std::{io::{Error, ErrorKind}, time::Duration};
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::{classify::Category, retry::{error::RetryError, Backoff, RetryLayer, RetryPolicy}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Connect failures at once, everything else exponential.
    /// let policy = RetryPolicy::default()
    ///     .backoff_factor(Duration::from_millis(500))
    ///     .backoff_for(Category::Connect, Backoff::none());
    /// let layer = RetryLayer::builder().policy(policy).build()?;
    /// let failing = |kind: ErrorKind| layer.layer(tower::service_fn(move |_: http::Request<()>| async move {
    ///     Err::<http::Response<()>, _>(Error::from(kind))
    /// }));
    /// let err = failing(ErrorKind::ConnectionRefused).oneshot(http::Request::new(())).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<RetryError>().unwrap().history().sleeps().collect::<Vec<_>>(), [Duration::ZERO; 3]);
    /// let err = failing(ErrorKind::TimedOut).oneshot(http::Request::new(())).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<RetryError>().unwrap().history().sleeps().collect::<Vec<_>>(), [0, 1, 2].map(Duration::from_secs));
    /// # Ok(())
    /// # }
    /// ```
    pub fn backoff_for(mut self, category: Category, backoff: Backoff) -> Self {
        self.category_backoff[category.index()] = Some(backoff);
        self
    }

    /// Honour `Retry-After` on 413, 429 and 503, and on any retried status. Default `true`.
    /// Off, a 413, 429 or 503 is no longer retried for carrying the header, and a forcelisted
    /// status is retried after the backoff, whatever the header asks.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryHistory, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // A 503 with `Retry-After: 120` (retried after 120 s by default), the header ignored:
    /// let busy = || tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).header("retry-after", "120").body(())
    /// });
    /// let ignore = RetryPolicy::default().respect_retry_after_header(false);
    /// let layer = RetryLayer::builder().policy(ignore.clone()).build()?;
    /// let response = layer.layer(busy()).oneshot(http::Request::new(())).await?;
    /// assert!(response.extensions().get::<RetryHistory>().is_none()); // 1 attempt: returned
    /// let layer = RetryLayer::builder().policy(ignore.status_forcelist([503])).build()?;
    /// let err = layer.layer(busy()).oneshot(http::Request::new(())).await.unwrap_err();
    /// let sleeps: Vec<Duration> = err.downcast_ref::<RetryError>().unwrap().history().sleeps().collect();
    /// assert_eq!(sleeps, [Duration::ZERO; 3]); // forcelisted: retried after the backoff (none)
    /// # Ok(())
    /// # }
    /// ```
    pub fn respect_retry_after_header(mut self, respect: bool) -> Self {
        self.respect_retry_after_header = respect;
        self
    }

    /// The longest wait a `Retry-After` can ask for. Default 6 hours (urllib3 2.6.3). With
    /// `Duration::MAX` any wait is honoured; one too long to represent as an instant is a
    /// wait that never ends (or, with a `deadline`, a retry not made).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{RetryHistory, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // A 503 with `Retry-After: 3600` is retried after 60 s; when `total` runs out, the last
    /// // 503 is returned.
    /// let policy = RetryPolicy::default().retry_after_max(Duration::from_secs(60));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).header("retry-after", "3600").body(())
    /// }));
    /// let response = svc.oneshot(http::Request::new(())).await?;
    /// let history = response.extensions().get::<RetryHistory>().unwrap();
    /// assert_eq!(response.status(), 503);
    /// assert_eq!(history.sleeps().collect::<Vec<_>>(), [Duration::from_secs(60); 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry_after_max(mut self, max: Duration) -> Self {
        self.retry_after_max = max;
        self
    }

    /// What to do with a `Retry-After` above `retry_after_max` (extension). Default: cap it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryAfterOverMax, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // A `Retry-After: 120` above a minute ends the call at once, with the delay asked for.
    /// let policy = RetryPolicy::default()
    ///     .retry_after_max(Duration::from_secs(60))
    ///     .retry_after_over_max(RetryAfterOverMax::Stop);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).header("retry-after", "120").body(())
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.stop(), Some(Stop::RetryAfterTooLong(Duration::from_secs(120))));
    /// assert_eq!(err.history().records().len(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry_after_over_max(mut self, over: RetryAfterOverMax) -> Self {
        self.retry_after_over_max = over;
        self
    }

    /// When status retries run out: a [`RetryError`](super::error::RetryError) (`true`, default) or
    /// the last response (`false`).
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{RetryHistory, RetryLayer, RetryPolicy};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Retry(status_forcelist=[503], raise_on_status=False)
    /// let policy = RetryPolicy::default().status_forcelist([503]).raise_on_status(false);
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     http::Response::builder().status(503).body(())
    /// }));
    /// let response = svc.oneshot(http::Request::new(())).await?;
    /// assert_eq!(response.status(), 503);
    /// assert_eq!(response.extensions().get::<RetryHistory>().unwrap().records().len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn raise_on_status(mut self, raise: bool) -> Self {
        self.raise_on_status = raise;
        self
    }

    /// A retry budget (extension), shared by every clone of the layer's services. Default:
    /// none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryBudget, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // A reserve of 2 retries (1 per second for 2 s), none earned by requests.
    /// let budget = RetryBudget::new(Duration::from_secs(2), 1, 0.0)?;
    /// let policy = RetryPolicy::default().budget(budget.clone());
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.history().records().len(), 2);
    /// assert_eq!(err.stop(), Some(Stop::Budget));
    /// assert_eq!(budget.available(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Removes the retry budget.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryBudget, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // A reserve of 2 retries would stop the call after 2; without it, `total` (3) decides.
    /// let budget = RetryBudget::new(Duration::from_secs(2), 1, 0.0)?;
    /// let policy = RetryPolicy::default().budget(budget.clone()).no_budget();
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!((err.history().records().len(), err.stop()), (3, Some(Stop::Exhausted)));
    /// assert_eq!(budget.available(), 2); // untouched
    /// # Ok(())
    /// # }
    /// ```
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// A limit on the whole call, attempts and sleeps included, counted from the call's
    /// first poll (extension; a future does nothing before it is polled): a retry whose
    /// sleep would end past it is not made, and an attempt (or the wait for the service's
    /// readiness) still pending at the deadline is dropped, and no retry is sent once it has
    /// passed. An answer ready when the call is polled is taken even if the deadline has just
    /// passed, as tower's `Timeout` does; the deadline's timer is only made once the call has
    /// to wait. A deadline too long to represent as an instant (`Duration::MAX`) is no deadline.
    /// Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_fortify::retry::{error::RetryError, RetryLayer, RetryPolicy, Stop};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// // Sleeps of 0 and 8 s; a 16 s one would end past the 10 s deadline, so the call ends at 8 s.
    /// let policy = RetryPolicy::default().backoff_factor(Duration::from_secs(4)).deadline(Some(Duration::from_secs(10)));
    /// let svc = RetryLayer::builder().policy(policy).build()?.layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// }));
    /// let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    /// let err = err.downcast_ref::<RetryError>().unwrap();
    /// assert_eq!(err.history().sleeps().collect::<Vec<_>>(), [0, 8].map(Duration::from_secs));
    /// assert_eq!(err.stop(), Some(Stop::Deadline));
    /// let zero = RetryPolicy::default().deadline(Some(Duration::ZERO));
    /// assert_eq!(RetryLayer::builder().policy(zero).build().unwrap_err().field(), "deadline");
    /// # Ok(())
    /// # }
    /// ```
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Checks the settings together.
    pub(crate) fn validate(&self) -> Result<(), InvalidConfig> {
        for &code in &self.status_forcelist {
            if StatusCode::from_u16(code).is_err() {
                return Err(InvalidConfig::new(
                    "status_forcelist",
                    "holds a code that is not an HTTP status (100 to 999)",
                ));
            }
            if code < 300 {
                return Err(InvalidConfig::new(
                    "status_forcelist",
                    "holds a status below 300, which is not an error",
                ));
            }
        }
        let backoffs = std::iter::once(&self.backoff).chain(self.category_backoff.iter().flatten());
        for backoff in backoffs {
            if !backoff.additive_jitter_value().is_zero()
                && backoff.jitter_value() != Jitter::Additive
            {
                return Err(InvalidConfig::new(
                    "backoff_jitter",
                    "applies only to Jitter::Additive; the other strategies draw their own",
                ));
            }
        }
        if self.deadline == Some(Duration::ZERO) {
            return Err(InvalidConfig::new("deadline", "must be greater than zero"));
        }
        Ok(())
    }

    /// Whether read failures and retryable statuses of `method` are retried.
    #[inline]
    pub(crate) fn is_method_allowed(&self, method: &Method) -> bool {
        self.allowed_methods.allows(method)
    }

    pub(crate) fn backoff_of(&self, category: Category) -> &Backoff {
        self.category_backoff[category.index()]
            .as_ref()
            .unwrap_or(&self.backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `allows` runs on every call: every standard method is checked by its bit in the
    /// mask, each by a bit of its own, and only other methods fall back to comparing
    /// against the list. (A method without its bit would get the same answer, more slowly:
    /// this pins the fast path, not the answer.)
    #[test]
    fn every_standard_method_has_a_bit_of_its_own() {
        let standard = [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::TRACE,
            Method::POST,
            Method::PATCH,
            Method::CONNECT,
        ];
        let mut seen = 0u16;
        for method in &standard {
            let bit = method_bit(method).unwrap_or_else(|| panic!("{method} has no bit"));
            assert_eq!(bit.count_ones(), 1, "{method}'s bit");
            assert_eq!(seen & bit, 0, "{method} shares a bit");
            seen |= bit;
        }
        assert_eq!(method_bit(&Method::from_bytes(b"PURGE").unwrap()), None);
    }

    /// The rule for sending a request again after it may have reached the server: an
    /// allowed method, or the `Idempotent` marker on any other.
    #[test]
    fn may_resend_an_allowed_method_or_a_marked_request_only() {
        let allowed = AllowedMethods::idempotent();
        let request = |method: Method| Request::builder().method(method).body(()).unwrap();
        assert!(allowed.may_resend(&request(Method::GET)));
        assert!(!allowed.may_resend(&request(Method::POST)));
        let mut marked = request(Method::POST);
        marked.extensions_mut().insert(Idempotent);
        assert!(allowed.may_resend(&marked));
    }

    /// The methods' list, as a policy's `Debug` shows it.
    #[test]
    fn allowed_methods_debug_lists_the_methods() {
        let allowed = AllowedMethods::new([Method::GET, Method::PUT]);
        assert_eq!(format!("{allowed:?}"), "[GET, PUT]");
    }
}
