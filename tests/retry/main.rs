mod amplification;
mod conformance;
mod contract;
mod durations;
mod mutants_backoff;
mod mutants_decision;
mod mutants_layer;
mod mutants_policy;
#[cfg(feature = "metrics")]
mod observability;
mod real_server;
mod rules;

#[cfg(feature = "tracing")]
use fortify_test_support::capture;
#[cfg(feature = "metrics")]
use fortify_test_support::recorded;
use fortify_test_support::servers;
