//! A `metrics` snapshot as a list to search, for the tests of the layers' metrics.

use metrics_util::{
    debugging::{DebugValue, Snapshotter},
    CompositeKey,
};

/// A metric's labels, as `(key, value)` pairs.
pub type Labels = Vec<(String, String)>;

/// One snapshot of the recorder (taking it resets the counters): name, labels, value.
pub fn snapshot(snapshotter: &Snapshotter) -> Vec<(String, Labels, DebugValue)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), labels(&key), value))
        .collect()
}

/// The labels of a recorded metric.
pub fn labels(key: &CompositeKey) -> Labels {
    key.key()
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// Whether `labels` hold every pair of `wanted`.
pub fn has_labels(labels: &Labels, wanted: &[(&str, &str)]) -> bool {
    wanted
        .iter()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}
