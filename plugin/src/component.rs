//! Binds the native core to the `harness:audit` world.

use std::cell::RefCell;

use exports::harness::audit::source::Guest;
use harness::audit::types::{
    self as wit, ApiFailure, Budget, EmitError, Finding, FindingKind, LedgerReport as WitLedger,
    LedgerSlice, PollReport, Settings, SliceCount, SourceError,
};

use harness_audit_core::pass::{self, Source};
use harness_audit_core::report::{self, LedgerReport};
use harness_audit_core::{error, settings, wasi};

wit_bindgen::generate!({
    path: "../wit",
    world: "audit-source",
    with: {
        "wasi:io/poll@0.2.12": harness_audit_core::wasi::bindings::wasi::io::poll,
        "wasi:io/error@0.2.12": harness_audit_core::wasi::bindings::wasi::io::error,
        "wasi:io/streams@0.2.12": harness_audit_core::wasi::bindings::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": harness_audit_core::wasi::bindings::wasi::clocks::monotonic_clock,
        "wasi:clocks/wall-clock@0.2.12": harness_audit_core::wasi::bindings::wasi::clocks::wall_clock,
        "wasi:http/types@0.2.12": harness_audit_core::wasi::bindings::wasi::http::types,
        "wasi:http/outgoing-handler@0.2.12": harness_audit_core::wasi::bindings::wasi::http::outgoing_handler,
        "wasi:random/random@0.2.12": harness_audit_core::wasi::bindings::wasi::random::random,
    },
});

struct Component;

/// The configured source, and the key when the host cannot inject it.
struct Configured {
    source: Source,
    api_key: Option<String>,
}

impl Configured {
    fn http(&self) -> wasi::WasiHttp {
        match &self.api_key {
            Some(key) => wasi::WasiHttp::with_api_key(key.clone()),
            None => wasi::WasiHttp::without_credentials(),
        }
    }
}

thread_local! {
    static SOURCE: RefCell<Option<Configured>> = const { RefCell::new(None) };
}

impl Guest for Component {
    fn configure(
        settings: Settings,
        checkpoint: Option<String>,
        api_key: Option<String>,
    ) -> Result<(), SourceError> {
        let Settings {
            query,
            window,
            retries,
            output,
        } = settings;
        let settings = settings::Settings {
            query: settings::Query {
                api_base: query.api_base,
                account_id: query.account_id,
                api_flavor: match query.api_flavor {
                    wit::ApiFlavor::List => settings::ApiFlavor::List,
                    wit::ApiFlavor::ListV2 => settings::ApiFlavor::ListV2,
                },
                page_size: query.page_size,
                modules: query.modules,
                actions: query.actions,
                static_filter: query.static_filter,
                principals: query
                    .principals
                    .into_iter()
                    .map(|p| settings::PrincipalFilter {
                        kind: p.kind,
                        identifier: p.identifier,
                    })
                    .collect(),
                scopes: query
                    .scopes
                    .into_iter()
                    .map(|s| settings::ScopeFilter {
                        org: s.org,
                        project: s.project,
                    })
                    .collect(),
                resources: query
                    .resources
                    .into_iter()
                    .map(|r| settings::ResourceFilter {
                        kind: r.kind,
                        identifier: r.identifier,
                    })
                    .collect(),
                environments: query
                    .environments
                    .into_iter()
                    .map(|e| settings::EnvironmentFilter {
                        kind: e.kind,
                        identifier: e.identifier,
                    })
                    .collect(),
            },
            window: settings::Window {
                start_minutes_back: window.start_minutes_back,
                start_at_ms: window.start_at_ms,
                end_at_ms: window.end_at_ms,
                settle_lag_secs: window.settle_lag_secs,
                overlap_secs: window.overlap_secs,
                reconcile_interval_secs: window.reconcile_interval_secs,
                reconcile_hours: window.reconcile_hours,
                reconcile_recent_interval_secs: window.reconcile_recent_interval_secs,
                reconcile_recent_hours: window.reconcile_recent_hours,
            },
            retries: settings::Retries {
                max_retries: retries.max_retries,
                retry_base_ms: retries.retry_base_ms,
                retry_budget_secs: retries.retry_budget_secs,
                max_requests_per_minute: retries.max_requests_per_minute,
            },
            output: settings::Output {
                output_shape: match output.output_shape {
                    wit::OutputShape::Raw => settings::OutputShape::Raw,
                    wit::OutputShape::Streaming => settings::OutputShape::Streaming,
                },
                enrich_yaml_diff: output.enrich_yaml_diff,
                batch_max_events: output.batch_max_events,
            },
        };
        let checkpoint = checkpoint.as_deref().map(str::as_bytes);
        let source =
            Source::new(settings, checkpoint, wasi::now_ms()).map_err(SourceError::from)?;
        SOURCE.set(Some(Configured { source, api_key }));
        Ok(())
    }

    fn poll(budget: Budget) -> Result<PollReport, SourceError> {
        SOURCE.with_borrow_mut(|source| {
            let configured = source.as_mut().ok_or(SourceError::NotConfigured)?;
            let mut http = configured.http();
            let report = configured.source.poll(
                budget.max_pages,
                &mut http,
                &mut HostPipeline,
                &mut wasi::WasiClock,
            )?;
            Ok(PollReport {
                events_read: report.events_read,
                events_emitted: report.events_emitted,
                events_quarantined: report.events_quarantined,
                duplicates_dropped: report.duplicates_dropped,
                pages: report.pages,
                batches: report.batches,
                retries: report.retries,
                caught_up: report.caught_up,
                watermark_ms: report.watermark_ms,
                window_start_ms: report.window.map(|w| w.start_ms),
                window_end_ms: report.window.map(|w| w.end_ms),
                count_requests: report.count_requests,
                slices_reread: report.slices_reread,
                late_events: report.late_events,
                unreconciled_events: report.unreconciled_events,
                findings: report.findings.into_iter().map(Finding::from).collect(),
            })
        })
    }

    fn checkpoint() -> String {
        SOURCE.with_borrow(|source| {
            source
                .as_ref()
                .map(|c| text(c.source.checkpoint()))
                .unwrap_or_default()
        })
    }

    fn ledger() -> WitLedger {
        SOURCE.with_borrow(|source| {
            source
                .as_ref()
                .map(|c| c.source.ledger())
                .unwrap_or_default()
                .into()
        })
    }
}

impl From<report::Finding> for Finding {
    fn from(f: report::Finding) -> Self {
        use report::FindingKind as K;
        Self {
            kind: match f.kind {
                K::WindowShort => FindingKind::WindowShort,
                K::LateCollected => FindingKind::LateCollected,
                K::GapRemains => FindingKind::GapRemains,
                K::TieIncomplete => FindingKind::TieIncomplete,
                K::CountDecreased => FindingKind::CountDecreased,
                K::CountBelowStored => FindingKind::CountBelowStored,
                K::CountFailed => FindingKind::CountFailed,
            },
            start_ms: f.range.start_ms,
            end_ms: f.range.end_ms,
            counted: f.counted,
            collected: f.collected,
            detail: f.detail,
        }
    }
}

impl From<LedgerReport> for WitLedger {
    fn from(l: LedgerReport) -> Self {
        Self {
            from_ms: l.from_ms,
            through_ms: l.through_ms,
            slices: l
                .slices
                .into_iter()
                .map(|s| LedgerSlice {
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    stored: s.stored,
                    quarantined: s.quarantined,
                    count: s.count.map(|c| SliceCount {
                        events: c.events,
                        through_ms: c.through_ms,
                        checked_at_ms: c.at_ms,
                        stored: c.stored,
                    }),
                })
                .collect(),
        }
    }
}

struct HostPipeline;

impl pass::Pipeline for HostPipeline {
    fn emit(&mut self, batch: pass::Batch) -> Result<(), error::EmitError> {
        harness::audit::emit::emit(&harness_audit_core::wit_batch!(wit, batch)).map_err(|e| match e
        {
            EmitError::Rejected(m) => error::EmitError::Rejected(m),
            EmitError::Unavailable(m) => error::EmitError::Unavailable(m),
        })
    }
}

impl From<error::ApiFailure> for ApiFailure {
    fn from(f: error::ApiFailure) -> Self {
        Self {
            status: f.status,
            code: f.code,
            message: f.message,
            correlation_id: f.correlation_id,
        }
    }
}

impl From<error::SourceError> for SourceError {
    fn from(e: error::SourceError) -> Self {
        use error::SourceError as E;
        match e {
            E::InvalidSettings(m) => Self::InvalidSettings(m),
            E::NotConfigured => Self::NotConfigured,
            E::Unauthorized(f) => Self::Unauthorized(f.into()),
            E::Forbidden(f) => Self::Forbidden(f.into()),
            E::BadRequest(f) => Self::BadRequest(f.into()),
            E::RateLimited {
                retry_after_secs,
                message,
            } => Self::RateLimited(wit::RateLimit {
                retry_after_secs,
                message,
            }),
            E::ServerError(f) => Self::ServerError(f.into()),
            E::Transport(m) => Self::Transport(m),
            E::Unusable(u) => Self::UnusableResponse((*u).into()),
            E::SinkFailure(error::EmitError::Rejected(m)) => {
                Self::SinkFailure(EmitError::Rejected(m))
            }
            E::SinkFailure(error::EmitError::Unavailable(m)) => {
                Self::SinkFailure(EmitError::Unavailable(m))
            }
        }
    }
}

impl From<error::Unusable> for wit::UnusableResponse {
    fn from(u: error::Unusable) -> Self {
        use error::UnusableKind as K;
        Self {
            kind: match u.kind {
                K::NotAPage => wit::UnusableKind::NotAPage,
                K::CutShort => wit::UnusableKind::CutShort,
                K::TooLarge => wit::UnusableKind::TooLarge,
                K::SlowBody => wit::UnusableKind::SlowBody,
                K::UnsupportedEncoding => wit::UnusableKind::UnsupportedEncoding,
            },
            status: u.status,
            content_type: u.content_type,
            content_encoding: u.content_encoding,
            bytes: u.bytes,
            excerpt: u.excerpt,
            detail: u.detail,
            request: u.request.map(|r| wit::RequestPosition {
                start_ms: r.start_ms,
                end_ms: r.end_ms,
                page_index: r.page_index,
                page_size: r.page_size,
            }),
        }
    }
}

export!(Component);

/// The core serializes checkpoints as JSON, which is UTF-8 text.
fn text(checkpoint: Vec<u8>) -> String {
    String::from_utf8(checkpoint).expect("the core's checkpoint is JSON text")
}
