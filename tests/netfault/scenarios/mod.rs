//! The scenarios: each runs inside a namespace of its own (see `main.rs`).

mod explained;
mod faults;
mod outage;
mod slow_link;

use crate::Rt;

use explained::explained;
use faults::{connect_faults, established_resets, lost_responses};
use outage::{outage, outage_budget_only};
use slow_link::slow_link;

/// A scenario: its name and its body, run inside its namespace.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(&Rt) -> Result<(), String>,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "connect_faults",
        run: connect_faults,
    },
    Scenario {
        name: "established_resets",
        run: established_resets,
    },
    Scenario {
        name: "lost_responses",
        run: lost_responses,
    },
    Scenario {
        name: "slow_link",
        run: slow_link,
    },
    Scenario {
        name: "outage",
        run: outage,
    },
    Scenario {
        name: "outage_budget_only",
        run: outage_budget_only,
    },
    Scenario {
        name: "explained",
        run: explained,
    },
];
