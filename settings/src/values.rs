//! The source's defaults and ranges: the core enforces them, every wrapper
//! (the host, the composition runners) fills its unset settings with them,
//! and the table shows them.

use std::ops::RangeInclusive;

/// Largest `pageSize` the list endpoint accepts (`@Max(100)`).
pub const MAX_PAGE_SIZE: u32 = 100;

/// The values each numeric setting accepts, shared by every wrapper like the
/// defaults: the core's `Settings::validate` enforces them, and the table
/// shows them.
pub mod ranges {
    use super::{MAX_PAGE_SIZE, RangeInclusive};

    /// Events per page.
    pub const PAGE_SIZE: RangeInclusive<u32> = 1..=MAX_PAGE_SIZE;
    /// Look-back of the first pass, in minutes (two years).
    pub const START_MINUTES_BACK: RangeInclusive<u32> = 0..=1_051_200;
    /// Retries per request.
    pub const MAX_RETRIES: RangeInclusive<u32> = 0..=20;
    /// First backoff delay, in milliseconds.
    pub const RETRY_BASE_MS: RangeInclusive<u32> = 0..=60_000;
    /// Total retry wait per pass, in seconds (one day).
    pub const RETRY_BUDGET_SECS: RangeInclusive<u32> = 0..=86_400;
    /// Requests per minute; 0 turns pacing off.
    pub const MAX_REQUESTS_PER_MINUTE: RangeInclusive<u32> = 0..=100_000;
    /// Settle lag and overlap, in seconds (one week).
    pub const WINDOW_SECS: RangeInclusive<u32> = 0..=7 * 24 * 3600;
    /// Events per batch: a batch is one object, and holds whole pages.
    pub const BATCH_MAX_EVENTS: RangeInclusive<u32> = 1..=20_000;
    /// Interval between reconciliations, in seconds (one week).
    pub const RECONCILE_INTERVAL_SECS: RangeInclusive<u32> = 1..=7 * 24 * 3600;
    /// Look-back of reconciliation, in hours (30 days): the ledger keeps the
    /// ids of every event stored within it. Also of its recent tier.
    pub const RECONCILE_HOURS: RangeInclusive<u32> = 0..=720;
}

/// Defaults of the source's settings, shared by every wrapper (the Rust
/// host's configuration and the command composition's runner) so they cannot drift apart.
pub mod defaults {
    /// Harness API base.
    pub const API_BASE: &str = "https://app.harness.io";
    /// Events per page (the Cloud Run recipe's default).
    pub const PAGE_SIZE: u32 = 50;
    /// Look-back of the first pass, in minutes.
    pub const START_MINUTES_BACK: u32 = 60;
    /// Retries per request.
    pub const MAX_RETRIES: u32 = 5;
    /// First backoff delay, in milliseconds.
    pub const RETRY_BASE_MS: u32 = 1000;
    /// Total retry wait per pass, in seconds.
    pub const RETRY_BUDGET_SECS: u32 = 300;
    /// Request rate cap: 95% of Harness's 400 external calls a minute per
    /// key, the rest a margin for the edge's clock.
    pub const MAX_REQUESTS_PER_MINUTE: u32 = 380;
    /// Settle lag: the last seconds before now, where events are still
    /// arriving. Later ones are read by the overlap and by reconciliation.
    pub const SETTLE_LAG_SECS: u32 = 5;
    /// Overlap between windows: every window reads the events up to two
    /// minutes late again; reconciliation finds later ones by their counts.
    pub const OVERLAP_SECS: u32 = 120;
    /// Events per batch: checkpoint work is per batch, so larger batches
    /// drain a backlog faster; a crash re-reads at most one batch.
    pub const BATCH_MAX_EVENTS: u32 = 1000;
    /// Interval between reconciliations, in seconds.
    pub const RECONCILE_INTERVAL_SECS: u32 = 3600;
    /// Look-back of reconciliation, in hours: Harness can make events
    /// visible hours after their timestamp.
    pub const RECONCILE_HOURS: u32 = 48;
    /// Interval between checks of the recent hours, in seconds.
    pub const RECONCILE_RECENT_INTERVAL_SECS: u32 = 300;
    /// Hours counted as recent: events late by minutes are found within
    /// [`RECONCILE_RECENT_INTERVAL_SECS`], not within the hour.
    pub const RECONCILE_RECENT_HOURS: u32 = 3;
}

/// Values of `staticFilter`.
pub const STATIC_FILTERS: [&str; 2] = ["EXCLUDE_LOGIN_EVENTS", "EXCLUDE_SYSTEM_EVENTS"];
