//! Metric handles of `ErrorClassify`, registered once per service.

use super::{FailureKind, Stage};
use metrics::{Counter, Histogram};
use std::time::Duration;

pub(crate) const REQUEST_DURATION: &str = "fortify_request_duration_seconds";
pub(crate) const ERRORS: &str = "fortify_errors_total";

#[derive(Debug)]
pub(crate) struct Instruments {
    ok: Histogram,
    failed: [Histogram; FailureKind::ALL.len()],
    errors: [Counter; FailureKind::ALL.len()],
}

impl Instruments {
    pub(crate) fn register(name: &'static str, stage: Stage) -> Self {
        metrics::describe_histogram!(
            REQUEST_DURATION,
            metrics::Unit::Seconds,
            "Duration of calls through ErrorClassify, by outcome (ok or failure kind)"
        );
        metrics::describe_counter!(ERRORS, "Failed calls through ErrorClassify, by kind");
        let stage = stage.as_str();
        let duration = |outcome: &'static str| metrics::histogram!(REQUEST_DURATION, "name" => name, "stage" => stage, "outcome" => outcome);
        Instruments {
            ok: duration("ok"),
            failed: FailureKind::ALL.map(|kind| duration(kind.as_str())),
            errors: FailureKind::ALL.map(|kind| {
                metrics::counter!(
                    ERRORS,
                    "name" => name,
                    "stage" => stage,
                    "kind" => kind.as_str(),
                    "category" => kind.category().as_str()
                )
            }),
        }
    }

    pub(crate) fn ok(&self, elapsed: Option<Duration>) {
        if let Some(elapsed) = elapsed {
            self.ok.record(elapsed);
        }
    }

    pub(crate) fn error(&self, kind: FailureKind, elapsed: Option<Duration>) {
        self.errors[kind.index()].increment(1);
        if let Some(elapsed) = elapsed {
            self.failed[kind.index()].record(elapsed);
        }
    }
}
