//! Metric handles of the client's connector, registered once when the client is built.

use crate::classify::{FailureKind, Stage};
use metrics::{Counter, Histogram};
use std::time::Duration;

pub(crate) const CONNECTION_SETUP: &str = "fortify_connection_setup_seconds";
pub(crate) const CONNECTIONS_OPENED: &str = "fortify_connections_opened_total";

/// The phases of a connection's set-up, in order.
pub(crate) const PHASES: [Stage; 3] = [Stage::Resolve, Stage::Connect, Stage::TlsHandshake];

#[derive(Debug)]
struct Phase {
    ok: Histogram,
    failed: [Histogram; FailureKind::ALL.len()],
}

#[derive(Debug)]
pub(crate) struct Instruments {
    phases: [Phase; PHASES.len()],
    opened: Counter,
}

impl Instruments {
    pub(crate) fn register(name: &'static str) -> Self {
        metrics::describe_histogram!(
            CONNECTION_SETUP,
            metrics::Unit::Seconds,
            "Duration of each phase of a new connection (resolve, connect, tls_handshake), by outcome"
        );
        metrics::describe_counter!(
            CONNECTIONS_OPENED,
            "Connections opened by the client (set-up finished, handed to its pool)"
        );
        Instruments {
            phases: PHASES.map(|stage| {
                let stage = stage.as_str();
                let histogram = |outcome: &'static str| {
                    metrics::histogram!(CONNECTION_SETUP, "name" => name, "stage" => stage, "outcome" => outcome)
                };
                Phase {
                    ok: histogram("ok"),
                    failed: FailureKind::ALL.map(|kind| histogram(kind.as_str())),
                }
            }),
            opened: metrics::counter!(CONNECTIONS_OPENED, "name" => name),
        }
    }

    pub(crate) fn phase(&self, stage: Stage, outcome: Result<(), FailureKind>, elapsed: Duration) {
        let Some(phase) = PHASES.iter().position(|s| *s == stage) else {
            return;
        };
        let phase = &self.phases[phase];
        match outcome {
            Ok(()) => phase.ok.record(elapsed),
            Err(kind) => phase.failed[kind.index()].record(elapsed),
        }
    }

    pub(crate) fn opened(&self) {
        self.opened.increment(1);
    }
}
