//! The state's printed form, which the other tests left open (mutation testing,
//! MUTANTS.md).

use tower_fortify::circuit_breaker::State;

/// `Display` prints the metrics label (`as_str`) and honours width and alignment, as log
/// lines and tables print it.
#[test]
fn a_state_displays_as_its_label_padded() {
    for state in State::ALL {
        assert_eq!(state.to_string(), state.as_str());
    }
    assert_eq!(format!("[{:>10}]", State::Open), "[      open]");
    assert_eq!(format!("[{:<9}]", State::HalfOpen), "[half_open]");
    assert_eq!(format!("[{:^8}]", State::Closed), "[ closed ]");
}
