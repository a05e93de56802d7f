//! `PoolLimitLayer`: urllib3's pool semantics, permits held until the body ends, per-host
//! pools, leak detection, the tower contract, metrics.

mod adaptive;
mod contract;
mod durations;
mod keyed;
mod leases;
mod modes;
mod mutants;
#[cfg(any(feature = "metrics", feature = "tracing"))]
mod observability;
mod real_server;
mod stress;
mod support;

#[cfg(feature = "tracing")]
use fortify_test_support::capture;
#[cfg(feature = "metrics")]
use fortify_test_support::recorded;
use fortify_test_support::servers;
