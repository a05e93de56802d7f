//! Error types.
//!
//! A pool limit returns them inside a [`Failure`](crate::classify::Failure) of kind
//! [`PoolTimeout`](crate::classify::FailureKind::PoolTimeout) or
//! [`PoolFull`](crate::classify::FailureKind::PoolFull), boxed as a
//! [`BoxError`](crate::BoxError): the kind drives the other layers (the retry layer never
//! retries either), the error below says what happened.

use std::{fmt, time::Duration};

/// No permit freed up within `pool_timeout` (urllib3's `EmptyPoolError`).
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, Service, ServiceExt};
/// use tower_fortify::{classify::{Failure, FailureKind}, pool::{error::EmptyPool, PoolLimitLayer}};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let layer = PoolLimitLayer::builder(1)
///     .block(true)
///     .pool_timeout(Some(Duration::from_secs(1)))
///     .build_generic()
///     .unwrap();
/// let mut svc = layer.layer(tower::service_fn(|()| std::future::pending::<Result<(), std::io::Error>>()));
/// let _busy = svc.ready().await.unwrap().call(()); // holds the only permit
/// let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// let failure = err.downcast_ref::<Failure>().unwrap();
/// assert_eq!(failure.kind(), FailureKind::PoolTimeout);
/// let empty = failure.get_ref().downcast_ref::<EmptyPool>().unwrap();
/// assert_eq!(empty.waited(), Duration::from_secs(1));
/// assert_eq!(empty.maxsize(), 1);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyPool {
    waited: Duration,
    maxsize: usize,
}

impl EmptyPool {
    pub(crate) const fn new(waited: Duration, maxsize: usize) -> Self {
        EmptyPool { waited, maxsize }
    }

    /// How long the call waited (its `pool_timeout`, give or take the timer's precision).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_fortify::{classify::Failure, pool::{error::EmptyPool, PoolLimitLayer}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let timeout = Duration::from_millis(250);
    /// let layer = PoolLimitLayer::builder(1).block(true).pool_timeout(Some(timeout)).build_generic()?;
    /// let mut svc = layer.layer(tower::service_fn(|()| std::future::pending::<Result<(), std::io::Error>>()));
    /// let _busy = svc.ready().await?.call(()); // holds the only permit
    /// let err = svc.ready().await?.call(()).await.unwrap_err();
    /// let failure = err.downcast_ref::<Failure>().unwrap();
    /// assert_eq!(failure.get_ref().downcast_ref::<EmptyPool>().unwrap().waited(), timeout);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn waited(&self) -> Duration {
        self.waited
    }

    /// The pool's `maxsize`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_fortify::{classify::Failure, pool::{error::EmptyPool, PoolLimitLayer}};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = PoolLimitLayer::builder(2).block(true).pool_timeout(Some(Duration::from_secs(1))).build_generic()?;
    /// let mut svc = layer.layer(tower::service_fn(|()| std::future::pending::<Result<(), std::io::Error>>()));
    /// let _busy = [svc.ready().await?.call(()), svc.ready().await?.call(())]; // both permits
    /// let err = svc.ready().await?.call(()).await.unwrap_err();
    /// let empty = err.downcast_ref::<Failure>().unwrap().get_ref().downcast_ref::<EmptyPool>().unwrap();
    /// assert_eq!(empty.maxsize(), 2);
    /// assert_eq!(empty.to_string(), "pool of 2 exhausted: no permit within 1s");
    /// # Ok(())
    /// # }
    /// ```
    pub const fn maxsize(&self) -> usize {
        self.maxsize
    }
}

impl fmt::Display for EmptyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool of {} exhausted: no permit within {:?}",
            self.maxsize, self.waited
        )
    }
}

impl std::error::Error for EmptyPool {}

/// The pool was full and the layer fails fast.
///
/// ```
/// use tower::{Layer, Service, ServiceExt};
/// use tower_fortify::{classify::{Failure, FailureKind}, pool::{error::PoolFull, PoolLimitLayer}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let layer = PoolLimitLayer::builder(1).fail_fast().build_generic().unwrap();
/// let mut svc = layer.layer(tower::service_fn(|()| std::future::pending::<Result<(), std::io::Error>>()));
/// let _busy = svc.ready().await.unwrap().call(());
/// let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
/// let failure = err.downcast_ref::<Failure>().unwrap();
/// assert_eq!(failure.kind(), FailureKind::PoolFull);
/// assert_eq!(failure.get_ref().downcast_ref::<PoolFull>().unwrap().maxsize(), 1);
/// assert_eq!(failure.to_string(), "pool full: pool of 1 full");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFull {
    maxsize: usize,
}

impl PoolFull {
    pub(crate) const fn new(maxsize: usize) -> Self {
        PoolFull { maxsize }
    }

    /// The pool's `maxsize`.
    ///
    /// ```
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_fortify::{classify::Failure, pool::{error::PoolFull, PoolLimitLayer}};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_fortify::BoxError> {
    /// let layer = PoolLimitLayer::builder(2).fail_fast().build_generic()?;
    /// let mut svc = layer.layer(tower::service_fn(|()| std::future::pending::<Result<(), std::io::Error>>()));
    /// let _busy = [svc.ready().await?.call(()), svc.ready().await?.call(())]; // both permits
    /// let err = svc.ready().await?.call(()).await.unwrap_err();
    /// let full = err.downcast_ref::<Failure>().unwrap().get_ref().downcast_ref::<PoolFull>().unwrap();
    /// assert_eq!(full.maxsize(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub const fn maxsize(&self) -> usize {
        self.maxsize
    }
}

impl fmt::Display for PoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool of {} full", self.maxsize)
    }
}

impl std::error::Error for PoolFull {}
