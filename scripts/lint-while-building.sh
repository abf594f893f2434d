#!/usr/bin/env bash
# The workspace's compiler wrapper (RUSTC_WORKSPACE_WRAPPER) in scripts/test.sh and .ci/run:
# clippy-driver lints each crate of the workspace as it compiles it, warnings denied, as
# `cargo clippy -- -D warnings` does. Dependencies are compiled by plain rustc, once, for the
# build that runs the tests, instead of checked a second time by a `cargo clippy` of their own.
# Bash, not sh: dash drops `CARGO_BIN_EXE_harness-audit` (a name with a hyphen) from the
# environment, and the end-to-end tests then do not build.
exec clippy-driver "$@" -D warnings
