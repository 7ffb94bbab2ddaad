//! The SQLite VFS our board connections open through: SQLite's own `unix` VFS with one change
//! in `xOpen` — an existing WAL file is opened without `SQLITE_OPEN_CREATE`.
//!
//! Why: the unix VFS marks every journal or WAL it opens with the create flag as needing a
//! directory fsync at its first sync, whether or not the file already existed. A CLI process
//! that commits once (the WAL kept between processes, see `NO_CKPT_ON_CLOSE` in
//! `sqlite::open`) then paid two fsyncs per write — its commit and a directory sync that
//! protects nothing (the file's name was made durable when it was created). Opened without the
//! create flag, an existing WAL gets no directory sync; a WAL that does not exist is created as
//! before, and its directory is fsynced at once, so a WAL left behind by a reading process is
//! durable before anyone commits into it. A WAL that the unix VFS opens read-only on the
//! no-create attempt (it appeared between that VFS's read-write and read-only tries) is closed
//! and opened again with the create flag. Everything else (locking, shared memory, file I/O)
//! is the unix VFS itself: its functions are called unchanged, and Hermes' processes on the same
//! board see the same POSIX locks.

use std::ffi::{CStr, c_char, c_int};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The registered name of this VFS.
pub(crate) const NAME: &CStr = c"hermes-kanban-unix";

struct Registered {
    /// SQLite's default (`unix`) VFS, whose functions this one calls.
    base: *mut ffi::sqlite3_vfs,
}

// SAFETY: both pointers refer to VFS objects that live for the whole process and are only read.
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Option<Registered>> = OnceLock::new();

/// Register the VFS (once per process) and return its name, or `None` when SQLite has no
/// default VFS to wrap (then the caller opens with the default).
pub(crate) fn name() -> Option<&'static CStr> {
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find initialises SQLite and returns the default VFS (or null);
            // the copy is leaked, so it outlives every connection that uses it.
            unsafe {
                let base = ffi::sqlite3_vfs_find(std::ptr::null());
                if base.is_null() || (*base).xOpen.is_none() {
                    return None;
                }
                let mut vfs: ffi::sqlite3_vfs = std::ptr::read(base);
                vfs.pNext = std::ptr::null_mut();
                vfs.zName = NAME.as_ptr();
                vfs.xOpen = Some(x_open);
                let vfs = Box::into_raw(Box::new(vfs));
                if ffi::sqlite3_vfs_register(vfs, 0) != ffi::SQLITE_OK {
                    return None;
                }
                Some(Registered { base })
            }
        })
        .as_ref()
        .map(|_| NAME)
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(Some(reg)) = REGISTERED.get() else {
        return ffi::SQLITE_CANTOPEN;
    };
    let base = reg.base;
    // SAFETY: `base` is the live default VFS; SQLite passes valid arguments through.
    unsafe {
        let open = (*base).xOpen.expect("checked at registration");
        let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
        if !wal || flags & ffi::SQLITE_OPEN_CREATE == 0 || name.is_null() {
            return open(base, name, file, flags, out_flags);
        }
        // An existing WAL: no create flag, so no (pointless) directory sync.
        let mut got: c_int = 0;
        let rc = open(base, name, file, flags & !ffi::SQLITE_OPEN_CREATE, &mut got);
        if rc == ffi::SQLITE_OK && got & ffi::SQLITE_OPEN_READONLY == 0 {
            if !out_flags.is_null() {
                *out_flags = got;
            }
            return rc;
        }
        // Opened read-only although read-write was asked: the unix VFS falls back to a
        // read-only open when the read-write one fails, so a WAL that another connection
        // created between its two attempts arrives read-only, and every later write on this
        // connection fails with SQLITE_READONLY. Close it and open as SQLite itself would
        // (with the create flag, which also yields read-only where we truly lack write access).
        if rc == ffi::SQLITE_OK
            && let Some(close) = (*file).pMethods.as_ref().and_then(|m| m.xClose)
        {
            close(file);
        }
        // Absent (or removed meanwhile): create it, and make its name durable now.
        let rc = open(base, name, file, flags, out_flags);
        if rc == ffi::SQLITE_OK {
            sync_parent_dir(name);
        }
        rc
    }
}

/// fsync the directory holding `path` (best effort, as SQLite's own directory sync).
///
/// # Safety
/// `path` is a NUL-terminated file name from SQLite.
unsafe fn sync_parent_dir(path: *const c_char) {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: per the contract above.
    let p = unsafe { CStr::from_ptr(path) };
    let p = std::path::Path::new(std::ffi::OsStr::from_bytes(p.to_bytes()));
    if let Some(dir) = p.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use rusqlite::{Connection, OpenFlags};

    /// Many connections open a WAL board whose WAL file is gone (the last closer removed it)
    /// and write at once: one of them creates the WAL while the others are inside the unix VFS's
    /// read-write-then-read-only open. Every one of them must still be able to write (before the
    /// fix, one would get a read-only WAL: "attempt to write a readonly database").
    #[test]
    fn racing_first_opens_of_a_missing_wal_all_get_a_writable_wal() {
        let vfs = super::name().expect("unix VFS");
        const THREADS: usize = 6;
        for round in 0..300 {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("kanban.db");
            {
                let c = Connection::open(&db).unwrap();
                c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER);")
                    .unwrap();
            }
            assert!(
                !dir.path().join("kanban.db-wal").exists(),
                "closing removed the WAL"
            );
            let barrier = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (db, barrier) = (db.clone(), barrier.clone());
                    std::thread::spawn(move || -> rusqlite::Result<()> {
                        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                            | OpenFlags::SQLITE_OPEN_CREATE
                            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                        let c = Connection::open_with_flags_and_vfs(&db, flags, vfs)?;
                        c.busy_timeout(std::time::Duration::from_secs(30))?;
                        barrier.wait();
                        c.execute("INSERT INTO t VALUES (?1)", [i as i64])?;
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join().expect("no panic") {
                    panic!("round {round}: {e}");
                }
            }
            let c = Connection::open(&db).unwrap();
            let n: i64 = c
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, THREADS as i64, "round {round}");
        }
    }
}
