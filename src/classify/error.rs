//! Error types of classification.
//!
//! [`Failure`](super::Failure), the classified error every layer of the crate returns, stays
//! at the module's root: it is the crate's common vocabulary, not an error of this module
//! alone.

#[cfg(feature = "http")]
use std::fmt;

#[cfg(feature = "http")]
/// The `Retry-After` header was neither delta-seconds nor an HTTP-date.
///
/// Returned by [`parse_retry_after`](super::parse_retry_after). The retry layer treats such a header as absent.
///
/// ```
/// use std::time::SystemTime;
/// use http::HeaderValue;
/// use tower_fortify::classify::parse_retry_after;
///
/// let err = parse_retry_after(&HeaderValue::from_static("soon"), SystemTime::now()).unwrap_err();
/// assert_eq!(err.to_string(), "invalid retry-after header");
/// let _: &dyn std::error::Error = &err;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub struct InvalidRetryAfter {
    _priv: (),
}

// ===== impl InvalidRetryAfter =====

#[cfg(feature = "http")]
impl InvalidRetryAfter {
    pub(crate) const fn new() -> Self {
        Self { _priv: () }
    }
}

#[cfg(feature = "http")]
impl fmt::Display for InvalidRetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid retry-after header")
    }
}

#[cfg(feature = "http")]
impl std::error::Error for InvalidRetryAfter {}
