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
//! durable before anyone commits into it. Everything else (locking, shared memory, file I/O)
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
        let rc = open(
            base,
            name,
            file,
            flags & !ffi::SQLITE_OPEN_CREATE,
            out_flags,
        );
        if rc == ffi::SQLITE_OK {
            return rc;
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
