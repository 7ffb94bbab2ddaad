//! The SQLite connection: pragmas (SPEC §3.2), the write-transaction helper (`BEGIN IMMEDIATE`
//! with bounded retries on BEGIN/COMMIT, never replaying the body), and migrations — 0001 is the
//! Hermes 0.19.0 schema, preceded by the additive upgrades Hermes applies to older DBs
//! (REF §3.2); our own migrations are tracked in `PRAGMA user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::kernel::error::{KernelError, Result};

/// Default busy timeout (ms) when `HERMES_KANBAN_BUSY_TIMEOUT_MS` is unset.
pub const DEFAULT_BUSY_TIMEOUT_MS: i64 = 120_000;

/// Our schema version: the highest migration number in [`OURS`].
pub const SCHEMA_VERSION: i64 = highest_migration();

const M0001: &str = include_str!("../../../migrations/sqlite/0001_hermes_0_19_0.sql");

/// One of our migrations after 0001 (`migrations/000N_*.sql`). Each must be additive (new
/// tables, columns, indexes) so Hermes keeps reading the DB.
struct Migration {
    number: i64,
    sql: &'static str,
    /// For an idempotent migration (only `CREATE … IF NOT EXISTS`): an object it creates. When
    /// that object is missing the migration is applied even if `user_version` is already past
    /// its number — numbers land out of order when branches merge (a DB can reach 7 with a
    /// binary that had 6 and 7 but not yet 5), so the runner tolerates gaps both ways.
    probe: Option<&'static str>,
}

/// Our migrations, in order. Numbers may have gaps.
const OURS: &[Migration] = &[
    Migration {
        number: 2,
        sql: include_str!("../../../migrations/sqlite/0002_run_tokens.sql"),
        probe: None,
    },
    Migration {
        number: 3,
        sql: include_str!("../../../migrations/sqlite/0003_worker_procs.sql"),
        probe: None,
    },
    Migration {
        number: 4,
        sql: include_str!("../../../migrations/sqlite/0004_list_order.sql"),
        probe: None,
    },
    Migration {
        number: 5,
        sql: include_str!("../../../migrations/sqlite/0005_webhook_cursors.sql"),
        probe: Some("kanban_webhook_cursors"),
    },
    // Documentation only: the columns are added by `heal_upstream_columns` on every open.
    Migration {
        number: 6,
        sql: include_str!("../../../migrations/sqlite/0006_upstream_columns.sql"),
        probe: None,
    },
    // Upstream's provider_override / reasoning_effort; its ADD COLUMNs skip existing columns.
    Migration {
        number: 7,
        sql: include_str!("../../../migrations/sqlite/0007_task_provider_reasoning.sql"),
        probe: None,
    },
    // The worker context's recent-work index; idempotent.
    Migration {
        number: 8,
        sql: include_str!("../../../migrations/sqlite/0008_recent_work_index.sql"),
        probe: Some("idx_runs_profile_completed"),
    },
];

const fn highest_migration() -> i64 {
    let mut i = 0;
    let mut max = 1;
    while i < OURS.len() {
        if OURS[i].number > max {
            max = OURS[i].number;
        }
        i += 1;
    }
    max
}

/// True when every idempotent migration's probe object exists.
fn probes_present(conn: &Connection) -> Result<bool> {
    for m in OURS {
        if let Some(name) = m.probe {
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM sqlite_master WHERE name=?1")?
                .query_row([name], |r| r.get(0))?;
            if n == 0 {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Columns upstream Hermes (~0.22) adds by `ALTER TABLE … ADD COLUMN` on every open (UP §2),
/// as `(table, column, declaration)`, in its order. Migration 0006 adds them, and every open
/// heals a board where one is missing (a board Hermes rebuilt, an old copy), so the kernel's
/// statements may always name them. Hermes 0.19.0 reads rows by column name and ignores them.
const UPSTREAM_COLUMNS: &[(&str, &str, &str)] = &[
    ("tasks", "completion_contract", "TEXT"),
    ("tasks", "worker_started_at", "INTEGER"),
    (
        "kanban_notify_subs",
        "last_ping_event_id",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "kanban_notify_subs",
        "delivery_mode",
        "TEXT NOT NULL DEFAULT 'notify'",
    ),
    ("kanban_notify_subs", "chat_type", "TEXT"),
    ("kanban_notify_subs", "user_id_alt", "TEXT"),
    ("kanban_notify_subs", "delivery_metadata", "TEXT"),
    ("task_runs", "worker_started_at", "INTEGER"),
];

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

/// Columns Hermes adds to `tasks` on older DBs, in its order, with their declarations.
const TASK_ADDITIVE_COLUMNS: &[(&str, &str)] = &[
    ("tenant", "TEXT"),
    ("result", "TEXT"),
    ("branch_name", "TEXT"),
    ("project_id", "TEXT"),
    ("idempotency_key", "TEXT"),
    ("consecutive_failures", "INTEGER NOT NULL DEFAULT 0"),
    ("worker_pid", "INTEGER"),
    ("last_failure_error", "TEXT"),
    ("max_runtime_seconds", "INTEGER"),
    ("last_heartbeat_at", "INTEGER"),
    ("current_run_id", "INTEGER"),
    ("workflow_template_id", "TEXT"),
    ("current_step_key", "TEXT"),
    ("skills", "TEXT"),
    ("max_retries", "INTEGER"),
    ("model_override", "TEXT"),
    ("goal_mode", "INTEGER NOT NULL DEFAULT 0"),
    ("goal_max_turns", "INTEGER"),
    ("session_id", "TEXT"),
    ("block_kind", "TEXT"),
    ("block_recurrences", "INTEGER NOT NULL DEFAULT 0"),
];

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

/// Add any of [`UPSTREAM_COLUMNS`] that is missing (one write transaction, only when needed).
/// When `kanban_notify_subs.delivery_mode` is first added, non-`tui` rows are back-filled to
/// `notify+wake`, as Hermes does (UP §2).
pub(crate) fn heal_upstream_columns(conn: &Connection) -> Result<()> {
    let missing = |c: &Connection| -> Result<Vec<(&'static str, &'static str, &'static str)>> {
        let mut out = Vec::new();
        type Columns = Vec<(String, String, i64)>;
        let mut cache: Vec<(&str, Columns)> = Vec::new();
        for &(table, col, decl) in UPSTREAM_COLUMNS {
            if !cache.iter().any(|(t, _)| *t == table) {
                cache.push((table, table_columns(c, table)?));
            }
            let cols = &cache.iter().find(|(t, _)| *t == table).expect("cached").1;
            if !cols.is_empty() && !has_column(cols, col) {
                out.push((table, col, decl));
            }
        }
        Ok(out)
    };
    if missing(conn)?.is_empty() {
        return Ok(());
    }
    write_txn(conn, |c| {
        for (table, col, decl) in missing(c)? {
            c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {col} {decl}"))?;
            if table == "kanban_notify_subs" && col == "delivery_mode" {
                c.execute_batch(
                    "UPDATE kanban_notify_subs SET delivery_mode = 'notify+wake' WHERE platform != 'tui'",
                )?;
            }
        }
        Ok(())
    })
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
        "hermes-kanban: waiting {:.0}s for the write lock on {db}: {who}; giving up in {left:.0}s (HERMES_KANBAN_BUSY_TIMEOUT_MS={})",
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
/// kernel operation such as [`crate::kernel::Board::patch_task`] calling single-step operations), the
/// body runs in a SAVEPOINT of the outer transaction: its error undoes only its own writes and
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

/// The schema version recorded in `PRAGMA user_version` (0 for a DB only Hermes has touched).
pub(crate) fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Bring the schema up to date in one `BEGIN IMMEDIATE` transaction. Fast path: a DB already at
/// [`SCHEMA_VERSION`] whose idempotent migrations' objects exist is left alone. Concurrent first
/// opens serialise on the write lock and the loser sees the version already set. A migration
/// whose number is below `user_version` but whose probe object is missing (a gap filled by a
/// later merge) is applied then; `user_version` never goes down.
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    if user_version(conn)? >= SCHEMA_VERSION && probes_present(conn)? {
        return Ok(());
    }
    write_txn(conn, |c| {
        let v = user_version(c)?;
        if v >= SCHEMA_VERSION && probes_present(c)? {
            return Ok(());
        }
        if v < SCHEMA_VERSION {
            hermes_additive_upgrade(c)?;
            c.execute_batch(M0001)?;
            hermes_data_upgrade(c)?;
        }
        for m in OURS {
            let missing = match m.probe {
                Some(name) => {
                    c.query_row(
                        "SELECT count(*) FROM sqlite_master WHERE name=?1",
                        [name],
                        |r| r.get::<_, i64>(0),
                    )? == 0
                }
                None => false,
            };
            if m.number > v || missing {
                run_migration(c, m.sql)?;
            }
        }
        c.execute_batch(&format!("PRAGMA user_version={}", v.max(SCHEMA_VERSION)))?;
        Ok(())
    })
}

/// Run one of our migrations statement by statement; an `ALTER TABLE t ADD COLUMN c …` whose
/// column already exists (upstream Hermes adds the same columns itself) is skipped.
fn run_migration(c: &Connection, sql: &str) -> Result<()> {
    if !sql.contains("ADD COLUMN") {
        c.execute_batch(sql)?;
        return Ok(());
    }
    let stripped: String = sql
        .lines()
        .map(|l| match l.find("--") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in stripped.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        if let ["ALTER", "TABLE", table, "ADD", "COLUMN", column, ..] = words.as_slice()
            && has_column(&table_columns(c, table)?, column)
        {
            continue;
        }
        c.execute_batch(stmt)?;
    }
    Ok(())
}

/// Column names and declared types of a table (empty when the table does not exist).
fn table_columns(c: &Connection, table: &str) -> Result<Vec<(String, String, i64)>> {
    let mut st = c.prepare(&format!("PRAGMA table_info({table})"))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn has_column(cols: &[(String, String, i64)], name: &str) -> bool {
    cols.iter().any(|(n, _, _)| n == name)
}

/// The canonical `CREATE TABLE` statement of `table` from 0001 (comments stripped).
fn canonical_table_ddl(table: &str) -> Option<String> {
    let stripped: String = M0001
        .lines()
        .map(|l| match l.find("--") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let needle = format!("CREATE TABLE IF NOT EXISTS {table} ");
    stripped
        .split(';')
        .map(str::trim)
        .find(|s| s.starts_with(&needle))
        .map(str::to_string)
}

/// Schema changes Hermes applies to older DBs before its indexes (REF §3.2): missing `tasks`
/// columns, legacy renames as add-then-copy, `task_events.run_id`,
/// `kanban_notify_subs.notifier_profile`, and rebuilds of tables whose ids drifted from
/// `INTEGER PRIMARY KEY`.
fn hermes_additive_upgrade(c: &Connection) -> Result<()> {
    let cols = table_columns(c, "tasks")?;
    if !cols.is_empty() {
        for (name, decl) in TASK_ADDITIVE_COLUMNS {
            if !has_column(&cols, name) {
                c.execute_batch(&format!("ALTER TABLE tasks ADD COLUMN {name} {decl}"))?;
                if *name == "consecutive_failures" && has_column(&cols, "spawn_failures") {
                    c.execute_batch(
                        "UPDATE tasks SET consecutive_failures = COALESCE(spawn_failures, 0)",
                    )?;
                }
                if *name == "last_failure_error" && has_column(&cols, "last_spawn_error") {
                    c.execute_batch("UPDATE tasks SET last_failure_error = last_spawn_error")?;
                }
            }
        }
    }
    let ev = table_columns(c, "task_events")?;
    if !ev.is_empty() && !has_column(&ev, "run_id") {
        c.execute_batch("ALTER TABLE task_events ADD COLUMN run_id INTEGER")?;
    }
    let subs = table_columns(c, "kanban_notify_subs")?;
    if !subs.is_empty() && !has_column(&subs, "notifier_profile") {
        c.execute_batch("ALTER TABLE kanban_notify_subs ADD COLUMN notifier_profile TEXT")?;
    }
    for table in ["task_events", "task_comments", "task_runs"] {
        let cols = table_columns(c, table)?;
        let drifted = cols
            .iter()
            .find(|(n, _, _)| n == "id")
            .is_some_and(|(_, ty, pk)| !ty.eq_ignore_ascii_case("INTEGER") || *pk != 1);
        if drifted {
            rebuild_table(c, table, &cols, None)?;
        }
    }
    let subs = table_columns(c, "kanban_notify_subs")?;
    let cursor_drift = subs
        .iter()
        .find(|(n, _, _)| n == "last_event_id")
        .is_some_and(|(_, ty, _)| !ty.eq_ignore_ascii_case("INTEGER"));
    if cursor_drift {
        rebuild_table(c, "kanban_notify_subs", &subs, Some("last_event_id"))?;
    }
    Ok(())
}

/// Rename → create canonical → copy shared columns (dropping a drifted `id`, casting the cursor
/// column) → drop the old table. Indexes are recreated by 0001 afterwards.
fn rebuild_table(
    c: &Connection,
    table: &str,
    old_cols: &[(String, String, i64)],
    int_cast: Option<&str>,
) -> Result<()> {
    let ddl = canonical_table_ddl(table)
        .ok_or_else(|| KernelError::Storage(format!("no canonical DDL for {table}")))?;
    let legacy = format!("{table}__legacy");
    c.execute_batch(&format!("ALTER TABLE {table} RENAME TO {legacy}"))?;
    c.execute_batch(&ddl)?;
    let new_cols = table_columns(c, table)?;
    let shared: Vec<&str> = new_cols
        .iter()
        .map(|(n, _, _)| n.as_str())
        .filter(|n| *n != "id" || table == "kanban_notify_subs")
        .filter(|n| has_column(old_cols, n))
        .collect();
    let select: Vec<String> = shared
        .iter()
        .map(|n| {
            if Some(*n) == int_cast {
                format!("COALESCE(CAST({n} AS INTEGER), 0)")
            } else {
                n.to_string()
            }
        })
        .collect();
    let order = if has_column(old_cols, "created_at") {
        " ORDER BY created_at"
    } else {
        ""
    };
    c.execute_batch(&format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {legacy}{order}; DROP TABLE {legacy};",
        shared.join(", "),
        select.join(", ")
    ))?;
    Ok(())
}

/// Data fixes Hermes applies on first connect (REF §3.2): running tasks without a run get a
/// synthesized open run; legacy event kinds are renamed.
fn hermes_data_upgrade(c: &Connection) -> Result<()> {
    type OrphanRow = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let orphans: Vec<OrphanRow> = {
        let mut st = c.prepare(
            "SELECT id, assignee, current_step_key, claim_lock, claim_expires, worker_pid,
                    max_runtime_seconds, last_heartbeat_at, started_at
             FROM tasks WHERE status='running' AND current_run_id IS NULL",
        )?;
        st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4).ok().flatten(),
                r.get(5).ok().flatten(),
                r.get(6).ok().flatten(),
                r.get(7).ok().flatten(),
                r.get(8).ok().flatten(),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let now = chrono::Utc::now().timestamp();
    for (id, assignee, step, lock, expires, pid, maxrt, hb, started) in orphans {
        c.execute(
            "INSERT INTO task_runs (task_id, profile, step_key, status, claim_lock, claim_expires,
                                    worker_pid, max_runtime_seconds, last_heartbeat_at, started_at)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                assignee,
                step,
                lock,
                expires,
                pid,
                maxrt,
                hb,
                started.unwrap_or(now)
            ],
        )?;
        let run_id = c.last_insert_rowid();
        let n = c.execute(
            "UPDATE tasks SET current_run_id=?1 WHERE id=?2 AND current_run_id IS NULL",
            params![run_id, id],
        )?;
        if n != 1 {
            c.execute(
                "UPDATE task_runs SET status='reclaimed', outcome='reclaimed', ended_at=?1,
                        claim_lock=NULL, claim_expires=NULL, worker_pid=NULL WHERE id=?2",
                params![now, run_id],
            )?;
        }
    }
    c.execute_batch(
        "UPDATE task_events SET kind='promoted' WHERE kind='ready';
         UPDATE task_events SET kind='reprioritized' WHERE kind='priority';
         UPDATE task_events SET kind='gave_up' WHERE kind='spawn_auto_blocked';",
    )?;
    Ok(())
}

/// Names of all user tables (for schema comparisons and invariant checks).
pub(crate) fn table_names(c: &Connection) -> Result<Vec<String>> {
    let mut st = c.prepare(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let v = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

/// `PRAGMA integrity_check` result (`"ok"` when healthy).
pub(crate) fn integrity_check(c: &Connection) -> Result<String> {
    let mut st = c.prepare("PRAGMA integrity_check")?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.join("; "))
}

/// Map a `query_row` "no rows" into `None`.
pub(crate) fn opt<T>(r: rusqlite::Result<T>) -> Result<Option<T>> {
    Ok(r.optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DB that reached a higher version without 0005 (another branch's 0006/0007 landed
    /// first) gets 0005 applied on the next open, and `user_version` does not go down.
    #[test]
    fn a_gap_filled_later_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kanban.db");
        let (c, _) = open(&path, 5_000, "FULL", None).unwrap();
        // A DB a newer binary (version 9) left without 0005.
        c.execute_batch("DROP TABLE kanban_webhook_cursors; PRAGMA user_version=9;")
            .unwrap();
        drop(c);
        let (c, _) = open(&path, 5_000, "FULL", None).unwrap();
        assert_eq!(user_version(&c).unwrap(), 9);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='kanban_webhook_cursors'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "0005 re-applied below user_version");
        assert!(
            user_version(&c).unwrap() > SCHEMA_VERSION,
            "the scenario needs a version above ours"
        );
    }
}
