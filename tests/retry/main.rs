mod amplification;
#[cfg(feature = "tracing")]
#[path = "../support/capture.rs"]
mod capture;
mod conformance;
mod contract;
mod durations;
#[cfg(feature = "metrics")]
mod observability;
mod real_server;
#[cfg(feature = "metrics")]
#[path = "../support/recorded.rs"]
mod recorded;
mod rules;
#[path = "../support/servers.rs"]
mod servers;
