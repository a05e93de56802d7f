//! Unit tests of crate-private parts of the breaker that the integration suite cannot
//! reach (mutation testing, MUTANTS.md).

use super::{
    admission::Shared,
    config::Config,
    lanes::{lane_count, MAX_LANES},
    local::{current_lane, try_current_lane},
    settings::Settings,
    Window,
};
use std::sync::Arc;

fn shared() -> Shared {
    Shared::new(
        Arc::new(Settings::new(Config::DEFAULT, "mutants", false)),
        None,
    )
}

/// A breaker's `Debug` shows its state and generation (what an operator's log line of a
/// service prints).
#[test]
fn a_breaker_debugs_as_its_state() {
    let shared = shared();
    let closed = format!("{shared:?}");
    assert!(closed.contains("state: Closed"), "{closed}");
    assert!(closed.contains("generation: 0"), "{closed}");
    shared.breaker.force_open();
    let forced = format!("{shared:?}");
    assert!(forced.contains("state: ForcedOpen"), "{forced}");
    assert!(forced.contains("generation: 1"), "{forced}");
}

/// A count ring's `Debug` shows its size and what it holds (crate-private: a breaker's own
/// `Debug` prints the figures, this is for a ring printed alone while debugging the window).
#[test]
fn a_count_ring_debugs_as_its_size_and_figures() {
    let ring = super::window::CountRing::new(5);
    ring.push(true, false);
    ring.push(false, true);
    let shown = format!("{ring:?}");
    assert!(shown.starts_with("CountRing"), "{shown}");
    assert!(shown.contains("size: 5"), "{shown}");
    assert!(
        shown.contains("calls: 2, failures: 1, slow_calls: 1"),
        "{shown}"
    );
}

/// A thread's successes are held back in its lane and enter the count ring a batch at a
/// time, so that a healthy breaker's shared window is not written per call: a batch less
/// one leaves the ring empty (read without flushing the lane), the last one of the batch
/// moves them all in.
#[test]
fn successes_enter_the_count_ring_a_batch_at_a_time() {
    let config = Config {
        window: Window::Count(10_000),
        ..Config::DEFAULT
    };
    let shared = Shared::new(Arc::new(Settings::new(config, "mutants", false)), None);
    let breaker = &shared.breaker;
    // 10 000 calls over at most 17 lanes: a lane holds back up to 32 successes.
    assert_eq!(breaker.batch, 32);
    // Lane 0: this breaker is the test's own, so the test thread is its only writer.
    for _ in 0..31 {
        breaker.record_success(0, 0, None);
    }
    assert_eq!(
        breaker.figures(None).calls,
        0,
        "a success entered the ring alone"
    );
    breaker.record_success(0, 0, None);
    assert_eq!(breaker.figures(None).calls, 32);
}

/// A thread that exits gives its owned lane back, and a later thread claims it: of many
/// threads made one after another, more get an owned lane than there are owned lanes
/// (other tests' threads hold lanes only while they run).
#[test]
fn an_exited_threads_owned_lane_is_claimed_again() {
    let owned = lane_count();
    let claimed = (0..4 * MAX_LANES)
        .filter(|_| std::thread::spawn(current_lane).join().unwrap() < owned)
        .count();
    assert!(
        claimed > owned,
        "{claimed} of {} threads got one of the {owned} owned lanes",
        4 * MAX_LANES
    );
}

/// Every breaker has one owned lane per CPU and one more (a runtime's workers and the thread
/// that blocks on its main future), at least two and at most `MAX_LANES`.
#[test]
fn there_is_an_owned_lane_per_cpu_and_one_more() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(lane_count(), (cpus + 1).clamp(2, MAX_LANES));
}

/// A live thread's lane, as a result is recorded with it, is the lane it claimed (`None`
/// only while the thread exits and its lane is gone): three threads alive at once, so at
/// most one of them can hold any one owned lane.
#[test]
fn a_live_thread_records_in_its_own_lane() {
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let recorded = try_current_lane();
                barrier.wait();
                (recorded, current_lane())
            })
        })
        .collect();
    for thread in threads {
        let (recorded, claimed) = thread.join().unwrap();
        assert_eq!(recorded, Some(claimed));
    }
}

/// A ticket's `Debug` shows its generation and whether it is a probe's.
#[test]
fn a_ticket_debugs_as_its_generation_and_probe() {
    assert_eq!(
        format!("{:?}", super::Ticket::none()),
        "Ticket { generation: 0, probe: false, .. }"
    );
}
