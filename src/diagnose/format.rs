//! Numbers as the report prints them.

// The same numbers as a `Failure`'s one-line explanation.
pub(crate) use crate::classify::{days, human_duration};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::thousands;
    use std::time::Duration;

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
