mod cancellation;
mod contract;
mod durations;
mod keyed;
mod mutants_admission;
mod mutants_lanes;
mod mutants_layer;
mod mutants_state;
mod mutants_transitions;
#[cfg(feature = "metrics")]
mod observability;
mod real_server;
mod state_machine;
mod support;
mod windows;

#[cfg(feature = "tracing")]
use fortify_test_support::capture;
#[cfg(feature = "metrics")]
use fortify_test_support::recorded;
