//! The commands of `harness-audit`, each on the engine, storage and
//! configuration: `run` (one pass), `backfill` (a fixed range, with
//! progress), `check`, `ledger`, `verify`, and `serve` (many tenants, with metrics).

pub mod backfill;
pub mod check;
pub mod ledger;
pub mod metrics;
pub mod run;
pub mod serve;
pub mod verify;
