//! A slow link: the kernel's token-bucket shaper on the namespace's loopback.

use std::time::Duration;

use crate::{
    checks::{check, verdict, Tally},
    client::{base_config, fortified, send_all},
    netns::{run, tc_stat},
    server::server,
    Rt,
};

/// A slow link: the namespace's loopback shaped by the kernel's token bucket (`tc qdisc add
/// dev lo root tbf rate 2mbit`, packets of at most 1,500 bytes), so that the 16 concurrent
/// calls queue behind each other's packets in the kernel and every answer comes tens of
/// milliseconds late (a median of about 50 ms, against about 3 ms with the shaper at
/// 10 Gbit/s, in a debug build). No attempt times out (the attempt timeout is 2 s): nothing
/// fails, nothing is sent twice, and the shaper's own statistics show that it held packets
/// back (`overlimits`).
pub fn slow_link(rt: &Rt) -> Result<(), String> {
    run("ip", &["link", "set", "lo", "mtu", "1500"])?;
    run(
        "tc",
        &[
            "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "2mbit", "burst", "16kb",
            "latency", "1s",
        ],
    )?;
    rt.0.block_on(async {
        let (port, received) = server(true).await;
        let (client, layer) = fortified(base_config());
        let outcomes = send_all(&client, port, 0..600, 16).await;
        let tally = Tally::of(&outcomes);
        let stats = run("tc", &["-s", "qdisc", "show", "dev", "lo"])?;
        let overlimits = tc_stat(&stats, "overlimits");
        let mut took: Vec<Duration> = outcomes.iter().map(|o| o.took).collect();
        took.sort();
        let median = took[took.len() / 2];
        println!(
            "  kernel: {overlimits} packets held back by the shaper ({} dropped)",
            tc_stat(&stats, "dropped")
        );
        println!(
            "  calls: median {:.1} ms, slowest {:.1} ms",
            median.as_secs_f64() * 1e3,
            took[took.len() - 1].as_secs_f64() * 1e3
        );
        tally.print();
        check(
            overlimits > 0,
            format!("the shaper held packets back: {overlimits}"),
        )?;
        check(
            median >= Duration::from_millis(10),
            format!(
                "the link was slow: median call {:.1} ms (at least 10 ms)",
                median.as_secs_f64() * 1e3
            ),
        )?;
        check(
            tally.failed.iter().sum::<u64>() == 0,
            format!("no call failed: {:?}", tally.kinds),
        )?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}
