#[cfg(all(feature = "hyper", feature = "rustls"))]
#[path = "../support/servers.rs"]
mod servers;

mod chain;
#[cfg(all(feature = "hyper", feature = "rustls", feature = "retry"))]
mod explain;
mod layer;
#[cfg(all(feature = "hyper", feature = "rustls", feature = "retry"))]
mod negotiation;
#[cfg(all(feature = "hyper", feature = "rustls"))]
mod real_failures;
#[cfg(feature = "metrics")]
#[path = "../support/recorded.rs"]
mod recorded;
#[cfg(feature = "tracing")]
mod tracing_events;
