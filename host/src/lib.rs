//! The reference host for the `harness:audit` source component.
//!
//! The component holds all Harness logic; this crate gives it a sandbox
//! (WASI with nothing granted, wasi:http behind an [`engine::policy::EgressPolicy`]
//! that adds the API key), durable storage and a checkpoint store.
//!
//! - [`config`]: every setting, read from the environment, flags, a TOML file
//!   or a `serve` tenant file, and validated once;
//! - [`engine`]: wasmtime, the sandbox and the collection pass;
//! - [`storage`]: sinks (local, stdout, GCS), the checkpoint, journal and lease;
//! - [`evidence`]: digests of what was stored, chained and signed, and
//!   the checks of `verify`;
//! - [`commands`]: `run`, `backfill`, `check`, `ledger`, `serve` and its metrics;
//! - [`pause_points`]: the crash tests' hook at each step of the commit protocol.
//!
//! ```no_run
//! use std::sync::Arc;
//! use harness_audit::config::{RawConfig, Validate as _};
//! use harness_audit::engine::{Collector, EMBEDDED_COMPONENT, PassThread};
//! use harness_audit::storage::LocalDirSink;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RawConfig::from_env().validate()?;
//! let collector = Collector::new(EMBEDDED_COMPONENT)?;
//! let store = Arc::new(LocalDirSink::new("./data", &config.output.prefix, &config.output.state_key));
//! let summary = collector
//!     .run_pass(&config, store.clone(), store, (PassThread::Shared, None), None)
//!     .await?;
//! println!("{} events", summary.stored.events);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod commands;
pub mod config;
pub mod engine;
pub mod evidence;
pub mod pause_points;
pub mod random;
pub mod storage;
pub mod time;
