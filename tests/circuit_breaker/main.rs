mod cancellation;
#[cfg(feature = "tracing")]
#[path = "../support/capture.rs"]
mod capture;
mod contract;
mod durations;
mod keyed;
#[cfg(feature = "metrics")]
mod observability;
mod real_server;
#[cfg(feature = "metrics")]
#[path = "../support/recorded.rs"]
mod recorded;
mod state_machine;
mod support;
mod windows;
