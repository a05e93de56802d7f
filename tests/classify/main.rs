mod chain;
#[cfg(all(feature = "hyper", feature = "rustls", feature = "retry"))]
mod explain;
mod layer;
#[cfg(all(feature = "hyper", feature = "rustls", feature = "retry"))]
mod negotiation;
#[cfg(all(feature = "hyper", feature = "rustls"))]
mod real_failures;
#[cfg(feature = "tracing")]
mod tracing_events;

#[cfg(feature = "metrics")]
use fortify_test_support::recorded;
#[cfg(all(feature = "hyper", feature = "rustls"))]
use fortify_test_support::servers;
