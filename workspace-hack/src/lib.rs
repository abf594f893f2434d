//! Managed by cargo-hakari (`.config/hakari.toml`): no code, only the
//! dependency features every native crate of the workspace builds with.
