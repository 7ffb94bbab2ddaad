//! The SQLite schema: migration 0001 is the Hermes 0.19.0 schema, preceded by the additive
//! upgrades and data fixes Hermes applies to older DBs (REF §3.2); our own migrations
//! (`migrations/sqlite/000N_*.sql`) are tracked in `PRAGMA user_version`, and every open heals
//! the columns upstream Hermes (~0.22) adds itself.

use rusqlite::{Connection, params};

use super::write_txn;
use crate::kernel::error::{KernelError, Result};

/// Our schema version: the highest migration number in [`OURS`].
pub const SCHEMA_VERSION: i64 = highest_migration();

const M0001: &str = include_str!("../../../../migrations/sqlite/0001_hermes_0_19_0.sql");

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
        sql: include_str!("../../../../migrations/sqlite/0002_run_tokens.sql"),
        probe: None,
    },
    Migration {
        number: 3,
        sql: include_str!("../../../../migrations/sqlite/0003_worker_procs.sql"),
        probe: None,
    },
    Migration {
        number: 4,
        sql: include_str!("../../../../migrations/sqlite/0004_list_order.sql"),
        probe: None,
    },
    Migration {
        number: 5,
        sql: include_str!("../../../../migrations/sqlite/0005_webhook_cursors.sql"),
        probe: Some("kanban_webhook_cursors"),
    },
    // Documentation only: the columns are added by `heal_upstream_columns` on every open.
    Migration {
        number: 6,
        sql: include_str!("../../../../migrations/sqlite/0006_upstream_columns.sql"),
        probe: None,
    },
    // Upstream's provider_override / reasoning_effort; its ADD COLUMNs skip existing columns.
    Migration {
        number: 7,
        sql: include_str!("../../../../migrations/sqlite/0007_task_provider_reasoning.sql"),
        probe: None,
    },
    // The worker context's recent-work index; idempotent.
    Migration {
        number: 8,
        sql: include_str!("../../../../migrations/sqlite/0008_recent_work_index.sql"),
        probe: Some("idx_runs_profile_completed"),
    },
    // Host leases and attachment blobs (many hosts on one board); idempotent.
    Migration {
        number: 9,
        sql: include_str!("../../../../migrations/sqlite/0009_hosts_and_blobs.sql"),
        probe: Some("kanban_attachment_blobs"),
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

/// What one query reports about a board's schema (the whole cost of opening an up-to-date
/// board): `user_version`, which idempotent migrations' probe objects exist, and the columns of
/// the tables [`UPSTREAM_COLUMNS`] names.
struct SchemaProbe {
    user_version: i64,
    /// The probe objects of [`OURS`] present in `sqlite_master`.
    objects: Vec<String>,
    /// `(table, column)` for every column of an existing table in [`UPSTREAM_COLUMNS`].
    columns: Vec<(String, String)>,
}

impl SchemaProbe {
    /// One `SELECT` over `pragma_user_version`, `sqlite_master` and `pragma_table_info`.
    fn read(c: &Connection) -> Result<SchemaProbe> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let quoted = |names: &mut dyn Iterator<Item = &str>| {
                let mut v: Vec<String> = names.map(|n| format!("'{n}'")).collect();
                v.dedup();
                v.join(", ")
            };
            let objects = quoted(&mut OURS.iter().filter_map(|m| m.probe));
            let tables = quoted(&mut UPSTREAM_COLUMNS.iter().map(|(t, _, _)| *t));
            format!(
                "SELECT 'version', NULL, NULL, user_version FROM pragma_user_version
                 UNION ALL
                 SELECT 'object', name, NULL, NULL FROM sqlite_master WHERE name IN ({objects})
                 UNION ALL
                 SELECT 'column', m.name, p.name, NULL
                   FROM sqlite_master AS m, pragma_table_info(m.name) AS p
                  WHERE m.type = 'table' AND m.name IN ({tables})"
            )
        });
        let mut probe = SchemaProbe {
            user_version: 0,
            objects: Vec::new(),
            columns: Vec::new(),
        };
        let mut st = c.prepare_cached(sql)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let name: Option<String> = r.get(1)?;
            match r.get::<_, String>(0)?.as_str() {
                "version" => probe.user_version = r.get(3)?,
                "object" => probe.objects.extend(name),
                _ => probe
                    .columns
                    .extend(name.zip(r.get::<_, Option<String>>(2)?)),
            }
        }
        Ok(probe)
    }

    /// At [`SCHEMA_VERSION`] (or past it) with every idempotent migration's object present.
    fn is_current(&self) -> bool {
        self.user_version >= SCHEMA_VERSION && OURS.iter().all(|m| !self.lacks_probe(m))
    }

    /// Whether `m` is idempotent and its probe object is missing.
    fn lacks_probe(&self, m: &Migration) -> bool {
        m.probe
            .is_some_and(|name| !self.objects.iter().any(|o| o == name))
    }

    /// The [`UPSTREAM_COLUMNS`] missing from a table that exists.
    fn missing_upstream(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        let has = |table: &str, col: Option<&str>| {
            self.columns
                .iter()
                .any(|(t, c)| t == table && col.is_none_or(|col| c == col))
        };
        UPSTREAM_COLUMNS
            .iter()
            .filter(|(table, col, _)| has(table, None) && !has(table, Some(col)))
            .copied()
            .collect()
    }
}

/// Add any of [`UPSTREAM_COLUMNS`] that `probe` finds missing (one write transaction, only when
/// needed; the columns are probed again under the write lock).
/// When `kanban_notify_subs.delivery_mode` is first added, non-`tui` rows are back-filled to
/// `notify+wake`, as Hermes does (UP §2).
fn heal_upstream_columns(conn: &Connection, probe: &SchemaProbe) -> Result<()> {
    if probe.missing_upstream().is_empty() {
        return Ok(());
    }
    write_txn(conn, |c| {
        for (table, col, decl) in SchemaProbe::read(c)?.missing_upstream() {
            c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {col} {decl}"))?;
            if table == "kanban_notify_subs" && col == "delivery_mode" {
                c.execute_batch(
                    "UPDATE kanban_notify_subs SET delivery_mode = 'notify+wake' WHERE platform != \
                    'tui'",
                )?;
            }
        }
        Ok(())
    })
}

/// The schema version recorded in `PRAGMA user_version` (0 for a DB only Hermes has touched).
pub(crate) fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Bring the schema up to date in one `BEGIN IMMEDIATE` transaction, then heal
/// [`UPSTREAM_COLUMNS`]. Fast path: a DB already at [`SCHEMA_VERSION`] whose idempotent
/// migrations' objects and upstream columns exist is left alone after one query
/// ([`SchemaProbe`]). Concurrent first opens serialise on the write lock and the loser sees the
/// version already set. A migration whose number is below `user_version` but whose probe object
/// is missing (a gap filled by a later merge) is applied then; `user_version` never goes down.
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    let probe = SchemaProbe::read(conn)?;
    if probe.is_current() {
        return heal_upstream_columns(conn, &probe);
    }
    write_txn(conn, |c| {
        let probe = SchemaProbe::read(c)?;
        if probe.is_current() {
            return Ok(());
        }
        let v = probe.user_version;
        if v < SCHEMA_VERSION {
            hermes_additive_upgrade(c)?;
            c.execute_batch(M0001)?;
            hermes_data_upgrade(c)?;
        }
        for m in OURS {
            if m.number > v || probe.lacks_probe(m) {
                run_migration(c, m.sql)?;
            }
        }
        c.execute_batch(&format!("PRAGMA user_version={}", v.max(SCHEMA_VERSION)))?;
        Ok(())
    })?;
    heal_upstream_columns(conn, &SchemaProbe::read(conn)?)
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

#[cfg(test)]
mod tests {
    use super::super::open;
    use super::*;

    /// A DB that reached a higher version without 0005 (another branch's 0006/0007 landed
    /// first) gets 0005 applied on the next open, and `user_version` does not go down.
    #[test]
    fn a_gap_filled_later_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kanban.db");
        let (c, _) = open(&path, 5_000, "FULL", None).unwrap();
        // A DB a newer binary (version 99) left without 0005.
        c.execute_batch("DROP TABLE kanban_webhook_cursors; PRAGMA user_version=99;")
            .unwrap();
        drop(c);
        let (c, _) = open(&path, 5_000, "FULL", None).unwrap();
        assert_eq!(user_version(&c).unwrap(), 99);
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
