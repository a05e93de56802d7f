//! What a scenario asserts: failures by class, and the common verdict.

use std::collections::HashMap;

use tower_fortify::classify::FailureKind;

use crate::{
    client::{Class, Outcome},
    server::Received,
};

/// Failures by class, and the kinds seen.
pub struct Tally {
    pub sent: [u64; 3],
    pub failed: [u64; 3],
    pub kinds: HashMap<FailureKind, u64>,
}

impl Tally {
    pub fn of(outcomes: &[Outcome]) -> Tally {
        let mut t = Tally {
            sent: [0; 3],
            failed: [0; 3],
            kinds: HashMap::new(),
        };
        for o in outcomes {
            let i = Class::of(o.id) as usize;
            t.sent[i] += 1;
            if let Err(kind) = o.result {
                t.failed[i] += 1;
                *t.kinds.entry(kind).or_default() += 1;
            }
        }
        t
    }

    pub fn retryable(&self) -> (u64, u64) {
        (
            self.sent[Class::Get as usize] + self.sent[Class::KeyedPost as usize],
            self.failed[Class::Get as usize] + self.failed[Class::KeyedPost as usize],
        )
    }

    pub fn print(&self) {
        for (class, i) in [("GET", 0), ("POST with key", 1), ("POST without key", 2)] {
            println!(
                "  {class:<17} {:>5} sent, {:>3} failed",
                self.sent[i], self.failed[i]
            );
        }
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by_key(|(k, _)| format!("{k:?}"));
        if !kinds.is_empty() {
            println!("  failures by kind: {kinds:?}");
        }
    }
}

pub fn check(cond: bool, what: String) -> Result<(), String> {
    if cond {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(what)
    }
}

/// The common end of a scenario: steady-state failures of retryable requests at most
/// 0.02%, no POST without key received twice, every pool permit returned.
pub fn verdict(
    tally: &Tally,
    received: &Received,
    outcomes: &[Outcome],
    layer: &tower_fortify::stack::ClientStackLayer,
) -> Result<(), String> {
    let (retryable, failed) = tally.retryable();
    let unkeyed: Vec<u64> = outcomes
        .iter()
        .filter(|o| Class::of(o.id) == Class::UnkeyedPost)
        .map(|o| o.id)
        .collect();
    let duplicated = received.duplicated_unkeyed(&unkeyed);
    let pools = layer.pool_handle().snapshot().total;
    check(
        failed as f64 <= retryable as f64 * 0.0002,
        format!(
            "retryable requests failed: {failed} of {retryable} ({:.3}%, at most 0.02%)",
            failed as f64 * 100.0 / retryable.max(1) as f64
        ),
    )?;
    check(
        duplicated.is_empty(),
        format!(
            "POSTs without key received twice: {} of {} ({duplicated:?})",
            duplicated.len(),
            unkeyed.len()
        ),
    )?;
    check(
        pools.in_use == 0 && pools.waiting == 0,
        format!(
            "pool permits returned: {} in use, {} waiting",
            pools.in_use, pools.waiting
        ),
    )
}
