//! Scenario 2: unkeyed POSTs are never sent twice.

use std::collections::BTreeMap;

use crate::{
    calls::{Call, Op, Outcome},
    checks::{assert_everything_returned, count, some_errors, tally},
    harness::{config, harness, CONCURRENCY},
    load::run,
};
use fortify_test_support::flaky::{Faults, FlakyBackend};
use http::StatusCode;
use tower_fortify::classify::{Category, FailureKind};

/// Unkeyed POSTs under refusals, resets (after the request head was read) and 503s: none
/// reaches the server twice; their only failures are the resets (read category, the
/// request may have been processed); refused attempts are retried. Keyed POSTs are the
/// control: they are retried after resets, and the backend sees those duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_posts_are_never_sent_twice() {
    const CALLS: u64 = 2_400;
    let faults = Faults {
        refuse: 0.05,
        reset: 0.05,
        unavailable: 0.05,
        ..Faults::none()
    }
    .seed(0x5eed_0002);
    let backend = FlakyBackend::start(faults).await;
    let h = harness(&backend, config());
    // Three unkeyed POSTs for every keyed one.
    let outcomes = run(&h.stack, &backend, 0..CALLS, CONCURRENCY, |id| {
        Call::new(if id % 4 == 3 { Op::KeyedPost } else { Op::Post }, id)
    })
    .await;
    let stats = backend.stats();
    let (posts, keyed): (Vec<Outcome>, Vec<Outcome>) =
        outcomes.into_iter().partition(|o| o.op == Op::Post);
    println!(
        "unkeyed POSTs: {:?}; keyed POSTs: {:?}; backend {stats:?}",
        tally(&posts),
        tally(&keyed)
    );

    assert_eq!(
        stats.posts_without_key_duplicates,
        0,
        "an unkeyed POST reached the server twice; {:?}",
        tally(&posts)
    );

    // Failures of unkeyed POSTs: only kinds after which the request may have been
    // processed. Connect failures must have been retried instead.
    let failure_kinds: BTreeMap<String, usize> = tally(&posts)
        .into_iter()
        .filter(|(label, _)| label.starts_with("failed"))
        .collect();
    let not_read = count(&posts, |o| {
        o.failed() && o.kind().and_then(FailureKind::category) != Some(Category::Read)
    });
    assert_eq!(
        not_read,
        0,
        "unkeyed POSTs failed with kinds that were safe to retry: {failure_kinds:?}; {:?}",
        some_errors(&posts)
    );
    // Each reset surfaces exactly once: as the failure of an unkeyed POST (not retried),
    // or as a read retry of a keyed POST.
    let read_retries = h
        .metrics
        .counter("fortify_retries_total", &[("category", "read")]);
    let connect_retries = h
        .metrics
        .counter("fortify_retries_total", &[("category", "connect")]);
    // Every call returned a history of its retries (a failure returned as it is after
    // retries carries one too) and none was cancelled: the histories account for every
    // retry the metrics counted.
    let in_histories = |category: Category| {
        posts
            .iter()
            .chain(&keyed)
            .flat_map(|o| o.retries.iter())
            .filter(|c| c.failure_kind().and_then(FailureKind::category) == Some(category))
            .count() as u64
    };
    assert_eq!(
        (
            in_histories(Category::Connect),
            in_histories(Category::Read)
        ),
        (connect_retries, read_retries),
        "retries in the calls' histories (connect, read) against the metrics"
    );
    let closed = |o: &Outcome| o.kind() == Some(FailureKind::ConnectionClosed);
    let posts_closed = count(&posts, closed);
    let keyed_closed = count(&keyed, closed);
    assert!(posts_closed > 0, "no unkeyed POST met a reset: {stats:?}");
    assert_eq!(
        posts_closed as u64 + keyed_closed as u64 + read_retries,
        stats.resets,
        "every reset must surface exactly once: {posts_closed} unkeyed and {keyed_closed} \
         keyed POSTs failed with ConnectionClosed, {read_retries} read retries"
    );
    // No unkeyed POST was retried after anything but a connect failure.
    let bad_retries: Vec<_> = posts
        .iter()
        .flat_map(|o| o.retries.iter())
        .filter(|c| c.failure_kind().and_then(FailureKind::category) != Some(Category::Connect))
        .collect();
    assert!(
        bad_retries.is_empty(),
        "unkeyed POSTs were retried after {bad_retries:?}"
    );
    // Every refused connection was retried, and some unkeyed POSTs succeeded thanks to it.
    assert_eq!(
        connect_retries, stats.refused,
        "every refused connection must have been retried"
    );
    let posts_saved = count(&posts, |o| {
        o.ok() && o.retried_after(FailureKind::ConnectRefused) > 0
    });
    assert!(
        posts_saved > 0,
        "no unkeyed POST was retried after a refused connection and succeeded"
    );
    // 503s of unkeyed POSTs are returned, not retried.
    let posts_503 = count(&posts, |o| {
        o.status() == Some(StatusCode::SERVICE_UNAVAILABLE)
    });
    assert!(posts_503 > 0, "no unkeyed POST met a 503: {stats:?}");
    // The control: keyed POSTs are retried after resets and 503s, the backend sees the
    // duplicates, and every keyed POST succeeds.
    assert!(
        stats.keyed_post_duplicates > 0 && read_retries > 0,
        "keyed POSTs must be retried after resets: {read_retries} read retries, {stats:?}"
    );
    let keyed_failed = count(&keyed, |o| !o.ok());
    assert_eq!(
        keyed_failed,
        0,
        "keyed POSTs must all succeed: {:?}; {:?}",
        tally(&keyed),
        some_errors(&keyed)
    );
    println!(
        "unkeyed POSTs: {posts_closed} failed on resets, {posts_saved} saved by retries \
         after refusals, {posts_503} answered 503; keyed: {read_retries} retried after \
         resets, {} duplicates seen by the backend; {connect_retries} connect retries",
        stats.keyed_post_duplicates
    );
    assert_everything_returned(&h, "unkeyed POSTs");
}
