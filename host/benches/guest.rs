//! The source's core work on the same input, three ways, side by side:
//!
//! - `parse_limit`: `serde_json` splitting each recorded page into `RawValue`s
//!   and nothing else, the floor any parser of these pages pays;
//! - `core_native`: the core natively (parse, check order, dedupe, build the
//!   NDJSON batches, hand them to a pipeline);
//! - `core_wasm`: the embedded component in wasmtime, on the host's engine,
//!   with the pages crossing the real `wasi:http` boundary and the batches the
//!   real `emit` import.
//!
//! The input is recorded once from the mock Harness on loopback (2,000
//! realistic events, 100 per page), then replayed from memory to every
//! contender, so no network time is measured. `bench/run.sh` turns criterion's
//! medians into the ratios the book's benchmarks page (docs/src/design/benchmarks.md) reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness_audit::engine::bindings::harness::audit::{emit, types};
use harness_audit::engine::bindings::{AuditSource, AuditSourcePre, Batch, Budget, EmitError};
use harness_audit::engine::error::EmitFailure;
use harness_audit::engine::{PoolSize, SharedEngine, wit_settings};
use harness_audit_core::error::EmitError as CoreEmitError;
use harness_audit_core::page::HttpResponse;
use harness_audit_core::pass::{self, Clock, Pipeline, Source, Transport, TransportError};
use harness_audit_core::settings::{self as core_settings, ApiFlavor, OutputShape};
use harness_tests::{KeyGrant, MockHarness, SeedSpec, generate, make_key};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::value::RawValue;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

const ACCOUNT: &str = "Xy3kQ9mTR0aWb1cD2eF4gH";
const EVENTS: usize = 2_000;
const PAGE_SIZE: u32 = 100;
/// The events lie in one fixed hour, long settled, so every contender reads
/// the same windows whatever its clock says.
const START_MS: u64 = 1_750_000_000_000;
const END_MS: u64 = START_MS + 3_600_000;
const PAGES_PER_POLL: u32 = 20;

/// One request the core made and the response it got, in order.
#[derive(Clone)]
struct Exchange {
    url: String,
    body: Bytes,
}

fn core_settings(api_base: &str) -> core_settings::Settings {
    core_settings::Settings {
        query: harness_audit_core::settings::Query {
            api_base: api_base.to_owned(),
            account_id: ACCOUNT.to_owned(),
            page_size: PAGE_SIZE,
            modules: Vec::new(),
            actions: Vec::new(),
            static_filter: None,
            principals: Vec::new(),
            scopes: Vec::new(),
            resources: Vec::new(),
            environments: Vec::new(),
            api_flavor: ApiFlavor::List,
        },
        window: harness_audit_core::settings::Window {
            start_minutes_back: 60,
            start_at_ms: Some(START_MS),
            end_at_ms: Some(END_MS),
            settle_lag_secs: 0,
            overlap_secs: 0,
            reconcile_interval_secs: 3_600,
            reconcile_hours: 0,
            reconcile_recent_interval_secs: 300,
            reconcile_recent_hours: 0,
        },
        retries: harness_audit_core::settings::Retries {
            max_retries: 0,
            retry_base_ms: 1,
            retry_budget_secs: 1,
            max_requests_per_minute: 0,
        },
        output: harness_audit_core::settings::Output {
            output_shape: OutputShape::Raw,
            enrich_yaml_diff: false,
            batch_max_events: 1_000,
        },
    }
}

/// A clock an hour past the data: windows end at `END_MS`, no waits happen.
struct FixedClock;

impl Clock for FixedClock {
    fn now_ms(&mut self) -> u64 {
        END_MS + 3_600_000
    }
    fn sleep_ms(&mut self, _: u64) {}
    fn random_u64(&mut self) -> u64 {
        4
    }
}

/// Counts what reaches the pipeline, so the work cannot be optimised away.
#[derive(Default)]
struct Counting {
    events: u64,
    bytes: u64,
}

impl Pipeline for Counting {
    fn emit(&mut self, batch: pass::Batch) -> Result<(), CoreEmitError> {
        self.events += u64::from(batch.event_count);
        self.bytes += batch.lines.len() as u64;
        Ok(())
    }
}

/// Plays recorded exchanges back in order, checking each request matches.
struct Replay {
    exchanges: Arc<Vec<Exchange>>,
    next: usize,
}

impl Replay {
    fn new(exchanges: &Arc<Vec<Exchange>>) -> Self {
        Self {
            exchanges: Arc::clone(exchanges),
            next: 0,
        }
    }

    fn answer(&mut self, url: &str) -> Bytes {
        let exchange = &self.exchanges[self.next];
        assert_eq!(
            exchange.url, url,
            "the core asked for a page out of the recorded order"
        );
        self.next += 1;
        exchange.body.clone()
    }
}

impl Transport for Replay {
    fn post_json(&mut self, url: &str, _: &[u8]) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse::json(200, self.answer(url).to_vec()))
    }
    fn get(&mut self, url: &str) -> Result<HttpResponse, TransportError> {
        self.post_json(url, &[])
    }
}

/// Records what the core asks of the mock Harness and what it answers.
struct Recorder {
    client: reqwest::blocking::Client,
    key: String,
    exchanges: Vec<Exchange>,
}

impl Transport for Recorder {
    fn post_json(&mut self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError> {
        let failed = |e: reqwest::Error| TransportError::Failed(e.to_string());
        let response = self
            .client
            .post(url)
            .header("x-api-key", &self.key)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.bytes().map_err(failed)?;
        assert_eq!(
            status,
            200,
            "recording failed: {}",
            String::from_utf8_lossy(&body)
        );
        self.exchanges.push(Exchange {
            url: url.to_owned(),
            body: body.clone(),
        });
        Ok(HttpResponse::json(status, body.to_vec()))
    }
    fn get(&mut self, _: &str) -> Result<HttpResponse, TransportError> {
        unreachable!("YAML enrichment is off")
    }
}

/// The exchanges of one full pass over `EVENTS` events, with the mock's
/// base URL replaced so that replays need no server.
fn record() -> Vec<Exchange> {
    let key = make_key(ACCOUNT, "BenchToken000000000000");
    let mock = MockHarness::start(
        ACCOUNT,
        vec![KeyGrant {
            key: key.clone(),
            can_view: true,
        }],
    )
    .expect("starting the mock Harness");
    mock.insert(generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: EVENTS,
        start_ms: START_MS,
        end_ms: END_MS - 1,
        seed: 7,
    }));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut recorder = Recorder {
        client: reqwest::blocking::Client::new(),
        key,
        exchanges: Vec::new(),
    };
    let base = mock.base_url();
    let mut source = Source::new(core_settings(&base), None, FixedClock.now_ms()).unwrap();
    let mut counted = Counting::default();
    loop {
        let report = source
            .poll(PAGES_PER_POLL, &mut recorder, &mut counted, &mut FixedClock)
            .unwrap();
        if report.caught_up {
            break;
        }
    }
    assert_eq!(counted.events, EVENTS as u64, "the recording missed events");
    recorder
        .exchanges
        .into_iter()
        .map(|e| Exchange {
            url: e.url.replacen(&base, REPLAY_BASE, 1),
            body: e.body,
        })
        .collect()
}

const REPLAY_BASE: &str = "http://harness.replay";

fn native_pass(exchanges: &Arc<Vec<Exchange>>) -> Counting {
    let mut replay = Replay::new(exchanges);
    let mut counted = Counting::default();
    let mut source = Source::new(core_settings(REPLAY_BASE), None, FixedClock.now_ms()).unwrap();
    while !source
        .poll(PAGES_PER_POLL, &mut replay, &mut counted, &mut FixedClock)
        .unwrap()
        .caught_up
    {}
    counted
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    data: Content<'a>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow)]
    content: Vec<&'a RawValue>,
}

fn parse_only(exchanges: &[Exchange]) -> usize {
    exchanges
        .iter()
        .map(|e| {
            serde_json::from_slice::<Page<'_>>(&e.body)
                .unwrap()
                .data
                .content
                .len()
        })
        .sum()
}

/// A sandbox like the host's (nothing granted), whose HTTP is the replay.
struct BenchState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    replay: WasiReplay,
    counted: Counting,
}

struct WasiReplay(Replay);

impl WasiHttpHooks for WasiReplay {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        drop(fut);
        let body = self.0.answer(&request.uri().to_string());
        Box::new(async move {
            // Read the request body as a server would.
            let _ = request.into_body().collect().await;
            let response = http::Response::new(
                Full::new(body)
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl WasiView for BenchState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for BenchState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.replay,
        }
    }
}

impl types::Host for BenchState {
    fn convert_emit_error(&mut self, failure: EmitFailure) -> wasmtime::Result<EmitError> {
        Err(wasmtime::Error::msg(format!("{failure:?}")))
    }
}

impl emit::Host for BenchState {
    async fn emit(&mut self, batch: Batch) -> Result<(), EmitFailure> {
        self.counted.events += u64::from(batch.event_count);
        self.counted.bytes += batch.lines.len() as u64;
        Ok(())
    }
}

struct Wasm {
    engine: wasmtime::Engine,
    pre: AuditSourcePre<BenchState>,
    _shared: SharedEngine,
}

impl Wasm {
    fn new() -> Self {
        // The host's own engine: pooling allocator, epoch interruption on.
        let shared = SharedEngine::new(Some(PoolSize {
            instances: 1,
            max_memory_bytes: 256 << 20,
        }))
        .unwrap();
        let engine = shared.engine().clone();
        let component = harness_audit::engine::precompiled::load(
            &engine,
            harness_audit::engine::EMBEDDED_COMPONENT,
            None,
        )
        .unwrap();
        let mut linker = Linker::<BenchState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        types::add_to_linker::<_, HasSelf<BenchState>>(&mut linker, |s| s).unwrap();
        emit::add_to_linker::<_, HasSelf<BenchState>>(&mut linker, |s| s).unwrap();
        let pre = AuditSourcePre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        Self {
            engine,
            pre,
            _shared: shared,
        }
    }

    async fn instantiate(
        &self,
        exchanges: &Arc<Vec<Exchange>>,
    ) -> (Store<BenchState>, AuditSource) {
        let mut store = Store::new(
            &self.engine,
            BenchState {
                wasi: WasiCtxBuilder::new().build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                replay: WasiReplay(Replay::new(exchanges)),
                counted: Counting::default(),
            },
        );
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        (store, instance)
    }

    /// One pass in a fresh instance, as the host runs every pass; returns the
    /// time spent inside the component's calls (instantiation excluded, as
    /// `Source::new` is natively, but the first touch of its fresh memory included).
    async fn pass(&self, exchanges: &Arc<Vec<Exchange>>) -> (Duration, Counting) {
        let (mut store, instance) = self.instantiate(exchanges).await;
        pass_in(&mut store, &instance).await
    }
}

/// One pass (configure, poll until caught up) in an existing instance.
async fn pass_in(store: &mut Store<BenchState>, instance: &AuditSource) -> (Duration, Counting) {
    let source = instance.harness_audit_source();
    let started = Instant::now();
    source
        .call_configure(
            &mut *store,
            &wit_settings(&core_settings(REPLAY_BASE)),
            None,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    loop {
        let report = source
            .call_poll(
                &mut *store,
                Budget {
                    max_pages: PAGES_PER_POLL,
                },
            )
            .await
            .unwrap()
            .unwrap();
        if report.caught_up {
            break;
        }
    }
    let elapsed = started.elapsed();
    (elapsed, std::mem::take(&mut store.data_mut().counted))
}

fn guest_overhead(c: &mut Criterion) {
    let exchanges = Arc::new(record());
    let bytes: u64 = exchanges.iter().map(|e| e.body.len() as u64).sum();
    let native = native_pass(&exchanges);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wasm = Wasm::new();
    let (_, in_wasm) = runtime.block_on(wasm.pass(&exchanges));
    // Both contenders must do the same work before their times are compared.
    assert_eq!(native.events, EVENTS as u64);
    assert_eq!(
        (native.events, native.bytes),
        (in_wasm.events, in_wasm.bytes)
    );

    let mut group = c.benchmark_group("pages");
    group.throughput(Throughput::Bytes(bytes));
    let id = |name| BenchmarkId::new(name, format!("{EVENTS}_events_{}_pages", exchanges.len()));
    group.bench_function(id("parse_limit"), |b| {
        b.iter(|| std::hint::black_box(parse_only(&exchanges)));
    });
    group.bench_function(id("core_native"), |b| {
        b.iter(|| std::hint::black_box(native_pass(&exchanges)));
    });
    group.bench_function(id("core_wasm"), |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| runtime.block_on(wasm.pass(&exchanges)).0)
                .sum()
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(8));
    targets = guest_overhead
}
criterion_main!(benches);
