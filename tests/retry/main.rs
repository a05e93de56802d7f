mod conformance;
mod contract;
#[cfg(feature = "metrics")]
mod observability;
mod real_server;
mod rules;
