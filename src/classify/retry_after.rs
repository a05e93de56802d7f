//! Reading a server's `Retry-After` header, as urllib3's `Retry.parse_retry_after` does.

use super::error::InvalidRetryAfter;
use std::time::{Duration, SystemTime};

use http::HeaderValue;

/// Parses a `Retry-After` header value: delta-seconds or an HTTP-date, relative to `now`.
///
/// Surrounding spaces and tabs are ignored. The value is then either:
///
/// - ASCII digits only: that many seconds. A number too large for a `u64` saturates to
///   `u64::MAX` seconds rather than failing; callers cap the result (urllib3's
///   `retry_after_max`).
/// - an HTTP-date in any of the three formats of RFC 9110 (IMF-fixdate
///   `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`, asctime
///   `Sun Nov  6 08:49:37 1994`): the time from `now` until that date, or zero when the date
///   is not after `now`.
///
/// # Errors
///
/// [`InvalidRetryAfter`](super::error::InvalidRetryAfter) when the value is empty or blank, or neither of the above: a sign,
/// a fraction, a unit, free text, or bytes that are not ASCII. urllib3 ends the call on such
/// a header; this crate's retry layer treats it as absent and backs off as usual, so that a
/// server bug cannot turn a retryable response into a hard failure.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use http::HeaderValue;
/// use tower_fortify::classify::parse_retry_after;
///
/// // Sun, 06 Nov 1994 08:49:07 GMT: 30 s before the dates below.
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_747);
///
/// let parse = |s: &'static str| parse_retry_after(&HeaderValue::from_static(s), now);
/// assert_eq!(parse("120"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse(" \t 5 "), Ok(Duration::from_secs(5)));
/// assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse("Sun Nov  6 08:49:37 1994"), Ok(Duration::from_secs(30)));
///
/// // A date in the past means "now".
/// assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT"), Ok(Duration::ZERO));
///
/// for bad in ["", " ", "-1", "1.5", "+3", "soon"] {
///     assert!(parse(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn parse_retry_after(
    value: &HeaderValue,
    now: SystemTime,
) -> Result<Duration, InvalidRetryAfter> {
    // A header value holds no ASCII whitespace but spaces and tabs: this strips the
    // optional whitespace HTTP allows around it, as `ResponseClass` does.
    let bytes = value.as_bytes().trim_ascii();
    if bytes.is_empty() {
        return Err(InvalidRetryAfter::new());
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return Ok(Duration::from_secs(saturating_seconds(bytes)));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| InvalidRetryAfter::new())?;
    let date = httpdate::parse_http_date(text).map_err(|_| InvalidRetryAfter::new())?;
    // An error here means the date is not after `now`.
    Ok(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads the `Retry-After` of a response's headers: `None` when there is none, an error
/// when it is malformed. Several `Retry-After` fields are malformed: urllib3 joins them
/// (`"5, 1"`), which parses as neither delta-seconds nor a date, and neither value can be
/// trusted over the other.
#[cfg(any(feature = "retry", feature = "circuit-breaker"))]
pub(crate) fn retry_after_of(
    headers: &http::HeaderMap,
    now: impl FnOnce() -> SystemTime,
) -> Option<Result<Duration, InvalidRetryAfter>> {
    let mut values = headers.get_all(http::header::RETRY_AFTER).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(InvalidRetryAfter::new()));
    }
    Some(parse_retry_after(first, now()))
}

/// ASCII digits as a number of seconds, saturating at `u64::MAX`.
fn saturating_seconds(digits: &[u8]) -> u64 {
    digits
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    /// Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date.
    const RFC_DATE: u64 = 784_111_777;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn parse(value: &'static str, now: SystemTime) -> Result<Duration, InvalidRetryAfter> {
        parse_retry_after(&HeaderValue::from_static(value), now)
    }

    fn parse_bytes(value: &[u8]) -> Result<Duration, InvalidRetryAfter> {
        let value = HeaderValue::from_bytes(value).expect("a valid header value");
        parse_retry_after(&value, at(RFC_DATE))
    }

    #[test]
    fn delta_seconds() {
        let now = at(RFC_DATE);
        let cases = [
            ("0", 0),
            ("1", 1),
            ("120", 120),
            ("007", 7),
            (" 42", 42),
            ("42\t", 42),
            (" \t 42 \t ", 42),
            ("18446744073709551615", u64::MAX),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse(value, now),
                Ok(Duration::from_secs(want)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn too_many_seconds_saturate() {
        let now = at(RFC_DATE);
        for value in [
            "18446744073709551616",
            "99999999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                parse(value, now),
                Ok(Duration::from_secs(u64::MAX)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn every_date_format() {
        let now = at(RFC_DATE - 30);
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT\t",
        ] {
            assert_eq!(parse(value, now), Ok(Duration::from_secs(30)), "{value:?}");
        }
    }

    #[test]
    fn date_not_after_now_is_zero() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse(date, at(RFC_DATE)), Ok(Duration::ZERO));
        assert_eq!(parse(date, at(RFC_DATE + 1)), Ok(Duration::ZERO));
        assert_eq!(parse(date, at(RFC_DATE + 86_400 * 365)), Ok(Duration::ZERO));
    }

    #[test]
    fn date_keeps_the_fraction_of_now() {
        let now = at(RFC_DATE) - Duration::from_millis(500);
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Ok(Duration::from_millis(500))
        );
    }

    #[test]
    fn rejects() {
        let now = at(RFC_DATE);
        for value in [
            "",
            " ",
            "\t \t",
            "-1",
            "1.5",
            "+3",
            "soon",
            "1 2",
            "0x10",
            "1e3",
            "5s",
            "Sun, 07 Nov 1994 08:49:37 GMT", // wrong weekday
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(
                parse(value, now),
                Err(InvalidRetryAfter::new()),
                "{value:?}"
            );
        }
    }

    #[test]
    fn rejects_non_ascii() {
        for value in [
            &[0xff, 0xfe][..],
            "１２".as_bytes(), // full-width digits
            "12\u{a0}".as_bytes(),
            "Sun, 06 Nov 1994 08:49:37 GMT\u{a0}".as_bytes(),
            b"\x80",
        ] {
            assert!(parse_bytes(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn error_traits() {
        let err = InvalidRetryAfter::new();
        assert_eq!(err.to_string(), "invalid retry-after header");
        assert_eq!(err.clone(), err);
        let boxed: crate::BoxError = Box::new(err);
        assert!(boxed.is::<InvalidRetryAfter>());
    }

    fn header_byte() -> impl Strategy<Value = u8> {
        // Every byte HeaderValue::from_bytes accepts.
        prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff]
    }

    fn blanks() -> impl Strategy<Value = String> {
        "[ \t]{0,5}"
    }

    proptest! {
        #[test]
        fn arbitrary_header_values_never_panic(
            bytes in prop::collection::vec(header_byte(), 0..64),
            now in 0..=253_402_300_799u64,
        ) {
            let value = HeaderValue::from_bytes(&bytes).unwrap();
            let _ = parse_retry_after(&value, at(now));
        }

        #[test]
        fn date_like_text_never_panics(
            text in "[ \t0-9A-Za-z,:-]{0,40}",
            now in 0..=253_402_300_799u64,
        ) {
            let value = HeaderValue::from_str(&text).unwrap();
            let _ = parse_retry_after(&value, at(now));
        }

        #[test]
        fn any_u64_is_that_many_seconds(
            n in any::<u64>(),
            before in blanks(),
            after in blanks(),
        ) {
            let value = HeaderValue::from_str(&format!("{before}{n}{after}")).unwrap();
            prop_assert_eq!(parse_retry_after(&value, at(RFC_DATE)), Ok(Duration::from_secs(n)));
        }

        #[test]
        fn formatted_date_is_the_delay(d in 0..=3_653 * 86_400u64) {
            let now = at(1_700_000_000);
            let date = httpdate::fmt_http_date(now + Duration::from_secs(d));
            let value = HeaderValue::from_str(&date).unwrap();
            prop_assert_eq!(parse_retry_after(&value, now), Ok(Duration::from_secs(d)));
        }
    }
}
