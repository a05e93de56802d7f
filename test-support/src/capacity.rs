//! A backend's processing capacity and a record of its load, for the [`flaky`](crate::flaky)
//! backend's overload mode ([`FlakyBackend::set_capacity`](crate::flaky::FlakyBackend::set_capacity)).
//!
//! - [`Capacity`]: `workers` requests are processed at once, each for `service`; the others
//!   wait their turn, first come first served. A backend whose capacity drops answers slower
//!   as the requests in flight at it rise: with `n` in flight and `n > workers`, each waits
//!   about `n * service / workers`. The capacity can change while requests run: a drop takes
//!   effect as the workers in use finish (no request is cut short), a rise at once.
//! - [`LoadSample`]: one per request the backend read, with the requests in flight at the
//!   backend when it arrived (itself included) and how long the backend took with it (from
//!   its head read to its answer, the wait for a worker included).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed},
        Mutex,
    },
    time::{Duration, Instant},
};
use tokio::sync::{Semaphore, SemaphorePermit};

/// A backend's processing capacity: `workers` requests at once, each for `service`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Requests processed at once; the others queue (first come, first served).
    pub workers: usize,
    /// How long a worker takes with one request.
    pub service: Duration,
}

impl Capacity {
    /// The requests per second this capacity can answer: `workers / service`.
    pub fn per_second(&self) -> f64 {
        self.workers as f64 / self.service.as_secs_f64().max(1e-9)
    }
}

/// The workers of a backend: unlimited and instant until a [`Capacity`] is set.
pub(crate) struct Workers {
    /// The capacity in force (the lock orders changes; requests read the atomics).
    config: Mutex<Option<Capacity>>,
    limited: AtomicBool,
    service_nanos: AtomicU64,
    /// One permit per free worker.
    semaphore: Semaphore,
    /// Permits to forget when they are given back: the workers a drop of the capacity
    /// removed while they were busy.
    debt: AtomicUsize,
}

impl Workers {
    pub(crate) fn new() -> Self {
        Workers {
            config: Mutex::new(None),
            limited: AtomicBool::new(false),
            service_nanos: AtomicU64::new(0),
            semaphore: Semaphore::new(0),
            debt: AtomicUsize::new(0),
        }
    }

    pub(crate) fn get(&self) -> Option<Capacity> {
        *self.config.lock().expect("capacity lock")
    }

    /// Sets the capacity (`None`: unlimited and instant).
    ///
    /// # Panics
    ///
    /// If `workers` is 0 or above tokio's semaphore limit.
    pub(crate) fn set(&self, capacity: Option<Capacity>) {
        if let Some(c) = capacity {
            assert!(
                (1..=Semaphore::MAX_PERMITS / 2).contains(&c.workers),
                "Capacity::workers must be at least 1, got {}",
                c.workers
            );
        }
        let mut config = self.config.lock().expect("capacity lock");
        let before = config.map_or(0, |c| c.workers);
        let after = capacity.map_or(0, |c| c.workers);
        if after > before {
            // Cancel the debt first: those workers are still busy, so they stay.
            let mut add = after - before;
            while add > 0
                && self
                    .debt
                    .fetch_update(Relaxed, Relaxed, |d| d.checked_sub(1))
                    .is_ok()
            {
                add -= 1;
            }
            self.semaphore.add_permits(add);
        } else if after < before {
            let remove = before - after;
            let forgotten = self.semaphore.forget_permits(remove);
            self.debt.fetch_add(remove - forgotten, Relaxed);
        }
        let service = capacity.map_or(Duration::ZERO, |c| c.service);
        self.service_nanos.store(
            u64::try_from(service.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        self.limited.store(capacity.is_some(), Relaxed);
        *config = capacity;
    }

    /// Processes one request: waits for a free worker, then holds it for the service time.
    /// Returns at once while the capacity is unlimited.
    pub(crate) async fn process(&self) {
        if !self.limited.load(Relaxed) {
            return;
        }
        let Ok(permit) = self.semaphore.acquire().await else {
            return;
        };
        let _worker = Worker {
            permit: Some(permit),
            debt: &self.debt,
        };
        tokio::time::sleep(Duration::from_nanos(self.service_nanos.load(Relaxed))).await;
    }
}

/// A busy worker; given back (or removed, if the capacity dropped meanwhile) when dropped,
/// also when its request is cancelled.
struct Worker<'a> {
    permit: Option<SemaphorePermit<'a>>,
    debt: &'a AtomicUsize,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if self
            .debt
            .fetch_update(Relaxed, Relaxed, |d| d.checked_sub(1))
            .is_ok()
        {
            permit.forget();
        }
    }
}

/// One request the backend read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSample {
    /// When its head was read.
    pub arrived: Instant,
    /// Requests in flight at the backend when it arrived, itself included.
    pub in_flight: u32,
    /// From its head read to its answer (or to the end of its connection, for a request
    /// reset unanswered).
    pub took: Duration,
}

/// The load record of a backend.
#[derive(Default)]
pub(crate) struct Load {
    in_flight: AtomicU32,
    samples: Mutex<Vec<LoadSample>>,
}

impl Load {
    /// Counts a request in flight until the guard is dropped, which records its sample.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let in_flight = self.in_flight.fetch_add(1, Relaxed) + 1;
        InFlight {
            load: self,
            arrived: Instant::now(),
            in_flight,
        }
    }

    pub(crate) fn samples(&self) -> Vec<LoadSample> {
        self.samples.lock().expect("load lock").clone()
    }
}

pub(crate) struct InFlight<'a> {
    load: &'a Load,
    arrived: Instant,
    in_flight: u32,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.load.in_flight.fetch_sub(1, Relaxed);
        let sample = LoadSample {
            arrived: self.arrived,
            in_flight: self.in_flight,
            took: self.arrived.elapsed(),
        };
        self.load.samples.lock().expect("load lock").push(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Runs `n` requests at once through `workers`, returns when the last one ended.
    async fn burst(workers: &Arc<Workers>, n: usize) -> Duration {
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let workers = workers.clone();
                tokio::spawn(async move { workers.process().await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        started.elapsed()
    }

    fn capacity(workers: usize, service: Duration) -> Option<Capacity> {
        Some(Capacity { workers, service })
    }

    /// Starts `n` requests that hold their worker for a long time; returns once every
    /// free worker is taken.
    async fn occupy(workers: &Arc<Workers>, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let tasks = (0..n)
            .map(|_| {
                let workers = workers.clone();
                tokio::spawn(async move { workers.process().await })
            })
            .collect();
        while workers.semaphore.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        tasks
    }

    #[tokio::test]
    async fn requests_queue_for_a_worker() {
        let workers = Arc::new(Workers::new());
        // Unlimited: instant.
        assert!(burst(&workers, 10).await < Duration::from_millis(500));
        // 3 requests on 1 worker of 20 ms: one after the other.
        let service = Duration::from_millis(20);
        workers.set(capacity(1, service));
        assert!(burst(&workers, 3).await >= service * 3);
    }

    #[tokio::test]
    async fn a_drop_of_capacity_waits_for_busy_workers_and_a_rise_is_immediate() {
        let long = Duration::from_secs(60);
        let workers = Arc::new(Workers::new());
        workers.set(capacity(4, long));
        assert_eq!(workers.semaphore.available_permits(), 4);
        let busy = occupy(&workers, 4).await;
        // Down to 1 while all 4 are busy: nothing to take back yet.
        workers.set(capacity(1, long));
        assert_eq!(workers.debt.load(Relaxed), 3);
        // Up to 2: one of the busy workers stays after all.
        workers.set(capacity(2, long));
        assert_eq!(workers.debt.load(Relaxed), 2);
        assert_eq!(workers.semaphore.available_permits(), 0);
        // Cancelled requests give their workers back: 2 removed, 2 free.
        for task in &busy {
            task.abort();
        }
        for task in busy {
            assert!(task.await.unwrap_err().is_cancelled());
        }
        assert_eq!(workers.debt.load(Relaxed), 0);
        assert_eq!(workers.semaphore.available_permits(), 2);
        // With none busy, a drop and a rise are immediate.
        workers.set(capacity(1, long));
        assert_eq!(workers.semaphore.available_permits(), 1);
        workers.set(capacity(3, long));
        assert_eq!(workers.semaphore.available_permits(), 3);
        assert_eq!(workers.get(), capacity(3, long));
        workers.set(None);
        assert_eq!(workers.semaphore.available_permits(), 0);
        assert!(burst(&workers, 10).await < Duration::from_secs(30));
    }

    #[test]
    fn the_load_counts_requests_in_flight() {
        let load = Load::default();
        let a = load.enter();
        let b = load.enter();
        drop(a);
        let c = load.enter();
        drop(b);
        drop(c);
        let counts: Vec<u32> = load.samples().iter().map(|s| s.in_flight).collect();
        assert_eq!(counts, [1, 2, 2]);
    }
}
