//! The HTTPS client of `ClientConfig::https`, built with the one call, against real
//! misbehaving servers on 127.0.0.1: every failure kind of a connection's life, and the
//! connection-phase telemetry.

mod connection;
mod failures;
#[cfg(feature = "http2")]
mod http2;
#[cfg(feature = "native-roots")]
mod native_roots;
mod support;
mod telemetry;

use fortify_test_support::{recorded, servers};
