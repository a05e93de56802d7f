//! Running many calls: a fixed range of ids, a few at a time, or a load in the background
//! until stopped.

use std::{
    future::Future,
    ops::Range,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use crate::{
    calls::{execute, Call, Outcome},
    harness::Stack,
};
use fortify_test_support::flaky::FlakyBackend;

/// Runs `task(id)` for every id of `ids`, `concurrency` at a time, and returns the results
/// (in no particular order).
pub async fn run_with<T, F, Fut>(ids: Range<u64>, concurrency: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let next = Arc::new(AtomicU64::new(ids.start));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let task = task.clone();
            let end = ids.end;
            tokio::spawn(async move {
                let mut results = Vec::new();
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= end {
                        return results;
                    }
                    results.push(task(id).await);
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity((ids.end - ids.start) as usize);
    for worker in workers {
        results.extend(worker.await.expect("a workload task panicked"));
    }
    results
}

/// Runs the calls `plan(id)` for every id of `ids` through the stack.
pub async fn run<P>(
    stack: &Stack,
    backend: &FlakyBackend,
    ids: Range<u64>,
    concurrency: usize,
    plan: P,
) -> Vec<Outcome>
where
    P: Fn(u64) -> Call + Clone + Send + Sync + 'static,
{
    let stack = stack.clone();
    let backend = backend.clone();
    run_with(ids, concurrency, move |id| {
        execute(stack.clone(), backend.clone(), plan(id))
    })
    .await
}

/// Calls running in the background until stopped, each outcome logged in completion order.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub log: Arc<Mutex<Vec<Outcome>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` loops, each sending one call at a time with a short pause between calls (so
    /// that calls failing fast on an open breaker do not spin).
    pub fn start<P>(
        stack: &Stack,
        backend: &FlakyBackend,
        first_id: u64,
        workers: usize,
        plan: P,
    ) -> Load
    where
        P: Fn(u64) -> Call + Clone + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU64::new(first_id));
        let workers = (0..workers)
            .map(|_| {
                let (stop, log, next) = (stop.clone(), log.clone(), next.clone());
                let (stack, backend, plan) = (stack.clone(), backend.clone(), plan.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        let outcome = execute(stack.clone(), backend.clone(), plan(id)).await;
                        log.lock().unwrap().push(outcome);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Load { stop, log, workers }
    }

    pub fn calls(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("a load task panicked");
        }
        let log = self.log.lock().unwrap();
        log.clone()
    }
}
