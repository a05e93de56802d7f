//! `HedgeLayer`: when a hedge is sent (idempotency, delay, budget, breaker, bounds), which
//! answer is taken, what the loser gives back, on tokio's paused clock and over real
//! sockets on 127.0.0.1; metrics and tracing events.

use fortify_test_support::counting_alloc::Counting;

// Counts each thread's allocations, for `alloc` (the other tests do not look).
#[global_allocator]
static GLOBAL: Counting = Counting;

mod alloc;
mod contract;
mod durations;
#[cfg(any(feature = "metrics", feature = "tracing"))]
mod observability;
mod real_server;
mod rules;
mod support;
