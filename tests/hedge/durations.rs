//! `min_delay` takes any `Duration`: it floors the delay, and one too long to represent as
//! an instant is a hedge never sent, never a panic.

use crate::support::{builder, get, ms, warm, Backend, Step, DELAY};
use proptest::prelude::*;
use std::time::Duration;
use tower::{Layer, ServiceExt};

/// The largest delay the tracker keeps (nanoseconds in a `u64`, one below "none").
const LONGEST: Duration = Duration::from_nanos(u64::MAX - 1);

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_min_delay_floors_the_delay(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let min_delay = Duration::new(secs, nanos);
        let delay = paused().block_on(async {
            let backend = Backend::new();
            let layer = builder().min_delay(min_delay).build().unwrap();
            let svc = layer.layer(backend.clone());
            warm(&svc, &backend, "a.test").await;
            layer.hedge_delay(&"http://a.test/".parse().unwrap())
        });
        prop_assert_eq!(delay, Some(DELAY.max(min_delay.min(LONGEST))));
    }
}

#[tokio::test(start_paused = true)]
async fn a_delay_past_any_instant_never_hedges() {
    for min_delay in [Duration::MAX, Duration::from_secs(u64::MAX / 2), LONGEST] {
        let backend = Backend::new();
        let svc = builder()
            .min_delay(min_delay)
            .build()
            .unwrap()
            .layer(backend.clone());
        warm(&svc, &backend, "a.test").await;
        backend.script([Step::Hang]);
        let call = svc.oneshot(get("a.test"));
        assert!(tokio::time::timeout(Duration::from_secs(3600), call)
            .await
            .is_err());
        assert_eq!(backend.calls(), 6, "{min_delay:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_floor_hedges_after_the_percentile_alone() {
    let backend = Backend::new();
    let svc = builder()
        .min_delay(Duration::ZERO)
        .build()
        .unwrap()
        .layer(backend.clone());
    backend.script([Step::Ok(Duration::ZERO); 5]);
    for _ in 0..5 {
        svc.clone().oneshot(get("a.test")).await.unwrap();
    }
    // Every sample 0 µs: the hedge goes out as soon as the first attempt is pending.
    backend.script([Step::Ok(ms(10)), Step::Ok(ms(1))]);
    let response = svc.oneshot(get("a.test")).await.unwrap();
    assert_eq!(response.body(), "call 7");
}
