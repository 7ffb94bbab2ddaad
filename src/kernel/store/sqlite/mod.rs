//! The SQLite backend: opening a board's file with the house pragmas (SPEC §3.2) and the
//! journal policy, the first-open health check, the fair busy handler, and the transaction
//! helpers (`BEGIN IMMEDIATE` with bounded retries on BEGIN/COMMIT, never replaying the body).
//! Schema and migrations live in [`migrate`], catalogue reads in [`introspect`], and the
//! file-level work of `repair` and `boards export` (backups, snapshots, REINDEX) in [`file`].

mod file;
mod introspect;
mod migrate;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::kernel::error::{KernelError, Result};

pub(crate) use file::{RawDb, snapshot};
pub(crate) use introspect::{
    column_names, count_rows, has_column, has_table, integrity_check, table_names,
};
pub use migrate::SCHEMA_VERSION;
pub(crate) use migrate::{heal_upstream_columns, migrate, user_version};

/// Default busy timeout (ms) when `HERMES_KANBAN_BUSY_TIMEOUT_MS` is unset.
/// The connection a SQLite board holds (the only driver type outside the store, by name).
pub(crate) type Conn = Connection;

/// Default busy timeout (ms) when `HERMES_KANBAN_BUSY_TIMEOUT_MS` is unset.
pub const DEFAULT_BUSY_TIMEOUT_MS: i64 = 120_000;

/// The journal mode a board runs in and why (reported by `diagnostics`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalInfo {
    /// `wal` or `delete` (or whatever SQLite reports, lower-cased).
    pub mode: String,
    /// `database.journal_mode` from `$HERMES_HOME/config.yaml`, when set.
    pub setting: Option<String>,
    /// One sentence: why this mode.
    pub reason: String,
}

/// Parse `database.journal_mode` as Hermes does (UP §3): `delete` or `wal`; any other value
/// counts as `wal`. `None` when the key is absent.
pub(crate) fn journal_setting(config_yaml: &str) -> Option<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(config_yaml).ok()?;
    let v = doc.get("database")?.get("journal_mode")?;
    let s = match v {
        serde_yaml::Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => String::new(),
    };
    Some(if s == "delete" {
        "delete".into()
    } else {
        "wal".into()
    })
}

/// Open a connection with the house pragmas and bring the schema up to date.
/// A file that is not an SQLite database (or is corrupt) is reported with its path and left
/// untouched. The file is never opened with an ordinary file handle (REF §3.3).
pub(crate) fn open(
    path: &Path,
    busy_timeout_ms: i64,
    synchronous: &str,
    journal_setting: Option<&str>,
) -> Result<(Connection, JournalInfo)> {
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
    // Hermes included, reads), and `wal_autocheckpoint` still bounds the WAL. No effect on a
    // board in DELETE mode.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(|e| locate(e.into(), path))?;
    migrate(&conn).map_err(|e| locate(e, path))?;
    heal_upstream_columns(&conn).map_err(|e| locate(e, path))?;
    Ok((conn, journal))
}

/// An empty, migrated in-memory database: what a reading verb shows for a board that has no
/// file yet (nothing is created on disk).
pub(crate) fn open_memory(
    busy_timeout_ms: i64,
    synchronous: &str,
) -> Result<(Connection, JournalInfo)> {
    let mut conn = Connection::open_in_memory()?;
    let journal = configure(&mut conn, busy_timeout_ms, synchronous, None)?;
    migrate(&conn)?;
    heal_upstream_columns(&conn)?;
    Ok((conn, journal))
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

/// The journal policy (UP §3). A board shared with Hermes keeps the mode it has: a WAL file is
/// never downgraded live (whatever the setting), and a non-WAL file with content is switched
/// only when `database.journal_mode: wal` asks for it (Hermes on a SQLite with the WAL-reset
/// bug keeps its boards in DELETE, and flipping them would expose every such Hermes process).
/// A new (empty) file follows the setting; without one it gets WAL: our bundled SQLite is not
/// affected by the WAL-reset bug, Hermes 0.19.0 creates WAL boards itself, and a ~0.22 Hermes
/// leaves a WAL board in WAL. A home shared with a Hermes that links an affected SQLite
/// (3.7.0–3.51.2 except 3.50.7/3.44.6) should set `database.journal_mode: delete`, which both
/// tools honour.
fn apply_journal_policy(
    conn: &Connection,
    busy_timeout_ms: i64,
    setting: Option<&str>,
) -> Result<JournalInfo> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    let mode = mode.to_ascii_lowercase();
    if mode == "memory" {
        return Ok(JournalInfo {
            mode: "none".into(),
            setting: setting.map(str::to_string),
            reason: "the board has no database file yet (reading creates none)".into(),
        });
    }
    let fresh: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    let fresh = fresh == 0;
    let info = |mode: &str, reason: String| JournalInfo {
        mode: mode.to_string(),
        setting: setting.map(str::to_string),
        reason,
    };
    if mode == "wal" {
        let reason = if setting == Some("delete") {
            "the file is already in WAL mode; database.journal_mode: delete cannot apply to a \
             WAL board (never downgraded live) — convert it offline with \
             `sqlite3 kanban.db 'PRAGMA journal_mode=DELETE'` while nothing has it open"
                .to_string()
        } else {
            "the file is already in WAL mode (kept)".to_string()
        };
        return Ok(info("wal", reason));
    }
    let want_wal = match setting {
        Some("wal") => true,
        Some(_) => false,
        None => fresh,
    };
    if !want_wal {
        let reason = match (setting, fresh) {
            (Some(_), true) => {
                "new board; database.journal_mode: delete in config.yaml".to_string()
            }
            (Some(_), false) => {
                format!("the file is in {mode} mode; database.journal_mode: delete in config.yaml")
            }
            (None, _) => format!(
                "the file is in {mode} mode (kept: a board Hermes chose not to run in WAL is never \
                 switched; set database.journal_mode: wal in config.yaml to switch it)"
            ),
        };
        if fresh && mode != "delete" {
            conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| {
                r.get::<_, String>(0)
            })?;
            return Ok(info("delete", reason));
        }
        return Ok(info(&mode, reason));
    }
    // Entering WAL needs an exclusive lock that SQLite does not wait for (no busy handler when
    // upgrading from a read), so concurrent first opens retry until the busy timeout.
    let deadline = std::time::Instant::now() + Duration::from_millis(busy_timeout_ms.max(0) as u64);
    let set: rusqlite::Result<String> = loop {
        let r = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
        match &r {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5 + jitter_ms(45)));
            }
            _ => break r,
        }
    };
    let why = if setting == Some("wal") {
        "database.journal_mode: wal in config.yaml".to_string()
    } else {
        format!(
            "new board; our bundled SQLite {} is not affected by the WAL-reset bug (set \
             database.journal_mode: delete in config.yaml when a Hermes on this home links an \
             affected SQLite)",
            rusqlite::version()
        )
    };
    match set {
        Ok(m) if m.eq_ignore_ascii_case("wal") => Ok(info("wal", why)),
        Ok(m) => Ok(info(
            &m.to_ascii_lowercase(),
            format!("WAL requested ({why}) but SQLite kept {m}"),
        )),
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("locking protocol") || msg.contains("not authorized") {
                tracing::warn!("WAL unavailable on this file system ({msg}); using DELETE journal");
                conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| {
                    r.get::<_, String>(0)
                })?;
                Ok(info(
                    "delete",
                    format!("WAL unavailable on this file system ({msg})"),
                ))
            } else {
                Err(e.into())
            }
        }
    }
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

static BUSY_TIMEOUT_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_BUSY_TIMEOUT_MS as u64);

/// After this long waiting for the lock, say on stderr what we wait for (once per operation).
const WAIT_NOTICE_AFTER: Duration = Duration::from_secs(2);

/// The lock wait of the current operation on this thread.
#[derive(Clone)]
struct Wait {
    /// When the first busy answer of this operation came.
    since: std::time::Instant,
    /// Give up at this instant: `since` + the busy timeout, for the whole operation (BEGIN,
    /// body, COMMIT and their retries together), so the timeout means what it says.
    deadline: std::time::Instant,
    /// The DB file, for the notice.
    db: Option<String>,
    /// Whether the notice was printed.
    told: bool,
}

thread_local! {
    static WAIT: std::cell::RefCell<Option<Wait>> = const { std::cell::RefCell::new(None) };
    /// Set while a write transaction runs on this thread: busy waits share its deadline.
    static IN_OP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static OP_DB: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn busy_limit() -> Duration {
    Duration::from_millis(BUSY_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Start (or continue) the wait of this operation and return it.
fn wait_state(now: std::time::Instant, fresh: bool) -> Wait {
    WAIT.with(|w| {
        let mut w = w.borrow_mut();
        if fresh || w.is_none() {
            *w = Some(Wait {
                since: now,
                deadline: now + busy_limit(),
                db: OP_DB.with(|d| d.borrow().clone()),
                told: false,
            });
        }
        w.clone().expect("set above")
    })
}

/// Busy handler used instead of SQLite's default. The default backs off to sleeps of tens of
/// milliseconds, so a process that commits in a tight loop re-takes the write lock before any
/// sleeper wakes and starves the others (seen in the claim race: one process won every claim).
/// Short jittered sleeps (0.1–1 ms, then up to 5 ms) give every waiter a fair chance. The limit
/// is `HERMES_KANBAN_BUSY_TIMEOUT_MS` for the whole operation: inside a write transaction the
/// wait started by BEGIN is shared by the body, COMMIT and their retries (it used to restart on
/// every statement and retry, so a 1 s timeout gave up after 6.5 s). A wait past 2 s says on
/// stderr which board it waits for and, when /proc/locks tells, which process holds it.
fn fair_busy_handler(count: i32) -> bool {
    let now = std::time::Instant::now();
    // Outside a write transaction each statement waits on its own; inside, the operation's.
    let fresh = count == 0 && !IN_OP.with(|o| o.get());
    let w = wait_state(now, fresh);
    if now >= w.deadline {
        return false;
    }
    if !w.told && now.duration_since(w.since) >= WAIT_NOTICE_AFTER {
        WAIT.with(|s| {
            if let Some(s) = s.borrow_mut().as_mut() {
                s.told = true;
            }
        });
        announce_wait(&w, now);
    }
    let micros = if count < 200 {
        100 + jitter_ms(900)
    } else {
        1000 + jitter_ms(4000)
    };
    let left = w.deadline.saturating_duration_since(now);
    std::thread::sleep(Duration::from_micros(micros).min(left));
    true
}

/// The one-line notice of a long lock wait, on stderr.
fn announce_wait(w: &Wait, now: std::time::Instant) {
    let db = w.db.clone().unwrap_or_else(|| "the board".into());
    let holders = lock_holders(&db);
    let who = if holders.is_empty() {
        "another process holds it".to_string()
    } else {
        format!(
            "held by {}",
            holders
                .iter()
                .map(|(pid, cmd)| format!("pid {pid} ({cmd})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let left = w.deadline.saturating_duration_since(now).as_secs_f64();
    eprintln!(
        "hermes-kanban: waiting {:.0}s for the write lock on {db}: {who}; giving up in {left:.0}s \
        (HERMES_KANBAN_BUSY_TIMEOUT_MS={})",
        now.duration_since(w.since).as_secs_f64(),
        BUSY_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Best effort: the other processes holding an exclusive POSIX lock on the DB, its `-wal` or
/// `-shm` (SQLite's write lock lives there in WAL mode), or a flock on its dispatch lock file,
/// from /proc/locks, with their command lines. Empty when unknown.
pub(crate) fn lock_holders(db: &str) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let inodes: Vec<u64> = ["", "-wal", "-shm", ".dispatch.lock"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{db}{suffix}")).ok())
        .map(|m| m.ino())
        .collect();
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return vec![];
    };
    let me = std::process::id();
    let mut out: Vec<(u32, String)> = Vec::new();
    for line in locks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "N: POSIX  ADVISORY  WRITE 1234 08:01:5678 120 120"; waiters have a "->" column.
        if f.len() < 6 || f[1] == "->" || f[3] != "WRITE" {
            continue;
        }
        let Ok(pid) = f[4].parse::<u32>() else {
            continue;
        };
        let ino = f[5].rsplit(':').next().and_then(|i| i.parse::<u64>().ok());
        if pid == me || !ino.is_some_and(|i| inodes.contains(&i)) || out.iter().any(|o| o.0 == pid)
        {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let cmd: String = cmd.chars().take(120).collect();
        out.push((pid, if cmd.is_empty() { "?".into() } else { cmd }));
    }
    out
}

/// Marks this thread as inside one write operation for the busy handler; restores on drop.
struct OpGuard {
    outer: bool,
}

impl OpGuard {
    fn enter(conn: &Connection) -> OpGuard {
        let outer = !IN_OP.with(|o| o.replace(true));
        if outer {
            WAIT.with(|w| *w.borrow_mut() = None);
            OP_DB.with(|d| *d.borrow_mut() = conn.path().map(str::to_string));
        }
        OpGuard { outer }
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        if self.outer {
            IN_OP.with(|o| o.set(false));
            WAIT.with(|w| *w.borrow_mut() = None);
        }
    }
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

/// Retry a BEGIN/COMMIT that came back busy (SQLite skips the busy handler when it would
/// deadlock) with short jittered sleeps, while the operation's busy deadline allows.
fn retry_busy(mut op: impl FnMut() -> rusqlite::Result<()>) -> Result<()> {
    loop {
        match op() {
            Ok(()) => return Ok(()),
            Err(e) => {
                let err: KernelError = e.into();
                if matches!(err, KernelError::Busy) {
                    let now = std::time::Instant::now();
                    let w = wait_state(now, false);
                    if now < w.deadline {
                        let nap = Duration::from_millis(5 + jitter_ms(45));
                        std::thread::sleep(nap.min(w.deadline - now));
                        continue;
                    }
                }
                return Err(err);
            }
        }
    }
}

fn jitter_ms(max: u64) -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) % max.max(1)
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
