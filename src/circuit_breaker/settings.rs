//! What every breaker of a layer shares: the settings and the metric handles.

use super::{
    config::{Config, Window, DEFAULT_NAME},
    lanes::lane_count,
};

/// What every breaker of a layer shares: the settings and the metric handles.
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) name: &'static str,
    /// Lanes per breaker: the owned ones, then the shared one.
    pub(super) lanes: usize,
    /// Successes a lane buffers before they enter the count ring (and the metrics).
    pub(super) batch: u64,
    #[cfg(feature = "metrics")]
    pub(crate) instruments: super::metrics::Instruments,
}

impl Settings {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(config: Config, name: &'static str, keyed: bool) -> Self {
        // The owned lanes and the shared one.
        let lanes = lane_count() + 1;
        // A lane holds back at most `batch - 1` successes; all lanes together less than a
        // quarter of a count window.
        let batch = match config.window {
            Window::Count(n) => (u64::from(n) / (4 * lanes as u64)).clamp(1, 32),
            Window::Time(_) => 32,
        };
        Settings {
            config,
            name,
            lanes,
            batch,
            #[cfg(feature = "metrics")]
            instruments: super::metrics::Instruments::register(name, keyed),
        }
    }
}

impl Settings {
    /// The default settings, unnamed; `keyed` for one breaker per key.
    pub(crate) fn default_for(keyed: bool) -> Self {
        Settings::new(Config::DEFAULT, DEFAULT_NAME, keyed)
    }
}
