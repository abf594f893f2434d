//! The per-instance store state: WASI with nothing granted, wasi:http behind
//! the egress policy, memory limits, and `emit`, which checks each batch
//! against the [`BatchRules`] and hands it to the storage [`Pipeline`].
//!
//! A failure of `emit` that ends the pass (a refused batch, a quota, a store
//! that failed) ends the component's call with a trap carrying the
//! [`RunError`], so the collector receives the error as it is; only a
//! shutdown is told to the component as `unavailable`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::batch_rules::{BatchRules, check_batch};
use crate::engine::bindings::harness::audit::types as wit_types;
use crate::engine::bindings::harness::audit::{emit, types};
use crate::engine::bindings::{Batch, EmitError, Quarantine};
use crate::engine::error::{EmitFailure, RunError};
use crate::engine::limits::{PassGuard, SandboxLimits, Stopped};
use crate::engine::policy::EgressPolicy;
use crate::storage::{BatchMeta, ObjectKind, Pipeline, Written, content_sha256};
use crate::time::{now_ms, rfc3339_ms};
use harness_audit_core::event::Reason;

/// Guest stderr kept for error reports (panic messages).
const GUEST_STDERR_BYTES: usize = 64 * 1024;

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("policy", &self.policy)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

/// State of one component instance.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    policy: EgressPolicy,
    /// Memory and instance limits.
    pub limits: SandboxLimits,
    /// Time, CPU and storage limits of the pass.
    pub guard: PassGuard,
    /// What every batch is checked against.
    rules: BatchRules,
    /// Receives emitted batches.
    pub pipeline: Pipeline,
    stderr: MemoryOutputPipe,
}

impl HostState {
    /// A sandbox that grants no environment, arguments, files or sockets.
    pub fn new(
        policy: EgressPolicy,
        pipeline: Pipeline,
        max_memory_bytes: usize,
        rules: BatchRules,
        guard: PassGuard,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            policy,
            limits: SandboxLimits::new(max_memory_bytes),
            guard,
            rules,
            pipeline,
            stderr,
        }
    }

    /// What the guest wrote to stderr (panic messages), lossily decoded.
    pub fn guest_stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.policy,
        }
    }
}

impl types::Host for HostState {
    fn convert_emit_error(&mut self, failure: EmitFailure) -> wasmtime::Result<EmitError> {
        match failure {
            EmitFailure::ShuttingDown => Ok(EmitError::Unavailable(
                "the host is shutting down; this batch is read again by the next pass".into(),
            )),
            EmitFailure::Ends(error) => {
                if let RunError::Storage(e) = &error {
                    tracing::error!(stage = "sink", error_kind = "store_failed", error = %e, "batch not committed");
                }
                Err(wasmtime::Error::new(error))
            }
        }
    }
}

impl emit::Host for HostState {
    async fn emit(&mut self, batch: Batch) -> Result<(), EmitFailure> {
        if self.guard.stop_requested() {
            self.guard.stopped = Some(Stopped::Shutdown);
            return Err(EmitFailure::ShuttingDown);
        }
        check_batch(&batch, &self.rules, now_ms())?;
        let quarantine = batch.quarantine.as_ref().map(QuarantineObject::of);
        let bytes = batch.lines.len() + quarantine.as_ref().map_or(0, |q| q.lines.len());
        self.guard.admit(bytes)?;
        let window = (batch.window_start_ms, batch.window_end_ms);
        // The quarantine first, with the checkpoint that records it alone:
        // a crash before the lines are durable reads them again, not it.
        if let (Some(q), Some(object)) = (&batch.quarantine, quarantine) {
            let meta = object.meta(window);
            let written = self
                .pipeline
                .store(&meta, &object.lines, q.checkpoint.clone())
                .await?;
            self.quarantined(&object, q, written);
        }
        if batch.event_count == 0 {
            self.pipeline.save_checkpoint(batch.checkpoint).await?;
            return Ok(());
        }
        let meta = BatchMeta {
            kind: ObjectKind::Batch,
            content_sha256: content_sha256(&batch.lines),
            event_count: batch.event_count,
            first_event_ms: batch.first_event_ms,
            last_event_ms: batch.last_event_ms,
            window_start_ms: window.0,
            window_end_ms: window.1,
            collected_at: SystemTime::now(),
        };
        let written = self
            .pipeline
            .store(&meta, &batch.lines, batch.checkpoint)
            .await?;
        let stats = &mut self.pipeline.stats;
        stats.events += u64::from(batch.event_count);
        let object = match written {
            Written::Created(name) => {
                stats.objects += 1;
                name
            }
            Written::AlreadyPresent(name) => {
                stats.already_present += 1;
                tracing::warn!(stage = "sink", object = %name, "batch was already stored; not written again");
                name
            }
            Written::Streamed => "stdout".into(),
        };
        tracing::info!(
            stage = "sink",
            object = %object,
            events = batch.event_count,
            first_event = %rfc3339_ms(batch.first_event_ms),
            last_event = %rfc3339_ms(batch.last_event_ms),
            "batch stored"
        );
        Ok(())
    }
}

impl HostState {
    /// Counts a stored quarantine and says where it went and why, once per reason.
    fn quarantined(&mut self, object: &QuarantineObject, q: &Quarantine, written: Written) {
        let stats = &mut self.pipeline.stats;
        let name = match written {
            Written::Created(name) => {
                stats.quarantine_objects += 1;
                name
            }
            Written::AlreadyPresent(name) => {
                stats.already_present += 1;
                name
            }
            Written::Streamed => unreachable!("a quarantine is always an object"),
        };
        for (reason, count) in &object.reasons {
            *stats.quarantined.entry(reason).or_default() += count;
            let detail = q
                .events
                .iter()
                .find(|e| quarantine_reason(e.reason).name() == *reason)
                .map_or("", |e| e.detail.as_str());
            tracing::warn!(
                stage = "quarantine",
                object = %name,
                reason = *reason,
                events = count,
                detail,
                "events the component could not read or shape were kept byte for byte in the quarantine, \
                 beside the data (the first one's problem is in `detail`)"
            );
        }
    }
}
/// A quarantine's object: its lines (each event as Harness sent it, one a
/// line), where each sits, and its events by reason.
struct QuarantineObject {
    lines: Vec<u8>,
    at_ms: Vec<u64>,
    reasons: BTreeMap<&'static str, u64>,
}

impl QuarantineObject {
    fn of(q: &Quarantine) -> Self {
        let mut lines = Vec::with_capacity(q.events.iter().map(|e| e.bytes.len() + 1).sum());
        let mut reasons = BTreeMap::new();
        for event in &q.events {
            lines.extend_from_slice(&event.bytes);
            lines.push(b'\n');
            *reasons
                .entry(quarantine_reason(event.reason).name())
                .or_default() += 1;
        }
        Self {
            lines,
            at_ms: q.events.iter().map(|e| e.at_ms).collect(),
            reasons,
        }
    }

    fn meta(&self, (window_start_ms, window_end_ms): (u64, u64)) -> BatchMeta {
        let first = self.at_ms.iter().min().copied().unwrap_or(window_start_ms);
        let last = self.at_ms.iter().max().copied().unwrap_or(window_start_ms);
        BatchMeta {
            kind: ObjectKind::Quarantine {
                at_ms: self.at_ms.clone(),
                reasons: self.reasons.clone(),
            },
            content_sha256: content_sha256(&self.lines),
            event_count: u32::try_from(self.at_ms.len()).expect("checked against BATCH_MAX_EVENTS"),
            first_event_ms: first,
            last_event_ms: last,
            window_start_ms,
            window_end_ms,
            collected_at: SystemTime::now(),
        }
    }
}

/// The core's reason for a WIT quarantine reason.
pub fn quarantine_reason(reason: wit_types::QuarantineReason) -> Reason {
    harness_audit_core::reason_from_wit!(wit_types, reason)
}
