//! Assertions on text: a `Debug` form or a message holding every expected part.

/// Asserts that `text` contains every one of `wanted`, naming the first missing part and
/// the whole text.
#[track_caller]
pub fn assert_shows(text: &str, wanted: &[&str]) {
    for part in wanted {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
}
