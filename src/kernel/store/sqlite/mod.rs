//! The SQLite backend: opening a board's file with the house pragmas (SPEC §3.2), the
//! first-open health check, and the transaction helpers (`BEGIN IMMEDIATE` with bounded retries
//! on BEGIN/COMMIT, never replaying the body). The journal policy lives in [`journal`], the
//! fair busy handler and lock-wait notices in [`busy`], schema and migrations in [`migrate`],
//! catalogue reads in [`introspect`], and the file-level work of `repair` and `boards export`
//! (backups, snapshots, REINDEX) in [`file`].

mod busy;
mod file;
mod introspect;
mod journal;
mod migrate;

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::kernel::error::{KernelError, Result};

use busy::{BUSY_TIMEOUT_MS, OpGuard, fair_busy_handler, retry_busy};
pub(crate) use file::{RawDb, snapshot};
pub(crate) use introspect::{
    column_names, count_rows, has_column, has_table, integrity_check, table_names,
};
pub use journal::JournalInfo;
use journal::apply_journal_policy;
pub(crate) use journal::journal_setting;
pub use migrate::SCHEMA_VERSION;
pub(crate) use migrate::{migrate, user_version};

/// The SQLite connection type (the only driver type outside the store, by name).
pub(crate) type Conn = Connection;

/// The connection a SQLite board owns. It derefs to the rusqlite connection; dropping it
/// bounds the WAL kept on close (see [`truncate_large_wal`]).
pub(crate) struct BoardConn(Connection);

impl std::ops::Deref for BoardConn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl Drop for BoardConn {
    fn drop(&mut self) {
        truncate_large_wal(&self.0);
    }
}

/// Closing with a WAL of at least this many frames checkpoints it and truncates it (the same
/// size as `wal_autocheckpoint`).
const WAL_TRUNCATE_FRAMES: u64 = 1000;

/// On close, a WAL past [`WAL_TRUNCATE_FRAMES`] is checkpointed whole and truncated to zero
/// bytes (`wal_checkpoint(TRUNCATE)`), best effort. Keeping the WAL on close (see [`open`])
/// leaves its checkpoint progress in the shared-memory index only, which the next process to
/// open the board alone rebuilds from scratch: past the auto-checkpoint size every later write
/// then re-checkpointed the whole WAL (three fsyncs instead of one) and the WAL never restarted,
/// so it grew without bound. Truncating here keeps the WAL bounded and the steady state at one
/// fsync per write. It never waits: with another process reading or writing the board it gives
/// up (that process's open index keeps the checkpoint progress, so nothing is redone).
fn truncate_large_wal(conn: &Connection) {
    let Some(path) = conn.path().filter(|p| !p.is_empty()) else {
        return;
    };
    let Ok(meta) = std::fs::metadata(format!("{path}-wal")) else {
        return;
    };
    let page = conn
        .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .map_or(4096, |p| p.max(512) as u64);
    // A WAL frame is a 24-byte header and one page; the WAL header is 32 bytes.
    if !conn.is_autocommit() || meta.len() < 32 + WAL_TRUNCATE_FRAMES * (page + 24) {
        return;
    }
    if conn.busy_timeout(std::time::Duration::ZERO).is_err() {
        return;
    }
    let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    tracing::debug!(wal = %path, result = ?r, "closing checkpoint of a large WAL");
}

/// Default busy timeout (ms) when `HERMES_KANBAN_BUSY_TIMEOUT_MS` is unset.
pub const DEFAULT_BUSY_TIMEOUT_MS: i64 = 120_000;

/// Open a connection with the house pragmas and bring the schema up to date.
/// A file that is not an SQLite database (or is corrupt) is reported with its path and left
/// untouched. The file is never opened with an ordinary file handle (REF §3.3).
pub(crate) fn open(
    path: &Path,
    busy_timeout_ms: i64,
    synchronous: &str,
    journal_setting: Option<&str>,
) -> Result<(BoardConn, JournalInfo)> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| KernelError::io(parent, e))?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // Through our VFS: an existing WAL opens without a directory sync (see `sqlite_vfs`).
    let mut conn = match super::sqlite_vfs::name() {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        None => Connection::open_with_flags(path, flags),
    }
    .map_err(|e| locate(e.into(), path))?;
    // The kernel has far more distinct statements than rusqlite's default cache of 16; a
    // thrashing cache re-parses SQL on every call.
    conn.set_prepared_statement_cache_capacity(256);
    let journal = configure(&mut conn, busy_timeout_ms, synchronous, journal_setting)
        .map_err(|e| locate(e, path))?;
    // Closing the last connection keeps the WAL (and its index) instead of checkpointing it
    // into the DB and deleting it: a short-lived CLI write then costs one fsync (its commit)
    // instead of five (a fresh WAL's header and directory sync, the checkpoint's two syncs).
    // Nothing is less durable (committed frames are synced in the WAL, which every reader,
    // Hermes included, reads). `wal_autocheckpoint` alone does not bound a WAL kept this way;
    // [`BoardConn`]'s drop does ([`truncate_large_wal`]). No effect on a board in DELETE mode.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(|e| locate(e.into(), path))?;
    migrate(&conn).map_err(|e| locate(e, path))?;
    Ok((BoardConn(conn), journal))
}

/// An empty, migrated in-memory database: what a reading verb shows for a board that has no
/// file yet (nothing is created on disk).
pub(crate) fn open_memory(
    busy_timeout_ms: i64,
    synchronous: &str,
) -> Result<(BoardConn, JournalInfo)> {
    let mut conn = Connection::open_in_memory()?;
    let journal = configure(&mut conn, busy_timeout_ms, synchronous, None)?;
    migrate(&conn)?;
    Ok((BoardConn(conn), journal))
}

/// Attach the DB path to path-less storage errors.
pub(crate) fn locate(e: KernelError, path: &Path) -> KernelError {
    match e {
        KernelError::NotADatabase { detail, .. } => KernelError::NotADatabase {
            path: path.to_path_buf(),
            detail,
        },
        KernelError::Corrupt { detail, .. } => KernelError::Corrupt {
            path: path.to_path_buf(),
            detail,
        },
        other => other,
    }
}

/// The `synchronous` level from `HERMES_KANBAN_SYNCHRONOUS` (`FULL`, the default: every commit
/// survives power loss; `NORMAL`: faster, the last commits may be lost on power loss but the DB
/// stays consistent; `EXTRA`). Anything else is `FULL`.
pub(crate) fn synchronous_level(raw: Option<&str>) -> &'static str {
    match raw.map(|s| s.trim().to_ascii_uppercase()).as_deref() {
        Some("NORMAL") => "NORMAL",
        Some("EXTRA") => "EXTRA",
        _ => "FULL",
    }
}

fn configure(
    conn: &mut Connection,
    busy_timeout_ms: i64,
    synchronous: &str,
    setting: Option<&str>,
) -> Result<JournalInfo> {
    BUSY_TIMEOUT_MS.store(
        busy_timeout_ms.max(0) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    conn.busy_handler(Some(fair_busy_handler))?;
    let conn = &*conn;
    // Reading the schema first turns "file is not a database" into an error before any pragma
    // that could write.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    // First contact with a DB we have not migrated (new, or written by Hermes): check it whole
    // before any pragma or migration writes. Later damage surfaces as SQLITE_CORRUPT on access
    // (with `cell_size_check`), so a migrated DB skips the full read on every CLI start.
    if user_version(conn)? < SCHEMA_VERSION {
        check_health_once(conn)?;
    }
    let journal = apply_journal_policy(conn, busy_timeout_ms, setting)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous={synchronous};
         PRAGMA wal_autocheckpoint=1000;
         PRAGMA foreign_keys=ON;
         PRAGMA secure_delete=ON;
         PRAGMA cell_size_check=ON;
         PRAGMA cache_size=-32768;"
    ))?;
    Ok(journal)
}

/// Health check on the first open of a path in this process (REF §3.2 step 2): a damaged file
/// is refused as [`KernelError::Corrupt`] before any pragma, migration or write touches it.
/// Busy errors propagate unchanged (a locked DB is not corrupt).
fn check_health_once(conn: &Connection) -> Result<()> {
    static CHECKED: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let key = conn.path().unwrap_or_default().to_string();
    if key.is_empty() || CHECKED.lock().is_ok_and(|s| s.contains(&key)) {
        return Ok(());
    }
    let mut st = conn.prepare("PRAGMA quick_check")?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if rows.len() != 1 || rows[0] != "ok" {
        return Err(KernelError::Corrupt {
            path: std::path::PathBuf::new(),
            detail: rows.into_iter().take(3).collect::<Vec<_>>().join("; "),
        });
    }
    if let Ok(mut s) = CHECKED.lock() {
        s.insert(key);
    }
    Ok(())
}

/// Run `body` inside `BEGIN IMMEDIATE … COMMIT`. BEGIN and COMMIT are retried on a busy
/// database with jitter until the operation's busy deadline; the body is never replayed. Any
/// error rolls back. Called while a write transaction is already open on `conn` (a compound
/// kernel operation such as [`crate::kernel::Board::patch_task`] calling single-step operations),
/// the body runs in a SAVEPOINT of the outer transaction: its error undoes only its own writes and
/// is passed up, so the outer operation (which returns it) rolls back as a whole.
pub(crate) fn write_txn<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    if !conn.is_autocommit() {
        exec_cached(conn, "SAVEPOINT nested_op")?;
        return match body(conn) {
            Ok(v) => {
                exec_cached(conn, "RELEASE nested_op")?;
                Ok(v)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO nested_op; RELEASE nested_op");
                Err(e)
            }
        };
    }
    let _op = OpGuard::enter(conn);
    retry_busy(|| exec_cached(conn, "BEGIN IMMEDIATE"))?;
    let out = body(conn);
    match out {
        Ok(v) => match retry_busy(|| exec_cached(conn, "COMMIT")) {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        },
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e)
        }
    }
}

/// Run `body` inside a deferred read transaction so multi-query reads see one snapshot.
pub(crate) fn read_txn<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    if !conn.is_autocommit() {
        return body(conn);
    }
    retry_busy(|| exec_cached(conn, "BEGIN"))?;
    let out = body(conn);
    let _ = exec_cached(conn, "COMMIT");
    out
}

/// Run a parameterless statement through the statement cache: `BEGIN`/`COMMIT` run on every
/// transaction, and parsing them each time was ~10 % of a claim's CPU.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

// ----- group commit (`store/group.rs`): the group's transaction and its read connection -----

/// Open the group's transaction (`BEGIN IMMEDIATE`), retried on busy as [`write_txn`] does.
pub(crate) fn begin_immediate(conn: &Connection) -> Result<()> {
    let _op = OpGuard::enter(conn);
    retry_busy(|| exec_cached(conn, "BEGIN IMMEDIATE"))
}

/// Commit the group's transaction (retried on busy); on failure it is rolled back, so the
/// connection is back in autocommit either way. With nothing to keep, roll back instead (no
/// journal write, no fsync).
pub(crate) fn commit(conn: &Connection, keep: bool) -> Result<()> {
    if conn.is_autocommit() {
        return Err(KernelError::Storage(
            "the group's transaction was rolled back before its commit".into(),
        ));
    }
    if !keep {
        return Ok(conn.execute_batch("ROLLBACK")?);
    }
    let _op = OpGuard::enter(conn);
    let r = retry_busy(|| exec_cached(conn, "COMMIT"));
    if r.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    r
}

/// A second connection on an existing board file that only reads (`query_only`): while a
/// group's transaction is open on the board's connection, plain reads go here and see only
/// committed state.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = match super::sqlite_vfs::name() {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        None => Connection::open_with_flags(path, flags),
    }
    .map_err(|e| locate(e.into(), path))?;
    conn.set_prepared_statement_cache_capacity(256);
    conn.busy_handler(Some(fair_busy_handler))?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.execute_batch("PRAGMA query_only=ON; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384;")?;
    Ok(conn)
}

/// SQLite's errors in the kernel's terms: busy/locked → `Busy` (retried by callers), not a
/// database / corrupt → the typed variants (their path is filled in by [`locate`]).
impl From<rusqlite::Error> for KernelError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return KernelError::Busy,
                ErrorCode::NotADatabase => {
                    return KernelError::NotADatabase {
                        path: std::path::PathBuf::new(),
                        detail: e.to_string(),
                    };
                }
                ErrorCode::DatabaseCorrupt => {
                    return KernelError::Corrupt {
                        path: std::path::PathBuf::new(),
                        detail: e.to_string(),
                    };
                }
                _ => {}
            }
        }
        KernelError::Storage(e.to_string())
    }
}
