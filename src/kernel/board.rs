//! [`Board`]: an open handle on one board's database — the entry point of every kernel call.
//! It owns the store (a SQLite connection or a PostgreSQL one), the board's paths (host-local:
//! logs, workspaces, attachments), the clock and the claimer identity, and how a board is
//! opened ([`OpenMode`]: existing only, or create); the operations themselves live in the
//! sibling modules as `impl Board` blocks.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::env::Env;
use super::error::{KernelError, Result};
use super::paths::{BoardPaths, resolve_board};
use super::store::sqlite as db;
use super::store::tick_lock::{self, TickLockTry};
use super::store::{Store, Tx, Val};
use super::types::{TASK_COLUMNS, Task, payload_text};
use crate::args;

/// A source of "now" in Unix seconds. Tests substitute a fixed clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Default claim TTL in seconds (REF §6.1).
pub const DEFAULT_CLAIM_TTL_SECONDS: i64 = 900;
/// Default circuit-breaker limit (REF §8.6).
pub const DEFAULT_FAILURE_LIMIT: i64 = 2;
/// Unblock-loop limit: a re-block of the same kind at this count routes to triage.
pub const BLOCK_RECURRENCE_LIMIT: i64 = 2;

/// An open board.
pub struct Board {
    pub(crate) store: Store,
    journal: db::JournalInfo,
    paths: BoardPaths,
    env: Env,
    clock: Clock,
    claimer: String,
    /// Group commit, when this board is shared by a long-lived host (`store/group.rs`).
    pub(crate) group: Option<super::store::group::Member>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("slug", &self.paths.slug)
            .field("db", &self.paths.db)
            .finish()
    }
}

/// `<host>:<pid>` of this process — the default claim lock (REF §3.4), where the host is
/// [`host_id`](super::hosts::host_id) (`HERMES_KANBAN_HOST_ID`, else the hostname).
pub fn default_claimer() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

/// This host's identity on a shared board (`HERMES_KANBAN_HOST_ID`, else the hostname): the
/// host part of its claims and of its process rows.
pub fn hostname() -> String {
    super::hosts::host_id().to_string()
}

fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

/// Whether opening a board may create its database (nothing creates a board silently: the
/// MCP server and reading verbs use [`OpenMode::Existing`]; `init` and writing verbs create and
/// say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The DB file must exist; otherwise [`KernelError::NoDatabase`] and nothing is created.
    Existing,
    /// Create (and migrate) the DB and its directory when missing.
    Create,
}

impl Board {
    /// Open the board named `board` (or the active one: env → `current` → `default`) under the
    /// kanban home of `env`, creating and migrating its DB if needed.
    pub fn open(env: &Env, board: Option<&str>) -> Result<Board> {
        Board::open_mode(env, board, OpenMode::Create).map(|(b, _)| b)
    }

    /// Open the board (as [`Board::open`]) with an explicit [`OpenMode`]; also says whether
    /// this call created the DB file.
    /// A database URL in `env` (`HERMES_KANBAN_DATABASE_URL`, `kanban.database_url`) opens
    /// the board on that database, as [`super::Kanban::open`] does.
    pub fn open_mode(env: &Env, board: Option<&str>, mode: OpenMode) -> Result<(Board, bool)> {
        if super::home::chosen_url(env, None).is_some() {
            return super::Kanban::open(env, None)?.open_board(board, mode);
        }
        let slug = resolve_board(env, board)?;
        let paths = BoardPaths::resolve(env, &slug);
        let existed = paths.db.exists();
        if !existed && mode == OpenMode::Existing {
            return Err(KernelError::NoDatabase {
                slug,
                path: paths.db,
            });
        }
        Ok((Board::open_sqlite(env, paths)?, !existed))
    }

    /// An empty board in memory with the paths of `paths` (nothing on disk is created or
    /// read): what reading verbs show for a board without a database.
    pub fn open_empty(env: &Env, paths: BoardPaths) -> Result<Board> {
        let busy = env
            .positive_i64("HERMES_KANBAN_BUSY_TIMEOUT_MS")
            .unwrap_or(db::DEFAULT_BUSY_TIMEOUT_MS);
        let sync = db::synchronous_level(env.get("HERMES_KANBAN_SYNCHRONOUS"));
        let (conn, journal) = db::open_memory(busy, sync)?;
        Ok(Board {
            store: Store::Sqlite(conn),
            journal,
            paths,
            env: env.clone(),
            clock: system_clock(),
            claimer: default_claimer(),
            group: None,
        })
    }

    /// Open a board at explicit paths. With a database URL in `env` the board `paths.slug`
    /// of that database is opened (created when missing) with these host-local paths.
    pub fn open_paths(env: &Env, paths: BoardPaths) -> Result<Board> {
        if super::home::chosen_url(env, None).is_some() {
            let home = super::Kanban::open(env, None)?;
            let (mut b, _) = home.open_board(Some(&paths.slug), OpenMode::Create)?;
            b.paths = paths;
            return Ok(b);
        }
        Board::open_sqlite(env, paths)
    }

    /// Open the SQLite board at `paths` (no database URL consulted).
    pub(crate) fn open_sqlite(env: &Env, paths: BoardPaths) -> Result<Board> {
        let busy = env
            .positive_i64("HERMES_KANBAN_BUSY_TIMEOUT_MS")
            .unwrap_or(db::DEFAULT_BUSY_TIMEOUT_MS);
        let sync = db::synchronous_level(env.get("HERMES_KANBAN_SYNCHRONOUS"));
        let config = super::paths::hermes_root(env).join("config.yaml");
        let setting = std::fs::read_to_string(&config)
            .ok()
            .and_then(|t| db::journal_setting(&t));
        let (conn, journal) = db::open(&paths.db, busy, sync, setting.as_deref())?;
        Ok(Board {
            store: Store::Sqlite(conn),
            journal,
            paths,
            env: env.clone(),
            clock: system_clock(),
            claimer: default_claimer(),
            group: None,
        })
    }

    /// A board on PostgreSQL (its schema already migrated) with host-local `paths`.
    pub(crate) fn from_pg(
        env: &Env,
        paths: BoardPaths,
        conn: super::store::postgres::PgConn,
    ) -> Board {
        let journal = db::JournalInfo {
            mode: "postgresql".into(),
            setting: None,
            reason: format!(
                "the board lives on PostgreSQL ({}, schema {}); journal modes are SQLite's",
                conn.target().shown(),
                conn.schema()
            ),
        };
        Board {
            store: Store::Postgres(Box::new(conn)),
            journal,
            paths,
            env: env.clone(),
            clock: system_clock(),
            claimer: default_claimer(),
            // PostgreSQL has real concurrent transactions: no group commit.
            group: None,
        }
    }

    /// Where the board's data lives, for messages: the SQLite file, or the PostgreSQL URL
    /// (without its password) and schema.
    pub fn location(&self) -> String {
        match self.store.pg() {
            Some(c) => format!("{} (schema {})", c.target().shown(), c.schema()),
            None => self.paths.db.display().to_string(),
        }
    }

    /// Whether the board lives on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.store.pg().is_some()
    }

    /// Try the dispatcher's tick lock of this board without waiting (one tick per board at a
    /// time, across processes and hosts, and across the ticks of one process): SQLite flocks
    /// `<db>.dispatch.lock`, PostgreSQL takes a session advisory lock on the board's own
    /// session. Released when the lock drops (on PostgreSQL before the board's next statement;
    /// [`Board::release_tick_lock`] after the drop makes it at once).
    pub fn try_tick_lock(&self) -> TickLockTry {
        match self.store.pg() {
            Some(c) => tick_lock::try_pg(c),
            None => tick_lock::try_file(&self.paths.db),
        }
    }

    /// Let a dropped tick lock go now: on PostgreSQL the unlock otherwise waits for the
    /// board's next statement (a flock goes with its drop).
    pub fn release_tick_lock(&self) {
        if let Some(c) = self.store.pg() {
            c.release_tick_lock();
        }
    }

    /// This board's metadata: `board.json` on SQLite, its registry row on PostgreSQL
    /// (synthesized defaults when there is none or it cannot be read).
    pub fn board_meta(&self) -> super::paths::BoardMeta {
        if self.is_postgres() {
            let text: Option<String> = self
                .tx()
                .row(
                    "SELECT meta FROM hermes_kanban.boards WHERE schema_name = current_schema()",
                    args![],
                )
                .ok()
                .flatten();
            let mut m = text
                .and_then(|t| serde_json::from_str::<super::paths::BoardMeta>(&t).ok())
                .unwrap_or_else(|| super::paths::BoardMeta::synthesized(self.slug()));
            m.slug = self.slug().to_string();
            return m;
        }
        super::paths::read_board_meta(&self.env, self.slug())
    }

    /// Open a DB file directly (sidecar directories next to it), with the process environment.
    pub fn open_file(db: &Path) -> Result<Board> {
        Board::open_paths(&Env::from_process(), BoardPaths::for_db_file(db))
    }

    /// The journal mode this board runs in and why (UP §3; `diagnostics` reports it).
    pub fn journal(&self) -> &db::JournalInfo {
        &self.journal
    }

    /// This board's paths.
    pub fn paths(&self) -> &BoardPaths {
        &self.paths
    }

    /// This board's slug.
    pub fn slug(&self) -> &str {
        &self.paths.slug
    }

    /// The environment the board was opened with.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Current time in Unix seconds, from the board's clock.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Replace the clock (tests use a fixed or stepping clock).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The claim-lock identity this handle claims with (default `hostname:pid`).
    pub fn claimer(&self) -> &str {
        &self.claimer
    }

    /// Claim as someone else (the dispatcher passes its own lock string).
    pub fn set_claimer(&mut self, claimer: impl Into<String>) {
        self.claimer = claimer.into();
    }

    /// Claim TTL: `HERMES_KANBAN_CLAIM_TTL_SECONDS` (positive) else 900 s.
    pub fn default_claim_ttl(&self) -> i64 {
        self.env
            .positive_i64("HERMES_KANBAN_CLAIM_TTL_SECONDS")
            .unwrap_or(DEFAULT_CLAIM_TTL_SECONDS)
    }

    /// Schema version: SQLite's `PRAGMA user_version`; on PostgreSQL the newest migration
    /// recorded in the board schema's `schema_migrations` (the numbers of
    /// `migrations/postgres/`, not SQLite's).
    pub fn schema_version(&self) -> Result<i64> {
        match &self.store {
            Store::Sqlite(c) => db::user_version(c),
            Store::Postgres(_) => self.store.tx().one(
                "SELECT COALESCE(max(version), 0) FROM schema_migrations",
                args![],
            ),
        }
    }

    /// `PRAGMA integrity_check` (`"ok"` when healthy). On PostgreSQL the server owns page
    /// integrity: `"ok"` once the board's schema answers a query (run `amcheck` for more).
    pub fn integrity_check(&self) -> Result<String> {
        match &self.store {
            Store::Sqlite(c) => {
                db::integrity_check(&Tx::sqlite(c)).map_err(|e| db::locate(e, &self.paths.db))
            }
            Store::Postgres(_) => {
                self.store
                    .tx()
                    .one::<i64>("SELECT count(*) FROM tasks", args![])?;
                Ok("ok".into())
            }
        }
    }

    /// Names of all user tables, sorted.
    pub fn table_names(&self) -> Result<Vec<String>> {
        match &self.store {
            Store::Sqlite(c) => db::table_names(&Tx::sqlite(c)),
            Store::Postgres(_) => Ok(self
                .store
                .tx()
                .tables()?
                .into_iter()
                .map(|t| t.name)
                .collect()),
        }
    }

    /// Column names of `table` in declaration order (empty if the table is absent). `table`
    /// must be one of [`Board::table_names`].
    pub fn table_columns(&self, table: &str) -> Result<Vec<String>> {
        match &self.store {
            Store::Sqlite(c) => {
                if !self.table_names()?.iter().any(|t| t == table) {
                    return Ok(vec![]);
                }
                db::column_names(&Tx::sqlite(c), table)
            }
            Store::Postgres(_) => Ok(self
                .store
                .tx()
                .tables()?
                .into_iter()
                .find(|t| t.name == table)
                .map(|t| t.columns)
                .unwrap_or_default()),
        }
    }

    /// Every row of every table, one line per row, in an order that does not depend on the
    /// backend: tables by name, rows by primary key (tables without one: by every column),
    /// values rendered backend-neutrally — `table|col=value|…` with `NULL`, integers and reals
    /// as numbers, text as a JSON string and blobs as `x'hex'`. Tests compare two snapshots to
    /// prove that a refused call changed nothing.
    pub fn snapshot(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for t in tx.tables()? {
                let order = if t.key.is_empty() { &t.columns } else { &t.key };
                let quoted = |cols: &[String]| {
                    cols.iter()
                        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let sql = format!(
                    "SELECT {} FROM \"{}\" ORDER BY {}",
                    quoted(&t.columns),
                    t.name,
                    quoted(order)
                );
                tx.each(&sql, args![], |r| {
                    let mut line = t.name.clone();
                    for (i, col) in t.columns.iter().enumerate() {
                        line.push('|');
                        line.push_str(col);
                        line.push('=');
                        line.push_str(&snapshot_value(r.val(i)?));
                    }
                    out.push(line);
                    Ok(())
                })?;
            }
            Ok(out)
        })
    }

    /// Whether this process may not mutate this board (a delegated child, see
    /// [`super::fence`]). Readers that write on the side (`list` promoting ready work) skip the
    /// write instead of failing.
    pub fn write_fenced(&self) -> bool {
        super::fence::is_fenced(&self.env, &self.paths.db)
    }

    pub(crate) fn write<T>(&self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        super::fence::check(&self.env, &self.paths.db)?;
        match (&self.group, &self.store) {
            (Some(g), Store::Sqlite(c)) => g.write(c, |c| body(&Tx::sqlite(c))),
            _ => self.store.write(body),
        }
        .map_err(|e| db::locate(e, &self.paths.db))
    }

    pub(crate) fn read<T>(&self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        match (&self.group, &self.store) {
            (Some(g), Store::Sqlite(c)) => db::read_txn(g.reader(c), |c| body(&Tx::sqlite(c))),
            _ => self.store.read(body),
        }
        .map_err(|e| db::locate(e, &self.paths.db))
    }

    /// Statements outside a transaction (single reads that need no snapshot). While a group
    /// commit is open that this call has not written to, the read connection: plain reads see
    /// only committed state.
    pub(crate) fn tx(&self) -> Tx<'_> {
        match (&self.group, &self.store) {
            (Some(g), Store::Sqlite(c)) => Tx::sqlite(g.reader(c)),
            _ => self.store.tx(),
        }
    }
}

/// One value of [`Board::snapshot`], rendered the same whichever backend stored it.
fn snapshot_value(v: Val<'_>) -> String {
    match v {
        Val::Null => "NULL".to_string(),
        Val::Int(n) => n.to_string(),
        Val::Real(f) => format!("{f:?}"),
        Val::Text(s) => Value::String(s.to_string()).to_string(),
        Val::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("x'{hex}'")
        }
    }
}

// ----- shared helpers used by the operation modules -----

/// Fetch one task or [`KernelError::TaskNotFound`].
pub(crate) fn load_task(c: &Tx, id: &str) -> Result<Task> {
    // No stored id holds a NUL (ids are validated at creation), and PostgreSQL refuses one in
    // a parameter: such an id is an unknown task on every backend.
    if id.contains('\0') {
        return Err(KernelError::TaskNotFound(super::validate::truncate(id, 80)));
    }
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id=?1"));
    c.row::<Task>(sql, args![id])?
        .ok_or_else(|| KernelError::TaskNotFound(super::validate::truncate(id, 80)))
}

/// Append an event; an empty payload is stored as NULL. Returns the event id.
pub(crate) fn add_event(
    c: &Tx,
    task_id: &str,
    run_id: Option<i64>,
    kind: &str,
    payload: Map<String, Value>,
    now: i64,
) -> Result<i64> {
    c.insert_id(
        "INSERT INTO task_events (task_id, run_id, kind, payload, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        args![task_id, run_id, kind, payload_text(&payload), now],
    )
}

/// Build a JSON object from pairs.
#[macro_export]
#[doc(hidden)]
macro_rules! obj {
    () => { serde_json::Map::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {{
        let mut m = serde_json::Map::new();
        $( m.insert($k.to_string(), serde_json::json!($v)); )+
        m
    }};
}
