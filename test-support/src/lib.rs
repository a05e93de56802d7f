//! Test support shared by tower-fortify's integration tests, benches and examples, one
//! module per concern. Not published: tower-fortify names it as a path dev-dependency,
//! which `cargo publish` strips. Unit tests inside `src/` must not use it (they build
//! another copy of the library, whose types do not match).
//!
//! | module | what |
//! |---|---|
//! | [`servers`] | misbehaving servers on 127.0.0.1 and a client stack classifying every stage |
//! | [`bodies`] | one chunked body: streamed, fed by the test, with an exact size, failing |
//! | [`scripted`] | one scripted backend: answers by script, records its calls |
//! | [`delayed`] | a server answering each request after a scripted delay, recording methods |
//! | [`flaky`] | the fault-injecting backend of the demo and the chaos suite |
//! | [`capacity`] | a backend's processing capacity (the flaky backend's overload mode) and its load |
//! | [`recorded`] | a `metrics` snapshot as a list to search |
//! | [`capture`] | a tracing subscriber recording the events of one target |
//! | [`counting_alloc`] | an allocator counting each thread's allocations |
//! | [`pki`] | certificates made with rcgen and TLS servers presenting them |
//! | [`local_tls`] | a local CA and HTTPS servers for the examples |
//! | [`text`] | a `Debug` form or a message holding every expected part |

pub mod bodies;
pub mod capacity;
pub mod capture;
pub mod counting_alloc;
pub mod delayed;
pub mod flaky;
pub mod local_tls;
pub mod pki;
pub mod recorded;
pub mod scripted;
pub mod servers;
pub mod text;
