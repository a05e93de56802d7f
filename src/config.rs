//! Configuration errors.

use std::fmt;

/// A setting was rejected when a layer or one of its parts was built.
///
/// It names the field, as the setter that sets it is named, and says what is wrong with it.
///
/// ```
/// use tower_fortify::InvalidConfig;
///
/// let err = InvalidConfig::new("pool_timeout", "must be greater than zero");
/// assert_eq!(err.field(), "pool_timeout");
/// assert_eq!(err.to_string(), "invalid pool_timeout: must be greater than zero");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    field: &'static str,
    reason: &'static str,
}

impl InvalidConfig {
    /// Creates the error for `field`, with the `reason` it is invalid.
    ///
    /// ```
    /// use tower_fortify::InvalidConfig;
    ///
    /// let err = InvalidConfig::new("maxsize", "must be greater than zero");
    /// assert_eq!(err.to_string(), "invalid maxsize: must be greater than zero");
    /// ```
    pub const fn new(field: &'static str, reason: &'static str) -> Self {
        InvalidConfig { field, reason }
    }

    /// The rejected field, named as its setter.
    ///
    /// ```
    /// use tower_fortify::InvalidConfig;
    ///
    /// let err = InvalidConfig::new("max_keys", "must be at least 1");
    /// assert_eq!(err.field(), "max_keys");
    /// ```
    pub const fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value was rejected.
    ///
    /// ```
    /// use tower_fortify::InvalidConfig;
    ///
    /// let err = InvalidConfig::new("window", "must be longer than zero");
    /// assert_eq!(err.reason(), "must be longer than zero");
    /// ```
    pub const fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidConfig {}

#[cfg(test)]
mod tests {
    use super::InvalidConfig;

    #[test]
    fn the_error_names_its_field_and_says_why() {
        let err = InvalidConfig::new("maxsize", "must be greater than zero");
        assert_eq!(err.field(), "maxsize");
        assert_eq!(err.reason(), "must be greater than zero");
        assert_eq!(
            err.to_string(),
            "invalid maxsize: must be greater than zero"
        );
    }
}
