//! Metric values computed only when a recorder takes them.

use metrics::IntoF64;

/// A value computed only when a recorder takes it: a handle registered while no recorder was
/// installed never asks, which tells a layer at build time whether its metrics go anywhere.
pub(crate) struct Lazy<F>(pub(crate) F);

impl<F: FnOnce() -> f64> IntoF64 for Lazy<F> {
    fn into_f64(self) -> f64 {
        (self.0)()
    }
}
