//! Test support for harness-audit: a faithful mock of the Harness audit API
//! and a generator of realistic audit events. Used by the end-to-end tests,
//! the demo (`mock-harness` binary) and the benchmarks.

pub mod chaos;
pub mod gcs;
pub mod google;
pub mod isolation;
pub mod mock;
pub mod process;
pub mod secrets;
pub mod seed;
pub mod server;
pub mod stored;

pub use gcs::{Emulator, FaultProxy, ProxyFaults, Recorded, StoredObject};
pub use mock::{
    EdgeAnswer, EdgeLimit, Fault, FaultRates, Freedoms, KeyGrant, LiveInserts, MockHarness,
    OddAnswer, OddContent, OddKind, OversizePages, RecordedRequest, Returned, Visibility, make_key,
    yaml_diff_of,
};
pub use seed::{AuditEvent, SeedSpec, generate};

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
