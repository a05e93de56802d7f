use http::{header::RETRY_AFTER, HeaderMap, StatusCode};

/// What an HTTP response says about the health of the server and whether to come back.
///
/// The layers of this crate share this reading of a response: the retry layer retries a
/// response that [asks to be retried later](Self::asks_retry_after) (urllib3's
/// `RETRY_AFTER_STATUS_CODES`: 413, 429 and 503 with a `Retry-After` header), the circuit
/// breaker counts a [server error](Self::is_server_error) as a failure by default and never a
/// client error.
///
/// ```
/// use http::{header::RETRY_AFTER, HeaderMap, HeaderValue, StatusCode};
/// use tower_fortify::classify::ResponseClass;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
///
/// let busy = ResponseClass::new(StatusCode::SERVICE_UNAVAILABLE, &headers);
/// assert!(busy.is_server_error());
/// assert!(busy.asks_retry_after());
///
/// let not_found = ResponseClass::new(StatusCode::NOT_FOUND, &headers);
/// assert!(!not_found.is_server_error());
/// assert!(!not_found.asks_retry_after());
/// assert_eq!(not_found.status_class(), "4xx");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseClass {
    status: StatusCode,
    retry_after: bool,
}

impl ResponseClass {
    /// Reads a response's status and headers.
    ///
    /// ```
    /// use http::{header::RETRY_AFTER, HeaderMap, HeaderValue, StatusCode};
    /// use tower_fortify::classify::ResponseClass;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
    /// let class = ResponseClass::new(StatusCode::TOO_MANY_REQUESTS, &headers);
    /// assert_eq!(class.status(), StatusCode::TOO_MANY_REQUESTS);
    /// assert!(class.asks_retry_after());
    /// ```
    pub fn new(status: StatusCode, headers: &HeaderMap) -> Self {
        let retry_after = is_retry_after_status(status) && has_retry_after(headers);
        ResponseClass {
            status,
            retry_after,
        }
    }

    /// Reads a response.
    ///
    /// ```
    /// use tower_fortify::classify::ResponseClass;
    ///
    /// let response = http::Response::builder().status(502).body(()).unwrap();
    /// assert!(ResponseClass::of(&response).is_server_error());
    /// ```
    pub fn of<B>(response: &http::Response<B>) -> Self {
        Self::new(response.status(), response.headers())
    }

    /// The response's status.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_fortify::classify::ResponseClass;
    ///
    /// let response = http::Response::builder().status(504).body(()).unwrap();
    /// assert_eq!(ResponseClass::of(&response).status(), StatusCode::GATEWAY_TIMEOUT);
    /// ```
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// A 5xx status: the server failed. A circuit breaker counts this as a failure by default.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use tower_fortify::classify::ResponseClass;
    ///
    /// let headers = HeaderMap::new();
    /// assert!(ResponseClass::new(StatusCode::BAD_GATEWAY, &headers).is_server_error());
    /// assert!(!ResponseClass::new(StatusCode::TOO_MANY_REQUESTS, &headers).is_server_error());
    /// ```
    pub fn is_server_error(&self) -> bool {
        self.status.is_server_error()
    }

    /// A 4xx status: the request was wrong, the server is fine.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use tower_fortify::classify::ResponseClass;
    ///
    /// let headers = HeaderMap::new();
    /// assert!(ResponseClass::new(StatusCode::NOT_FOUND, &headers).is_client_error());
    /// assert!(!ResponseClass::new(StatusCode::SERVICE_UNAVAILABLE, &headers).is_client_error());
    /// ```
    pub fn is_client_error(&self) -> bool {
        self.status.is_client_error()
    }

    /// A 413, 429 or 503 with a non-empty `Retry-After` header: the server asks the client to
    /// come back later. Whether the header's value is valid is for the retry layer to judge.
    ///
    /// ```
    /// use http::{header::RETRY_AFTER, HeaderMap, HeaderValue, StatusCode};
    /// use tower_fortify::classify::ResponseClass;
    ///
    /// let mut headers = HeaderMap::new();
    /// assert!(!ResponseClass::new(StatusCode::SERVICE_UNAVAILABLE, &headers).asks_retry_after());
    /// headers.insert(RETRY_AFTER, HeaderValue::from_static("someday"));
    /// assert!(ResponseClass::new(StatusCode::SERVICE_UNAVAILABLE, &headers).asks_retry_after());
    /// // Not a status on which urllib3 honours the header.
    /// assert!(!ResponseClass::new(StatusCode::INTERNAL_SERVER_ERROR, &headers).asks_retry_after());
    /// ```
    pub const fn asks_retry_after(&self) -> bool {
        self.retry_after
    }

    /// The status class as a metrics label value: `"1xx"` to `"5xx"`, or `"other"`.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use tower_fortify::classify::ResponseClass;
    ///
    /// let class = ResponseClass::new(StatusCode::NO_CONTENT, &HeaderMap::new());
    /// assert_eq!(class.status_class(), "2xx");
    /// let class = ResponseClass::new(StatusCode::from_u16(799).unwrap(), &HeaderMap::new());
    /// assert_eq!(class.status_class(), "other");
    /// ```
    pub fn status_class(&self) -> &'static str {
        match self.status.as_u16() / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            5 => "5xx",
            _ => "other",
        }
    }
}

/// Whether `headers` hold a non-empty `Retry-After`, as urllib3 reads it: several fields
/// are joined with `", "`, which is never empty (and never valid: see
/// [`parse_retry_after`](super::parse_retry_after)).
fn has_retry_after(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(RETRY_AFTER).iter();
    match (values.next(), values.next()) {
        (None, _) => false,
        (Some(value), None) => !value.as_bytes().trim_ascii().is_empty(),
        (Some(_), Some(_)) => true,
    }
}

/// The statuses on which urllib3 honours `Retry-After`: 413, 429 and 503.
///
/// ```
/// use http::StatusCode;
/// use tower_fortify::classify::is_retry_after_status;
///
/// assert!(is_retry_after_status(StatusCode::TOO_MANY_REQUESTS));
/// assert!(!is_retry_after_status(StatusCode::BAD_GATEWAY));
/// ```
pub fn is_retry_after_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(retry_after: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn retry_after_needs_status_and_non_empty_header() {
        let rows = [
            (503, Some("1"), true),
            (429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), true),
            (413, Some("soon"), true),
            (503, None, false),
            (503, Some(""), false),
            (503, Some("   "), false),
            (500, Some("1"), false),
            (200, Some("1"), false),
            (502, Some("1"), false),
        ];
        for (status, value, expected) in rows {
            let class = ResponseClass::new(StatusCode::from_u16(status).unwrap(), &headers(value));
            assert_eq!(class.asks_retry_after(), expected, "{status} {value:?}");
        }
    }

    #[test]
    fn several_retry_after_fields_ask_like_urllib3s_joined_value() {
        for values in [["", ""], ["", "1"], ["5", "1"]] {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(RETRY_AFTER, HeaderValue::from_static(v));
            }
            let class = ResponseClass::new(StatusCode::SERVICE_UNAVAILABLE, &h);
            assert!(class.asks_retry_after(), "{values:?}");
        }
    }

    #[test]
    fn status_classes() {
        for (status, class, server, client) in [
            (101, "1xx", false, false),
            (204, "2xx", false, false),
            (301, "3xx", false, false),
            (404, "4xx", false, true),
            (429, "4xx", false, true),
            (500, "5xx", true, false),
            (599, "5xx", true, false),
        ] {
            let c = ResponseClass::new(StatusCode::from_u16(status).unwrap(), &HeaderMap::new());
            assert_eq!(c.status_class(), class);
            assert_eq!(c.is_server_error(), server);
            assert_eq!(c.is_client_error(), client);
            assert_eq!(c.status().as_u16(), status);
        }
    }
}
