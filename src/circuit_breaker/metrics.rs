//! Metric handles of a circuit breaker layer, registered once per layer.

use super::{Outcome, State};
use metrics::{Counter, Gauge};

pub(crate) const STATE: &str = "fortify_circuit_state";
pub(crate) const TRANSITIONS: &str = "fortify_circuit_transitions_total";
pub(crate) const REJECTED: &str = "fortify_circuit_rejected_total";
pub(crate) const CALLS: &str = "fortify_circuit_calls_total";
pub(crate) const KEYS: &str = "fortify_circuit_keys";
pub(crate) const EVICTIONS: &str = "fortify_circuit_evictions_total";

/// The `outcome` label values, indexed by [`outcome_index`].
pub(crate) const OUTCOMES: [&str; 5] = [
    "success",
    "failure",
    "slow_success",
    "slow_failure",
    "ignored",
];

const STATES: usize = State::ALL.len();

#[derive(Debug)]
pub(crate) struct Instruments {
    state: [Gauge; STATES],
    transitions: [[Counter; STATES]; STATES],
    rejected: Counter,
    calls: [Counter; OUTCOMES.len()],
    keys: Option<Gauge>,
    evictions: Option<Counter>,
}

fn outcome_index(outcome: Outcome, slow: bool) -> usize {
    match (outcome, slow) {
        (Outcome::Success, false) => 0,
        (Outcome::Failure, false) => 1,
        (Outcome::Success, true) => 2,
        (Outcome::Failure, true) => 3,
        (Outcome::Ignored, _) => 4,
    }
}

impl Instruments {
    pub(crate) fn register(name: &'static str, keyed: bool) -> Self {
        metrics::describe_gauge!(
            STATE,
            "Circuit breakers in each state (0 or 1 for a single breaker)"
        );
        metrics::describe_counter!(TRANSITIONS, "Circuit breaker state transitions");
        metrics::describe_counter!(REJECTED, "Calls rejected by an open circuit breaker");
        metrics::describe_counter!(
            CALLS,
            "Calls that went through a circuit breaker, by what they counted as"
        );
        let transitions = State::ALL.map(|from| {
            State::ALL.map(|to| {
                if from == to {
                    Counter::noop()
                } else {
                    metrics::counter!(
                        TRANSITIONS,
                        "name" => name,
                        "from" => from.as_str(),
                        "to" => to.as_str()
                    )
                }
            })
        });
        let (keys, evictions) = if keyed {
            metrics::describe_gauge!(KEYS, "Keys a keyed circuit breaker tracks");
            metrics::describe_counter!(
                EVICTIONS,
                "Breakers a keyed circuit breaker evicted to stay within max_keys"
            );
            (
                Some(metrics::gauge!(KEYS, "name" => name)),
                Some(metrics::counter!(EVICTIONS, "name" => name)),
            )
        } else {
            (None, None)
        };
        Instruments {
            state: State::ALL
                .map(|state| metrics::gauge!(STATE, "name" => name, "state" => state.as_str())),
            transitions,
            rejected: metrics::counter!(REJECTED, "name" => name),
            calls: OUTCOMES
                .map(|outcome| metrics::counter!(CALLS, "name" => name, "outcome" => outcome)),
            keys,
            evictions,
        }
    }

    pub(crate) fn entered(&self, state: State) {
        self.state[state.index()].increment(1.0);
    }

    pub(crate) fn left(&self, state: State) {
        self.state[state.index()].decrement(1.0);
    }

    /// A transition; `counted` when the breaker still counts in the state gauge.
    pub(crate) fn transition(&self, from: State, to: State, counted: bool) {
        if counted {
            self.left(from);
            self.entered(to);
        }
        self.transitions[from.index()][to.index()].increment(1);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
    }

    pub(crate) fn call(&self, outcome: Outcome, slow: bool, n: u64) {
        self.calls[outcome_index(outcome, slow)].increment(n);
    }

    pub(crate) fn keys(&self, delta: f64) {
        if let Some(keys) = &self.keys {
            keys.increment(delta);
        }
    }

    pub(crate) fn evicted(&self, n: u64) {
        if let Some(evictions) = &self.evictions {
            evictions.increment(n);
        }
    }
}
