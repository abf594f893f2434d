//! End-to-end tests: the real `harness-audit` binary against the mock Harness
//! on loopback. Every run also checks that the API key never reaches stdout,
//! stderr or the stored data.

mod backfill;
mod book;
mod chaos;
mod check;
mod collect;
mod completeness;
mod config_ui;
mod content;
mod crashes;
mod credentials;
mod evidence;
mod examples;
mod failures;
mod filters;
mod gcs;
mod layout;
mod limits;
mod logging;
mod monitoring;
mod pacing;
mod runtimes;
mod sandbox;
mod serve;
mod shapes;
mod support;
