//! When a hedge is sent and which answer is taken, on tokio's paused clock.

use crate::support::{builder, get, ms, near, post, warm, warmed, Backend, Step, DELAY};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_fortify::{
    circuit_breaker::CircuitBreakerLayer,
    hedge::HedgeLayer,
    key::HostKey,
    retry::{Idempotent, NoRetry, RetryBudget},
};

#[tokio::test(start_paused = true)]
async fn a_slow_first_answer_is_hedged_and_the_hedge_wins() {
    let backend = Backend::new();
    let svc = warmed(builder(), &backend, "a.test").await;

    backend.script([Step::Ok(Duration::from_secs(10)), Step::Ok(ms(20))]);
    let start = Instant::now();
    let response = svc.oneshot(get("a.test")).await.unwrap();
    assert_eq!(response.body(), "call 7", "the hedge's answer");
    near(start.elapsed(), DELAY + ms(20));
    assert_eq!(backend.calls(), 7);
    // Sent after the host's p95 (tokio's timer rounds up to the millisecond).
    near(backend.last_gap(), DELAY);
    assert_eq!(backend.cancelled(), 1, "the first attempt was dropped");
}

#[tokio::test(start_paused = true)]
async fn the_first_attempt_wins_when_it_answers_before_the_hedge() {
    let backend = Backend::new();
    let svc = warmed(builder(), &backend, "a.test").await;

    backend.script([Step::Ok(ms(30)), Step::Ok(Duration::from_secs(10))]);
    let start = Instant::now();
    let response = svc.oneshot(get("a.test")).await.unwrap();
    assert_eq!(response.body(), "call 6");
    assert_eq!(start.elapsed(), ms(30));
    assert_eq!(backend.calls(), 7, "the hedge was sent at 20 ms");
    assert_eq!(
        backend.cancelled(),
        1,
        "and dropped when the first answered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_sends_no_hedge() {
    let backend = Backend::new();
    let svc = warmed(builder(), &backend, "a.test").await;

    backend.script([Step::Ok(ms(15))]);
    svc.clone().oneshot(get("a.test")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(backend.calls(), 6);
    // An answer at the first poll neither.
    svc.oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 7);
    assert_eq!(backend.cancelled(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_before_min_samples() {
    let backend = Backend::new();
    let layer = builder().min_samples(6).build().unwrap();
    let svc = layer.layer(backend.clone());
    warm(&svc, &backend, "a.test").await;
    assert_eq!(layer.hedge_delay(&"http://a.test/".parse().unwrap()), None);

    backend.script([Step::Ok(Duration::from_secs(1))]);
    svc.clone().oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 6, "five samples: no hedge");
    // The sixth sample gives the host its delay; the host's key is the pool's: its case
    // and a default port written out make no other host.
    assert!(layer
        .hedge_delay(&"http://a.test/".parse().unwrap())
        .is_some());
    assert!(layer
        .hedge_delay(&"http://A.TEST:80/x".parse().unwrap())
        .is_some());
    assert_eq!(layer.hedge_delay(&"https://a.test/".parse().unwrap()), None);
}

#[tokio::test(start_paused = true)]
async fn a_post_without_the_marker_is_never_duplicated() {
    let backend = Backend::new();
    let svc = warmed(builder(), &backend, "a.test").await;

    for _ in 0..3 {
        backend.script([Step::Ok(Duration::from_secs(2))]);
        svc.clone().oneshot(post("a.test")).await.unwrap();
    }
    assert_eq!(backend.calls(), 8, "each POST sent once");

    // With the marker (an idempotency key), it is hedged as a GET is.
    backend.script([Step::Ok(Duration::from_secs(2)), Step::Ok(ms(20))]);
    let mut request = post("a.test");
    request.extensions_mut().insert(Idempotent);
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.body(), "call 10");
    let methods = backend.methods();
    assert_eq!(&methods[8..], [http::Method::POST, http::Method::POST]);
    assert_eq!(backend.bodies()[9], "order", "the hedge carries the body");
}

#[tokio::test(start_paused = true)]
async fn allowed_methods_and_no_retry_decide_as_for_retries() {
    let backend = Backend::new();
    let svc = warmed(
        builder().allowed_methods([http::Method::GET, http::Method::POST]),
        &backend,
        "a.test",
    )
    .await;

    backend.script([Step::Ok(Duration::from_secs(2)), Step::Ok(ms(20))]);
    svc.clone().oneshot(post("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 7, "POST allowed: hedged");

    backend.script([Step::Ok(Duration::from_secs(2))]);
    let mut request = get("a.test");
    request.extensions_mut().insert(NoRetry);
    svc.clone().oneshot(request).await.unwrap();
    assert_eq!(backend.calls(), 8, "NoRetry: sent once");

    backend.script([Step::Ok(Duration::from_secs(2))]);
    svc.oneshot(
        http::Request::put("http://a.test/")
            .body(String::new())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(backend.calls(), 9, "PUT not in the list: sent once");
}

#[tokio::test(start_paused = true)]
async fn no_hedge_when_the_budget_is_spent() {
    // A reserve of one retry (1 per second for 1 s), none earned.
    let budget = RetryBudget::new(Duration::from_secs(1), 1, 0.0).unwrap();
    let backend = Backend::new();
    let svc = warmed(builder().budget(budget.clone()), &backend, "a.test").await;

    backend.script([Step::Ok(ms(500)), Step::Ok(ms(20))]);
    svc.clone().oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 7, "the reserve pays for one hedge");
    assert_eq!(budget.available(), 0);

    backend.script([Step::Ok(ms(500))]);
    svc.clone().oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 8, "spent: no hedge");

    // The withdrawal ages out of the window: hedges again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    backend.script([Step::Ok(ms(500)), Step::Ok(ms(20))]);
    svc.oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 10);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_to_a_breaker_that_is_not_closed() {
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    let handle = breaker.handle();
    let backend = Backend::new();
    // A budget that shows whether a hedge was sent: the breaker below would reject one
    // sent to it as well, so the backend's count alone cannot tell "not sent" from
    // "sent and rejected" (which spends the budget).
    let budget = RetryBudget::new(Duration::from_secs(60), 1, 0.0).unwrap();
    let layer = builder()
        .breaker(handle.clone())
        .budget(budget.clone())
        .build()
        .unwrap();
    let svc = layer.layer(breaker.layer(backend.clone()));
    warm(&svc, &backend, "a.test").await;
    let host = handle
        .get(&HostKey::from_uri(&"http://a.test".parse().unwrap()))
        .expect("the host's breaker");

    // The breaker opens while the first attempt runs: no hedge follows it.
    let reserve = budget.available();
    backend.script([Step::Ok(Duration::from_secs(1))]);
    let call = tokio::spawn(svc.clone().oneshot(get("a.test")));
    tokio::time::sleep(ms(1)).await;
    host.force_open();
    call.await.unwrap().unwrap();
    assert_eq!(backend.calls(), 6, "no hedge to an open breaker");
    assert_eq!(
        budget.available(),
        reserve,
        "no hedge sent: nothing withdrawn"
    );

    // Closed again: hedged.
    host.reset();
    backend.script([Step::Ok(Duration::from_secs(1)), Step::Ok(ms(20))]);
    svc.clone().oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 8);
    assert_eq!(budget.available(), reserve - 1, "the hedge withdrew one");

    // Another host's breaker does not matter.
    warm(&svc, &backend, "b.test").await;
    host.force_open();
    backend.script([Step::Ok(Duration::from_secs(1)), Step::Ok(ms(20))]);
    svc.oneshot(get("b.test")).await.unwrap();
    assert_eq!(backend.calls(), 15);
}

#[tokio::test(start_paused = true)]
async fn hedges_in_flight_are_bounded_per_host() {
    let backend = Backend::new();
    let svc = warmed(builder().max_in_flight(1), &backend, "a.test").await;
    warm(&svc, &backend, "b.test").await;

    // Three slow calls to a.test at once: one hedge (it answers after a second).
    backend.script([Step::Ok(Duration::from_secs(10)); 3]);
    backend.script([Step::Ok(Duration::from_secs(1))]);
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(get("a.test"))))
        .collect();
    tokio::time::sleep(ms(30)).await;
    assert_eq!(backend.calls(), 10 + 3 + 1);

    // b.test has a bound of its own.
    backend.script([Step::Ok(Duration::from_secs(10)), Step::Ok(ms(20))]);
    svc.clone().oneshot(get("b.test")).await.unwrap();
    assert_eq!(backend.calls(), 16);

    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(backend.calls(), 16, "one hedge per request: none later");
    // The hedge ended: room for the next.
    backend.script([Step::Ok(Duration::from_secs(10)), Step::Ok(ms(20))]);
    svc.oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 18);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_gives_back_its_hedge() {
    let backend = Backend::new();
    let svc = warmed(builder().max_in_flight(1), &backend, "a.test").await;

    backend.script([Step::Hang, Step::Hang]);
    let call = svc.clone().oneshot(get("a.test"));
    assert!(tokio::time::timeout(ms(50), call).await.is_err());
    assert_eq!(backend.calls(), 7, "hedged, then dropped");
    assert_eq!(backend.cancelled(), 2, "both attempts cancelled");

    backend.script([Step::Hang, Step::Ok(ms(20))]);
    svc.oneshot(get("a.test")).await.unwrap();
    assert_eq!(backend.calls(), 9, "the place in max_in_flight came back");
}

#[tokio::test(start_paused = true)]
async fn a_hedge_whose_service_is_not_ready_gives_back_its_place() {
    let backend = Backend::new();
    let svc = warmed(builder().max_in_flight(1), &backend, "a.test").await;

    // The first call's hedge is due while the service refuses: not sent.
    backend.script([Step::Ok(Duration::from_secs(10))]);
    let first = tokio::spawn(svc.clone().oneshot(get("a.test")));
    tokio::time::sleep(ms(1)).await;
    backend.refuse(true);
    tokio::time::sleep(DELAY + ms(10)).await;
    backend.refuse(false);
    assert_eq!(backend.calls(), 6, "no hedge while not ready");

    // Its place in `max_in_flight` came back with it: the next call's hedge goes out
    // while the first call still waits.
    backend.script([Step::Ok(Duration::from_secs(10)), Step::Ok(ms(20))]);
    let response = svc.clone().oneshot(get("a.test")).await.unwrap();
    assert_eq!(response.body(), "call 8", "the hedge answered");
    assert!(!first.is_finished());
    first.await.unwrap().unwrap();
    assert_eq!(backend.calls(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_failure_waits_for_the_other_attempt() {
    let backend = Backend::new();
    let svc = warmed(builder(), &backend, "a.test").await;

    // The first attempt fails after the hedge went out: the hedge's answer is taken.
    backend.script([Step::Err(ms(30)), Step::Ok(ms(40))]);
    let response = svc.clone().oneshot(get("a.test")).await.unwrap();
    assert_eq!(response.body(), "call 7");

    // The hedge fails first: the first attempt's answer is taken.
    backend.script([Step::Ok(ms(100)), Step::Err(ms(1))]);
    let response = svc.clone().oneshot(get("a.test")).await.unwrap();
    assert_eq!(response.body(), "call 8");

    // Both fail: the first attempt's failure.
    backend.script([Step::Err(ms(100)), Step::Err(ms(1))]);
    let err = svc.clone().oneshot(get("a.test")).await.unwrap_err();
    assert_eq!(err.to_string(), "call 10");

    // A failure before the delay: returned at once, no hedge.
    backend.script([Step::Err(ms(5))]);
    let err = svc.oneshot(get("a.test")).await.unwrap_err();
    assert_eq!(err.to_string(), "call 12");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(backend.calls(), 12);
}

#[tokio::test(start_paused = true)]
async fn per_host_false_shares_one_delay() {
    let backend = Backend::new();
    let layer = builder().per_host(false).build().unwrap();
    let svc = layer.layer(backend.clone());
    warm(&svc, &backend, "a.test").await;
    assert_eq!(
        layer.hedge_delay(&"http://other.test/".parse().unwrap()),
        Some(crate::support::DELAY)
    );
    backend.script([Step::Ok(Duration::from_secs(1)), Step::Ok(ms(20))]);
    svc.oneshot(get("other.test")).await.unwrap();
    assert_eq!(backend.calls(), 7);
}

#[tokio::test(start_paused = true)]
async fn the_host_header_never_makes_a_host() {
    let backend = Backend::new();
    let layer = builder().build().unwrap();
    let svc = layer.layer(backend.clone());
    // Requests without an authority share one entry, whatever their Host header.
    backend.script([Step::Ok(ms(20)); 5]);
    for i in 0..5 {
        let request = http::Request::get("/")
            .header("host", format!("h{i}.test"))
            .body(String::new())
            .unwrap();
        svc.clone().oneshot(request).await.unwrap();
    }
    assert_eq!(
        layer.hedge_delay(&"/".parse().unwrap()),
        Some(crate::support::DELAY)
    );
    assert_eq!(layer.hedge_delay(&"http://h0.test/".parse().unwrap()), None);
}

#[test]
fn settings_are_validated_by_name() {
    let field = |b: tower_fortify::hedge::HedgeBuilder| b.build().unwrap_err().field();
    assert_eq!(field(HedgeLayer::builder().percentile(0.95)), "percentile");
    assert_eq!(field(HedgeLayer::builder().percentile(100.0)), "percentile");
    assert_eq!(
        field(HedgeLayer::builder().percentile(f64::NAN)),
        "percentile"
    );
    assert_eq!(field(HedgeLayer::builder().min_samples(0)), "min_samples");
    assert_eq!(
        field(HedgeLayer::builder().min_samples(1025)),
        "min_samples"
    );
    assert_eq!(
        field(HedgeLayer::builder().max_in_flight(0)),
        "max_in_flight"
    );
    assert_eq!(field(HedgeLayer::builder().max_keys(0)), "max_keys");
    assert_eq!(field(HedgeLayer::builder().max_keys(4097)), "max_keys");
    assert!(HedgeLayer::builder()
        .percentile(99.9)
        .min_samples(1024)
        .max_keys(4096)
        .build()
        .is_ok());
}

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<HedgeLayer>();
    send_sync::<tower_fortify::hedge::Hedge<Backend>>();
    fn send<T: Send>() {}
    send::<tower_fortify::hedge::future::ResponseFuture<Backend, String>>();
}
