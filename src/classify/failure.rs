use super::{classify_error, FailureKind, Stage};
use crate::BoxError;
use std::{error::Error, fmt};

/// A classified failure: the error type the layers of this crate return.
///
/// A `Failure` pairs a [`FailureKind`] with the original error, which stays reachable
/// through [`source`](Error::source) (and [`Failure::get_ref`]). Layers return it boxed as a
/// [`BoxError`]; callers find it with `downcast_ref::<Failure>()`.
///
/// A `Failure` is never classified twice: classifying an error that is (or wraps) a
/// `Failure` keeps its kind.
///
/// ```
/// use std::io;
/// use tower_fortify::classify::{Failure, FailureKind};
///
/// let failure = Failure::new(FailureKind::ConnectRefused, io::Error::from(io::ErrorKind::ConnectionRefused));
/// assert_eq!(failure.kind(), FailureKind::ConnectRefused);
/// assert!(failure.to_string().starts_with("connect refused: "));
/// assert!(failure.get_ref().is::<io::Error>());
/// ```
#[derive(Debug)]
pub struct Failure {
    kind: FailureKind,
    source: BoxError,
}

impl Failure {
    /// Creates a failure of the given kind caused by `source`.
    ///
    /// ```
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let failure = Failure::new(FailureKind::PoolTimeout, "no free slot in 1s");
    /// assert_eq!(failure.to_string(), "pool timeout: no free slot in 1s");
    /// ```
    pub fn new(kind: FailureKind, source: impl Into<BoxError>) -> Self {
        Failure {
            kind,
            source: source.into(),
        }
    }

    /// Classifies `error` as a failure at `stage` (see [`classify_error`]):
    /// [`Stage::Request`] for an error met sending a request or reading its response.
    ///
    /// If `error` already is a `Failure`, it is returned as it is.
    ///
    /// [`classify_error`]: super::classify_error
    ///
    /// ```
    /// use std::io;
    /// use tower_fortify::classify::{Failure, FailureKind, Stage};
    ///
    /// let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
    /// assert_eq!(Failure::classify(eof, Stage::Request).kind(), FailureKind::ConnectionClosed);
    /// let elapsed = tower::timeout::error::Elapsed::new();
    /// assert_eq!(Failure::classify(elapsed, Stage::Connect).kind(), FailureKind::ConnectTimeout);
    /// ```
    pub fn classify(error: impl Into<BoxError>, stage: Stage) -> Self {
        match error.into().downcast::<Failure>() {
            Ok(failure) => *failure,
            Err(source) => Failure::new(classify_error(&*source, stage), source),
        }
    }

    /// Boxes `error` as a classified [`BoxError`], without boxing it again when it already
    /// is a boxed `Failure`.
    #[cfg(any(feature = "retry", feature = "circuit-breaker", feature = "pool"))]
    pub(crate) fn boxed_at(error: BoxError, stage: Stage) -> BoxError {
        Self::boxed_failure_at(error, stage)
    }

    /// Classifies `error` at `stage` as a boxed `Failure`, without boxing it again when it
    /// already is one: for a caller that reads the failure before it hands it on as a
    /// [`BoxError`].
    pub(crate) fn boxed_failure_at(error: BoxError, stage: Stage) -> Box<Failure> {
        match error.downcast::<Failure>() {
            Ok(failure) => failure,
            Err(error) => Box::new(Failure::new(classify_error(&*error, stage), error)),
        }
    }

    /// What went wrong.
    pub const fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The original error.
    ///
    /// ```
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let failure = Failure::new(FailureKind::Other, "boom");
    /// assert_eq!(failure.get_ref().to_string(), "boom");
    /// ```
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.source
    }

    /// Consumes the failure, returning the original error.
    ///
    /// ```
    /// use tower_fortify::classify::{Failure, FailureKind};
    ///
    /// let source = Failure::new(FailureKind::Other, "boom").into_inner();
    /// assert_eq!(source.to_string(), "boom");
    /// ```
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

/// `{}` names the kind and the immediate cause; the alternate form `{:#}` follows the whole
/// `source()` chain, which is what a log line usually wants. In the chain, a nested
/// `Failure` of the same kind is not repeated.
///
/// ```
/// use std::io;
/// use tower_fortify::classify::{Failure, FailureKind};
///
/// let io = io::Error::new(io::ErrorKind::TimedOut, tower::timeout::error::Elapsed::new());
/// let inner = Failure::new(FailureKind::ConnectTimeout, io);
/// let failure = Failure::new(FailureKind::ConnectTimeout, inner);
/// assert_eq!(failure.to_string(), "connect timeout: connect timeout: request timed out");
/// assert_eq!(format!("{failure:#}"), "connect timeout: request timed out");
/// ```
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return write!(f, "{}: {}", self.kind, self.source);
        }
        write!(f, "{}", self.kind)?;
        let mut last_kind = self.kind;
        let mut next: Option<&(dyn Error + 'static)> = Some(&*self.source);
        let mut depth = 0;
        while let Some(err) = next {
            depth += 1;
            if depth > super::MAX_DEPTH {
                break;
            }
            match err.downcast_ref::<Failure>() {
                // A nested failure prints its kind only; its source comes next.
                Some(failure) if failure.kind == last_kind => {}
                Some(failure) => {
                    last_kind = failure.kind;
                    write!(f, ": {}", failure.kind)?;
                }
                None => write!(f, ": {err}")?,
            }
            next = err.source();
        }
        Ok(())
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}
