//! Metric handles of `Hedge`, registered once per layer.

use metrics::Counter;

pub(crate) const SENT: &str = "fortify_hedges_sent_total";
pub(crate) const WON: &str = "fortify_hedges_won_total";

#[derive(Debug)]
pub(crate) struct Instruments {
    sent: Counter,
    won: Counter,
}

impl Instruments {
    pub(crate) fn register(name: &'static str) -> Self {
        metrics::describe_counter!(SENT, "Hedged requests sent (second attempts)");
        metrics::describe_counter!(WON, "Hedged requests whose answer was taken");
        Instruments {
            sent: metrics::counter!(SENT, "name" => name),
            won: metrics::counter!(WON, "name" => name),
        }
    }

    pub(crate) fn sent(&self) {
        self.sent.increment(1);
    }

    pub(crate) fn won(&self) {
        self.won.increment(1);
    }
}
