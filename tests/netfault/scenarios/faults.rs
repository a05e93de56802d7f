//! Faults in a steady load: refused and dropped connects, resets on established
//! connections, lost answers.

use std::{sync::atomic::Ordering, time::Duration};

use crate::{
    checks::{check, verdict, Tally},
    client::{base_config, fortified, send_all},
    netns::{counter, table},
    server::server,
    Rt,
};

/// About 3% of connects fail: half refused with a reset, half dropped (connect timeouts).
/// The server closes every connection after its answer, so every request connects.
pub fn connect_faults(rt: &Rt) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(false).await;
        table(
            &["syns", "refused", "dropped"],
            &[
            format!("tcp dport {port} tcp flags syn counter name syns"),
            format!("tcp dport {port} tcp flags syn numgen random mod 1000 < 15 counter name refused reject with tcp reset"),
            format!("tcp dport {port} tcp flags syn numgen random mod 1000 < 15 counter name dropped drop"),
            ],
        );
        let (client, layer) = fortified(base_config());
        let outcomes = send_all(&client, port, 0..3000, 16).await;
        let tally = Tally::of(&outcomes);
        let (syns, refused, dropped) = (counter("syns"), counter("refused"), counter("dropped"));
        println!(
            "  kernel: {syns} connects attempted, {refused} refused with a reset, {dropped} SYNs dropped ({:.2}% of connects failed)",
            (refused + dropped) as f64 * 100.0 / syns.max(1) as f64
        );
        println!(
            "  server: {} requests received for 3000 sent",
            received.total.load(Ordering::Relaxed)
        );
        tally.print();
        check(
            refused > 0 && dropped > 0,
            format!("faults were injected: {refused} refused, {dropped} dropped"),
        )?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}

/// 2% of the requests written on an established connection are answered by the kernel
/// with a reset (the request never reaches the server): GETs and keyed POSTs are retried,
/// POSTs without key fail and are never sent twice.
pub fn established_resets(rt: &Rt) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(true).await;
        table(
            &["resets"],
            &[
            format!("tcp dport {port} ct state established meta length > 120 numgen random mod 1000 < 20 counter name resets reject with tcp reset"),
            ],
        );
        let (client, layer) = fortified(base_config());
        let outcomes = send_all(&client, port, 0..3000, 16).await;
        let tally = Tally::of(&outcomes);
        println!(
            "  kernel: {} requests reset on established connections",
            counter("resets")
        );
        tally.print();
        check(counter("resets") > 0, "resets were injected".into())?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}

/// 2% of the server's answers are dropped: TCP retransmits them after its minimum
/// retransmission timeout (200 ms on Linux), longer than the attempt timeout here, so the
/// attempt times out after the server handled the request. GETs and keyed POSTs are
/// retried; POSTs without key fail, and none reaches the server twice.
pub fn lost_responses(rt: &Rt) -> Result<(), String> {
    rt.0.block_on(async {
        let (port, received) = server(true).await;
        table(
            &["lost"],
            &[
            format!("tcp sport {port} meta length > 400 numgen random mod 1000 < 20 counter name lost drop"),
            ],
        );
        let config = base_config().attempt_timeout(Duration::from_millis(120));
        let (client, layer) = fortified(config);
        let outcomes = send_all(&client, port, 0..3000, 16).await;
        let tally = Tally::of(&outcomes);
        println!("  kernel: {} answers dropped", counter("lost"));
        tally.print();
        check(counter("lost") > 0, "losses were injected".into())?;
        verdict(&tally, &received, &outcomes, &layer)
    })
}
