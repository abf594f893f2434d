//! Composes the source component with the adapters (`plugin/adapters`) into
//! the components of the `dist/` set, with `wac-graph`. The source's bytes
//! are placed in each composition as they are: a stock host runs what the
//! `harness-audit` binary embeds.
//!
//! Each composition is three instances, in this order:
//! 1. the sink, which exports the source's `emit` (and the types it uses);
//! 2. the source, whose `emit` (and types) are the sink's;
//! 3. the runner, which imports the source's `source` and the sink's
//!    `output`, and whose exports (`wasi:cli/run`, or
//!    `wasi:http/incoming-handler`) are the composition's.
//!
//! Everything else every instance imports (WASI) is imported by the
//! composition, once per name, from the host.

use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// Why a composition failed; each names the component and the item.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A component could not be read as a component.
    #[error("{component} is not a valid component: {reason}")]
    Invalid {
        /// Which part (`source`, `sink`, `runner`).
        component: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// An export the composition needs is missing.
    #[error(
        "the {component} exports no `{prefix}*` (its exports: {exports}); was it built from this workspace?"
    )]
    MissingExport {
        /// Which part.
        component: &'static str,
        /// The export name wanted, without its version.
        prefix: &'static str,
        /// What it does export.
        exports: String,
    },
    /// Composing one file of the `dist/` set failed.
    #[error("composing {file}: {reason}")]
    InSet {
        /// The file of the set.
        file: &'static str,
        /// Why.
        #[source]
        reason: Box<ComposeError>,
    },
    /// wac-graph refused to wire or encode the graph.
    #[error("composing: {what} failed: {reason}")]
    Graph {
        /// What was being done (`registering the sink`, `encoding`, ...).
        what: String,
        /// wac-graph's reason.
        reason: String,
    },
}

/// The interfaces the sink provides to the source and the runner, by name
/// without version: the versions are whatever the components were built with.
const FROM_SINK: [&str; 3] = [
    "harness:audit/types@",
    "harness:audit/emit@",
    "harness:adapter/output@",
];
/// The source's export that the runner drives.
const SOURCE_EXPORT: &str = "harness:audit/source@";

/// The packages the `dist/` set is built from: the source, the sink, and a
/// runner for each composition, with the file each becomes.
const SOURCE_PACKAGE: (&str, &str) = ("harness-audit-plugin", "harness-audit-source.wasm");
const SINK_PACKAGE: &str = "harness-audit-sink";
const RUNNER_PACKAGES: [(&str, &str); 2] = [
    ("harness-audit-command", "harness-audit-command.wasm"),
    ("harness-audit-proxy", "harness-audit-proxy.wasm"),
];

/// The `dist/` set, file name and bytes, in the order `SHA256SUMS` lists
/// them: the source as `build` returns it, then each composition. `build`
/// builds a workspace package and returns its component; the `dist` binary
/// and `tests/build.rs` both make the set through here.
pub fn dist_set<E: From<ComposeError>>(
    mut build: impl FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Vec<(&'static str, Vec<u8>)>, E> {
    let source = build(SOURCE_PACKAGE.0)?;
    let sink = build(SINK_PACKAGE)?;
    let mut set = Vec::with_capacity(1 + RUNNER_PACKAGES.len());
    for (package, file) in RUNNER_PACKAGES {
        let composed = compose(Parts {
            source: &source,
            sink: &sink,
            runner: &build(package)?,
        })
        .map_err(|reason| ComposeError::InSet {
            file,
            reason: Box::new(reason),
        })?;
        set.push((file, composed));
    }
    set.insert(0, (SOURCE_PACKAGE.1, source));
    Ok(set)
}

/// The three components of a composition, as bytes.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// The source component, exactly as the host embeds it.
    pub source: &'a [u8],
    /// `plugin/adapters/sink`.
    pub sink: &'a [u8],
    /// A runner: `plugin/adapters/command` (or the proxy's).
    pub runner: &'a [u8],
}

/// Composes `parts` into one component that exports what the runner exports.
pub fn compose(parts: Parts<'_>) -> Result<Vec<u8>, ComposeError> {
    let mut graph = CompositionGraph::new();
    let sink = register(&mut graph, "sink", parts.sink)?;
    let source = register(&mut graph, "source", parts.source)?;
    let runner = register(&mut graph, "runner", parts.runner)?;

    let sink_instance = graph.instantiate(sink);
    let source_instance = graph.instantiate(source);
    let runner_instance = graph.instantiate(runner);
    for prefix in FROM_SINK {
        let name = export_named(&graph, sink, "sink", prefix)?;
        let item = alias(&mut graph, sink_instance, &name)?;
        wire(&mut graph, source_instance, source, &name, item)?;
        wire(&mut graph, runner_instance, runner, &name, item)?;
    }
    let name = export_named(&graph, source, "source", SOURCE_EXPORT)?;
    let item = alias(&mut graph, source_instance, &name)?;
    wire(&mut graph, runner_instance, runner, &name, item)?;

    let exports: Vec<String> = graph.types()[graph[runner].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let item = alias(&mut graph, runner_instance, &name)?;
        graph
            .export(item, name.as_str())
            .map_err(|e| ComposeError::Graph {
                what: format!("exporting `{name}`"),
                reason: e.to_string(),
            })?;
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| ComposeError::Graph {
            what: "encoding".into(),
            reason: format!("{e:#}"),
        })
}

fn register(
    graph: &mut CompositionGraph,
    component: &'static str,
    bytes: &[u8],
) -> Result<PackageId, ComposeError> {
    let package = Package::from_bytes(
        &format!("harness:{component}"),
        None,
        bytes.to_vec(),
        graph.types_mut(),
    )
    .map_err(|e| ComposeError::Invalid {
        component,
        reason: format!("{e:#}"),
    })?;
    graph
        .register_package(package)
        .map_err(|e| ComposeError::Graph {
            what: format!("registering the {component}"),
            reason: e.to_string(),
        })
}

/// The full name (with version) of `package`'s export that starts with `prefix`.
fn export_named(
    graph: &CompositionGraph,
    package: PackageId,
    component: &'static str,
    prefix: &'static str,
) -> Result<String, ComposeError> {
    let exports = &graph.types()[graph[package].ty()].exports;
    exports
        .keys()
        .find(|name| name.starts_with(prefix))
        .cloned()
        .ok_or_else(|| ComposeError::MissingExport {
            component,
            prefix,
            exports: exports.keys().cloned().collect::<Vec<_>>().join(", "),
        })
}

fn alias(
    graph: &mut CompositionGraph,
    instance: NodeId,
    name: &str,
) -> Result<NodeId, ComposeError> {
    graph
        .alias_instance_export(instance, name)
        .map_err(|e| ComposeError::Graph {
            what: format!("aliasing `{name}`"),
            reason: e.to_string(),
        })
}

/// Passes `item` as the import `name` of `instance`, if its package imports it.
fn wire(
    graph: &mut CompositionGraph,
    instance: NodeId,
    package: PackageId,
    name: &str,
    item: NodeId,
) -> Result<(), ComposeError> {
    if !graph.types()[graph[package].ty()]
        .imports
        .contains_key(name)
    {
        return Ok(());
    }
    graph
        .set_instantiation_argument(instance, name, item)
        .map_err(|e| ComposeError::Graph {
            what: format!("passing `{name}`"),
            reason: e.to_string(),
        })
}
