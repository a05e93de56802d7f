//! Dropping calls and probes at random, from several tasks on a multi-threaded runtime, never
//! leaks a probe slot nor lets more than K probes run at once.
//!
//! This test uses the real clock (a paused clock needs a single-threaded runtime) but never
//! sleeps while stressing: backends and callers only yield. The open duration is 20 µs.

use http::{Request, Response};
use std::{
    future::{poll_fn, Future},
    io,
    pin::{pin, Pin},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tower::{Layer, Service, ServiceExt};
use tower_fortify::{
    circuit_breaker::{is_probe_call, CircuitBreakerLayer, State, Window},
    BoxError,
};

const K: u32 = 2;
const TASKS: u64 = 8;
const CALLS_PER_TASK: u64 = 20_000;

/// xorshift64*: the tests need cheap randomness, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Counts the probes running in the backend, from its `call` to its future's end, and the
/// probes whose future was dropped before it answered.
struct ProbeGuard {
    probes: Arc<Probes>,
    /// Set by the backend's future just before it answers.
    completed: bool,
}

#[derive(Default)]
struct Probes {
    running: AtomicUsize,
    max: AtomicUsize,
    total: AtomicUsize,
    /// Probes cancelled: their future dropped unfinished.
    cancelled: AtomicUsize,
}

impl ProbeGuard {
    fn new(probes: &Arc<Probes>) -> Self {
        let now = probes.running.fetch_add(1, Ordering::SeqCst) + 1;
        probes.max.fetch_max(now, Ordering::SeqCst);
        probes.total.fetch_add(1, Ordering::SeqCst);
        ProbeGuard {
            probes: Arc::clone(probes),
            completed: false,
        }
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.probes.running.fetch_sub(1, Ordering::SeqCst);
        if !self.completed {
            self.probes.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Answers after a few yields; fails half the time while `failing`.
struct Flaky {
    probes: Arc<Probes>,
    failing: Arc<AtomicBool>,
    rng: Rng,
}

impl Service<Request<()>> for Flaky {
    type Response = Response<()>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<()>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        // The breaker says which calls are probes; the backend counts them itself.
        let guard = is_probe_call().then(|| ProbeGuard::new(&self.probes));
        let yields = self.rng.below(4);
        let fail = self.failing.load(Ordering::SeqCst) && self.rng.below(2) == 0;
        Box::pin(async move {
            let mut guard = guard;
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            if let Some(guard) = &mut guard {
                guard.completed = true;
            }
            if fail {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused).into())
            } else {
                Ok(Response::new(()))
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_drops_never_leak_probe_slots_nor_exceed_k() {
    let layer = CircuitBreakerLayer::builder()
        .window(Window::Count(20))
        .minimum_calls(5)
        .open_duration(Duration::from_micros(20))
        .open_duration_multiplier(1.0)
        .open_duration_jitter(0.5)
        .half_open_max_probes(K)
        .half_open_successes(3)
        .build_generic()
        .unwrap();
    let handle = layer.handle();
    let probes = Arc::new(Probes::default());
    let failing = Arc::new(AtomicBool::new(true));

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let mut svc = layer.layer(Flaky {
                probes: Arc::clone(&probes),
                failing: Arc::clone(&failing),
                rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (task + 1)),
            });
            tokio::spawn(async move {
                let mut rng = Rng(0xdead_beef ^ (task + 1) << 7);
                let mut rejected = 0u64;
                for _ in 0..CALLS_PER_TASK {
                    svc.ready().await.unwrap();
                    let mut call = pin!(svc.call(Request::new(())));
                    let polls = rng.below(4);
                    if rng.below(2) == 0 {
                        // Poll a few times, then drop it, finished or not (the backend
                        // counts the probes cancelled unfinished).
                        for _ in 0..polls {
                            let poll = poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
                            if poll.is_ready() {
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                    } else if let Err(err) = call.await {
                        rejected += u64::from(crate::support::open_of(&err).is_some());
                    }
                }
                rejected
            })
        })
        .collect();
    let mut rejected = 0;
    for task in tasks {
        rejected += tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the stress finishes")
            .unwrap();
    }

    let max = probes.max.load(Ordering::SeqCst);
    let cancelled = probes.cancelled.load(Ordering::SeqCst);
    eprintln!(
        "probes {} (max {max} at once), cancelled {cancelled}, rejected {rejected}",
        probes.total.load(Ordering::SeqCst)
    );
    assert!(max <= K as usize, "{max} probes ran at once, K = {K}");
    assert!(
        probes.total.load(Ordering::SeqCst) > 500,
        "too few probes for a meaningful test: {}",
        probes.total.load(Ordering::SeqCst)
    );
    // Probes really were dropped mid-call, not only calls that had already answered.
    assert!(
        cancelled > 0 && rejected > 0,
        "probes cancelled {cancelled}, rejected {rejected}"
    );
    // Every future is gone: no slot may still be taken.
    assert_eq!(
        handle.probes_in_flight(),
        0,
        "a dropped probe kept its slot"
    );
    assert_eq!(probes.running.load(Ordering::SeqCst), 0);

    // Not stuck: with a healthy backend the breaker closes within a few open durations.
    failing.store(false, Ordering::SeqCst);
    let mut svc = layer.layer(Flaky {
        probes: Arc::clone(&probes),
        failing: Arc::clone(&failing),
        rng: Rng(7),
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.state() != State::Closed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck in {:?}",
            handle.state()
        );
        let _ = (&mut svc).oneshot(Request::new(())).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
