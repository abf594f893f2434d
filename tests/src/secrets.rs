//! Searching a test's outputs for a secret: every file under a directory
//! (objects, state files, captured logs), byte for byte.

use std::path::{Path, PathBuf};

/// The files under `dir` whose bytes contain `secret`.
pub fn files_containing(dir: &Path, secret: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| contains(&bytes, secret)) {
                found.push(path);
            }
        }
    }
    found
}

/// Whether `bytes` hold `secret` anywhere.
pub fn contains(bytes: &[u8], secret: &str) -> bool {
    bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
}

/// The part of a Harness key (`pat.<account>.<id>.<secret>`) that must never be written.
pub fn secret_of(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}
