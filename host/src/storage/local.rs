//! A local directory laid out like the recipe's bucket. Each object is written
//! to a temporary file, fsynced, then linked into place (never overwriting).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pause_points::{self, Step};

use super::{BatchMeta, CheckpointStore, ObjectStore, Sink, SinkError, Written, object_name};

/// Objects and the checkpoint under one root directory.
#[derive(Debug, Clone)]
pub struct LocalDirSink {
    root: PathBuf,
    prefix: String,
    state_key: String,
}

impl LocalDirSink {
    /// A store rooted at `root`; nothing is created until the first write.
    pub fn new(root: impl Into<PathBuf>, prefix: &str, state_key: &str) -> Self {
        Self {
            root: root.into(),
            prefix: prefix.to_owned(),
            state_key: state_key.to_owned(),
        }
    }

    fn state_path(&self) -> PathBuf {
        self.root.join(&self.state_key)
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SinkError + 'a {
    move |source| SinkError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to a fresh temporary file beside `path` and fsyncs it,
/// marking `midway` when half the bytes are on disk.
fn write_temp(path: &Path, bytes: &[u8], midway: Option<Step>) -> Result<PathBuf, SinkError> {
    let dir = path.parent().expect("object paths have a parent");
    fs::create_dir_all(dir).map_err(io("creating directory", dir))?;
    let name = path
        .file_name()
        .expect("object paths have a file name")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    file.write_all(head).map_err(io("writing", &tmp))?;
    if let Some(step) = midway {
        pause_points::reached(step);
    }
    file.write_all(tail).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    Ok(tmp)
}

/// Makes a rename or link durable.
fn sync_dir(path: &Path) -> Result<(), SinkError> {
    let dir = path.parent().expect("object paths have a parent");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))
}

/// Creates `path` holding `bytes` unless it exists; returns what it holds if it does.
fn create_object(
    path: &Path,
    bytes: &[u8],
    midway: Option<Step>,
) -> Result<Option<Vec<u8>>, SinkError> {
    if let Ok(existing) = fs::read(path) {
        return Ok(Some(existing));
    }
    let tmp = write_temp(path, bytes, midway)?;
    // A hard link fails if the target exists, so a concurrent writer can never be overwritten.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path)?;
            Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            create_object(path, bytes, midway)
        }
        Err(e) => Err(io("linking", path)(e)),
    }
}

fn write_object(path: &Path, name: String, lines: &[u8]) -> Result<Written, SinkError> {
    match create_object(path, lines, Some(Step::MidUpload))? {
        None => Ok(Written::Created(name)),
        Some(existing) if existing == lines => Ok(Written::AlreadyPresent(name)),
        Some(_) => Err(SinkError::Conflict(name)),
    }
}

/// Whether a file is the temporary file of a write in flight (or killed).
fn is_temporary(file: &str) -> bool {
    file.starts_with('.') && file.contains(".tmp-")
}

/// Names of the files under `dir`, relative to `root` with `/` separators.
fn walk(root: &Path, dir: &Path, names: &mut Vec<String>) -> Result<(), SinkError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("listing", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io("listing", dir))?.path();
        if path.is_dir() {
            walk(root, &path, names)?;
        } else if !path
            .file_name()
            .is_some_and(|f| is_temporary(&f.to_string_lossy()))
        {
            let relative = path
                .strip_prefix(root)
                .expect("walked paths lie under the root");
            let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
            names.push(parts.join("/"));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Sink for LocalDirSink {
    fn object_name(&self, meta: &BatchMeta) -> Option<String> {
        Some(object_name(&self.prefix, meta))
    }

    async fn write(
        &self,
        name: Option<&str>,
        meta: &BatchMeta,
        lines: &[u8],
    ) -> Result<Written, SinkError> {
        let name = name.map_or_else(|| object_name(&self.prefix, meta), str::to_owned);
        let path = self.root.join(&name);
        let lines = lines.to_vec();
        tokio::task::spawn_blocking(move || write_object(&path, name, &lines))
            .await
            .expect("the blocking write task does not panic")
    }

    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        let path = self.root.join(name);
        tokio::fs::try_exists(&path)
            .await
            .map_err(io("checking", &path))
    }

    fn location(&self) -> String {
        self.root.join(&self.prefix).display().to_string()
    }

    fn quarantine_location(&self) -> Option<String> {
        let prefix = super::quarantine_prefix(&self.prefix);
        Some(self.root.join(prefix).display().to_string())
    }
}

#[async_trait::async_trait]
impl CheckpointStore for LocalDirSink {
    async fn load(&self) -> Result<Option<Vec<u8>>, SinkError> {
        let path = self.state_path();
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading checkpoint", &path)(e)),
        }
    }

    async fn save(&self, checkpoint: &[u8]) -> Result<(), SinkError> {
        let path = self.state_path();
        let bytes = checkpoint.to_vec();
        tokio::task::spawn_blocking(move || {
            let tmp = write_temp(&path, &bytes, None)?;
            fs::rename(&tmp, &path).map_err(io("replacing checkpoint", &path))?;
            sync_dir(&path)
        })
        .await
        .expect("the blocking save task does not panic")
    }

    async fn set_aside(&self) -> Result<Option<String>, SinkError> {
        let path = self.state_path();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = path.with_file_name(format!(
            "{}.reset-{secs}",
            path.file_name()
                .expect("the state path has a file name")
                .to_string_lossy()
        ));
        match tokio::fs::rename(&path, &aside).await {
            Ok(()) => Ok(Some(aside.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("moving checkpoint aside", &path)(e)),
        }
    }

    fn checkpoint_location(&self) -> String {
        self.state_path().display().to_string()
    }

    fn objects(&self) -> Option<&dyn ObjectStore> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalDirSink {
    async fn create(&self, name: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>, SinkError> {
        let path = self.root.join(name);
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || create_object(&path, &bytes, None))
            .await
            .expect("the blocking create task does not panic")
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let path = self.root.join(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let root = self.root.clone();
        let dir = self.root.join(prefix);
        let mut names = tokio::task::spawn_blocking(move || {
            let mut names = Vec::new();
            walk(&root, &dir, &mut names).map(|()| names)
        })
        .await
        .expect("the blocking listing task does not panic")?;
        names.sort();
        Ok(names)
    }

    fn url(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn meta() -> BatchMeta {
        BatchMeta {
            kind: crate::storage::ObjectKind::Batch,
            content_sha256: crate::storage::content_sha256(b"{\"a\":1}\n"),
            event_count: 1,
            first_event_ms: 1,
            last_event_ms: 1,
            window_start_ms: 0,
            window_end_ms: 2,
            collected_at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn writes_once_and_recognises_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::new(dir.path(), "harness/audit", "state/cp.json");
        let meta = meta();
        let name = sink.object_name(&meta);
        assert!(!sink.exists(name.as_deref().unwrap()).await.unwrap());
        let Written::Created(name) = sink
            .write(name.as_deref(), &meta, b"{\"a\":1}\n")
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(fs::read(dir.path().join(&name)).unwrap(), b"{\"a\":1}\n");
        assert_eq!(
            sink.write(Some(&name), &meta, b"{\"a\":1}\n")
                .await
                .unwrap(),
            Written::AlreadyPresent(name)
        );
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn checkpoint_round_trips_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirSink::new(dir.path(), "harness/audit", "state/cp.json");
        assert_eq!(store.load().await.unwrap(), None);
        store.save(b"one").await.unwrap();
        store.save(b"two").await.unwrap();
        assert_eq!(store.load().await.unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(
            walk(dir.path()),
            [dir.path().join("state/cp.json").display().to_string()]
        );
    }

    #[tokio::test]
    async fn unwritable_root_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"").unwrap();
        let sink = LocalDirSink::new(&blocker, "p", "s");
        let err = sink
            .write(None, &meta(), b"{}\n")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("creating directory") && err.contains("file/p"),
            "{err}"
        );
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = vec![];
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path))
            } else {
                out.push(path.display().to_string())
            }
        }
        out
    }
}
