//! The dispatcher's per-board tick lock, a seam method ([`crate::kernel::Board::try_tick_lock`]):
//! one tick per board at a time across every process and host that shares the board. SQLite:
//! an exclusive flock of `<db>.dispatch.lock` (close-on-exec, so workers never inherit it);
//! PostgreSQL: a session-level advisory lock on the board's own session
//! ([`super::postgres::lock`]). Either is released when the [`TickLock`] drops (on
//! PostgreSQL by the session's next statement, or [`crate::kernel::Board::release_tick_lock`])
//! or its holder dies.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A held tick lock; released on drop.
pub struct TickLock {
    _held: Held,
}

enum Held {
    File(#[allow(dead_code)] Flock<File>),
    Pg(#[allow(dead_code)] Box<super::postgres::lock::TickLock>),
}

impl std::fmt::Debug for TickLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self._held {
            Held::File(_) => "TickLock(flock)",
            Held::Pg(_) => "TickLock(advisory)",
        })
    }
}

/// What trying the tick lock gave.
#[derive(Debug)]
pub enum TickLockTry {
    /// We hold it.
    Held(TickLock),
    /// Another tick holds it.
    Busy,
    /// The lock could not be tried (read-only directory, unreachable server, …).
    Unavailable(String),
}

/// `<db>.dispatch.lock`.
pub(crate) fn tick_lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push(".dispatch.lock");
    PathBuf::from(s)
}

/// The flock of a SQLite board's tick lock file.
pub(crate) fn try_file(db: &Path) -> TickLockTry {
    let path = tick_lock_path(db);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => return TickLockTry::Unavailable(format!("{}: {e}", path.display())),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => TickLockTry::Held(TickLock {
            _held: Held::File(l),
        }),
        Err((_, Errno::EWOULDBLOCK)) => TickLockTry::Busy,
        Err((_, e)) => TickLockTry::Unavailable(format!("{}: {e}", path.display())),
    }
}

/// The advisory lock of a PostgreSQL board, on its session.
pub(crate) fn try_pg(conn: &super::postgres::PgConn) -> TickLockTry {
    match conn.try_tick_lock() {
        Ok(Some(l)) => TickLockTry::Held(TickLock {
            _held: Held::Pg(Box::new(l)),
        }),
        Ok(None) => TickLockTry::Busy,
        Err(e) => TickLockTry::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_tick_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        let TickLockTry::Held(first) = try_file(&db) else {
            panic!("first lock")
        };
        assert!(dir.path().join("kanban.db.dispatch.lock").exists());
        assert!(matches!(try_file(&db), TickLockTry::Busy));
        drop(first);
        assert!(matches!(try_file(&db), TickLockTry::Held(_)));
    }
}
