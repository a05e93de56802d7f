//! The client under test: the preset stack around hyper-util's legacy client over the
//! backend's resolver, and the counter totals of its metrics.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use bytes::Bytes;
use fortify_test_support::{
    flaky::{FlakyBackend, FlakyResolver},
    recorded,
};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::Layer;
use tower_fortify::{
    circuit_breaker::State,
    stack::{ClientConfig, ClientStack, ClientStackLayer},
};

pub type Body = Full<Bytes>;
pub type Hyper = Client<HttpConnector<FlakyResolver>, Body>;
pub type Stack = ClientStack<Hyper>;

/// Calls in flight per test (the tests of this binary run in parallel).
pub const CONCURRENCY: usize = 32;
/// The stack's `name` (metrics label).
pub const NAME: &str = "chaos";

/// A stack under test, with the layer (for its handles) and its metrics.
pub struct Harness {
    pub layer: ClientStackLayer,
    pub stack: Stack,
    pub metrics: Metrics,
}

/// The configuration every test starts from: the defaults, with a loopback-sized connect
/// timeout.
pub fn config() -> ClientConfig {
    ClientConfig::default()
        .name(NAME)
        .connect_timeout(Duration::from_secs(1))
}

/// hyper-util's legacy client over the backend's resolver, with the config's connect
/// timeout. No idle connections are kept: the backend closes each one after its answer.
pub fn hyper_client(backend: &FlakyBackend, config: &ClientConfig) -> Hyper {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(backend.connector(config.build().expect("valid config").connect_timeout()))
}

pub fn harness(backend: &FlakyBackend, config: ClientConfig) -> Harness {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The layers register their metric handles when they are built.
    let layer = metrics::with_local_recorder(&recorder, || config.build()).expect("valid config");
    let stack = layer.layer(hyper_client(backend, &config));
    Harness {
        layer,
        stack,
        metrics: Metrics::new(snapshotter),
    }
}

/// A metric's name and sorted labels.
pub type MetricKey = (String, recorded::Labels);

/// Counter totals of one stack's metrics (the debugging snapshot drains counters, so they
/// are summed here).
pub struct Metrics {
    snapshotter: Snapshotter,
    totals: Mutex<HashMap<MetricKey, u64>>,
}

impl Metrics {
    pub fn new(snapshotter: Snapshotter) -> Self {
        Metrics {
            snapshotter,
            totals: Mutex::new(HashMap::new()),
        }
    }

    /// The sum of the counters named `name` whose labels include `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut totals = self.totals.lock().unwrap();
        for (metric, mut l, value) in recorded::snapshot(&self.snapshotter) {
            if let DebugValue::Counter(v) = value {
                l.sort();
                *totals.entry((metric, l)).or_default() += v;
            }
        }
        totals
            .iter()
            .filter(|((n, l), _)| n == name && recorded::has_labels(l, labels))
            .map(|(_, v)| *v)
            .sum()
    }

    pub fn transitions(&self, from: State, to: State) -> u64 {
        self.counter(
            "fortify_circuit_transitions_total",
            &[("from", from.as_str()), ("to", to.as_str())],
        )
    }
}
