//! Faults from the kernel, not from a backend this project wrote.
//!
//! Each scenario runs in a network namespace of its own, made for it with `ip netns`: the
//! server and the preset client talk over that namespace's loopback, and nftables rules in
//! it reject connects with a reset, drop SYNs (connect timeouts), reset established
//! connections, and drop packets (TCP then retransmits them, as under loss). The kernel
//! counts what it injected; the server counts what it received; the scenario asserts the
//! case study's figures on both.
//!
//! The harness is the test's own (`harness = false`): the outer process makes a namespace
//! per scenario and runs this same binary inside it (`ip netns exec`), where the scenario
//! runs and can change its rules as it goes. It needs root, `ip` (iproute2) and `nft`
//! (nftables); `.ci/run` installs them. Without them it fails under CI (`CI` set) and skips,
//! saying why, elsewhere. The kernel's `netem` qdisc (delay, loss, reordering) is not used:
//! the kernels this runs on are built without it (`CONFIG_NET_SCH_NETEM` is not set), so
//! loss comes from nftables' `drop` and delay from the token-bucket shaper (`tc` qdisc
//! `tbf`, which they have): a slow link, where packets wait in the kernel's queue.
//! Reordering has no other source in the kernel and is not injected.
//!
//! Arguments: a scenario name (or part of one) runs only the matching scenarios; flags
//! that `cargo test` passes (`--nocapture`, ...) are ignored.
//!
//! | file | what |
//! |---|---|
//! | `netns.rs` | namespaces, nftables rules and counters, the shaper's statistics |
//! | `server.rs` | the server that counts what it received |
//! | `client.rs` | the preset stack, the requests and the calls |
//! | `checks.rs` | failures by class, the common verdict |
//! | `scenarios/` | the scenarios, by kind of fault |

mod checks;
mod client;
mod netns;
mod scenarios;
mod server;

use std::process::{Command, ExitCode};

use netns::{can_run, Namespace};
use scenarios::{Scenario, SCENARIOS};

const INNER: &str = "FORTIFY_NETFAULT_SCENARIO";

fn main() -> ExitCode {
    if let Ok(name) = std::env::var(INNER) {
        return inner(&name);
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        println!("netfault: no scenario matches the filter");
        println!("netfault: 0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    if let Err(why) = can_run() {
        if std::env::var_os("CI").is_some() {
            eprintln!("netfault: cannot run under CI: {why}");
            println!("netfault: 0 passed, {} failed", chosen.len());
            return ExitCode::FAILURE;
        }
        println!("netfault: skipped (not under CI): {why}");
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let (mut passed, mut failed) = (0, 0);
    for scenario in chosen {
        println!("\n== netfault::{} ==", scenario.name);
        let ns = Namespace::new(scenario.name);
        let status = ns.and_then(|ns| {
            let status = Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .arg(&exe)
                .env(INNER, scenario.name)
                .status()
                .map_err(|e| format!("ip netns exec: {e}"))?;
            Ok(status.success())
        });
        match status {
            Ok(true) => {
                println!("netfault::{} ... ok", scenario.name);
                passed += 1;
            }
            Ok(false) => {
                println!("netfault::{} ... FAILED", scenario.name);
                failed += 1;
            }
            Err(why) => {
                println!("netfault::{} ... FAILED ({why})", scenario.name);
                failed += 1;
            }
        }
    }
    println!("\nnetfault: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Inside the namespace: runs one scenario on a fresh runtime.
fn inner(name: &str) -> ExitCode {
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .expect("a known scenario");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match (scenario.run)(&Rt(rt)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("netfault::{name}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime a scenario runs on (multi-thread, two workers).
pub struct Rt(pub tokio::runtime::Runtime);
