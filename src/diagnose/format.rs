//! Numbers as the report prints them.

use std::time::Duration;

/// `1.2 s`, `250 ms`.
pub(crate) fn human_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let secs = d.as_secs_f64();
        if secs.fract() < 0.05 {
            format!("{secs:.0} s")
        } else {
            format!("{secs:.1} s")
        }
    } else if d >= Duration::from_millis(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// `2,163`.
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

pub(crate) fn days(n: i64) -> String {
    if n.abs() == 1 {
        format!("{} day", thousands(n))
    } else {
        format!("{} days", thousands(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_prose() {
        assert_eq!(thousands(2_163), "2,163");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(days(1), "1 day");
        assert_eq!(days(-1), "-1 day");
        assert_eq!(days(2_163), "2,163 days");
        assert_eq!(human_duration(Duration::from_secs(5)), "5 s");
        assert_eq!(human_duration(Duration::from_millis(1_200)), "1.2 s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(human_duration(Duration::from_micros(650)), "0.7 ms");
    }
}
