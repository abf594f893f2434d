//! The checkpoint file, and the quarantine beside it, in a preopened
//! directory, through `wasi:filesystem`
//! itself rather than `std::fs`: wasi-libc asks for `mutate-directory` on
//! every open for writing, which jco's Node.js shim refuses, so `std::fs`
//! could read the checkpoint there but never write it.

use crate::bindings::wasi::filesystem::preopens;
use crate::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags,
};

/// Largest checkpoint read; the host accepts the same.
const MAX_CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;
const CHUNK: u64 = 64 * 1024;

/// A directory the runtime preopened, holding the checkpoint.
pub struct StateDir {
    dir: Descriptor,
    name: String,
}

impl StateDir {
    /// The preopened directory named `name` (`--state-dir`).
    pub fn open(name: &str) -> Result<Self, String> {
        let wanted = name.trim_end_matches('/');
        let mut offered = Vec::new();
        for (dir, preopened) in preopens::get_directories() {
            if preopened.trim_end_matches('/') == wanted {
                return Ok(Self {
                    dir,
                    name: name.to_owned(),
                });
            }
            offered.push(preopened);
        }
        Err(format!(
            "--state-dir `{name}` is not a preopened directory (the runtime offers {offered:?}): \
             preopen it, e.g. `wasmtime run --dir ./state::{name}`, or \
             `jco run --jco-import examples/jco/preopen.mjs` with --state-dir /state"
        ))
    }

    /// The file's bytes, or `None` when it does not exist.
    pub fn read(&self, file: &str) -> Result<Option<Vec<u8>>, String> {
        let handle = match self.dir.open_at(
            PathFlags::empty(),
            file,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        ) {
            Ok(handle) => handle,
            Err(ErrorCode::NoEntry) => return Ok(None),
            Err(e) => return Err(self.failed("opening", file, e)),
        };
        let mut bytes = Vec::new();
        loop {
            let (chunk, end) = handle
                .read(CHUNK, bytes.len() as u64)
                .map_err(|e| self.failed("reading", file, e))?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > MAX_CHECKPOINT_BYTES {
                return Err(format!(
                    "{}/{file} is over {MAX_CHECKPOINT_BYTES} bytes: not a checkpoint of this source",
                    self.name
                ));
            }
            if end || chunk.is_empty() {
                return Ok(Some(bytes));
            }
        }
    }

    /// Replaces the file so that a reader sees the old bytes or the new ones,
    /// never a torn mix: a synced temporary file, renamed over it.
    pub fn replace(&self, file: &str, bytes: &[u8]) -> Result<(), String> {
        let temp = format!("{file}.tmp");
        {
            let handle = self
                .dir
                .open_at(
                    PathFlags::empty(),
                    &temp,
                    OpenFlags::CREATE | OpenFlags::TRUNCATE,
                    DescriptorFlags::WRITE,
                )
                .map_err(|e| self.failed("creating", &temp, e))?;
            let mut written = 0;
            while written < bytes.len() {
                let rest = &bytes[written..];
                let n = handle
                    .write(&rest[..rest.len().min(CHUNK as usize)], written as u64)
                    .map_err(|e| self.failed("writing", &temp, e))?;
                written += usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
            }
            handle
                .sync()
                .map_err(|e| self.failed("syncing", &temp, e))?;
        }
        self.dir
            .rename_at(&temp, &self.dir, file)
            .map_err(|e| self.failed("renaming over", file, e))
    }

    /// Adds `bytes` at the end of the file, created if absent, and syncs it.
    pub fn append(&self, file: &str, bytes: &[u8]) -> Result<(), String> {
        let handle = self
            .dir
            .open_at(
                PathFlags::empty(),
                file,
                OpenFlags::CREATE,
                DescriptorFlags::WRITE | DescriptorFlags::READ,
            )
            .map_err(|e| self.failed("opening", file, e))?;
        let mut at = handle
            .stat()
            .map_err(|e| self.failed("reading the size of", file, e))?
            .size;
        let mut written = 0;
        while written < bytes.len() {
            let rest = &bytes[written..];
            let n = handle
                .write(&rest[..rest.len().min(CHUNK as usize)], at)
                .map_err(|e| self.failed("writing", file, e))?;
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
            written += n;
            at += n as u64;
        }
        handle.sync().map_err(|e| self.failed("syncing", file, e))
    }

    fn failed(&self, doing: &str, file: &str, error: ErrorCode) -> String {
        format!("{doing} {}/{file}: {error:?}", self.name)
    }
}
