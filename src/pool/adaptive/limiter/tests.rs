//! The limiter's unit tests: sampling, windows, the layer-wide total, parking.

use super::*;
use std::time::Duration;

fn limiter(config: AdaptiveLimit, maxsize: usize) -> (Limiter, Semaphore) {
    let shared = Shared::new(config, maxsize, "test");
    let limiter = Limiter::new(&shared);
    let semaphore = Semaphore::new(maxsize - limiter.parked());
    (limiter, semaphore)
}

/// `n` calls ending with `outcome`, each of them timed (each success stands for
/// `every` calls in the window, one in a new pool).
fn calls(limiter: &Limiter, semaphore: &Semaphore, n: usize, outcome: Outcome, busy: usize) {
    for _ in 0..n {
        let mut stamp = Stamp::now(limiter);
        limiter.record(&mut stamp, outcome, semaphore, || busy);
        assert!(!stamp.is_set(), "recorded once");
    }
}

/// A new pool times one call in `MIN_EVERY`; at one in `every`, about one call in
/// `every` on a thread is timed, and the window's mean is the timed calls' latency.
#[tokio::test(start_paused = true)]
async fn one_call_in_every_is_timed() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient(), 4);
    assert_eq!(limiter.every(), sampling::MIN_EVERY);
    tokio::time::advance(Duration::from_millis(1)).await;
    let n = 4_000 * 4;
    let mut stamps: Vec<Stamp> = (0..n).map(|_| Stamp::start(Some(&limiter))).collect();
    assert!(stamps.iter().all(|stamp| stamp.is_set()));
    let timed = stamps.iter().filter(|s| **s != Stamp::UNTIMED).count();
    assert!((3_600..=4_400).contains(&timed), "{timed} of {n} timed");
    tokio::time::advance(Duration::from_millis(10)).await;
    for stamp in &mut stamps {
        limiter.record(stamp, Outcome::Success, &semaphore, || 0);
    }
    let samples = limiter.samples.load(Ordering::Relaxed);
    assert_eq!(samples >> SUM_BITS, timed as u64, "timed successes only");
    assert_eq!(
        (samples & SUM_MASK) / timed as u64,
        10_000,
        "the mean is the timed calls' latency, in microseconds"
    );
    // At the window's end, the estimator learns that mean (the first window's mean is
    // its baseline).
    tokio::time::advance(Duration::from_nanos(limiter.shared.window_nanos)).await;
    limiter.maybe_close(limiter.since(Instant::now()), false, &semaphore, || 0);
    assert_eq!(limiter.samples.load(Ordering::Relaxed), 0, "closed");
    let baseline = f64::from_bits(limiter.baseline.load(Ordering::Relaxed));
    assert_eq!(baseline, 10_000.0);
    // An untimed failure counts.
    let mut untimed = Stamp::UNTIMED;
    limiter.record(&mut untimed, Outcome::Overload, &semaphore, || 0);
    assert_eq!(limiter.failures.load(Ordering::Relaxed), 1);
    assert!(!untimed.is_set(), "recorded once");
}

#[test]
fn a_pools_limit_counts_in_the_layers_total_while_the_pool_lives() {
    let shared = Shared::new(AdaptiveLimit::gradient().initial_limit(3), 8, "test");
    let total = || shared.total.load(Ordering::Relaxed);
    let limiter = Limiter::new(&shared);
    assert_eq!(
        (limiter.limit.load(Ordering::Relaxed), limiter.parked()),
        (3, 5)
    );
    assert_eq!(total(), 3);
    let other = Limiter::new(&shared);
    assert_eq!(total(), 6);
    drop(other);
    assert_eq!(total(), 3, "a pool gone");
    // A limit that moves moves the sum by as much, up or down.
    shared.moved(3, 5);
    assert_eq!(total(), 5);
    shared.moved(5, 3);
    assert_eq!(total(), 3);
    // Both say what they hold.
    let text = format!("{shared:?}");
    assert!(
        text.starts_with("Shared { config: AdaptiveLimit {") && text.contains("total: 3"),
        "{text}"
    );
    let text = format!("{limiter:?}");
    assert!(text.starts_with("Limiter { limit: 3, parked: 5"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_window_closes_at_its_full_count_however_short() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient(), 4);
    tokio::time::advance(Duration::from_millis(1)).await;
    let timed = |n: u64| {
        for _ in 0..n {
            limiter.record(
                &mut Stamp::now(&limiter),
                Outcome::Success,
                &semaphore,
                || 0,
            );
        }
        limiter.samples.load(Ordering::Relaxed) >> SUM_BITS
    };
    // No time passes: only the count closes it, at its `FULL_WINDOW`th sample.
    assert_eq!(timed(FULL_WINDOW - 1), FULL_WINDOW - 1, "open");
    assert_eq!(timed(1), 0, "closed");
}

#[tokio::test(start_paused = true)]
async fn a_latency_counts_at_most_16_7_seconds() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient(), 4);
    tokio::time::advance(Duration::from_millis(1)).await;
    let mut stamp = Stamp::now(&limiter);
    tokio::time::advance(Duration::from_secs(20)).await;
    limiter.record(&mut stamp, Outcome::Success, &semaphore, || 0);
    let samples = limiter.samples.load(Ordering::Relaxed);
    assert_eq!(samples >> SUM_BITS, 1, "one sample, in a window still open");
    assert_eq!(samples & SUM_MASK, (1 << 24) - 1, "16.777215 s");
}

/// A thread that calls two pools in turn times both alike: the draw is random, not
/// every `every`-th call (which would time one pool's calls only).
#[test]
fn a_thread_calling_two_pools_in_turn_times_both() {
    let (a, _) = limiter(AdaptiveLimit::gradient(), 4);
    let (b, _) = limiter(AdaptiveLimit::gradient(), 4);
    a.every.store(4, Ordering::Relaxed);
    b.every.store(4, Ordering::Relaxed);
    let mut timed = [0usize; 2];
    for _ in 0..4_000 {
        for (i, limiter) in [&a, &b].into_iter().enumerate() {
            if Stamp::start(Some(limiter)) != Stamp::UNTIMED {
                timed[i] += 1;
            }
        }
    }
    let expected = 4_000 / 4;
    for count in timed {
        assert!(
            count * 10 >= expected * 8 && count * 10 <= expected * 12,
            "{timed:?}, expected about {expected} each"
        );
    }
}

/// A window counts each timed success as `every` calls: at one in 8, two failures
/// beside three timed successes (24 calls) are under the failure threshold (10%);
/// counted once each (or as 3 + 8), they would be 40% (or 15%) of the calls, and the
/// limit would be cut.
#[tokio::test(start_paused = true)]
async fn a_timed_success_counts_as_every_calls() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient().initial_limit(5), 10);
    limiter.every.store(8, Ordering::Relaxed);
    tokio::time::advance(Duration::from_millis(50)).await;
    calls(&limiter, &semaphore, 2, Outcome::Overload, 10);
    calls(&limiter, &semaphore, 2, Outcome::Success, 10);
    tokio::time::advance(Duration::from_millis(50)).await;
    calls(&limiter, &semaphore, 1, Outcome::Success, 10);
    assert_eq!(
        limiter.limit(),
        6,
        "a healthy window: one more, not cut to 4"
    );
    assert_eq!(
        limiter.every(),
        sampling::MIN_EVERY,
        "3 timed calls in a window: one in MIN_EVERY next"
    );
}

#[test]
fn a_fixed_pool_stamps_nothing() {
    assert_eq!(Stamp::start(None), Stamp::NONE);
}

#[test]
fn the_initial_limit_parks_the_rest() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient().initial_limit(3), 10);
    assert_eq!((limiter.limit(), limiter.parked()), (3, 7));
    assert_eq!(semaphore.available(), 3);
    assert_eq!(limiter.shared.total.load(Ordering::Relaxed), 3);
    drop(limiter);
}

#[tokio::test(start_paused = true)]
async fn failures_lower_the_limit_and_park_permits_as_they_come_back() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient(), 10);
    // Four permits in use, six free.
    for _ in 0..4 {
        assert!(semaphore.try_acquire());
    }
    tokio::time::advance(Duration::from_millis(100)).await;
    calls(&limiter, &semaphore, 10, Outcome::Overload, 4);
    assert_eq!(limiter.limit(), 9, "10 * 0.9");
    assert_eq!(limiter.parked(), 1, "a free permit parked at once");
    assert_eq!(semaphore.available(), 5);
    // Not yet due: the window is 100 ms.
    calls(&limiter, &semaphore, 10, Outcome::Overload, 4);
    assert_eq!(limiter.limit(), 9);
    let mut estimate = 9.0f64;
    for _ in 0..30 {
        estimate = (estimate * 0.9).max(1.0);
        tokio::time::advance(Duration::from_millis(100)).await;
        calls(&limiter, &semaphore, 10, Outcome::Overload, 4);
        assert_eq!(limiter.limit(), estimate as usize);
    }
    assert_eq!(limiter.limit(), 1, "down to the floor, never under it");
    // Four permits are still out: nine parked, one short, kept when one comes back.
    assert_eq!(limiter.parked(), 6);
    assert_eq!(semaphore.available(), 0);
    for parked in 7..=9 {
        assert!(limiter.park());
        assert_eq!(limiter.parked(), parked);
    }
    assert!(
        !limiter.park(),
        "the floor's permit goes back to the semaphore"
    );
    assert_eq!(limiter.shared.total.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rising_limit_gives_parked_permits_back() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient().initial_limit(2), 6);
    for limit in 3..=6 {
        tokio::time::advance(Duration::from_millis(100)).await;
        calls(&limiter, &semaphore, 10, Outcome::Success, limit);
        assert_eq!(limiter.limit(), limit);
        assert_eq!(semaphore.available(), limit);
    }
    tokio::time::advance(Duration::from_millis(100)).await;
    calls(&limiter, &semaphore, 10, Outcome::Success, 6);
    assert_eq!(limiter.limit(), 6, "never above maxsize");
    assert_eq!(limiter.parked(), 0);
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_and_short_windows_change_nothing() {
    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient(), 10);
    tokio::time::advance(Duration::from_millis(100)).await;
    calls(&limiter, &semaphore, 50, Outcome::Ignore, 10);
    calls(
        &limiter,
        &semaphore,
        (MIN_SAMPLES - 1) as usize,
        Outcome::Overload,
        10,
    );
    assert_eq!(limiter.limit(), 10);
    calls(&limiter, &semaphore, 1, Outcome::Overload, 10);
    assert_eq!(limiter.limit(), 9, "the tenth call closes the window");
}

/// Callers taking and giving back permits on four threads while the limit moves: no
/// more than `maxsize` permits are ever held at once, and once the callers are done,
/// every permit is either free or parked, as the limit says.
#[test]
fn parking_under_concurrent_releases_loses_no_permit() {
    use std::sync::atomic::AtomicBool;

    let (limiter, semaphore) = limiter(AdaptiveLimit::gradient(), 8);
    let (limiter, semaphore) = (Arc::new(limiter), Arc::new(semaphore));
    let holders = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (limiter, semaphore) = (Arc::clone(&limiter), Arc::clone(&semaphore));
            let (holders, done) = (Arc::clone(&holders), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if semaphore.try_acquire() {
                        let held = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(held <= 8, "{held} permits held");
                        holders.fetch_sub(1, Ordering::SeqCst);
                        if !limiter.park() {
                            semaphore.release();
                        }
                    }
                }
            })
        })
        .collect();
    for i in 0..20_000 {
        limiter.limit.store(1 + i % 8, Ordering::SeqCst);
        limiter.rebalance(&semaphore);
    }
    done.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }
    for limit in [3, 8, 1] {
        limiter.limit.store(limit, Ordering::SeqCst);
        limiter.rebalance(&semaphore);
        assert_eq!(semaphore.available(), limit);
        assert_eq!(limiter.parked(), 8 - limit);
    }
    limiter.limit.store(8, Ordering::SeqCst);
}

#[test]
fn outcomes() {
    assert_eq!(Outcome::of_status(http::StatusCode::OK), Outcome::Success);
    assert_eq!(
        Outcome::of_status(http::StatusCode::NOT_FOUND),
        Outcome::Success
    );
    assert_eq!(
        Outcome::of_status(http::StatusCode::TOO_MANY_REQUESTS),
        Outcome::Overload
    );
    assert_eq!(
        Outcome::of_status(http::StatusCode::BAD_GATEWAY),
        Outcome::Overload
    );
    let timeout = Failure::new(FailureKind::ReadTimeout, std::io::Error::other("slow"));
    assert_eq!(Outcome::of_error(&timeout), Outcome::Overload);
    let certificate = Failure::new(FailureKind::TlsCertificate, std::io::Error::other("bad"));
    assert_eq!(Outcome::of_error(&certificate), Outcome::Ignore);
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(Outcome::of_error(&refused), Outcome::Overload);
}
