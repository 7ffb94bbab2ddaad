//! File locks of the dispatcher (flock, no SQL): the presence lock
//! `<kanban home>/kanban/.dispatcher.lock` that every long-lived dispatcher host (`daemon`,
//! `serve`) holds shared for its lifetime, so `create` can tell cheaply whether anything will pick
//! new work up (the per-board tick lock is the kernel's seam method `Board::try_tick_lock`).
//! Locks are released when the holder exits, however it exits; files are opened close-on-exec,
//! so spawned workers never inherit them.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::kernel::{Env, kanban_home};

/// A held flock; released on drop.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What trying a lock gave.
#[derive(Debug)]
pub enum TryLock {
    /// We hold it.
    Held(FileLock),
    /// Someone else holds it.
    Busy,
    /// The lock file could not be opened (read-only directory, ...).
    Unavailable(String),
}

fn open(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn try_lock(path: &Path, arg: FlockArg) -> TryLock {
    let file = match open(path) {
        Ok(f) => f,
        Err(e) => return TryLock::Unavailable(e),
    };
    match Flock::lock(file, arg) {
        Ok(l) => TryLock::Held(FileLock {
            _lock: l,
            path: path.to_path_buf(),
        }),
        Err((_, Errno::EWOULDBLOCK)) => TryLock::Busy,
        Err((_, e)) => TryLock::Unavailable(format!("{}: {e}", path.display())),
    }
}

/// `<kanban home>/kanban/.dispatcher.lock`.
pub fn presence_path(env: &Env) -> PathBuf {
    kanban_home(env).join("kanban").join(".dispatcher.lock")
}

/// Announce a dispatcher host for as long as the returned lock lives (shared: several hosts may
/// run; their ticks serialise on the per-board tick lock).
pub fn hold_presence(env: &Env) -> TryLock {
    try_lock(&presence_path(env), FlockArg::LockSharedNonblock)
}

/// Whether some dispatcher host (`daemon`, `serve`) is running for this kanban home.
pub fn dispatcher_running(env: &Env) -> bool {
    let path = presence_path(env);
    if !path.exists() {
        return false;
    }
    let Ok(file) = OpenOptions::new().read(true).open(&path) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(_released_on_drop) => false,
        Err((_, Errno::EWOULDBLOCK)) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_is_seen_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::empty().with("HERMES_KANBAN_HOME", dir.path().to_string_lossy());
        assert!(!dispatcher_running(&env));
        let TryLock::Held(a) = hold_presence(&env) else {
            panic!("presence")
        };
        let TryLock::Held(b) = hold_presence(&env) else {
            panic!("shared presence")
        };
        assert!(dispatcher_running(&env));
        drop(a);
        assert!(dispatcher_running(&env));
        drop(b);
        assert!(!dispatcher_running(&env));
    }
}
