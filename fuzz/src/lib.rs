//! Fuzz targets: each takes what a peer controls (Harness's answers, the
//! bytes in storage, a component's batches, an operator's files) and checks
//! that the code reading it never panics and keeps its promises on it.
//!
//! Inputs are built from raw bytes by [`arbitrary`], around templates of
//! real Harness events and configuration files, so that a short run reaches
//! past the first syntax check. The tests run every target for a few seconds
//! on stable with `arbtest` (`tests/smoke.rs`); `bench/fuzz.sh` runs them at
//! length under libFuzzer (`fuzz/libfuzzer`), through [`Target::run`].

mod inputs;
mod targets;

use arbitrary::Unstructured;

pub use inputs::{BatchInput, EventInput, PageInput, PassInput, TextInput};

/// Every target, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The page parser: a whole answer of Harness, split into events.
    Page,
    /// The event reader and the streaming transform, on one event.
    Event,
    /// A whole pass over fuzzed answers: every batch it emits meets the
    /// host's checks.
    Pass,
    /// The checkpoint reader.
    Checkpoint,
    /// The state, digest and Cloud Run recipe readers.
    State,
    /// The host's checks of a batch from a component.
    Batch,
    /// The TOML configuration reader.
    Config,
    /// The `serve` tenant file reader.
    Tenants,
}

impl Target {
    /// Every target.
    pub const ALL: [Self; 8] = [
        Self::Page,
        Self::Event,
        Self::Pass,
        Self::Checkpoint,
        Self::State,
        Self::Batch,
        Self::Config,
        Self::Tenants,
    ];

    /// The target's name, as `bench/fuzz.sh` and `fuzz/libfuzzer` call it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Event => "event",
            Self::Pass => "pass",
            Self::Checkpoint => "checkpoint",
            Self::State => "state",
            Self::Batch => "batch",
            Self::Config => "config",
            Self::Tenants => "tenants",
        }
    }

    /// Runs the target on an input drawn from `u`; `Err` only when `u` ran
    /// out before an input was drawn.
    pub fn run_unstructured(self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        match self {
            Self::Page => targets::page(&PageInput::draw(u)?),
            Self::Event => targets::event(&EventInput::draw(u)?.render()),
            Self::Pass => targets::pass(&PassInput::draw(u)?),
            Self::Checkpoint => targets::checkpoint(&inputs::checkpoint_bytes(u)?),
            Self::State => targets::state(&inputs::state_bytes(u)?),
            Self::Batch => targets::batch(&BatchInput::draw(u)?),
            Self::Config => targets::config(&TextInput::draw(u, inputs::CONFIG_SEEDS)?.text),
            Self::Tenants => targets::tenants(&TextInput::draw(u, inputs::TENANT_SEEDS)?.text),
        }
        Ok(())
    }

    /// Runs the target on the input `data` makes, as libFuzzer calls it.
    pub fn run(self, data: &[u8]) {
        let _ = self.run_unstructured(&mut Unstructured::new(data));
    }
}
