//! Metric handles of `ErrorClassify`, registered once per service.

use super::{FailureKind, Stage};
use crate::internal::lazy::Lazy;
use metrics::{Counter, Histogram};
use std::{cell::Cell, time::Duration};

pub(crate) const REQUEST_DURATION: &str = "fortify_request_duration_seconds";
pub(crate) const ERRORS: &str = "fortify_errors_total";

#[derive(Debug)]
pub(crate) struct Instruments {
    ok: Histogram,
    failed: [Histogram; FailureKind::ALL.len()],
    errors: [Counter; FailureKind::ALL.len()],
    /// Whether the duration histogram reaches a recorder (fixed when it is registered). The
    /// error counters may reach one when it does not (a counters-only recorder, or a filter
    /// on the histogram's name), and `metrics` cannot tell a live counter from a no-op one,
    /// so errors are counted either way.
    live: bool,
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
        let ok = duration("ok");
        // Zero samples: the value is computed (and `live` set) only if a recorder holds the
        // handle.
        let live = Cell::new(false);
        ok.record_many(
            Lazy(|| {
                live.set(true);
                0.0
            }),
            0,
        );
        Instruments {
            ok,
            live: live.get(),
            failed: FailureKind::ALL.map(|kind| duration(kind.as_str())),
            errors: FailureKind::ALL.map(|kind| {
                metrics::counter!(
                    ERRORS,
                    "name" => name,
                    "stage" => stage,
                    "kind" => kind.as_str(),
                    "category" => kind.category_label()
                )
            }),
        }
    }

    /// Whether a recorder took the duration histogram when it was registered: whether a
    /// call's duration is worth a clock read.
    pub(crate) fn live(&self) -> bool {
        self.live
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
