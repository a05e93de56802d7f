use super::*;

/// `Timing` through a call's life: the first pending poll, then the answer.
fn answered(timing: Timing, waits: bool) -> (bool, Option<u16>) {
    let (mut timing, mut started) = (timing, None);
    timing.pending(&mut started, waits);
    // Polled again while pending: no second reading.
    let first = started;
    timing.pending(&mut started, waits);
    assert_eq!(started, first, "the clock is read once, when first pending");
    (started.is_some(), timing.sample(started).map(|(_, w)| w))
}

#[test]
fn a_pending_call_takes_the_attempts_clock_read_and_leaves_it_for_the_retry_layer() {
    std::thread::spawn(|| {
        // The attempt inside read the clock at this poll (the preset's timeout).
        let read = Nanos::from_nanos(123_456_789);
        clock::forget();
        clock::leave(read);
        let (mut timing, mut started) = (Timing::Warm, None);
        assert!(timing.may_read(started));
        timing.pending(&mut started, true);
        assert_eq!(started, Some(read), "its own clock read");
        assert_eq!(clock::taken_or_now(), read, "not left for the retry layer");
        // Polled again: no read, and the poll forgets nothing.
        assert!(!timing.may_read(started));
        // Nothing read inside: its own read, left as well.
        clock::forget();
        let (mut timing, mut started) = (Timing::Cold, None);
        timing.pending(&mut started, false);
        let own = started.expect("a cold call is timed");
        assert_ne!(own, read);
        assert_eq!(clock::taken_or_now(), own);
    })
    .join()
    .unwrap();
}

#[test]
fn a_warm_hosts_pending_calls_are_timed_one_in_time_every() {
    // A thread of its own: its draws start at the first.
    std::thread::spawn(|| {
        // Cold: every pending call timed, counting once.
        for _ in 0..3 {
            assert_eq!(answered(Timing::Cold, false), (true, Some(1)));
        }
        // Warm: one in `TIME_EVERY` timed, counting `TIME_EVERY` times; the others read
        // the clock only for a hedge's deadline, and are not recorded. Calls with and
        // without a hedge to follow, in turn (as two hosts' calls would be), are each
        // timed about one in `TIME_EVERY`: a counter would time only one of them.
        assert_eq!(TIME_EVERY, 2);
        let mut timed = [0_u32; 2];
        for i in 0..2_000 {
            let waits = i % 2 == 1;
            match answered(Timing::Warm, waits) {
                (true, Some(2)) => timed[usize::from(waits)] += 1,
                untimed => assert_eq!(untimed, (waits, None)),
            }
        }
        for n in timed {
            assert!(
                (400..=600).contains(&n),
                "{n} of 1,000 timed, expected about 500"
            );
        }
        // Answered at the first poll: as zero, without a clock read; every cold call
        // counting once, a warm one drawn as a pending one is.
        assert_eq!(Timing::Cold.sample(None), Some((Duration::ZERO, 1)));
        let mut recorded = 0;
        for _ in 0..1_000 {
            if let Some(sample) = Timing::Warm.sample(None) {
                assert_eq!(sample, (Duration::ZERO, TIME_EVERY));
                recorded += 1;
            }
        }
        assert!(
            (400..=600).contains(&recorded),
            "{recorded} of 1,000 answers at the first poll recorded, expected about 500"
        );
    })
    .join()
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_calls_slot_is_given_back_at_its_answer_and_when_it_is_dropped() {
    use std::future::Future;
    use tower::{Layer, Service, ServiceExt};

    let layer = crate::hedge::HedgeLayer::builder()
        .min_samples(5)
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|_: Request<String>| async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, std::io::Error>(http::Response::new(()))
    }));
    let get = || Request::get("http://a.test/").body(String::new()).unwrap();
    for _ in 0..5 {
        svc.clone().oneshot(get()).await.unwrap();
    }
    let uri = "http://a.test/".parse().unwrap();
    assert!(layer.hedge_delay(&uri).is_some(), "warm");
    let ticker = &layer.shared().ticker;
    let mut cx = Context::from_waker(std::task::Waker::noop());

    // Answered before its delay: the slot is free before the future is dropped.
    let mut answered = Box::pin(svc.clone().call(get()));
    assert!(answered.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ticker.waiting(), 1);
    let text = format!("{answered:?}");
    assert!(
        text.starts_with("ResponseFuture { tracked: true, hedge_sent: false, started: Some("),
        "{text}"
    );
    let post = Request::post("http://a.test/").body(String::new()).unwrap();
    let text = format!("{:?}", svc.clone().call(post));
    assert!(
        text.starts_with("ResponseFuture { tracked: false"),
        "{text}"
    );
    tokio::time::advance(Duration::from_millis(2)).await;
    assert!(matches!(
        answered.as_mut().poll(&mut cx),
        Poll::Ready(Ok(_))
    ));
    assert_eq!(ticker.waiting(), 0, "kept after the answer");
    drop(answered);

    // Cancelled while it waits for its delay: the drop gives the slot back.
    let mut cancelled = Box::pin(svc.clone().call(get()));
    assert!(cancelled.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ticker.waiting(), 1);
    drop(cancelled);
    assert_eq!(ticker.waiting(), 0, "kept by a dropped call");
}
