//! `PoolLimitLayer`: urllib3's pool semantics, permits held until the body ends, per-host
//! pools, leak detection, the tower contract, metrics.

#[cfg(feature = "tracing")]
#[path = "../support/capture.rs"]
mod capture;
mod contract;
mod durations;
mod keyed;
mod modes;
#[cfg(any(feature = "metrics", feature = "tracing"))]
mod observability;
mod real_server;
#[cfg(feature = "metrics")]
#[path = "../support/recorded.rs"]
mod recorded;
#[path = "../support/servers.rs"]
mod servers;
mod stress;
mod util;
