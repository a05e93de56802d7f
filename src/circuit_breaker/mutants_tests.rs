//! Unit tests of crate-private parts of the breaker that the integration suite cannot
//! reach (mutation testing, MUTANTS.md).

use super::{
    admission::{Admission, Shared},
    config::Config,
    settings::Settings,
};
use std::sync::Arc;

fn shared() -> Shared {
    Shared::new(
        Arc::new(Settings::new(Config::DEFAULT, "mutants", false)),
        None,
    )
}

/// `Admission::is_call`, which the preset stack's gate reads to take a pool permit only
/// for a call the breaker lets through: true for a call, false for a rejection.
#[cfg(feature = "stack")]
#[test]
fn is_call_tells_a_call_from_a_rejection() {
    let shared = shared();
    let admission = shared.admit();
    assert!(matches!(admission, Admission::Call(_)));
    assert!(admission.is_call());
    drop(admission);
    shared.breaker.force_open();
    let admission = shared.admit();
    assert!(matches!(admission, Admission::Reject(_)));
    assert!(!admission.is_call());
}

/// A breaker's `Debug` shows its state and generation (what an operator's log line of a
/// service prints).
#[test]
fn a_breaker_debugs_as_its_state() {
    let shared = shared();
    let closed = format!("{shared:?}");
    assert!(closed.contains("state: Closed"), "{closed}");
    assert!(closed.contains("generation: 0"), "{closed}");
    shared.breaker.force_open();
    let forced = format!("{shared:?}");
    assert!(forced.contains("state: ForcedOpen"), "{forced}");
    assert!(forced.contains("generation: 1"), "{forced}");
}

/// A count ring's `Debug` shows its size and what it holds (crate-private: a breaker's own
/// `Debug` prints the figures, this is for a ring printed alone while debugging the window).
#[test]
fn a_count_ring_debugs_as_its_size_and_figures() {
    let ring = super::window::CountRing::new(5);
    ring.push(true, false);
    ring.push(false, true);
    let shown = format!("{ring:?}");
    assert!(shown.starts_with("CountRing"), "{shown}");
    assert!(shown.contains("size: 5"), "{shown}");
    assert!(
        shown.contains("calls: 2, failures: 1, slow_calls: 1"),
        "{shown}"
    );
}
