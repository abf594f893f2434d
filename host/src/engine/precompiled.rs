//! Native code instead of compiling at start: the embedded component's,
//! compiled by the build script, and other components' cached on disk, so a
//! start loads native code in about a millisecond instead of compiling for a
//! hundred or more. Cache entries are keyed by the component's SHA-256 and
//! the engine's compatibility hash (wasmtime version and settings), so a new
//! build or setting never loads stale code; wasmtime checks the embedded
//! code's version and settings against the engine before using it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache file for `bytes` under `dir`.
fn entry(engine: &Engine, bytes: &[u8], dir: &Path) -> PathBuf {
    let digest = Sha256::digest(bytes);
    let component = hex::encode(&digest[..12]);
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{component}-{:016x}.cwasm", hasher.finish()))
}

/// Creates `dir` private to this user, or checks that it is: whoever can
/// write there can put native code into this process.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by other users (mode {:o}); cached native code there could be replaced. \
             Fix: chmod go-w it, or choose another --cache-dir",
            dir.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// The embedded component, from the native code the build script made for
/// it when `engine` can run that code; compiled (through `cache_dir`)
/// otherwise, as for an engine of other settings or a cross-compiled build.
pub fn load_embedded(engine: &Engine, cache_dir: Option<&Path>) -> wasmtime::Result<Component> {
    if !super::EMBEDDED_PRECOMPILED.is_empty() {
        match load_native(engine, Native::Embedded(super::EMBEDDED_PRECOMPILED)) {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::debug!(stage = "cache", error = %format!("{e:#}"), "the build's native code does not fit this engine; compiling")
            }
        }
    }
    load(engine, super::EMBEDDED_COMPONENT, cache_dir)
}

/// Loads `bytes` compiled, from `cache_dir` when an entry exists, compiling
/// (and storing) it otherwise. Cache trouble is logged and never fatal.
pub fn load(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes);
    };
    if let Err(why) = private_dir(dir) {
        tracing::warn!(stage = "cache", error = %why, "not using the component cache");
        return Component::new(engine, bytes);
    }
    let path = entry(engine, bytes, dir);
    if path.is_file() {
        match load_native(engine, Native::CacheFile(&path)) {
            Ok(component) => {
                tracing::debug!(stage = "cache", path = %path.display(), "loaded the precompiled component");
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(stage = "cache", path = %path.display(), error = %format!("{e:#}"), "unusable cache entry; compiling again");
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let stored = std::fs::write(&tmp, &compiled).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = stored {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(stage = "cache", path = %path.display(), error = %e, "could not store the compiled component");
    }
    load_native(engine, Native::Compiled(&compiled))
}

/// Native code, and why it can be trusted as this binary's own.
enum Native<'a> {
    /// Made by this binary's build script from the embedded component: part
    /// of the binary, as trusted as its code.
    Embedded(&'a [u8]),
    /// Made by `Engine::precompile_component` of this very engine a moment
    /// ago; it never left memory.
    Compiled(&'a [u8]),
    /// A cache entry, in a directory only this user can write (checked by
    /// `private_dir`) and named by this engine's compatibility hash.
    CacheFile(&'a Path),
}

#[expect(
    unsafe_code,
    reason = "wasmtime runs serialized native code as given: each `Native` source is this binary's own \
              (see its variants), and wasmtime checks the header, version and settings before use"
)]
fn load_native(engine: &Engine, native: Native<'_>) -> wasmtime::Result<Component> {
    // SAFETY: every variant of `Native` is code this binary, or this engine,
    // produced with `Engine::precompile_component`; see the reasons above.
    unsafe {
        match native {
            Native::Embedded(bytes) | Native::Compiled(bytes) => {
                Component::deserialize(engine, bytes)
            }
            Native::CacheFile(path) => Component::deserialize_file(engine, path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn the_build_s_native_code_fits_the_host_s_engines_and_another_engine_compiles() {
        assert!(
            !crate::engine::EMBEDDED_PRECOMPILED.is_empty(),
            "built for this machine"
        );
        for pool in [
            None,
            Some(crate::engine::PoolSize {
                instances: 2,
                max_memory_bytes: 64 << 20,
            }),
        ] {
            let shared = crate::engine::SharedEngine::new(pool).unwrap();
            load_native(
                shared.engine(),
                Native::Embedded(crate::engine::EMBEDDED_PRECOMPILED),
            )
            .unwrap_or_else(|e| panic!("pool {pool:?}: {e:#}"));
        }
        // Another setting: wasmtime refuses the build's code, and the component is compiled.
        let other = engine();
        assert!(
            load_native(
                &other,
                Native::Embedded(crate::engine::EMBEDDED_PRECOMPILED)
            )
            .is_err()
        );
        load_embedded(&other, None).unwrap();
    }

    #[test]
    fn the_second_load_comes_from_the_cache_and_a_damaged_entry_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let engine = engine();
        load(&engine, crate::engine::EMBEDDED_COMPONENT, Some(&cache)).unwrap();
        let path = entry(&engine, crate::engine::EMBEDDED_COMPONENT, &cache);
        let first = std::fs::read(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o700
        );
        load(&engine, crate::engine::EMBEDDED_COMPONENT, Some(&cache)).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            first,
            "loaded, not rewritten"
        );

        std::fs::write(&path, b"not native code").unwrap();
        load(&engine, crate::engine::EMBEDDED_COMPONENT, Some(&cache)).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            first,
            "recompiled and stored again"
        );
    }

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir(dir.path()).unwrap_err();
        assert!(err.contains("writable by other users (mode 777)"), "{err}");
        let engine = engine();
        load(&engine, crate::engine::EMBEDDED_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing cached there"
        );
    }
}
