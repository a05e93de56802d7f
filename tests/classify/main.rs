#[cfg(all(feature = "hyper", feature = "rustls"))]
#[path = "../support/servers.rs"]
mod servers;

mod chain;
mod layer;
#[cfg(all(feature = "hyper", feature = "rustls"))]
mod real_failures;
#[cfg(feature = "tracing")]
mod tracing_events;
