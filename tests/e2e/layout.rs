//! The host's layout, as the README describes it: its top-level modules
//! (`config`, `engine`, `storage`, `evidence`, `commands`, `time`, `random`)
//! import one another without a cycle, and only `storage` and the
//! configuration name Google Cloud Storage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::rust_files;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of a top-level module: `name.rs` and everything under `name/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = vec![src().join(format!("{module}.rs"))];
    files.retain(|f| f.exists());
    files.extend(rust_files(&src().join(module)));
    files
}

/// The top-level modules `lib.rs` declares.
fn modules() -> Vec<String> {
    std::fs::read_to_string(src().join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

/// Which top-level modules each one's code names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    modules
        .iter()
        .map(|m| {
            let mut named = BTreeSet::new();
            for file in files_of(m) {
                let text = std::fs::read_to_string(&file).unwrap();
                for other in &modules {
                    if other != m && text.contains(&format!("crate::{other}")) {
                        named.insert(other.clone());
                    }
                }
            }
            (m.clone(), named)
        })
        .collect()
}

/// No top-level module imports one that imports it back, however indirectly.
#[test]
fn the_host_modules_import_each_other_without_a_cycle() {
    let graph = imports();
    assert!(graph.len() >= 7, "{graph:?}");
    assert!(graph["engine"].contains("storage") && graph["commands"].contains("engine"));
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            panic!("import cycle: {} -> {node}", path[at..].join(" -> "));
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in &graph[node] {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

/// The engine and the commands never name GCS: storage is chosen and built in `storage`.
#[test]
fn only_storage_and_the_settings_name_gcs() {
    for module in ["engine", "commands", "evidence", "time", "random"] {
        for file in files_of(module) {
            let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
            assert!(
                !text.contains("gcs"),
                "{} names GCS; storage alone should",
                file.display()
            );
        }
    }
}
