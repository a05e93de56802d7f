//! Private helpers shared by several layers. Nothing here is public API.

#[cfg(any(feature = "retry", feature = "circuit-breaker"))]
pub(crate) mod buckets;
#[cfg(any(feature = "retry", feature = "metrics", feature = "tracing"))]
pub(crate) mod clock;
#[cfg(any(feature = "pool", feature = "hedge"))]
pub(crate) mod draw;
#[cfg(any(feature = "pool", feature = "circuit-breaker"))]
pub(crate) mod host;
#[cfg(feature = "metrics")]
pub(crate) mod lazy;
#[cfg(any(feature = "pool", feature = "circuit-breaker"))]
pub(crate) mod lru;
#[cfg(any(feature = "pool", feature = "circuit-breaker", feature = "retry"))]
pub(crate) mod padded;
#[cfg(any(feature = "pool", feature = "circuit-breaker"))]
pub(crate) mod recent;
pub(crate) mod spare;
pub(crate) mod sync;
#[cfg(feature = "retry")]
pub(crate) mod template;
#[cfg(any(feature = "pool", feature = "retry"))]
pub(crate) mod thread_index;
#[cfg(feature = "retry")]
pub(crate) mod ticker;
