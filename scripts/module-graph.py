#!/usr/bin/env python3
"""Prints which modules of a crate's `src/` import which, as Graphviz DOT.

A module is a file under src/ (`engine/host_state.rs` is `engine::host_state`;
`engine.rs` is `engine`); an edge A -> B means A names `crate::B...` (or `super::` it). Cycles are
listed after the graph. Usage: scripts/module-graph.py [SRC_DIR] (default
host/src); render with `dot -Tsvg`.
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "host/src")
modules = {}
for path in sorted(src.rglob("*.rs")):
    rel = path.relative_to(src).with_suffix("")
    parts = [p for p in rel.parts if p not in ("lib", "main", "mod", "tests")]
    if rel.parts[0] == "bin":
        parts = ["bin", rel.parts[1]] if len(rel.parts) > 2 else ["bin"]
    if parts:
        modules.setdefault("::".join(parts), []).append(path)

names = sorted(modules, key=lambda m: -m.count("::"))
edges = set()
for module, paths in modules.items():
    text = "".join(p.read_text() for p in paths)
    for used in re.findall(r"crate::([a-z_]+(?:::[a-z_]+)*)", text):
        target = next((n for n in names if used == n or used.startswith(n + "::")), None)
        if target and target != module and not module.startswith(target + "::"):
            edges.add((module, target))
    parent = module.rsplit("::", 1)[0] if "::" in module else ""
    for used in re.findall(r"\bsuper::([a-z_]+(?:::[a-z_]+)*)", text):
        used = f"{parent}::{used}" if parent else used
        target = next((n for n in names if used == n or used.startswith(n + "::")), None)
        if target and target != module and not module.startswith(target + "::"):
            edges.add((module, target))
    for used in re.findall(r"harness_audit::([a-z_]+(?:::[a-z_]+)*)", text):
        target = next((n for n in names if used == n or used.startswith(n + "::")), None)
        if target and target != module:
            edges.add((module, target))

print("digraph modules {")
for a, b in sorted(edges):
    print(f'  "{a}" -> "{b}";')
print("}")

graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)
cycles = set()
def visit(node, path):
    for nxt in graph.get(node, ()):
        if nxt in path:
            cycle = path[path.index(nxt):]
            i = cycle.index(min(cycle))
            cycles.add(tuple(cycle[i:] + cycle[:i]))
        elif len(path) < 12:
            visit(nxt, path + [nxt])
for start in graph:
    visit(start, [start])
print(f"// {len(modules)} modules, {len(edges)} edges, {len(cycles)} cycles")
for cycle in sorted(cycles):
    print("// cycle: " + " -> ".join(cycle + (cycle[0],)))
