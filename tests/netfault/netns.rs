//! The kernel's side: a network namespace per scenario, the nftables rules and counters
//! that inject and count the faults, and the statistics of `tc`'s shaper.

use std::{
    io::Write,
    process::{Command, Stdio},
};

pub const TABLE: &str = "fortify";

/// Whether namespaces and nftables can be used here.
pub fn can_run() -> Result<(), String> {
    for (tool, arg) in [("ip", "-V"), ("nft", "--version"), ("tc", "-V")] {
        match Command::new(tool).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "`{tool} {arg}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "`{tool}` cannot be run ({e}); install iproute2 and nftables"
                ))
            }
        }
    }
    let probe = Namespace::new("probe")?;
    drop(probe);
    Ok(())
}

/// A network namespace with its loopback up, deleted on drop.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn new(scenario: &str) -> Result<Self, String> {
        let name = format!("fortify-{}-{}", std::process::id(), scenario);
        run("ip", &["netns", "add", &name])?;
        let ns = Namespace { name };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("`{cmd}` cannot be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Loads an nftables script (inside the namespace this process runs in).
pub fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft rejected the rules: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loads the scenario's table: named `counters`, and `rules` in an input chain that accepts
/// everything else.
pub fn table(counters: &[&str], rules: &[String]) {
    let counters: String = counters
        .iter()
        .map(|name| format!("counter {name} {{}}\n"))
        .collect();
    let rules = rules.join("\n");
    nft(&format!(
        "table inet {TABLE} {{
           {counters}
           chain input {{
             type filter hook input priority 0; policy accept;
             {rules}
           }}
         }}"
    ));
}

/// The packets a named counter has seen.
pub fn counter(name: &str) -> u64 {
    let out = run("nft", &["list", "counter", "inet", TABLE, name]).expect("nft list counter");
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {out}"))
}

/// A counter from `tc -s qdisc show`'s first statistics line: `(dropped 0, overlimits 12 ...`.
pub fn tc_stat(stats: &str, name: &str) -> u64 {
    stats
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .skip_while(|w| *w != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in {stats}"))
}
