//! Every duration setting of the breaker, over arbitrary values (up to `Duration::MAX`):
//! rejected at build time with an `InvalidConfig` naming the field, or taken and run through
//! real calls (a trip, rejections, a probe, a probe timeout, a close, recovery, `Retry-After`)
//! on tokio's paused clock without a panic. A duration too long for a clock means "never".

use crate::support::{assert_rejected, send, Backend, Mode};
use proptest::prelude::*;
use std::time::Duration;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};
use tower_fortify::circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerLayer, State, Window};

/// The longest the test moves the paused clock in one step: tokio's clock must not overflow.
const STEP: Duration = Duration::from_secs(1_000 * 24 * 3600);

/// The settings the scenario needs to know (the builder's defaults, or the value under test).
#[derive(Debug, Clone, Copy)]
struct Known {
    slow_call: Option<Duration>,
    probe_timeout: Duration,
    retry_after_max: Option<Duration>,
}

const DEFAULTS: Known = Known {
    slow_call: None,
    probe_timeout: Duration::from_secs(30),
    retry_after_max: None,
};

fn base() -> CircuitBreakerBuilder {
    CircuitBreakerLayer::builder()
        .window(Window::Count(4))
        .minimum_calls(2)
        .open_duration_jitter(0.0)
        .half_open_successes(1)
}

/// Any duration, the extremes often.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::MAX),
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        (0u64..100_000).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// Builds `builder`: an error must name one of `fields`; a layer goes through the scenario.
fn check(builder: CircuitBreakerBuilder, fields: &[&str], known: Known) {
    let layer = match builder.build_generic() {
        Ok(layer) => layer,
        Err(err) => {
            assert!(fields.contains(&err.field()), "{err}");
            return;
        }
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(scenario(layer, known));
}

/// `d`, at least a microsecond: the breaker's clock counts microseconds, and opens for one
/// at least.
fn micro(d: Duration) -> Duration {
    d.max(Duration::from_micros(1))
}

/// `d`, capped to what one step of the paused clock may take; `None` if it is longer.
fn within_step(d: Duration) -> Option<Duration> {
    (d <= STEP).then_some(d)
}

async fn scenario(layer: tower_fortify::circuit_breaker::GenericCircuitBreakerLayer, k: Known) {
    let handle = layer.handle();
    let backend = Backend::new(Mode::Slow(Duration::from_secs(1), 200));
    let mut svc = layer.layer(backend.clone());

    // Two successes that take 1 s: slow (and so a trip) only if the threshold is at most 1 s.
    send(&mut svc).await.unwrap();
    send(&mut svc).await.unwrap();
    let slow = k.slow_call.is_some_and(|d| d <= Duration::from_secs(1));
    assert_eq!(handle.state() == State::Open, slow, "{k:?}");
    handle.reset();

    // Two failures trip it, for at most the nominal open duration.
    backend.set(Mode::Status(500));
    send(&mut svc).await.unwrap();
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    let wait = handle.retry_in().expect("open");
    assert!(wait <= micro(layer.open_duration(0)), "{wait:?}");
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::Open);
    let Some(wait) = within_step(wait) else {
        // Open for longer than the test can wait: still open a step later.
        advance(STEP).await;
        assert_rejected(&send(&mut svc).await.unwrap_err(), State::Open);
        return;
    };
    advance(wait).await;

    // The first call after the wait is a probe; it hangs, holding the only slot.
    backend.set(Mode::Hang);
    svc.ready().await.unwrap();
    let probe = svc.call(crate::support::request());
    assert_eq!(handle.state(), State::HalfOpen);
    assert_rejected(&send(&mut svc).await.unwrap_err(), State::HalfOpen);
    match within_step(micro(k.probe_timeout)) {
        Some(timeout) => {
            advance(timeout).await;
            // Timed out: the next call reopens the breaker (and is rejected).
            assert_rejected(&send(&mut svc).await.unwrap_err(), State::Open);
            let wait = handle.retry_in().expect("reopened");
            assert!(wait <= micro(layer.open_duration(1)), "{wait:?}");
            let Some(wait) = within_step(wait) else {
                return;
            };
            drop(probe);
            advance(wait).await;
        }
        None => {
            advance(STEP).await;
            assert_rejected(&send(&mut svc).await.unwrap_err(), State::HalfOpen);
            drop(probe);
        }
    }

    // A successful probe closes it.
    backend.set(Mode::Status(200));
    send(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    let next = handle.next_open_duration();
    assert!(next <= layer.open_duration(u32::MAX), "{next:?}");
    advance(STEP).await;
    assert!(handle.next_open_duration() <= next);
    for _ in 0..3 {
        send(&mut svc).await.unwrap();
    }

    // A `Retry-After` far beyond any bound opens it for at most `retry_after_open`'s.
    backend.set(Mode::RetryAfter(503, "99999999999999999999"));
    send(&mut svc).await.unwrap();
    match k.retry_after_max {
        Some(max) => {
            assert_eq!(handle.state(), State::Open);
            let wait = handle.retry_in().expect("open");
            assert!(wait <= micro(max), "{wait:?} > {max:?}");
        }
        None => assert_eq!(handle.state(), State::Closed, "at most one failure of 4"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn open_duration(d in duration()) {
        check(base().open_duration(d), &["open_duration", "open_duration_max"], DEFAULTS);
    }

    #[test]
    fn open_duration_max(d in duration()) {
        check(base().open_duration_max(d), &["open_duration_max"], DEFAULTS);
    }

    #[test]
    fn open_duration_and_its_max(d in duration(), max in duration()) {
        let builder = base().open_duration(d).open_duration_max(max);
        check(builder, &["open_duration", "open_duration_max"], DEFAULTS);
    }

    #[test]
    fn recovery_period(d in duration()) {
        check(base().recovery_period(d), &["recovery_period"], DEFAULTS);
    }

    #[test]
    fn probe_timeout(d in duration()) {
        let known = Known { probe_timeout: d, ..DEFAULTS };
        check(base().probe_timeout(d), &["probe_timeout"], known);
    }

    #[test]
    fn slow_call_duration(d in duration()) {
        let known = Known { slow_call: Some(d), ..DEFAULTS };
        check(base().slow_call_duration(d), &["slow_call_duration"], known);
    }

    #[test]
    fn retry_after_open(d in duration()) {
        let known = Known { retry_after_max: Some(d), ..DEFAULTS };
        check(base().retry_after_open(d), &["retry_after_open"], known);
    }

    #[test]
    fn time_window(d in duration()) {
        check(base().window(Window::Time(d)), &["window"], DEFAULTS);
    }
}
