//! A total outage, bounded by the breaker and the retry budget, and the recovery after it.

use std::time::{Duration, Instant};

use tower_fortify::{circuit_breaker::CircuitBreakerLayer, classify::FailureKind};

use crate::{
    checks::{check, Tally},
    client::{base_config, fortified, send},
    netns::{counter, nft, table, TABLE},
    server::server,
    Rt,
};

/// A total outage: every connect is refused for 2 s, at 200 requests a second, through the
/// whole preset. The kernel counts the connects the client attempted: the breaker opens
/// within the first calls, so the failing host sees a fraction of the requests. After the
/// outage the breaker closes again.
pub fn outage(rt: &Rt) -> Result<(), String> {
    let breaker = CircuitBreakerLayer::builder()
        .open_duration(Duration::from_millis(500))
        .open_duration_max(Duration::from_secs(1));
    total_outage(rt, breaker, 200)
}

/// The same outage with a breaker that never opens (its window is longer than the run), so
/// that only the retry budget bounds the load. The production budget allows, over its 10 s
/// window, 20% of the requests in the window plus a reserve of 10 retries a second: with the
/// 200 healthy requests and the 400 of the outage in the window, at most
/// 400 + 0.2 * 600 + 100 = 620 attempts reach the host, 1.55 per request of the outage.
pub fn outage_budget_only(rt: &Rt) -> Result<(), String> {
    let breaker = CircuitBreakerLayer::builder()
        .window(tower_fortify::circuit_breaker::Window::Count(10_000))
        .minimum_calls(10_000);
    total_outage(rt, breaker, 400 + 600 / 5 + 10 * 10)
}

pub fn total_outage(
    rt: &Rt,
    breaker: tower_fortify::circuit_breaker::CircuitBreakerBuilder,
    max_attempts: u64,
) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(false).await;
        table(
            &["syns"],
            &[
            format!("tcp dport {port} tcp flags syn counter name syns"),
            ],
        );
        let config = base_config().circuit_breaker(breaker);
        let (client, layer) = fortified(config);
        let rate = Duration::from_millis(5); // 200 requests a second
        let phase = |from: u64, count: u64| {
            let client = client.clone();
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                let mut tick = tokio::time::interval(rate);
                for id in from..from + count {
                    tick.tick().await;
                    let client = client.clone();
                    tasks.spawn(async move { send(&client, port, id).await });
                }
                let mut out = Vec::new();
                while let Some(o) = tasks.join_next().await {
                    out.push(o.expect("a request task"));
                }
                out
            }
        };
        // Healthy, then the outage, then the recovery.
        let before = phase(0, 200).await;
        let syns_before = counter("syns");
        nft(&format!(
            "add rule inet {TABLE} input tcp dport {port} tcp flags syn reject with tcp reset"
        ));
        let outage_started = Instant::now();
        let during = phase(200, 400).await;
        let outage_syns = counter("syns") - syns_before;
        nft(&format!("flush chain inet {TABLE} input"));
        let healed = Instant::now();
        let after = phase(600, 600).await;

        let amplification = outage_syns as f64 / 400.0;
        let failed_during = during.iter().filter(|o| o.result.is_err()).count();
        let open = during
            .iter()
            .filter(|o| o.result == Err(FailureKind::CircuitOpen))
            .count();
        let late: Vec<bool> = after
            .iter()
            .filter(|o| o.at >= healed + Duration::from_secs(2))
            .map(|o| o.result.is_err())
            .collect();
        let late_failures = late.iter().filter(|failed| **failed).count();
        println!(
            "  outage of {:.1} s: 400 requests, {outage_syns} connects reached the kernel ({amplification:.2}x), {failed_during} failed ({open} rejected by the open breaker)",
            healed.duration_since(outage_started).as_secs_f64()
        );
        println!(
            "  after the outage: {} of the requests sent from 2 s after healing, {late_failures} failed",
            late.len()
        );
        let mut all = before;
        all.extend(after);
        let tally = Tally::of(&all);
        tally.print();
        check(
            outage_syns <= max_attempts,
            format!(
                "connects during the outage: {outage_syns} for 400 requests (at most {max_attempts}, {:.2}x)",
                max_attempts as f64 / 400.0
            ),
        )?;
        check(
            !late.is_empty() && late_failures == 0,
            format!(
                "the host is served again (an opened breaker closed): {late_failures} failures among {} requests sent 2 s after healing",
                late.len()
            ),
        )?;
        let pools = layer.pool_handle().snapshot().total;
        check(
            pools.in_use == 0 && pools.waiting == 0,
            format!(
                "pool permits returned: {} in use, {} waiting",
                pools.in_use, pools.waiting
            ),
        )?;
        let _ = received;
        Ok(())
    })
}
