//! Compatibility with Hermes Agent 0.19.0's `kanban.db` (SPEC §3.1-3.2, REF §2-4, §21, §23.1):
//!
//! 1. a DB written by Python Hermes 0.19.0 opens, upgrades to our schema version without touching
//!    Hermes' rows, and every kernel operation works on it;
//! 2. a DB written by our kernel has exactly the 0.19.0 tables, columns and indexes (plus the
//!    indexes of our own `migrations/000N` files, if any), so a Python reader works on it;
//! 3. older Hermes DBs (the original landing, drifted tables) get the additive upgrades of
//!    REF §3.2, idempotently and safely under concurrent first opens;
//! 4. corrupt or non-SQLite files are refused with the path named and nothing written;
//! 5. path resolution and board management (REF §2).
//!
//! Fixtures are built here with rusqlite as a plain SQLite client. No DB file is ever touched
//! with `std::fs` while a connection to it is open in this process (REF §3.3).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use crate::helpers::assert_invariants;
use hermes_kanban::kernel::{
    BlockKind, BlockRequest, Board, BoardPaths, Completion, DEFAULT_BOARD, Env, KernelError,
    NewBoard, NewTask, SCHEMA_VERSION, Status, SubKey, WorkspaceKind, board_exists, create_board,
    hermes_root, kanban_home, list_boards, normalize_slug, read_board_meta, remove_board,
    rename_board, resolve_board, set_default_workdir, switch_board,
};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use tempfile::TempDir;

// ------------------------------------------------------------------------------------------------
// Shared helpers
// ------------------------------------------------------------------------------------------------

/// The verbatim `.schema` dump of a DB made by `hermes kanban init` (0.19.0).
const HERMES_DDL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hermes-0.19.0-schema.sql"
));

/// Epoch of the observed Hermes session (REF §21.2).
const T0: i64 = 1_795_247_395;
/// "Now" for the kernel in the Hermes-DB scenario.
const NOW: i64 = T0 + 100;

/// The fixture DDL without the `sqlite_sequence` line (SQLite creates that table itself).
fn hermes_ddl() -> String {
    HERMES_DDL
        .lines()
        .filter(|l| !l.trim_start().starts_with("CREATE TABLE sqlite_sequence"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `HOME=<dir>`, `HERMES_HOME=<dir>/hermes` — so the kanban home `<R>` is `<dir>/hermes`.
fn env_in(dir: &Path) -> Env {
    Env::empty()
        .with("HOME", dir.to_string_lossy())
        .with("HERMES_HOME", dir.join("hermes").to_string_lossy())
}

/// The default board's DB path under [`env_in`].
fn default_db(dir: &Path) -> PathBuf {
    dir.join("hermes").join("kanban.db")
}

fn open_default(env: &Env, now: i64) -> Board {
    let mut b = Board::open(env, None).expect("open default board");
    b.set_clock(Arc::new(move || now));
    b
}

/// A plain SQLite client connection (what Python's `sqlite3.connect` would be).
fn client(path: &Path) -> Connection {
    let c = Connection::open(path).expect("plain sqlite open");
    c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    c
}

fn pragma_text(c: &Connection, pragma: &str) -> String {
    c.query_row(&format!("PRAGMA {pragma}"), [], |r| {
        let v: rusqlite::types::Value = r.get(0)?;
        Ok(match v {
            rusqlite::types::Value::Text(t) => t,
            rusqlite::types::Value::Integer(i) => i.to_string(),
            other => format!("{other:?}"),
        })
    })
    .unwrap()
}

fn user_version(c: &Connection) -> i64 {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn integrity(c: &Connection) -> String {
    let mut st = c.prepare("PRAGMA integrity_check").unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
        .join("; ")
}

/// All tables (including `sqlite_sequence`), sorted.
fn tables(c: &Connection) -> Vec<String> {
    let mut st = c
        .prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<String>>>()
        .unwrap()
}

/// `PRAGMA table_info`: (cid, name, type, notnull, dflt_value, pk) per column.
type ColInfo = (i64, String, String, i64, Option<String>, i64);

fn table_info(c: &Connection, table: &str) -> Vec<ColInfo> {
    let mut st = c.prepare(&format!("PRAGMA table_info({table})")).unwrap();
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

/// The same without the column position (for tables whose columns were added by ALTER).
fn columns_unordered(
    c: &Connection,
    table: &str,
) -> BTreeMap<String, (String, i64, Option<String>, i64)> {
    table_info(c, table)
        .into_iter()
        .map(|(_, n, t, nn, d, pk)| (n, (t, nn, d, pk)))
        .collect()
}

/// Every index (auto-indexes included): name → (table, unique, [(column, desc, collation)]).
type IndexDef = (String, i64, Vec<(Option<String>, i64, String)>);

fn indexes(c: &Connection) -> BTreeMap<String, IndexDef> {
    let names: Vec<(String, String)> = {
        let mut st = c
            .prepare("SELECT name, tbl_name FROM sqlite_master WHERE type='index' ORDER BY name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    };
    let mut out = BTreeMap::new();
    for (name, table) in names {
        let unique: i64 = {
            let mut st = c.prepare(&format!("PRAGMA index_list({table})")).unwrap();
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            rows.into_iter().find(|(n, _)| *n == name).unwrap().1
        };
        let mut st = c.prepare(&format!("PRAGMA index_xinfo({name})")).unwrap();
        let cols = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .into_iter()
            .filter(|(_, _, _, key)| *key == 1)
            .map(|(n, d, coll, _)| (n, d, coll))
            .collect();
        out.insert(name, (table, unique, cols));
    }
    out
}

/// One cell as readable text: `NULL`, `42`, `1.5`, `"text"`, `x'00ff'`.
fn cell(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => "NULL".into(),
        V::Integer(i) => i.to_string(),
        V::Real(f) => f.to_string(),
        V::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        V::Blob(b) => format!(
            "x'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// Every row of `table` rendered as text (`col=value|…`), in rowid order.
/// The columns upstream Hermes (~0.22) adds with ALTER TABLE, which our migration 0006 adds
/// too (`db::heal_upstream_columns`), in the same order and with the same declarations.
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

fn is_upstream_column(table: &str, col: &str) -> bool {
    UPSTREAM_COLUMNS
        .iter()
        .any(|(t, c, _)| *t == table && *c == col)
}

/// Rows as text, without the upstream columns (what Hermes 0.19.0 wrote is compared).
fn dump_table(c: &Connection, table: &str) -> Vec<String> {
    let mut st = c
        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
        .unwrap();
    let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
    st.query_map([], |r| {
        let mut cells = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if is_upstream_column(table, n) {
                continue;
            }
            cells.push(format!("{n}={}", cell(r.get_ref(i)?)));
        }
        Ok(cells.join("|"))
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

fn dump_all(c: &Connection) -> BTreeMap<String, Vec<String>> {
    tables(c)
        .into_iter()
        .map(|t| {
            let rows = dump_table(c, &t);
            (t, rows)
        })
        .collect()
}

/// A DB built from the fixture DDL, in memory: the reference 0.19.0 schema.
fn reference_db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(&hermes_ddl()).unwrap();
    c
}

/// Our own migrations (`migrations/000N_*.sql`, N ≥ 2), in order, read from the crate.
fn our_migrations() -> Vec<(i64, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join("sqlite");
    let mut out: Vec<(i64, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let n: i64 = name[..4]
                .parse()
                .unwrap_or_else(|_| panic!("bad migration name {name}"));
            (n, std::fs::read_to_string(&p).unwrap())
        })
        .filter(|(n, _)| *n >= 2)
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// The 0.19.0 reference plus our additive migrations: what a kernel-made DB must look like.
fn reference_with_ours() -> Connection {
    let c = reference_db();
    for (_, sql) in our_migrations() {
        c.execute_batch(&sql).unwrap();
    }
    for (t, col, decl) in UPSTREAM_COLUMNS {
        c.execute_batch(&format!("ALTER TABLE {t} ADD COLUMN {col} {decl}"))
            .unwrap();
    }
    c
}

/// `<db>-wal`, `<db>-shm`, `<db>-journal` siblings that exist.
fn sqlite_sidecars(db: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| p.exists())
        .collect()
}

fn ids(tasks: &[hermes_kanban::kernel::Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

// ------------------------------------------------------------------------------------------------
// 1. A DB written by Python Hermes 0.19.0
// ------------------------------------------------------------------------------------------------

const A: &str = "t_9c025d30"; // done, with a completed run carrying metadata
const D: &str = "t_aa557496"; // ready, tenant acme, priority 5, one attachment
const C: &str = "t_f5e58b28"; // todo child of A (done), B (running) and D (ready)
const B: &str = "t_3b1c0f77"; // running: open run 3 + claim, notify subscription
const E: &str = "t_0d4e2a19"; // todo child of B only
const F: &str = "t_44dc5846"; // blocked (needs_input) with a synthesized blocked run
const G: &str = "t_66c29bb6"; // triage, unassigned

/// Build `<path>` the way `hermes kanban init` + the CLI session of REF §21.2-21.3 leave it.
fn build_hermes_019_db(path: &Path, root: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = Connection::open(path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    c.execute_batch(&hermes_ddl()).unwrap();
    let ws = root.join("kanban").join("workspaces");
    let att = root
        .join("kanban")
        .join("attachments")
        .join(D)
        .join("spec.md");
    let t = |d: i64| T0 + d;
    c.execute_batch(&format!(
        r#"
        INSERT INTO tasks (id, title, body, assignee, status, priority, created_by, created_at,
                           started_at, completed_at, workspace_kind, workspace_path)
        VALUES ('{A}', 'Research A', NULL, 'worker', 'done', 0, 'user', {t0}, {t15}, {t17},
                'scratch', '{wsa}');
        INSERT INTO tasks (id, title, assignee, status, priority, created_by, created_at, tenant)
        VALUES ('{D}', 'Research B', 'worker', 'ready', 5, 'user', {t1}, 'acme');
        INSERT INTO tasks (id, title, body, assignee, status, priority, created_by, created_at,
                           skills, max_runtime_seconds, idempotency_key)
        VALUES ('{C}', 'Synthesize', 'Combine A and B', 'reviewer', 'todo', 0, 'user', {t2},
                '["github-code-review"]', 1800, 'synth-1');
        INSERT INTO tasks (id, title, assignee, status, priority, created_by, created_at,
            started_at,
                           workspace_path, claim_lock, claim_expires, worker_pid, last_heartbeat_at,
                           current_run_id)
        VALUES ('{B}', 'Research C', 'worker', 'running', 0, 'user', {t3}, {t20}, '{wsb}',
                'vm:10800', {t920}, 10801, {t30}, 3);
        INSERT INTO tasks (id, title, assignee, status, created_by, created_at)
        VALUES ('{E}', 'Write summary', 'worker', 'todo', 'user', {t4});
        INSERT INTO tasks (id, title, assignee, status, created_by, created_at, block_kind,
                           block_recurrences)
        VALUES ('{F}', 'needs ops', 'worker', 'blocked', 'user', {t5}, 'needs_input', 1);
        INSERT INTO tasks (id, title, status, created_by, created_at)
        VALUES ('{G}', 'Triage idea', 'triage', 'user', {t6});

        INSERT INTO task_links (parent_id, child_id) VALUES ('{A}', '{C}');
        INSERT INTO task_links (parent_id, child_id) VALUES ('{D}', '{C}');
        INSERT INTO task_links (parent_id, child_id) VALUES ('{B}', '{C}');
        INSERT INTO task_links (parent_id, child_id) VALUES ('{B}', '{E}');

        INSERT INTO task_runs (id, task_id, profile, status, last_heartbeat_at, started_at,
            ended_at,
                               outcome, summary, metadata)
        VALUES (1, '{A}', 'worker', 'done', {t16}, {t15}, {t17}, 'completed', 'A done: 3 sources',
                '{{"sources": 3, "changed_files": ["notes.md"]}}');
        INSERT INTO task_runs (id, task_id, profile, status, started_at, ended_at, outcome, summary)
        VALUES (2, '{F}', 'worker', 'blocked', {t18}, {t18}, 'blocked', 'need creds');
        INSERT INTO task_runs (id, task_id, profile, status, claim_lock, claim_expires, worker_pid,
                               last_heartbeat_at, started_at)
        VALUES (3, '{B}', 'worker', 'running', 'vm:10800', {t920}, 10801, {t30}, {t20});

        INSERT INTO task_comments (task_id, author, body, created_at)
        VALUES ('{A}', 'worker', 'found 3 sources', {t16});
        INSERT INTO task_comments (task_id, author, body, created_at)
        VALUES ('{F}', 'default', 'BLOCKED: need creds', {t18});

        INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES
          ('{A}', NULL, 'created',
              '{{"assignee": "worker", "status": "ready", "parents": [], "tenant": null}}', {t0}),
          ('{D}', NULL, 'created',
              '{{"assignee": "worker", "status": "ready", "parents": [], "tenant": "acme"}}', {t1}),
          ('{C}', NULL, 'created',
              '{{"assignee": "reviewer", "status": "todo", "parents": ["{A}", "{D}", "{B}"], ' ||
              '"tenant": null, "skills": ["github-code-review"]}}', {t2}),
          ('{B}', NULL, 'created',
              '{{"assignee": "worker", "status": "ready", "parents": [], "tenant": null}}', {t3}),
          ('{E}', NULL, 'created',
              '{{"assignee": "worker", "status": "todo", "parents": ["{B}"], "tenant": null}}',
                  {t4}),
          ('{F}', NULL, 'created',
              '{{"assignee": "worker", "status": "ready", "parents": [], "tenant": null}}', {t5}),
          ('{G}', NULL, 'created',
              '{{"assignee": null, "status": "triage", "parents": [], "tenant": null}}', {t6}),
          ('{A}', 1, 'claimed', '{{"lock": "vm:10800", "expires": {t615}, "run_id": 1}}', {t15}),
          ('{A}', NULL, 'commented', '{{"author": "worker", "len": 15}}', {t16}),
          ('{A}', 1, 'heartbeat', '{{"note": "halfway"}}', {t16}),
          ('{A}', 1, 'completed', '{{"result_len": 0, "summary": "A done: 3 sources"}}', {t17}),
          ('{F}', 2, 'blocked',
              '{{"reason": "need creds", "kind": "needs_input", "recurrences": 1}}', {t18}),
          ('{F}', NULL, 'commented', '{{"author": "default", "len": 19}}', {t18}),
          ('{B}', 3, 'claimed', '{{"lock": "vm:10800", "expires": {t920}, "run_id": 3}}', {t20}),
          ('{B}', 3, 'heartbeat', NULL, {t30}),
          ('{D}', NULL, 'attached', '{{"filename": "spec.md", "size": 12, "by": "user"}}', {t2});

        INSERT INTO task_attachments (task_id, filename, stored_path, content_type, size,
                                      uploaded_by, created_at)
        VALUES ('{D}', 'spec.md', '{att}', 'text/markdown', 12, 'user', {t2});

        INSERT INTO kanban_notify_subs (task_id, platform, chat_id, thread_id, user_id,
                                        notifier_profile, created_at, last_event_id)
        VALUES ('{B}', 'telegram', '-100123', '', 'u42', 'default', {t3}, 14);
        "#,
        t0 = t(0),
        t1 = t(1),
        t2 = t(2),
        t3 = t(3),
        t4 = t(4),
        t5 = t(5),
        t6 = t(6),
        t15 = t(15),
        t16 = t(16),
        t17 = t(17),
        t18 = t(18),
        t20 = t(20),
        t30 = t(30),
        t615 = t(615),
        t920 = t(920),
        wsa = ws.join(A).display(),
        wsb = ws.join(B).display(),
        att = att.display(),
    ))
    .unwrap();
    assert_eq!(user_version(&c), 0, "Hermes never sets user_version");
    drop(c);
    // The blob the attachment row points at (not a DB file).
    std::fs::create_dir_all(att.parent().unwrap()).unwrap();
    std::fs::write(&att, b"# spec\nhello\n").unwrap();
}

#[test]
fn hermes_019_db_opens_upgrades_and_operates() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    let root = kanban_home(&env);
    build_hermes_019_db(&db, &root);

    let before = dump_all(&client(&db));
    assert_eq!(before["task_events"].len(), 16);

    // First open: migration only. Hermes' rows must come through byte-for-byte.
    {
        let board = open_default(&env, NOW);
        assert_eq!(board.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(board.integrity_check().unwrap(), "ok");
        assert_eq!(board.paths().db, db);
        assert_invariants(&board);
    }
    {
        let c = client(&db);
        let mut after = dump_all(&c);
        for (_, sql) in our_migrations() {
            // Our additive tables start empty; they are not part of what Hermes wrote.
            for t in tables(&reference_with_ours()) {
                if sql.contains(&format!("CREATE TABLE IF NOT EXISTS {t} ")) {
                    assert_eq!(after.remove(&t).map(|rows| rows.len()), Some(0));
                }
            }
        }
        // 0007's upstream columns are appended empty to every task row.
        for row in after.get_mut("tasks").unwrap() {
            let added = "|provider_override=NULL|reasoning_effort=NULL";
            assert!(row.ends_with(added), "{row}");
            row.truncate(row.len() - added.len());
        }
        assert_eq!(
            after, before,
            "migrating a 0.19.0 DB must not change any row"
        );
        assert_eq!(user_version(&c), SCHEMA_VERSION);
        assert_eq!(indexes(&c), indexes(&reference_with_ours()));
    }

    let mut board = open_default(&env, NOW);
    board.set_claimer("vm:20000");

    // list: priority DESC, created_at ASC; nothing is promoted by reading.
    let all = board.list_tasks(&Default::default()).unwrap();
    assert_eq!(ids(&all), vec![D, A, C, B, E, F, G]);
    let statuses: Vec<Status> = all.iter().map(|t| t.status).collect();
    use Status::*;
    assert_eq!(
        statuses,
        vec![Ready, Done, Todo, Running, Todo, Blocked, Triage]
    );

    // Task rows decode every Hermes column.
    let c_task = board.get_task(C).unwrap();
    assert_eq!(c_task.skills, vec!["github-code-review".to_string()]);
    assert_eq!(c_task.max_runtime_seconds, Some(1800));
    assert_eq!(c_task.idempotency_key.as_deref(), Some("synth-1"));
    assert_eq!(c_task.body.as_deref(), Some("Combine A and B"));
    let b_task = board.get_task(B).unwrap();
    assert_eq!(b_task.current_run_id, Some(3));
    assert_eq!(b_task.claim_lock.as_deref(), Some("vm:10800"));
    assert_eq!(b_task.worker_pid, Some(10801));
    let f_task = board.get_task(F).unwrap();
    assert_eq!(f_task.block_kind.as_deref(), Some("needs_input"));
    assert_eq!(f_task.block_recurrences, 1);
    // The `--json` task dict of REF §21.2, same keys and values.
    let a_json = board.get_task(A).unwrap().to_hermes_json();
    let keys: Vec<&str> = a_json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        vec![
            "id",
            "title",
            "body",
            "assignee",
            "status",
            "priority",
            "tenant",
            "workspace_kind",
            "workspace_path",
            "branch_name",
            "project_id",
            "created_by",
            "created_at",
            "started_at",
            "completed_at",
            "result",
            "skills",
            "max_retries",
            "session_id",
            "workflow_template_id",
            "current_step_key"
        ]
    );
    assert_eq!(a_json["status"], "done");
    assert_eq!(a_json["skills"], json!([]));
    assert_eq!(a_json["created_at"], T0);

    // show
    let detail = board.task_detail(A).unwrap();
    assert_eq!(detail.latest_summary.as_deref(), Some("A done: 3 sources"));
    assert_eq!(detail.children, vec![C.to_string()]);
    assert_eq!(detail.comments.len(), 1);
    assert_eq!(detail.comments[0].body, "found 3 sources");
    assert_eq!(detail.runs.len(), 1);
    let run = &detail.runs[0];
    assert_eq!(run.id, 1);
    assert_eq!(run.status, "done");
    assert_eq!(run.outcome.as_deref(), Some("completed"));
    assert_eq!(
        run.metadata,
        Some(json!({"sources": 3, "changed_files": ["notes.md"]}))
    );
    let kinds: Vec<&str> = detail.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["created", "claimed", "commented", "heartbeat", "completed"]
    );
    assert_eq!(detail.events[3].payload, Some(json!({"note": "halfway"})));
    assert_eq!(detail.events[3].run_id, Some(1));
    let show = board.task_detail(F).unwrap().to_hermes_json();
    let blocked = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "blocked")
        .unwrap();
    assert_eq!(
        blocked["payload"],
        json!({"reason": "need creds", "kind": "needs_input", "recurrences": 1})
    );
    assert_eq!(blocked["run_id"], 2);
    assert_eq!(show["latest_summary"], "need creds");
    assert_eq!(show["runs"][0]["outcome"], "blocked");

    // build_worker_context on Hermes rows.
    let ctx = board.build_worker_context(C).unwrap();
    for needle in [
        "# Kanban task t_f5e58b28: Synthesize\n\n",
        "Assignee: reviewer\n",
        "Status:   todo\n",
        "Workspace: scratch @ (unresolved)\n",
        "Max runtime: 1800s\nTerminal timeout: 1770s\n",
        "## Body\nCombine A and B\n",
        "## Parent task results\n",
        "### t_9c025d30 (completed",
        "A done: 3 sources\n_metadata_: `{\"changed_files\": [\"notes.md\"], \"sources\": 3}`",
    ] {
        assert!(ctx.contains(needle), "missing {needle:?} in:\n{ctx}");
    }
    assert!(!ctx.contains(&format!("### {B}")), "{ctx}");
    assert!(ctx.ends_with('\n') && !ctx.ends_with("\n\n"), "{ctx:?}");
    let ctx_d = board.build_worker_context(D).unwrap();
    let att = root.join("kanban/attachments").join(D).join("spec.md");
    for needle in [
        "Tenant:   acme\n".to_string(),
        "## Attachments\n".to_string(),
        format!("- `spec.md`, text/markdown, 1 KB → `{}`", att.display()),
        "## Recent work by @worker\n- t_9c025d30 — Research A (".to_string(),
        "): A done: 3 sources".to_string(),
    ] {
        assert!(ctx_d.contains(&needle), "missing {needle:?} in:\n{ctx_d}");
    }
    let ctx_f = board.build_worker_context(F).unwrap();
    for needle in [
        "## Prior attempts on this task\n### Attempt 1 — blocked (worker, ",
        "need creds",
        "## Comment thread\ncomment from worker `default` at ",
        "BLOCKED: need creds",
    ] {
        assert!(ctx_f.contains(needle), "missing {needle:?} in:\n{ctx_f}");
    }

    // A reclaimed worker (wrong run id) is refused and changes nothing.
    let rows_before = board.snapshot().unwrap();
    let err = board
        .complete_task(Completion {
            task_id: B.into(),
            summary: Some("late".into()),
            expected_run_id: Some(99),
            ..Default::default()
        })
        .unwrap_err();
    match &err {
        KernelError::StaleRun {
            task_id,
            expected,
            current,
        } => {
            assert_eq!(task_id, B);
            assert_eq!(*expected, 99);
            assert_eq!(current, "3");
        }
        other => panic!("expected StaleRun, got {other:?}"),
    }
    assert_eq!(board.snapshot().unwrap(), rows_before);

    // The Hermes worker of run 3 carries on: heartbeat, then complete with its run id.
    board
        .heartbeat_worker(B, Some("resumed after upgrade"), Some(3))
        .unwrap();
    let done = board
        .complete_task(Completion {
            task_id: B.into(),
            summary: Some("C done".into()),
            metadata: Some(json!({"pages": 2})),
            expected_run_id: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.run_id, Some(3));
    assert_eq!(done.promoted, vec![E.to_string()], "C still waits on D");
    assert_eq!(board.get_task(C).unwrap().status, Todo);
    let b_task = board.get_task(B).unwrap();
    assert_eq!(b_task.status, Done);
    assert_eq!(b_task.current_run_id, None);
    assert_eq!(b_task.claim_lock, None);
    assert_eq!(b_task.worker_pid, None);
    assert_eq!(b_task.completed_at, Some(NOW));
    let run3 = board.get_run(3).unwrap();
    assert_eq!(run3.status, "done");
    assert_eq!(run3.outcome.as_deref(), Some("completed"));
    assert_eq!(run3.ended_at, Some(NOW));
    assert_eq!(run3.started_at, T0 + 20);
    assert_eq!(run3.claim_lock, None);
    assert_eq!(run3.summary.as_deref(), Some("C done"));
    assert_eq!(run3.metadata, Some(json!({"pages": 2})));
    assert_eq!(run3.last_heartbeat_at, Some(NOW));

    // Claim and complete another task: run ids continue Hermes' AUTOINCREMENT sequence.
    let claim = board.claim_task(D, None).unwrap();
    assert_eq!(claim.run_id, 4);
    assert_eq!(claim.lock, "vm:20000");
    let done = board
        .complete_task(Completion {
            task_id: D.into(),
            summary: Some("B done: 2 sources".into()),
            expected_run_id: Some(claim.run_id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.promoted, vec![C.to_string()]);
    assert_eq!(board.get_task(C).unwrap().status, Ready);

    // Comment ids continue too.
    let cid = board.add_comment(C, "reviewer", "picking this up").unwrap();
    assert_eq!(cid, 3);
    let comments = board.list_comments(C).unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].body, "picking this up");

    // All three parents now show in the child's context, ordered by parent id.
    let ctx = board.build_worker_context(C).unwrap();
    let pos = |s: &str| {
        ctx.find(s)
            .unwrap_or_else(|| panic!("missing {s:?} in:\n{ctx}"))
    };
    assert!(
        pos(&format!("### {B} (completed just now)\nC done")) < pos(&format!("### {A} (completed"))
    );
    assert!(
        pos(&format!("### {A} (completed"))
            < pos(&format!("### {D} (completed just now)\nB done: 2 sources"))
    );
    assert!(ctx.contains("comment from worker `reviewer` at "));

    // The Hermes notify subscription's cursor (14) picks up after Hermes' events.
    let key = SubKey {
        task_id: B.into(),
        platform: "telegram".into(),
        chat_id: "-100123".into(),
        thread_id: String::new(),
    };
    let subs = board.list_notify_subs(Some(B)).unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].notifier_profile.as_deref(), Some("default"));
    assert_eq!(subs[0].user_id.as_deref(), Some("u42"));
    assert_eq!(subs[0].last_event_id, 14);
    let claimed = board.claim_unseen_events(&key, &[]).unwrap().unwrap();
    assert_eq!(claimed.from, 14);
    let kinds: Vec<&str> = claimed.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["heartbeat", "heartbeat", "completed"]);
    assert_eq!(claimed.events[0].id, 15);
    assert_eq!(claimed.events[0].payload, None);
    assert_eq!(
        claimed.events[1].payload,
        Some(json!({"note": "resumed after upgrade"}))
    );
    assert_eq!(claimed.events[2].run_id, Some(3));
    assert_eq!(claimed.to, claimed.events[2].id);

    let atts = board.list_attachments(D).unwrap();
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0].filename, "spec.md");
    assert_eq!(atts[0].size, 12);

    assert_invariants(&board);
    assert_eq!(board.integrity_check().unwrap(), "ok");
    drop(board);

    // What Hermes wrote is still there, unchanged where we did not act on it.
    let c = client(&db);
    assert_eq!(user_version(&c), SCHEMA_VERSION);
    assert_eq!(integrity(&c), "ok");
    assert_eq!(pragma_text(&c, "journal_mode"), "wal");
    let reference = reference_with_ours();
    for t in tables(&reference_db()) {
        assert_eq!(
            table_info(&c, &t),
            table_info(&reference, &t),
            "columns of {t}"
        );
    }
    let after = dump_all(&c);
    for table in ["task_events", "task_comments", "task_attachments"] {
        let (old, new) = (&before[table], &after[table]);
        assert!(new.len() >= old.len());
        assert_eq!(
            &new[..old.len()],
            &old[..],
            "{table}: Hermes rows must be untouched"
        );
    }
    assert_eq!(after["task_links"], before["task_links"]);
    assert_eq!(after["task_runs"][..2], before["task_runs"][..2]);
    for id in [A, F, G] {
        let row = |m: &BTreeMap<String, Vec<String>>| {
            m["tasks"]
                .iter()
                .find(|r| r.starts_with(&format!("id={id:?}|")))
                .cloned()
                .unwrap()
        };
        let after = row(&after);
        let after = after
            .strip_suffix("|provider_override=NULL|reasoning_effort=NULL")
            .unwrap_or(&after);
        assert_eq!(
            after,
            row(&before),
            "task {id} untouched (0007's columns empty)"
        );
    }
    // The kernel's new event rows are valid JSON for a Python reader.
    let mut st = c
        .prepare("SELECT kind, payload FROM task_events WHERE id > 16 ORDER BY id")
        .unwrap();
    let new_events: Vec<(String, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(!new_events.is_empty());
    for (kind, payload) in new_events {
        if let Some(p) = payload {
            let v: Value = serde_json::from_str(&p).unwrap_or_else(|e| panic!("{kind}: {p}: {e}"));
            assert!(v.is_object(), "{kind}: {p}");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// 2. A DB written by our kernel, read by Hermes
// ------------------------------------------------------------------------------------------------

/// A `tasks` row read by column name, as Python's `sqlite3.Row` does.
struct PyTaskRow {
    id: String,
    status: String,
    assignee: Option<String>,
    skills: Option<String>,
    consecutive_failures: i64,
    block_kind: Option<String>,
}

/// A `task_events` row read by column name.
struct PyEventRow {
    id: i64,
    kind: String,
    payload: Option<String>,
    created_at: i64,
}

#[test]
fn kernel_db_has_exactly_the_019_schema_plus_our_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    let (parent, child, blocked) = {
        let board = open_default(&env, T0);
        let p = board
            .create_task(NewTask {
                title: "Parent".into(),
                assignee: Some("Worker".into()),
                tenant: Some("acme".into()),
                priority: 3,
                skills: vec!["github-code-review".into()],
                idempotency_key: Some("k-1".into()),
                ..Default::default()
            })
            .unwrap()
            .task
            .id;
        let ch = board
            .create_task(NewTask {
                title: "Child".into(),
                assignee: Some("worker".into()),
                parents: vec![p.clone()],
                ..Default::default()
            })
            .unwrap()
            .task
            .id;
        let bl = board
            .create_task(NewTask {
                title: "Blocked one".into(),
                assignee: Some("worker".into()),
                ..Default::default()
            })
            .unwrap()
            .task
            .id;
        board
            .block_task(BlockRequest {
                task_id: bl.clone(),
                reason: Some("need creds".into()),
                kind: Some(BlockKind::NeedsInput),
                ..Default::default()
            })
            .unwrap();
        let cl = board.claim_task(&p, None).unwrap();
        board
            .complete_task(Completion {
                task_id: p.clone(),
                summary: Some("parent done".into()),
                metadata: Some(json!({"changed_files": ["a.rs"], "n": 1})),
                expected_run_id: Some(cl.run_id),
                ..Default::default()
            })
            .unwrap();
        board.add_comment(&ch, "reviewer", "looks good").unwrap();
        assert_invariants(&board);
        (p, ch, bl)
    };

    let c = client(&db);
    let reference = reference_with_ours();

    // Tables: exactly 0.19.0's (sqlite_sequence included) plus the tables of our own additive
    // migrations, with identical columns and DDL text for every 0.19.0 table once our additive
    // migrations ran (0007 appends upstream's `provider_override`, `reasoning_effort` to
    // `tasks`, as Hermes ~0.22 does).
    assert_eq!(tables(&c), tables(&reference_with_ours()));
    let v019 = table_info(&reference_db(), "tasks");
    assert_eq!(
        table_info(&c, "tasks")[..v019.len()],
        v019[..],
        "0.19.0's task columns come first, unchanged"
    );
    for t in tables(&reference_db()) {
        assert_eq!(
            table_info(&c, &t),
            table_info(&reference, &t),
            "table_info({t})"
        );
        let sql = |conn: &Connection| -> Option<String> {
            conn.query_row(
                "SELECT sql FROM sqlite_master WHERE type='table' AND name=?1",
                [&t],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(sql(&c), sql(&reference), "CREATE TABLE text of {t}");
    }

    // Indexes: exactly 0.19.0's (auto-indexes included) plus those of our migrations.
    let ours = our_migrations();
    assert_eq!(
        ours.last().map(|(n, _)| *n).unwrap_or(1),
        SCHEMA_VERSION,
        "SCHEMA_VERSION is the highest migration number"
    );
    let with_ours = reference_with_ours();
    let extra: BTreeSet<String> = indexes(&with_ours)
        .into_keys()
        .filter(|k| !indexes(&reference).contains_key(k))
        .collect();
    assert_eq!(
        indexes(&c),
        indexes(&with_ours),
        "indexes (ours: {extra:?})"
    );
    // Our migrations only add tables (every 0.19.0 table is still there, unchanged above).
    for t in tables(&reference) {
        assert!(tables(&with_ours).contains(&t), "{t} missing");
    }

    assert_eq!(integrity(&c), "ok");
    assert_eq!(pragma_text(&c, "journal_mode"), "wal");
    assert_eq!(user_version(&c), SCHEMA_VERSION);

    // --- What Python Hermes does on connect and in its readers. ---
    c.execute_batch(
        "PRAGMA busy_timeout=120000; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=100;
         PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; PRAGMA cell_size_check=ON;",
    )
    .unwrap();
    assert_eq!(pragma_text(&c, "journal_mode=WAL"), "wal");
    // Its schema script is all `IF NOT EXISTS` over the verbatim DDL: a no-op here.
    let before = dump_all(&c);
    c.execute_batch(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/0001_hermes_0_19_0.sql"
    )))
    .unwrap();
    assert_eq!(dump_all(&c), before);

    // `list`: rows by column name, skills as JSON.
    {
        let mut st = c
            .prepare(
                "SELECT * FROM tasks WHERE status != 'archived' ORDER BY priority DESC, \
                 created_at ASC",
            )
            .unwrap();
        let rows: Vec<PyTaskRow> = st
            .query_map([], |r| {
                Ok(PyTaskRow {
                    id: r.get("id")?,
                    status: r.get("status")?,
                    assignee: r.get("assignee")?,
                    skills: r.get("skills")?,
                    consecutive_failures: r.get("consecutive_failures")?,
                    block_kind: r.get("block_kind")?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].id, parent);
        assert_eq!(rows[0].status, "done");
        assert_eq!(
            rows[0].assignee.as_deref(),
            Some("worker"),
            "assignee normalised"
        );
        let skills: Vec<String> = serde_json::from_str(rows[0].skills.as_deref().unwrap()).unwrap();
        assert_eq!(skills, vec!["github-code-review"]);
        assert!(rows.iter().all(|r| r.consecutive_failures == 0));
        let child_row = rows.iter().find(|r| r.id == child).unwrap();
        assert_eq!(
            child_row.status, "ready",
            "promoted by the parent's completion"
        );
        assert_eq!(
            child_row.skills, None,
            "no skills is NULL, as Hermes stores it"
        );
        let blocked_row = rows.iter().find(|r| r.id == blocked).unwrap();
        assert_eq!(blocked_row.status, "blocked");
        assert_eq!(blocked_row.block_kind.as_deref(), Some("needs_input"));
    }
    // Idempotency lookup as Hermes does it.
    let found: String = c
        .query_row(
            "SELECT id FROM tasks WHERE idempotency_key = ? AND status != 'archived' ORDER BY \
             created_at DESC LIMIT 1",
            ["k-1"],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, parent);
    // `runs --json`: metadata is a JSON dict; the completed run closes with status done.
    {
        let (status, outcome, summary, meta, ended): (String, String, String, String, Option<i64>) =
            c.query_row(
                "SELECT status, outcome, summary, metadata, ended_at FROM task_runs WHERE task_id \
                 = ? ORDER BY started_at, id",
                [&parent],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), outcome.as_str()), ("done", "completed"));
        assert_eq!(summary, "parent done");
        assert!(ended.is_some());
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta, json!({"changed_files": ["a.rs"], "n": 1}));
    }
    // `watch`/notifier: events after a cursor, payload json.loads'ed (NULL or a dict).
    {
        let mut st = c
            .prepare(
                "SELECT id, task_id, run_id, kind, payload, created_at FROM task_events WHERE \
                 id > ? ORDER BY id",
            )
            .unwrap();
        let evs: Vec<PyEventRow> = st
            .query_map([0], |r| {
                Ok(PyEventRow {
                    id: r.get("id")?,
                    kind: r.get("kind")?,
                    payload: r.get("payload")?,
                    created_at: r.get("created_at")?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(evs.windows(2).all(|w| w[0].id < w[1].id));
        let mut kinds = BTreeSet::new();
        for PyEventRow {
            kind,
            payload,
            created_at,
            ..
        } in &evs
        {
            assert_eq!(*created_at, T0);
            kinds.insert(kind.as_str());
            if let Some(p) = payload {
                let v: Value = serde_json::from_str(p).unwrap();
                assert!(
                    v.is_object() && !v.as_object().unwrap().is_empty(),
                    "{kind}: {p}"
                );
            }
        }
        for k in [
            "created",
            "blocked",
            "claimed",
            "completed",
            "promoted",
            "commented",
        ] {
            assert!(kinds.contains(k), "missing event kind {k}: {kinds:?}");
        }
        let blocked_payload: String = c
            .query_row(
                "SELECT payload FROM task_events WHERE task_id=? AND kind='blocked' ORDER BY id \
                 DESC LIMIT 1",
                [&blocked],
                |r| r.get(0),
            )
            .unwrap();
        let v: Value = serde_json::from_str(&blocked_payload).unwrap();
        assert_eq!(v["reason"], "need creds");
        assert_eq!(v["kind"], "needs_input");
        let claimed_run: Option<i64> = c
            .query_row(
                "SELECT run_id FROM task_events WHERE task_id=? AND kind='claimed'",
                [&parent],
                |r| r.get(0),
            )
            .unwrap();
        let run_id: i64 = c
            .query_row("SELECT id FROM task_runs WHERE task_id=?", [&parent], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(claimed_run, Some(run_id));
    }
    // Hermes' claim CAS + run insert on a kernel-made DB, then the kernel finishes the job.
    {
        let n = c
            .execute(
                "UPDATE tasks SET status='running', claim_lock=?, claim_expires=?, \
                 started_at=COALESCE(started_at, ?)
                 WHERE id=? AND status='ready' AND claim_lock IS NULL",
                params!["vm:10800", T0 + 900, T0, child],
            )
            .unwrap();
        assert_eq!(n, 1);
        c.execute(
            "INSERT INTO task_runs (task_id, profile, status, claim_lock, claim_expires, started_at)
             VALUES (?, 'worker', 'running', 'vm:10800', ?, ?)",
            params![child, T0 + 900, T0],
        )
        .unwrap();
        let rid = c.last_insert_rowid();
        c.execute(
            "UPDATE tasks SET current_run_id=? WHERE id=?",
            params![rid, child],
        )
        .unwrap();
        c.execute(
            "INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES (?, ?, \
             'claimed', ?, ?)",
            params![
                child,
                rid,
                format!(
                    "{{\"lock\": \"vm:10800\", \"expires\": {}, \"run_id\": \
                     {rid}}}",
                    T0 + 900
                ),
                T0
            ],
        )
        .unwrap();
        drop(c);
        let board = open_default(&env, T0 + 60);
        assert_invariants(&board);
        let done = board
            .complete_task(Completion {
                task_id: child.clone(),
                summary: Some("child done".into()),
                expected_run_id: Some(rid),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(done.run_id, Some(rid));
        assert_invariants(&board);
    }
}

// ------------------------------------------------------------------------------------------------
// 3. Older Hermes DBs (REF §3.2, §23.1)
// ------------------------------------------------------------------------------------------------

/// The original landing's schema (`c86842546`, REF §23.1): no branch/project/model/retries/goal/
/// session/block columns, `spawn_failures`/`last_spawn_error`, `task_events.run_id`, notify subs
/// without `notifier_profile`, no `task_attachments`, no session index.
const LANDING_DDL: &str = r#"
CREATE TABLE tasks (
    id                   TEXT PRIMARY KEY,
    title                TEXT NOT NULL,
    body                 TEXT,
    assignee             TEXT,
    status               TEXT NOT NULL,
    priority             INTEGER DEFAULT 0,
    created_by           TEXT,
    created_at           INTEGER NOT NULL,
    started_at           INTEGER,
    completed_at         INTEGER,
    workspace_kind       TEXT NOT NULL DEFAULT 'scratch',
    workspace_path       TEXT,
    claim_lock           TEXT,
    claim_expires        INTEGER,
    tenant               TEXT,
    result               TEXT,
    idempotency_key      TEXT,
    spawn_failures       INTEGER NOT NULL DEFAULT 0,
    worker_pid           INTEGER,
    last_spawn_error     TEXT,
    max_runtime_seconds  INTEGER,
    last_heartbeat_at    INTEGER,
    current_run_id       INTEGER,
    workflow_template_id TEXT,
    current_step_key     TEXT,
    skills               TEXT
);
CREATE TABLE task_links (
    parent_id  TEXT NOT NULL,
    child_id   TEXT NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE TABLE task_comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    TEXT NOT NULL,
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE task_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    TEXT NOT NULL,
    run_id     INTEGER,
    kind       TEXT NOT NULL,
    payload    TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE task_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id             TEXT NOT NULL,
    profile             TEXT,
    step_key            TEXT,
    status              TEXT NOT NULL,
    claim_lock          TEXT,
    claim_expires       INTEGER,
    worker_pid          INTEGER,
    max_runtime_seconds INTEGER,
    last_heartbeat_at   INTEGER,
    started_at          INTEGER NOT NULL,
    ended_at            INTEGER,
    outcome             TEXT,
    summary             TEXT,
    metadata            TEXT,
    error               TEXT
);
CREATE TABLE kanban_notify_subs (
    task_id       TEXT NOT NULL,
    platform      TEXT NOT NULL,
    chat_id       TEXT NOT NULL,
    thread_id     TEXT NOT NULL DEFAULT '',
    user_id       TEXT,
    created_at    INTEGER NOT NULL,
    last_event_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, platform, chat_id, thread_id)
);
CREATE INDEX idx_tasks_assignee_status ON tasks(assignee, status);
CREATE INDEX idx_tasks_status          ON tasks(status);
CREATE INDEX idx_tasks_tenant          ON tasks(tenant);
CREATE INDEX idx_tasks_idempotency     ON tasks(idempotency_key);
CREATE INDEX idx_links_child           ON task_links(child_id);
CREATE INDEX idx_links_parent          ON task_links(parent_id);
CREATE INDEX idx_comments_task         ON task_comments(task_id, created_at);
CREATE INDEX idx_events_task           ON task_events(task_id, created_at);
CREATE INDEX idx_events_run            ON task_events(run_id, id);
CREATE INDEX idx_runs_task             ON task_runs(task_id, started_at);
CREATE INDEX idx_runs_status           ON task_runs(status);
CREATE INDEX idx_notify_task           ON kanban_notify_subs(task_id);
"#;

const L_RUN: &str = "t_1e9ac001"; // running, claimed, no current_run_id
const L_READY: &str = "t_1e9ac002"; // ready, 3 spawn failures
const L_DONE: &str = "t_1e9ac003"; // done, with a completed run
const L_GAVE_UP: &str = "t_1e9ac004"; // blocked by the old spawn breaker

/// An original-landing DB with rows. `wal` picks the journal mode it was left in.
fn build_landing_db(path: &Path, wal: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = Connection::open(path).unwrap();
    if wal {
        c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .unwrap();
    }
    c.execute_batch(LANDING_DDL).unwrap();
    c.execute_batch(&format!(
        r#"
        INSERT INTO tasks (id, title, assignee, status, created_by, created_at, started_at,
                           claim_lock, claim_expires, worker_pid, last_heartbeat_at,
                               max_runtime_seconds,
                           current_step_key)
        VALUES ('{L_RUN}', 'Old running', 'worker', 'running', 'user', {t0}, {t10}, 'oldhost:77',
                {t910}, 77, {t40}, 3600, 'step-1');
        INSERT INTO tasks (id, title, assignee, status, created_by, created_at, spawn_failures,
                           last_spawn_error, priority)
        VALUES ('{L_READY}', 'Old ready', 'worker', 'ready', 'user', {t1}, 3,
                'exec: hermes not found', 3);
        INSERT INTO tasks (id, title, assignee, status, created_by, created_at, started_at,
                           completed_at, result)
        VALUES ('{L_DONE}', 'Old done', 'worker', 'done', 'user', {t2}, {t3}, {t5}, 'ok');
        INSERT INTO tasks (id, title, assignee, status, created_by, created_at, spawn_failures,
                           last_spawn_error)
        VALUES ('{L_GAVE_UP}', 'Old gave up', 'worker', 'blocked', 'user', {t3}, 5,
            'gave up after 5');
        INSERT INTO task_links VALUES ('{L_DONE}', '{L_READY}');
        INSERT INTO task_runs (task_id, profile, status, started_at, ended_at, outcome, summary)
        VALUES ('{L_DONE}', 'worker', 'done', {t3}, {t5}, 'completed', 'old summary');
        INSERT INTO task_comments (task_id, author, body, created_at)
        VALUES ('{L_RUN}', 'user', 'go', {t1});
        INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES
          ('{L_RUN}', NULL, 'created', '{{"assignee": "worker"}}', {t0}),
          ('{L_READY}', NULL, 'created', NULL, {t1}),
          ('{L_READY}', NULL, 'ready', NULL, {t5}),
          ('{L_READY}', NULL, 'priority', '{{"priority": 3}}', {t6}),
          ('{L_GAVE_UP}', NULL, 'spawn_failed', '{{"error": "gave up after 5"}}', {t6}),
          ('{L_GAVE_UP}', NULL, 'spawn_auto_blocked', '{{"failures": 5}}', {t6}),
          ('{L_RUN}', NULL, 'claimed', '{{"lock": "oldhost:77"}}', {t10});
        INSERT INTO kanban_notify_subs (task_id, platform, chat_id, user_id, created_at,
            last_event_id)
        VALUES ('{L_RUN}', 'slack', 'C01', 'U9', {t1}, 2);
        "#,
        t0 = T0,
        t1 = T0 + 1,
        t2 = T0 + 2,
        t3 = T0 + 3,
        t5 = T0 + 5,
        t6 = T0 + 6,
        t10 = T0 + 10,
        t40 = T0 + 40,
        t910 = T0 + 910,
    ))
    .unwrap();
}

/// Assert the post-upgrade shape every legacy DB must reach: 0.19.0 columns (extra legacy
/// columns allowed), the canonical tables, every index, our version, a healthy file.
fn assert_upgraded_schema(c: &Connection, extra_task_columns: &[&str]) {
    let reference = reference_db();
    let with_ours = reference_with_ours();
    assert_eq!(user_version(c), SCHEMA_VERSION);
    assert_eq!(integrity(c), "ok");
    assert_eq!(tables(c), tables(&with_ours));
    for t in tables(&reference) {
        let mut want = columns_unordered(&with_ours, &t);
        let got = columns_unordered(c, &t);
        if t == "tasks" {
            for extra in extra_task_columns {
                assert!(
                    got.contains_key(*extra),
                    "legacy column {extra} left in place"
                );
                want.insert(extra.to_string(), got[*extra].clone());
            }
        }
        assert_eq!(got, want, "columns of {t}");
    }
    assert_eq!(indexes(c), indexes(&reference_with_ours()), "indexes");
}

#[test]
fn original_landing_db_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    build_landing_db(&db, true);
    let before = dump_all(&client(&db));

    let run_id = {
        let board = open_default(&env, T0 + 100);
        assert_eq!(board.schema_version().unwrap(), SCHEMA_VERSION);
        assert_invariants(&board);
        let t = board.get_task(L_RUN).unwrap();
        let run_id = t.current_run_id.expect("synthesized run installed");
        let runs = board.list_runs(L_RUN, None).unwrap();
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(r.id, run_id);
        assert_eq!(r.status, "running");
        assert_eq!(r.ended_at, None);
        assert_eq!(r.outcome, None);
        assert_eq!(r.profile.as_deref(), Some("worker"));
        assert_eq!(r.step_key.as_deref(), Some("step-1"));
        assert_eq!(r.claim_lock.as_deref(), Some("oldhost:77"));
        assert_eq!(r.claim_expires, Some(T0 + 910));
        assert_eq!(r.worker_pid, Some(77));
        assert_eq!(r.max_runtime_seconds, Some(3600));
        assert_eq!(r.last_heartbeat_at, Some(T0 + 40));
        assert_eq!(r.started_at, T0 + 10, "copied from the task's claim");

        // Failure counters copied from the legacy columns.
        let ready = board.get_task(L_READY).unwrap();
        assert_eq!(ready.consecutive_failures, 3);
        assert_eq!(
            ready.last_failure_error.as_deref(),
            Some("exec: hermes not found")
        );
        let gave_up = board.get_task(L_GAVE_UP).unwrap();
        assert_eq!(gave_up.consecutive_failures, 5);
        assert_eq!(
            gave_up.last_failure_error.as_deref(),
            Some("gave up after 5")
        );
        assert_eq!(board.get_task(L_RUN).unwrap().consecutive_failures, 0);
        assert_eq!(gave_up.block_recurrences, 0);
        assert!(!gave_up.goal_mode);

        // Legacy event kinds renamed in place (ids and payloads kept).
        let kinds = |id: &str| -> Vec<String> {
            board
                .list_events(id, None)
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect()
        };
        assert_eq!(kinds(L_READY), vec!["created", "promoted", "reprioritized"]);
        assert_eq!(kinds(L_GAVE_UP), vec!["spawn_failed", "gave_up"]);
        let ev = board.list_events(L_READY, None).unwrap();
        assert_eq!(ev[2].payload, Some(json!({"priority": 3})));
        assert_eq!((ev[0].id, ev[1].id, ev[2].id), (2, 3, 4));

        // The notify sub gained notifier_profile; its cursor still works.
        let subs = board.list_notify_subs(None).unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].notifier_profile, None);
        assert_eq!(subs[0].last_event_id, 2);
        run_id
    };

    {
        let c = client(&db);
        assert_upgraded_schema(&c, &["spawn_failures", "last_spawn_error"]);
        let (sf, lse): (i64, Option<String>) = c
            .query_row(
                "SELECT spawn_failures, last_spawn_error FROM tasks WHERE id=?",
                [L_READY],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((sf, lse.as_deref()), (3, Some("exec: hermes not found")));
        assert_eq!(
            count(
                &c,
                "SELECT count(*) FROM task_events WHERE kind IN \
                 ('ready','priority','spawn_auto_blocked')"
            ),
            0
        );
        // Untouched legacy rows: links, comments, the old completed run.
        assert_eq!(dump_table(&c, "task_links"), before["task_links"]);
        assert_eq!(dump_table(&c, "task_comments"), before["task_comments"]);
        assert_eq!(dump_table(&c, "task_runs")[0], before["task_runs"][0]);
    }

    // Opening again is a no-op: same rows, no second synthesized run.
    let snapshot = dump_all(&client(&db));
    {
        let board = open_default(&env, T0 + 200);
        assert_eq!(board.list_runs(L_RUN, None).unwrap().len(), 1);
        assert_invariants(&board);
    }
    assert_eq!(dump_all(&client(&db)), snapshot, "second open changed rows");

    // And the upgraded board works: the old worker's run can be completed, others claimed.
    let board = open_default(&env, T0 + 300);
    let done = board
        .complete_task(Completion {
            task_id: L_RUN.into(),
            summary: Some("finished after upgrade".into()),
            expected_run_id: Some(run_id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.run_id, Some(run_id));
    let claim = board.claim_task(L_READY, None).unwrap();
    assert!(claim.run_id > run_id);
    board.add_comment(L_READY, "user", "after upgrade").unwrap();
    board
        .add_notify_sub(
            &SubKey {
                task_id: L_READY.into(),
                platform: "slack".into(),
                chat_id: "C01".into(),
                thread_id: String::new(),
            },
            None,
            Some("default"),
        )
        .unwrap();
    board
        .add_attachment(
            L_READY,
            "notes.txt",
            b"hi",
            Some("text/plain"),
            Some("user"),
        )
        .unwrap();
    assert_invariants(&board);
    assert_eq!(board.integrity_check().unwrap(), "ok");
}

#[test]
fn original_landing_db_in_rollback_journal_mode_stays_in_rollback_mode() {
    // UP §3: a board Hermes keeps out of WAL (its SQLite has the WAL-reset bug) is never
    // switched; `database.journal_mode: wal` in config.yaml is the way to switch it.
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    build_landing_db(&db, false);
    assert_eq!(pragma_text(&client(&db), "journal_mode"), "delete");
    {
        let b = open_default(&env, T0);
        assert_eq!(b.journal().mode, "delete");
        assert!(
            b.journal().reason.contains("kept"),
            "{}",
            b.journal().reason
        );
    }
    let c = client(&db);
    assert_eq!(pragma_text(&c, "journal_mode"), "delete");
    assert_upgraded_schema(&c, &["spawn_failures", "last_spawn_error"]);
    drop(c);
    std::fs::write(
        dir.path().join("hermes").join("config.yaml"),
        "database:\n  journal_mode: wal\n",
    )
    .unwrap();
    drop(open_default(&env, T0));
    assert_eq!(pragma_text(&client(&db), "journal_mode"), "wal");
    // A WAL board is never downgraded live, whatever the setting.
    std::fs::write(
        dir.path().join("hermes").join("config.yaml"),
        "database:\n  journal_mode: delete\n",
    )
    .unwrap();
    let b = open_default(&env, T0);
    assert_eq!(b.journal().mode, "wal");
    assert_eq!(b.journal().setting.as_deref(), Some("delete"));
    assert!(b.journal().reason.contains("never downgraded"));
}

#[test]
fn a_new_board_follows_database_journal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    std::fs::create_dir_all(dir.path().join("hermes")).unwrap();
    std::fs::write(
        dir.path().join("hermes").join("config.yaml"),
        "database:\n  journal_mode: DELETE\n",
    )
    .unwrap();
    let db = default_db(dir.path());
    let b = open_default(&env, T0);
    assert_eq!(b.journal().mode, "delete");
    drop(b);
    assert_eq!(pragma_text(&client(&db), "journal_mode"), "delete");
    // Reopening keeps it, and our writes work on a rollback-journal board.
    let b = open_default(&env, T0);
    b.create_task(NewTask {
        title: "on a DELETE board".into(),
        ..Default::default()
    })
    .unwrap();
    drop(b);
    assert_eq!(pragma_text(&client(&db), "journal_mode"), "delete");
}

#[test]
fn legacy_db_with_both_failure_columns_keeps_the_new_values() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    build_landing_db(&db, true);
    {
        let c = client(&db);
        c.execute_batch(
            "ALTER TABLE tasks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE tasks ADD COLUMN last_failure_error TEXT;",
        )
        .unwrap();
        c.execute(
            "UPDATE tasks SET consecutive_failures=1, last_failure_error='newer' WHERE id=?",
            [L_READY],
        )
        .unwrap();
    }
    let board = open_default(&env, T0);
    let t = board.get_task(L_READY).unwrap();
    assert_eq!(
        t.consecutive_failures, 1,
        "an existing new column is not overwritten"
    );
    assert_eq!(t.last_failure_error.as_deref(), Some("newer"));
    assert_invariants(&board);
}

/// A DB older still, whose tables drifted: `task_events.id` TEXT (uuid-like) without `run_id`,
/// `task_comments.id` a non-key INTEGER, `kanban_notify_subs.last_event_id` TEXT (with a NULL),
/// `tasks` without `current_run_id` and most later columns, no `task_runs` at all.
const DRIFTED_DDL: &str = r#"
CREATE TABLE tasks (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT, assignee TEXT, status TEXT NOT NULL,
    priority INTEGER DEFAULT 0, created_by TEXT, created_at INTEGER NOT NULL, started_at INTEGER,
    completed_at INTEGER, workspace_kind TEXT NOT NULL DEFAULT 'scratch', workspace_path TEXT,
    claim_lock TEXT, claim_expires INTEGER
);
CREATE TABLE task_links (parent_id TEXT NOT NULL, child_id TEXT NOT NULL, PRIMARY KEY (parent_id,
    child_id));
CREATE TABLE task_comments (id INTEGER, task_id TEXT NOT NULL, author TEXT NOT NULL,
    body TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE task_events (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, kind TEXT NOT NULL,
    payload TEXT, created_at INTEGER NOT NULL);
CREATE TABLE kanban_notify_subs (
    task_id TEXT NOT NULL, platform TEXT NOT NULL, chat_id TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '', user_id TEXT, created_at INTEGER NOT NULL,
    last_event_id TEXT, PRIMARY KEY (task_id, platform, chat_id, thread_id)
);
CREATE INDEX idx_events_task ON task_events(task_id, created_at);
CREATE INDEX idx_comments_task ON task_comments(task_id, created_at);
CREATE INDEX idx_notify_task ON kanban_notify_subs(task_id);
"#;

const DR_RUN: &str = "t_d0000001";
const DR_TODO: &str = "t_d0000002";

fn build_drifted_db(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = Connection::open(path).unwrap();
    c.execute_batch(DRIFTED_DDL).unwrap();
    c.execute_batch(&format!(
        r#"
        INSERT INTO tasks (id, title, assignee, status, created_at, started_at, claim_lock,
            claim_expires)
        VALUES ('{DR_RUN}', 'Drifted running', 'worker', 'running', {t0}, {t5}, 'h:1', {t900});
        INSERT INTO tasks (id, title, assignee, status, created_at) VALUES ('{DR_TODO}',
            'Drifted todo', 'worker', 'todo', {t1});
        INSERT INTO task_links VALUES ('{DR_RUN}', '{DR_TODO}');
        INSERT INTO task_events (id, task_id, kind, payload, created_at) VALUES
          ('9f1c-c', '{DR_RUN}', 'claimed', '{{"lock": "h:1"}}', {t5}),
          ('0a2b-a', '{DR_RUN}', 'created', NULL, {t0}),
          ('77aa-b', '{DR_TODO}', 'created', '{{"parents": ["{DR_RUN}"]}}', {t1}),
          ('zz-d', '{DR_TODO}', 'ready', NULL, {t6});
        INSERT INTO task_comments (id, task_id, author, body, created_at) VALUES
          (NULL, '{DR_RUN}', 'user', 'first', {t1}),
          (7, '{DR_RUN}', 'user', 'second', {t2}),
          (7, '{DR_TODO}', 'user', 'dup id', {t3});
        INSERT INTO kanban_notify_subs (task_id, platform, chat_id, created_at,
            last_event_id) VALUES
          ('{DR_RUN}', 'telegram', 'a', {t1}, '3'),
          ('{DR_TODO}', 'telegram', 'b', {t1}, NULL);
        "#,
        t0 = T0,
        t1 = T0 + 1,
        t2 = T0 + 2,
        t3 = T0 + 3,
        t5 = T0 + 5,
        t6 = T0 + 6,
        t900 = T0 + 900,
    ))
    .unwrap();
}

#[test]
fn drifted_tables_are_rebuilt_with_integer_ids_and_rows_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    build_drifted_db(&db);

    {
        let board = open_default(&env, T0 + 100);
        assert_invariants(&board);
        // Events: integer ids in created_at order, payloads kept, legacy kind renamed.
        let evs = board.events_after(0, &Default::default()).unwrap();
        let got: Vec<(i64, &str, &str, Option<Value>)> = evs
            .iter()
            .map(|e| (e.id, e.task_id.as_str(), e.kind.as_str(), e.payload.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, DR_RUN, "created", None),
                (2, DR_TODO, "created", Some(json!({"parents": [DR_RUN]}))),
                (3, DR_RUN, "claimed", Some(json!({"lock": "h:1"}))),
                (4, DR_TODO, "promoted", None),
            ]
        );
        assert!(evs.iter().all(|e| e.run_id.is_none()));
        // Comments: fresh unique ids, bodies and order kept.
        let cs: Vec<(i64, String)> = board
            .list_comments(DR_RUN)
            .unwrap()
            .into_iter()
            .chain(board.list_comments(DR_TODO).unwrap())
            .map(|c| (c.id, c.body))
            .collect();
        assert_eq!(
            cs,
            vec![
                (1, "first".into()),
                (2, "second".into()),
                (3, "dup id".into())
            ]
        );
        // Cursors cast to integers (NULL → 0) and usable.
        let subs = board.list_notify_subs(None).unwrap();
        let cur: BTreeMap<&str, i64> = subs
            .iter()
            .map(|s| (s.chat_id.as_str(), s.last_event_id))
            .collect();
        assert_eq!(cur, BTreeMap::from([("a", 3), ("b", 0)]));
        let claimed = board
            .claim_unseen_events(
                &SubKey {
                    task_id: DR_TODO.into(),
                    platform: "telegram".into(),
                    chat_id: "b".into(),
                    thread_id: String::new(),
                },
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!((claimed.from, claimed.to), (0, 4));
        assert_eq!(claimed.events.len(), 2);
        // The running task without current_run_id got its run.
        let t = board.get_task(DR_RUN).unwrap();
        let runs = board.list_runs(DR_RUN, None).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(t.current_run_id, Some(runs[0].id));
        assert_eq!(runs[0].claim_lock.as_deref(), Some("h:1"));
        assert_eq!(runs[0].started_at, T0 + 5);
        // New rows continue the sequences.
        assert_eq!(board.add_comment(DR_TODO, "user", "new").unwrap(), 4);
        let ev = board.list_events(DR_TODO, None).unwrap();
        assert_eq!(ev.last().unwrap().id, 5);
        assert_eq!(ev.last().unwrap().kind, "commented");
    }

    let c = client(&db);
    assert_upgraded_schema(&c, &[]);
    for t in [
        "task_events",
        "task_comments",
        "kanban_notify_subs",
        "task_runs",
    ] {
        assert_eq!(
            table_info(&c, t),
            table_info(&reference_with_ours(), t),
            "{t} rebuilt canonically"
        );
    }
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM kanban_notify_subs WHERE typeof(last_event_id) != 'integer'"
        ),
        0
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%legacy%'"
        ),
        0
    );
    drop(c);

    // Idempotent.
    let snapshot = dump_all(&client(&db));
    drop(open_default(&env, T0 + 200));
    assert_eq!(dump_all(&client(&db)), snapshot);
}

#[test]
fn concurrent_first_opens_of_a_legacy_db_migrate_once() {
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        let db = default_db(dir.path());
        // Alternate journal modes: the rollback one also races the switch to WAL.
        build_landing_db(&db, round % 2 == 0);
        let barrier = Arc::new(Barrier::new(3));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let env = env.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let board = Board::open(&env, None)?;
                    board.schema_version()
                })
            })
            .collect();
        for h in handles {
            let v = h
                .join()
                .expect("no panic")
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(v, SCHEMA_VERSION);
        }
        let c = client(&db);
        assert_upgraded_schema(&c, &["spawn_failures", "last_spawn_error"]);
        assert_eq!(
            count(
                &c,
                &format!("SELECT count(*) FROM task_runs WHERE task_id='{L_RUN}'")
            ),
            1,
            "round {round}: exactly one synthesized run"
        );
        // A rollback-journal landing DB stays in rollback mode (UP §3).
        let want = if round % 2 == 0 { "wal" } else { "delete" };
        assert_eq!(pragma_text(&c, "journal_mode"), want, "round {round}");
        drop(c);
        let board = open_default(&env, T0);
        assert_invariants(&board);
        assert_eq!(board.get_task(L_READY).unwrap().consecutive_failures, 3);
    }
}

// ------------------------------------------------------------------------------------------------
// 4. Corrupt and non-SQLite files
// ------------------------------------------------------------------------------------------------

fn assert_names_path(err: &KernelError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name {}: {msg}",
        path.display()
    );
}

#[test]
fn garbage_file_is_not_a_database_and_is_left_alone() {
    for (name, bytes) in [
        ("text", "this is not a database\n".repeat(200).into_bytes()),
        ("short", b"hello".to_vec()),
        (
            "tls",
            [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]
                .iter()
                .copied()
                .cycle()
                .take(4096)
                .collect(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        let db = default_db(dir.path());
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        std::fs::write(&db, &bytes).unwrap();

        let err = Board::open(&env, None).unwrap_err();
        match &err {
            KernelError::NotADatabase { path, .. } => assert_eq!(path, &db, "{name}"),
            other => panic!("{name}: expected NotADatabase, got {other:?}"),
        }
        assert_names_path(&err, &db);
        assert_eq!(err.kind(), "storage");
        // Also through an explicit path.
        let err2 = Board::open_paths(&env, BoardPaths::for_db_file(&db)).unwrap_err();
        assert!(
            matches!(err2, KernelError::NotADatabase { .. }),
            "{name}: {err2:?}"
        );

        assert_eq!(
            std::fs::read(&db).unwrap(),
            bytes,
            "{name}: file bytes changed"
        );
        assert_eq!(
            sqlite_sidecars(&db),
            Vec::<PathBuf>::new(),
            "{name}: sidecars created"
        );
    }
}

#[test]
fn truncated_database_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    {
        let board = open_default(&env, T0);
        for i in 0..120 {
            board
                .create_task(NewTask {
                    title: format!("task {i}"),
                    body: Some("x".repeat(2000)),
                    assignee: Some("worker".into()),
                    ..Default::default()
                })
                .unwrap();
        }
    }
    // Our connections keep the WAL on close; a plain SQLite connection closing last (as
    // Hermes' does) checkpoints it into the file and removes it, so the file alone holds it.
    assert!(!sqlite_sidecars(&db).is_empty(), "our close kept the WAL");
    let plain = Connection::open(&db).unwrap();
    plain
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get::<_, i64>(0))
        .unwrap();
    drop(plain);
    assert_eq!(sqlite_sidecars(&db), Vec::<PathBuf>::new());
    let full = std::fs::read(&db).unwrap();
    assert!(
        full.len() >= 8 * 4096,
        "DB too small to truncate: {}",
        full.len()
    );

    for keep in [full.len() / 2, 4096 * 2 + 100, 50] {
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.set_len(keep as u64).unwrap();
        drop(f);
        let truncated = std::fs::read(&db).unwrap();
        assert_eq!(truncated.len(), keep);

        let res = std::panic::catch_unwind(|| Board::open(&env, None).map(|_| ()));
        let err = res
            .unwrap_or_else(|_| panic!("open panicked on a DB truncated to {keep} bytes"))
            .expect_err("a truncated DB must be refused");
        assert!(
            matches!(
                err,
                KernelError::NotADatabase { .. }
                    | KernelError::Corrupt { .. }
                    | KernelError::Storage(_)
            ),
            "{keep}: {err:?}"
        );
        assert_names_path(&err, &db);
        assert_eq!(
            std::fs::read(&db).unwrap(),
            truncated,
            "{keep}: bytes changed"
        );
        for p in sqlite_sidecars(&db) {
            // SQLite may open (create) the WAL of a WAL-mode file before it notices the damage;
            // it must not have written frames into it.
            if p.to_string_lossy().ends_with("-wal") {
                assert_eq!(
                    std::fs::metadata(&p).unwrap().len(),
                    0,
                    "{keep}: frames written to {}",
                    p.display()
                );
            }
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn damaged_pages_are_refused_before_anything_is_written() {
    // A Hermes-made DB (user_version 0, so opening it would migrate = write) whose middle pages
    // are garbage while the header and schema are intact. Built with a plain client, so this
    // process has never health-checked the path.
    for wal in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        let db = default_db(dir.path());
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        {
            let c = Connection::open(&db).unwrap();
            if wal {
                c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
                    .unwrap();
            }
            c.execute_batch(&hermes_ddl()).unwrap();
            for i in 0..200 {
                c.execute(
                    "INSERT INTO tasks (id, title, body, status, created_at) VALUES (?1, ?2, ?3, \
                     'ready', ?4)",
                    params![
                        format!("t_{i:08x}"),
                        format!("task {i}"),
                        "z".repeat(1500),
                        T0 + i
                    ],
                )
                .unwrap();
            }
        }
        assert_eq!(sqlite_sidecars(&db), Vec::<PathBuf>::new());
        let mut bytes = std::fs::read(&db).unwrap();
        let pages = bytes.len() / 4096;
        assert!(pages > 20, "{pages}");
        for b in &mut bytes[(pages / 2) * 4096..(pages / 2 + 3) * 4096] {
            *b = 0xAB;
        }
        std::fs::write(&db, &bytes).unwrap();

        let err = Board::open(&env, None).expect_err("a damaged DB must be refused");
        assert!(
            matches!(err, KernelError::Corrupt { .. }),
            "wal={wal}: {err:?}"
        );
        assert_names_path(&err, &db);
        assert_eq!(err.kind(), "storage");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            bytes,
            "wal={wal}: the damaged file was written to"
        );
        for p in sqlite_sidecars(&db) {
            if p.to_string_lossy().ends_with("-wal") {
                assert_eq!(
                    std::fs::metadata(&p).unwrap().len(),
                    0,
                    "wal={wal}: WAL frames written"
                );
            }
        }
        // Still refused on a second attempt in the same process.
        assert!(matches!(
            Board::open(&env, None),
            Err(KernelError::Corrupt { .. })
        ));
    }
}

// ------------------------------------------------------------------------------------------------
// 5. Paths and boards (REF §2)
// ------------------------------------------------------------------------------------------------

fn home_env(dir: &TempDir) -> Env {
    Env::empty().with("HOME", dir.path().to_string_lossy())
}

#[test]
fn kanban_home_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let base = home_env(&dir);
    let dot = home.join(".hermes");

    assert_eq!(hermes_root(&base), dot);
    assert_eq!(kanban_home(&base), dot);
    // Empty or blank HERMES_HOME counts as unset.
    assert_eq!(kanban_home(&base.clone().with("HERMES_HOME", "")), dot);
    assert_eq!(kanban_home(&base.clone().with("HERMES_HOME", "   ")), dot);
    // HERMES_HOME outside ~/.hermes is the root itself.
    let outside = home.join("elsewhere").join("hh");
    assert_eq!(
        kanban_home(&base.clone().with("HERMES_HOME", outside.to_string_lossy())),
        outside
    );
    // <x>/profiles/<name> → <x>, inside or outside ~/.hermes.
    let x = home.join("shared");
    assert_eq!(
        hermes_root(
            &base
                .clone()
                .with("HERMES_HOME", x.join("profiles/coder").to_string_lossy())
        ),
        x
    );
    assert_eq!(
        hermes_root(
            &base
                .clone()
                .with("HERMES_HOME", dot.join("profiles/coder").to_string_lossy())
        ),
        dot
    );
    assert_eq!(
        hermes_root(&base.clone().with("HERMES_HOME", dot.to_string_lossy())),
        dot
    );
    // HERMES_KANBAN_HOME wins over everything (hermes_root itself is unaffected).
    let kh = home.join("kh");
    let e = base
        .clone()
        .with("HERMES_HOME", outside.to_string_lossy())
        .with("HERMES_KANBAN_HOME", kh.to_string_lossy());
    assert_eq!(kanban_home(&e), kh);
    assert_eq!(hermes_root(&e), outside);
    assert_eq!(
        kanban_home(&base.clone().with("HERMES_KANBAN_HOME", "")),
        dot
    );
    // `~` is expanded against HOME.
    assert_eq!(
        kanban_home(&base.clone().with("HERMES_KANBAN_HOME", "~/kb")),
        home.join("kb")
    );
}

#[test]
fn board_paths_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let base = home_env(&dir);
    let r = dir.path().join(".hermes");

    let d = BoardPaths::resolve(&base, DEFAULT_BOARD);
    assert_eq!(d.slug, "default");
    assert_eq!(d.home, r);
    assert_eq!(
        d.db,
        r.join("kanban.db"),
        "legacy path for the default board"
    );
    assert_eq!(d.workspaces, r.join("kanban/workspaces"));
    assert_eq!(d.attachments, r.join("kanban/attachments"));
    assert_eq!(d.logs, r.join("kanban/logs"));
    assert_eq!(d.meta, r.join("kanban/boards/default/board.json"));
    assert_eq!(
        d.log_file("t_00000001"),
        r.join("kanban/logs/t_00000001.log")
    );

    let o = BoardPaths::resolve(&base, "ops");
    let od = r.join("kanban/boards/ops");
    assert_eq!(o.dir, od);
    assert_eq!(o.db, od.join("kanban.db"));
    assert_eq!(o.workspaces, od.join("workspaces"));
    assert_eq!(o.attachments, od.join("attachments"));
    assert_eq!(o.logs, od.join("logs"));
    assert_eq!(o.meta, od.join("board.json"));

    let custom = dir.path().join("custom");
    let e = base
        .clone()
        .with("HERMES_KANBAN_DB", custom.join("k.db").to_string_lossy())
        .with(
            "HERMES_KANBAN_WORKSPACES_ROOT",
            custom.join("ws").to_string_lossy(),
        )
        .with(
            "HERMES_KANBAN_ATTACHMENTS_ROOT",
            custom.join("att").to_string_lossy(),
        );
    for slug in [DEFAULT_BOARD, "ops"] {
        let p = BoardPaths::resolve(&e, slug);
        assert_eq!(p.db, custom.join("k.db"), "{slug}");
        assert_eq!(p.workspaces, custom.join("ws"), "{slug}");
        assert_eq!(p.attachments, custom.join("att"), "{slug}");
        assert_eq!(
            p.logs,
            BoardPaths::resolve(&base, slug).logs,
            "logs have no override"
        );
    }
    // Empty overrides are ignored.
    let empty = base
        .clone()
        .with("HERMES_KANBAN_DB", "")
        .with("HERMES_KANBAN_WORKSPACES_ROOT", "  ")
        .with("HERMES_KANBAN_ATTACHMENTS_ROOT", "");
    assert_eq!(BoardPaths::resolve(&empty, "ops"), o);
    assert_eq!(BoardPaths::resolve(&empty, DEFAULT_BOARD), d);

    // Opening with HERMES_KANBAN_DB creates the DB there and nothing at the legacy path.
    let board = Board::open(&e, None).unwrap();
    assert_eq!(board.paths().db, custom.join("k.db"));
    drop(board);
    assert!(custom.join("k.db").is_file());
    assert!(!r.join("kanban.db").exists());

    // A named board's DB lives in its directory; opening the default uses the legacy path.
    create_board(&base, "ops", NewBoard::default(), T0).unwrap();
    let ops = Board::open(&base, Some("ops")).unwrap();
    assert_eq!(ops.paths().db, od.join("kanban.db"));
    assert_eq!(ops.slug(), "ops");
    drop(ops);
    assert!(od.join("kanban.db").is_file());
    drop(Board::open(&base, None).unwrap());
    assert!(r.join("kanban.db").is_file());
}

#[test]
fn slug_validation() {
    assert_eq!(normalize_slug("MyBoard").unwrap(), "myboard");
    assert_eq!(normalize_slug("  Ops-2_x ").unwrap(), "ops-2_x");
    assert_eq!(normalize_slug("0day").unwrap(), "0day");
    assert_eq!(normalize_slug(&"a".repeat(64)).unwrap(), "a".repeat(64));
    let long = "a".repeat(65);
    for bad in [
        "../x",
        "a/b",
        "",
        "   ",
        long.as_str(),
        "_archived",
        "-x",
        "a b",
        "..",
        "a\\b",
        "é",
        "a.b",
    ] {
        match normalize_slug(bad) {
            Err(KernelError::InvalidSlug(s)) => assert_eq!(s, bad),
            other => panic!("{bad:?}: expected InvalidSlug, got {other:?}"),
        }
    }
    // Every board entry point validates.
    let dir = tempfile::tempdir().unwrap();
    let env = home_env(&dir);
    for bad in ["../x", "a/b", "-x", "_archived"] {
        assert!(
            matches!(
                resolve_board(&env, Some(bad)),
                Err(KernelError::InvalidSlug(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                Board::open(&env, Some(bad)),
                Err(KernelError::InvalidSlug(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                create_board(&env, bad, NewBoard::default(), T0),
                Err(KernelError::InvalidSlug(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                remove_board(&env, bad, true, T0),
                Err(KernelError::InvalidSlug(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(switch_board(&env, bad), Err(KernelError::InvalidSlug(_))),
            "{bad}"
        );
        assert!(
            matches!(
                rename_board(&env, bad, "X", T0),
                Err(KernelError::InvalidSlug(_))
            ),
            "{bad}"
        );
    }
    // Nothing escaped the boards directory.
    assert!(!dir.path().join("x").exists());
    assert!(!dir.path().join(".hermes/kanban/x").exists());
}

#[test]
fn active_board_resolution_chain() {
    let dir = tempfile::tempdir().unwrap();
    let base = home_env(&dir);
    let r = kanban_home(&base);
    assert_eq!(resolve_board(&base, None).unwrap(), "default");
    create_board(&base, "alpha", NewBoard::default(), T0).unwrap();
    create_board(&base, "beta", NewBoard::default(), T0).unwrap();

    // Explicit > env > current > default.
    switch_board(&base, "beta").unwrap();
    assert_eq!(
        std::fs::read_to_string(r.join("kanban/current")).unwrap(),
        "beta\n"
    );
    let with_env = base.clone().with("HERMES_KANBAN_BOARD", "alpha");
    assert_eq!(resolve_board(&with_env, None).unwrap(), "alpha");
    assert_eq!(resolve_board(&with_env, Some("beta")).unwrap(), "beta");
    assert_eq!(
        resolve_board(&with_env, Some("Default")).unwrap(),
        "default"
    );
    assert_eq!(
        resolve_board(&base.clone().with("HERMES_KANBAN_BOARD", "ALPHA"), None).unwrap(),
        "alpha"
    );
    assert_eq!(resolve_board(&base, None).unwrap(), "beta");
    // Invalid or stale env values fall through to the pointer.
    for v in ["../x", "ghost", "", "a/b"] {
        assert_eq!(
            resolve_board(&base.clone().with("HERMES_KANBAN_BOARD", v), None).unwrap(),
            "beta",
            "HERMES_KANBAN_BOARD={v:?}"
        );
    }
    // Invalid or stale pointers fall through to default.
    for v in ["ghost\n", "../../etc\n", "", "a/b"] {
        std::fs::write(r.join("kanban/current"), v).unwrap();
        assert_eq!(
            resolve_board(&base, None).unwrap(),
            "default",
            "current={v:?}"
        );
    }
    // Explicit unknown board is an error, not a fall-through.
    match resolve_board(&base, Some("ghost")) {
        Err(KernelError::BoardNotFound(s)) => assert_eq!(s, "ghost"),
        other => panic!("expected BoardNotFound, got {other:?}"),
    }
    assert!(matches!(
        Board::open(&base, Some("ghost")),
        Err(KernelError::BoardNotFound(_))
    ));
    assert!(
        !r.join("kanban/boards/ghost").exists(),
        "no directory created for an unknown board"
    );
    assert!(matches!(
        switch_board(&base, "ghost"),
        Err(KernelError::BoardNotFound(_))
    ));
    // Board::open follows the chain.
    switch_board(&base, "alpha").unwrap();
    assert_eq!(Board::open(&base, None).unwrap().slug(), "alpha");
    assert_eq!(
        Board::open(&with_env.clone().with("HERMES_KANBAN_BOARD", "beta"), None)
            .unwrap()
            .slug(),
        "beta"
    );
    // A board that exists only through its DB counts.
    std::fs::create_dir_all(r.join("kanban/boards/dbonly")).unwrap();
    drop(Board::open_paths(&base, BoardPaths::resolve(&base, "dbonly")).unwrap());
    assert!(board_exists(&base, "dbonly"));
    assert_eq!(resolve_board(&base, Some("dbonly")).unwrap(), "dbonly");
    assert!(board_exists(&base, "default"));
    assert!(!board_exists(&base, "ghost"));
}

#[test]
fn board_management() {
    let dir = tempfile::tempdir().unwrap();
    let env = home_env(&dir);
    let boards = kanban_home(&env).join("kanban/boards");

    // Create is idempotent and keeps the first metadata.
    let (meta, created) = create_board(
        &env,
        "My-Board_x",
        NewBoard {
            description: Some("first".into()),
            icon: Some("📋".into()),
            ..Default::default()
        },
        T0,
    )
    .unwrap();
    assert!(created);
    assert_eq!(meta.slug, "my-board_x");
    assert_eq!(meta.name, "My Board X");
    assert_eq!(meta.created_at, Some(T0));
    assert!(!meta.archived);
    let (again, created) = create_board(
        &env,
        "my-board_x",
        NewBoard {
            description: Some("second".into()),
            ..Default::default()
        },
        T0 + 5,
    )
    .unwrap();
    assert!(!created);
    assert_eq!(again.description.as_deref(), Some("first"));
    assert_eq!(again.created_at, Some(T0));
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(boards.join("my-board_x/board.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["slug"], "my-board_x");
    assert_eq!(on_disk["description"], "first");
    assert!(
        on_disk.get("db_path").is_none(),
        "db_path is never persisted"
    );

    // Listing: default first, then case-insensitive; junk and _archived skipped.
    for s in ["zeta", "beta", "0ops", "a-1"] {
        create_board(&env, s, NewBoard::default(), T0).unwrap();
    }
    std::fs::create_dir_all(boards.join("empty-dir")).unwrap(); // neither board.json nor kanban.db
    std::fs::create_dir_all(boards.join("_archived/old-1")).unwrap();
    std::fs::create_dir_all(boards.join("Upper")).unwrap();
    std::fs::write(boards.join("Upper/board.json"), "{}").unwrap();
    let slugs = |incl: bool| -> Vec<String> {
        list_boards(&env, incl)
            .unwrap()
            .into_iter()
            .map(|b| b.meta.slug)
            .collect()
    };
    assert_eq!(
        slugs(false),
        vec!["default", "0ops", "a-1", "beta", "my-board_x", "zeta"]
    );
    let listed = list_boards(&env, false).unwrap();
    assert!(listed[0].is_current);
    assert_eq!(listed[0].db_path, kanban_home(&env).join("kanban.db"));
    assert_eq!(listed[1].db_path, boards.join("0ops/kanban.db"));

    // Archived boards are hidden unless asked; a malformed board.json falls back to defaults.
    let mut zeta = read_board_meta(&env, "zeta");
    zeta.archived = true;
    std::fs::write(
        boards.join("zeta/board.json"),
        serde_json::to_string(&zeta).unwrap(),
    )
    .unwrap();
    assert_eq!(
        slugs(false),
        vec!["default", "0ops", "a-1", "beta", "my-board_x"]
    );
    assert_eq!(
        slugs(true),
        vec!["default", "0ops", "a-1", "beta", "my-board_x", "zeta"]
    );
    std::fs::write(boards.join("beta/board.json"), "{not json").unwrap();
    let beta = read_board_meta(&env, "beta");
    assert_eq!((beta.slug.as_str(), beta.name.as_str()), ("beta", "Beta"));

    // Rename.
    let m = rename_board(&env, "beta", "  Beta Team ", T0).unwrap();
    assert_eq!(m.name, "Beta Team");
    assert_eq!(read_board_meta(&env, "beta").name, "Beta Team");
    assert!(matches!(
        rename_board(&env, "beta", "  ", T0),
        Err(KernelError::Invalid { .. })
    ));
    assert!(matches!(
        rename_board(&env, "ghost", "X", T0),
        Err(KernelError::BoardNotFound(_))
    ));

    // Default workdir must be absolute.
    match set_default_workdir(&env, "beta", Some("relative/dir"), T0) {
        Err(KernelError::Invalid { field, .. }) => assert_eq!(field, "default_workdir"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(matches!(
        create_board(
            &env,
            "rel",
            NewBoard {
                default_workdir: Some("rel".into()),
                ..Default::default()
            },
            T0
        ),
        Err(KernelError::Invalid { .. })
    ));
    assert!(!boards.join("rel").exists());
    let wd = dir.path().join("src");
    let m = set_default_workdir(&env, "beta", Some(&wd.to_string_lossy()), T0).unwrap();
    assert_eq!(m.default_workdir.as_deref(), Some(&*wd.to_string_lossy()));
    let m = set_default_workdir(&env, "beta", None, T0).unwrap();
    assert_eq!(m.default_workdir, None);

    // Remove: default refused; archive moves the dir; the current pointer is cleared.
    assert!(matches!(
        remove_board(&env, "default", false, T0),
        Err(KernelError::BoardRefused(_))
    ));
    assert!(matches!(
        remove_board(&env, "Default", true, T0),
        Err(KernelError::BoardRefused(_))
    ));
    assert!(matches!(
        remove_board(&env, "ghost", false, T0),
        Err(KernelError::BoardNotFound(_))
    ));
    drop(Board::open(&env, Some("a-1")).unwrap()); // give it a DB
    switch_board(&env, "a-1").unwrap();
    assert_eq!(resolve_board(&env, None).unwrap(), "a-1");
    let dest = remove_board(&env, "a-1", false, T0 + 7).unwrap().unwrap();
    assert_eq!(dest, boards.join(format!("_archived/a-1-{}", T0 + 7)));
    assert!(dest.join("board.json").is_file());
    assert!(dest.join("kanban.db").is_file());
    assert!(!boards.join("a-1").exists());
    assert!(
        !kanban_home(&env).join("kanban/current").exists(),
        "pointer cleared"
    );
    assert_eq!(resolve_board(&env, None).unwrap(), "default");
    // Same slug archived twice in the same second gets a suffix.
    create_board(&env, "a-1", NewBoard::default(), T0).unwrap();
    let dest2 = remove_board(&env, "a-1", false, T0 + 7).unwrap().unwrap();
    assert_eq!(dest2, boards.join(format!("_archived/a-1-{}-1", T0 + 7)));
    assert!(dest.exists());
    // A pointer naming another board survives a removal.
    switch_board(&env, "0ops").unwrap();
    assert_eq!(remove_board(&env, "my-board_x", true, T0).unwrap(), None);
    assert!(!boards.join("my-board_x").exists(), "hard delete");
    assert_eq!(resolve_board(&env, None).unwrap(), "0ops");
    assert!(!slugs(true).contains(&"a-1".to_string()));
    assert!(!slugs(true).contains(&"my-board_x".to_string()));
}

#[test]
fn tasks_do_not_leak_across_boards_and_inherit_default_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let env = home_env(&dir);
    let wd = dir.path().join("repo");
    create_board(
        &env,
        "a",
        NewBoard {
            default_workdir: Some(wd.to_string_lossy().into_owned()),
            ..Default::default()
        },
        T0,
    )
    .unwrap();
    create_board(&env, "b", NewBoard::default(), T0).unwrap();

    let a = Board::open(&env, Some("a")).unwrap();
    let b = Board::open(&env, Some("b")).unwrap();
    let d = Board::open(&env, None).unwrap();
    let t = a
        .create_task(NewTask {
            title: "only on a".into(),
            ..Default::default()
        })
        .unwrap()
        .task;
    assert_eq!(a.list_tasks(&Default::default()).unwrap().len(), 1);
    assert!(b.list_tasks(&Default::default()).unwrap().is_empty());
    assert!(d.list_tasks(&Default::default()).unwrap().is_empty());
    assert!(matches!(
        b.get_task(&t.id),
        Err(KernelError::TaskNotFound(_))
    ));
    assert_ne!(a.paths().db, b.paths().db);
    assert_ne!(a.paths().workspaces, b.paths().workspaces);

    let mk = |board: &Board, kind: WorkspaceKind, path: Option<&str>| {
        board
            .create_task(NewTask {
                title: format!("{kind} task"),
                workspace_kind: Some(kind),
                workspace_path: path.map(str::to_string),
                ..Default::default()
            })
            .unwrap()
            .task
    };
    let wd_s = wd.to_string_lossy().into_owned();
    assert_eq!(
        mk(&a, WorkspaceKind::Dir, None).workspace_path.as_deref(),
        Some(&*wd_s)
    );
    assert_eq!(
        mk(&a, WorkspaceKind::Worktree, None)
            .workspace_path
            .as_deref(),
        Some(&*wd_s)
    );
    let scratch = mk(&a, WorkspaceKind::Scratch, None);
    assert_eq!(scratch.workspace_path, None);
    assert_eq!(scratch.workspace_kind, "scratch");
    assert_eq!(
        mk(&a, WorkspaceKind::Dir, Some("/explicit/path"))
            .workspace_path
            .as_deref(),
        Some("/explicit/path")
    );
    // No default on board b.
    assert_eq!(mk(&b, WorkspaceKind::Dir, None).workspace_path, None);
    assert_eq!(a.list_tasks(&Default::default()).unwrap().len(), 5);
    assert_eq!(b.list_tasks(&Default::default()).unwrap().len(), 1);
    for board in [&a, &b, &d] {
        assert_invariants(board);
    }
}

/// A board on which upstream Hermes (~0.22) already added `provider_override` and
/// `reasoning_effort` itself (with `user_version` still 0): our migration 0007 skips the columns
/// that exist, and the kernel reads what upstream wrote.
#[test]
fn upstream_model_columns_already_added_by_hermes_are_kept_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let db = default_db(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let c = client(&db);
        c.execute_batch(&hermes_ddl()).unwrap();
        c.execute_batch(
            "ALTER TABLE tasks ADD COLUMN reasoning_effort TEXT;
             ALTER TABLE tasks ADD COLUMN provider_override TEXT;
             INSERT INTO tasks (id, title, assignee, status, created_at, workspace_kind,
                 model_override, provider_override, reasoning_effort)
             VALUES ('t_0000aaaa', 'from upstream', 'worker', 'ready', 1795247395, 'scratch',
                 'gpt-5.5', 'openrouter', 'high');",
        )
        .unwrap();
    }
    let board = open_default(&env, NOW);
    let t = board.get_task("t_0000aaaa").unwrap();
    assert_eq!(t.model_override.as_deref(), Some("gpt-5.5"));
    assert_eq!(t.provider_override.as_deref(), Some("openrouter"));
    assert_eq!(t.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(board.schema_version().unwrap(), SCHEMA_VERSION);
    drop(board);
    let c = client(&db);
    let names: Vec<String> = table_info(&c, "tasks").into_iter().map(|c| c.1).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "provider_override" || *n == "reasoning_effort")
            .count(),
        2,
        "no duplicate columns: {names:?}"
    );
}
