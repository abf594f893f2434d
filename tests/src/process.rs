//! Child processes that end with the test: a panicking test must not leave a
//! `serve` behind, spinning on the machine. Their stderr is collected as it
//! comes, so a test can wait for a line and show the log when it fails.

use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process that is killed (SIGKILL) when dropped, unless it has exited.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `command` with only the environment it sets (and `RUST_LOG=info`),
/// killed if the test fails first; its stderr is collected as it comes, on a
/// thread of its own.
pub fn spawn_logged(mut command: Command) -> (KillOnDrop, Arc<Mutex<String>>) {
    let vars: Vec<_> = command
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let mut child = KillOnDrop(
        command
            .env_clear()
            .envs(vars)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the child process"),
    );
    let stderr = Arc::new(Mutex::new(String::new()));
    let (mut pipe, collected) = (child.stderr.take().expect("piped"), stderr.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .expect("log")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, stderr)
}

/// Waits for `child` to exit, at most `limit`; its exit code. Fails with the log otherwise.
pub fn exit_within(child: &mut Child, limit: Duration, log: &Mutex<String>) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting on the child") {
            return status.code().expect("exited, not killed");
        }
        assert!(
            started.elapsed() < limit,
            "no exit within {limit:?}:\n{}",
            log.lock().expect("log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
