//! Timing for criterion's `iter_custom` over a tokio runtime: the benches that send whole
//! batches of requests over loopback (`#[path = "support/batches.rs"] mod batches;`).

use std::{
    future::Future,
    time::{Duration, Instant},
};
use tokio::runtime::Runtime;

/// The time `iters` runs of `batch` take on `runtime`.
pub(crate) fn time_batches<F: Future<Output = ()>>(
    runtime: &Runtime,
    iters: u64,
    mut batch: impl FnMut() -> F,
) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            batch().await;
        }
        started.elapsed()
    })
}
