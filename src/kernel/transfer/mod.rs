//! `boards export` / `boards import`: a whole board as one `<slug>.tar.gz` in Hermes ~0.22's
//! archive format (`hermes-kanban-board` v1, UP §9): one top-level directory named for the
//! board with `manifest.json`, `board.json` (machine-local fields cleared), `kanban.db` (a
//! consistent snapshot taken with SQLite's backup API), `attachments/<task>/…` (unless
//! excluded) and `logs/<task>.log` (only when asked). Either tool imports the other's archives.
//!
//! What is live on the exporting machine does not travel as live state: the snapshot is
//! scrubbed before it is archived, and again on import (an archive is untrusted). Claims,
//! pids, fingerprints, heartbeats, session and project ids, failure counters, notification
//! subscriptions, and our side tables `kanban_worker_procs` and `kanban_run_tokens` are
//! cleared; `running` tasks go back to `ready` and their open runs are closed `reclaimed`.
//! An import always lands as a new board (the slug gains `-N` when taken); its attachment rows
//! are re-pointed at the new board (rows whose file did not travel are dropped), workspace
//! paths are cleared, and dispatchable `dir`/`worktree` tasks are parked in `triage`, each
//! task getting an `imported` event.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::board::{Board, add_event};
use super::env::Env;
use super::error::{KernelError, Result};
use super::paths::{
    BoardPaths, DEFAULT_BOARD, board_exists, kanban_home, normalize_slug, read_board_meta,
    switch_board, write_board_meta,
};
use super::store::{Tx, sqlite as store};
use crate::args;

mod archive;

use archive::{copy_regular_files, extract, read_manifest, write_json, write_tar_gz};

/// The archive format name and the newest version we read and write.
pub const ARCHIVE_FORMAT: &str = "hermes-kanban-board";
pub const ARCHIVE_FORMAT_VERSION: i64 = 1;
const COUNTED_TABLES: [&str; 6] = [
    "tasks",
    "task_links",
    "task_comments",
    "task_events",
    "task_runs",
    "task_attachments",
];
const DISPATCHABLE: [&str; 4] = ["ready", "running", "todo", "scheduled"];

/// What `boards export` wrote (`--json`: Hermes' keys).
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub board: String,
    pub archive: PathBuf,
    pub size: u64,
    pub counts: serde_json::Map<String, Value>,
}

/// What `boards import` did (`--json`: Hermes' keys).
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub board: String,
    pub requested_board: String,
    pub renamed: bool,
    pub name: String,
    pub path: PathBuf,
    pub db_path: PathBuf,
    pub source: Value,
    pub counts: serde_json::Map<String, Value>,
    pub attachments_restored: i64,
    pub tasks_parked: i64,
    pub warnings: Vec<String>,
    pub activated: bool,
}

/// Clear machine-local runtime state (the caller holds the transaction).
fn scrub_local_state(c: &Tx, now: i64) -> Result<()> {
    c.exec("DELETE FROM kanban_notify_subs", args![])?;
    c.exec(
        "UPDATE tasks SET claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, current_run_id=NULL,
                last_heartbeat_at=NULL, session_id=NULL, project_id=NULL,
                consecutive_failures=0, last_failure_error=NULL",
        args![],
    )?;
    c.exec(
        "UPDATE tasks SET status='ready' WHERE status='running'",
        args![],
    )?;
    c.exec(
        "UPDATE task_runs SET status='released', outcome=COALESCE(outcome, 'reclaimed'),
                ended_at=COALESCE(ended_at, ?1), last_heartbeat_at=NULL
          WHERE status='running' OR ended_at IS NULL",
        args![now],
    )?;
    c.exec(
        "UPDATE task_runs SET claim_lock=NULL, worker_pid=NULL",
        args![],
    )?;
    // Hermes ~0.22's pid fingerprints, where the columns exist (an archive may be older).
    for table in ["tasks", "task_runs"] {
        if store::has_column(c, table, "worker_started_at")? {
            c.exec(
                &format!("UPDATE {table} SET worker_started_at=NULL"),
                args![],
            )?;
        }
    }
    // Our side tables: supervisor/worker process rows and per-run tokens are live state.
    for table in ["kanban_worker_procs", "kanban_run_tokens"] {
        if store::has_table(c, table)? {
            c.exec(&format!("DELETE FROM {table}"), args![])?;
        }
    }
    Ok(())
}

fn count_rows(c: &Tx) -> Result<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for t in COUNTED_TABLES {
        m.insert(t.to_string(), json!(store::count_rows(c, t)?));
    }
    Ok(m)
}

/// Export board `raw_slug` to `output` (`.tar.gz` appended unless present). Writes nothing to
/// the board itself.
pub fn export_board(
    env: &Env,
    raw_slug: &str,
    output: &Path,
    include_attachments: bool,
    include_logs: bool,
    now: i64,
) -> Result<ExportReport> {
    let slug = normalize_slug(raw_slug)?;
    let paths = exportable_board(env, &slug)?;
    let (archive, out_dir) = archive_path(output);
    fs::create_dir_all(&out_dir).map_err(|e| KernelError::io(&out_dir, e))?;

    let tmp = tempfile::tempdir().map_err(|e| KernelError::io(std::env::temp_dir(), e))?;
    let staged = tmp.path().join(&slug);
    fs::create_dir_all(&staged).map_err(|e| KernelError::io(&staged, e))?;
    let includes = (include_attachments, include_logs);
    let manifest = stage_export(env, &slug, &paths, &staged, includes, now)?;

    // Write next to the destination, rename when complete.
    let part = out_dir.join(format!(
        ".{}.part",
        archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "board.tar.gz".into())
    ));
    write_tar_gz(&part, &slug, &staged)?;
    fs::rename(&part, &archive).map_err(|e| KernelError::io(&archive, e))?;
    let size = fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    Ok(ExportReport {
        board: slug,
        archive: fs::canonicalize(&archive).unwrap_or(archive),
        size,
        counts: manifest["counts"].as_object().cloned().unwrap_or_default(),
    })
}

/// The paths of a board that can be exported: it exists and has a database file.
fn exportable_board(env: &Env, slug: &str) -> Result<BoardPaths> {
    if !board_exists(env, slug) {
        return Err(KernelError::BoardNotFound(slug.to_string()));
    }
    let paths = BoardPaths::resolve(env, slug);
    if !paths.db.is_file() {
        return Err(KernelError::BoardRefused(format!(
            "board '{slug}' has no database at {} yet; nothing to export",
            paths.db.display()
        )));
    }
    Ok(paths)
}

/// The archive `output` names (`.tar.gz` appended unless it ends in `.tar.gz` or `.tgz`, which
/// becomes `.tar.gz`) and the directory it lands in.
fn archive_path(output: &Path) -> (PathBuf, PathBuf) {
    let out_text = output.to_string_lossy();
    let base = out_text
        .strip_suffix(".tar.gz")
        .or_else(|| out_text.strip_suffix(".tgz"))
        .unwrap_or(&out_text);
    let archive = PathBuf::from(format!("{base}.tar.gz"));
    let out_dir = archive
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    (archive, out_dir)
}

/// Fill the staging directory: the scrubbed database snapshot, `board.json` without the
/// machine-local fields, the attachment and log files asked for (`includes`: attachments,
/// logs) and `manifest.json`, which is returned.
fn stage_export(
    env: &Env,
    slug: &str,
    paths: &BoardPaths,
    staged: &Path,
    (include_attachments, include_logs): (bool, bool),
    now: i64,
) -> Result<Value> {
    let snap_path = staged.join("kanban.db");
    // A consistent copy taken while writers continue, scrubbed before it is archived.
    let counts_db = store::snapshot(&paths.db, &snap_path, |c| {
        scrub_local_state(c, now)?;
        count_rows(c)
    })?;
    let meta = read_board_meta(env, slug);
    let mut board_json = serde_json::to_value(&meta)?;
    if let Some(o) = board_json.as_object_mut() {
        o.remove("db_path");
        o.insert("default_workdir".into(), Value::Null);
        o.insert("project_id".into(), Value::Null);
    }
    write_json(&staged.join("board.json"), &board_json)?;
    let attachment_files = if include_attachments {
        copy_regular_files(&paths.attachments, &staged.join("attachments"))?
    } else {
        0
    };
    let log_files = if include_logs {
        copy_regular_files(&paths.logs, &staged.join("logs"))?
    } else {
        0
    };
    let mut counts = counts_db;
    counts.insert("attachment_files".into(), json!(attachment_files));
    counts.insert("log_files".into(), json!(log_files));
    let board_name = if meta.name.trim().is_empty() {
        slug.to_string()
    } else {
        meta.name.clone()
    };
    let manifest = json!({
        "format": ARCHIVE_FORMAT,
        "format_version": ARCHIVE_FORMAT_VERSION,
        "board": slug,
        "board_name": board_name,
        "exported_at": now,
        "hermes_version": null,
        "exporter": concat!("hermes-kanban ", env!("CARGO_PKG_VERSION")),
        "includes": {"attachments": include_attachments, "logs": include_logs},
        "counts": counts,
    });
    write_json(&staged.join("manifest.json"), &manifest)?;
    Ok(manifest)
}

fn available_slug(env: &Env, preferred: &str) -> String {
    if preferred != DEFAULT_BOARD && !board_exists(env, preferred) {
        return preferred.to_string();
    }
    let stem = preferred[..preferred.len().min(58)].trim_end_matches(['-', '_']);
    let stem = if stem.is_empty() { "board" } else { stem };
    let mut n = 2;
    while board_exists(env, &format!("{stem}-{n}")) {
        n += 1;
    }
    format!("{stem}-{n}")
}

/// Import `archive` as a new board (`as_slug` overrides the archive's slug; a taken slug gets
/// `-N`). With `activate` the new board becomes the current one.
pub fn import_board(
    env: &Env,
    archive: &Path,
    as_slug: Option<&str>,
    activate: bool,
    now: i64,
) -> Result<ImportReport> {
    super::fence::check(env, &kanban_home(env))?;
    if !archive.is_file() {
        return Err(KernelError::io(
            archive,
            std::io::Error::new(std::io::ErrorKind::NotFound, "archive not found"),
        ));
    }
    let tmp = tempfile::tempdir().map_err(|e| KernelError::io(std::env::temp_dir(), e))?;
    let root = extract(archive, tmp.path())?;
    let extracted = tmp.path().join(&root);
    let manifest = read_manifest(&extracted)?;
    let staged_db = extracted.join("kanban.db");
    if !staged_db.is_file() {
        return Err(KernelError::BoardRefused(
            "archive is missing kanban.db".into(),
        ));
    }
    let requested_raw = as_slug
        .map(str::to_string)
        .or_else(|| manifest["board"].as_str().map(str::to_string))
        .unwrap_or_else(|| root.clone());
    let requested = normalize_slug(&requested_raw)?;
    let target = available_slug(env, &requested);
    let meta = imported_meta(&extracted, &manifest, &target, now);

    let paths = BoardPaths::resolve(&env.clone().without("HERMES_KANBAN_DB"), &target);
    land_files(&paths, &staged_db, &extracted)?;
    write_board_meta(env, &meta)?;
    let landed = land_board(env, &paths, &target, now)?;
    if activate {
        switch_board(env, &target)?;
    }
    Ok(ImportReport {
        renamed: target != requested,
        board: target,
        requested_board: requested,
        name: meta.name,
        path: paths.dir.clone(),
        db_path: paths.db.clone(),
        source: json!({
            "board": manifest["board"],
            "exported_at": manifest["exported_at"],
            "hermes_version": manifest["hermes_version"],
        }),
        counts: landed.counts,
        attachments_restored: landed.restored,
        tasks_parked: landed.parked,
        warnings: landed.warnings,
        activated: activate,
    })
}

/// The new board's metadata: name, description, icon and colour from the archive's
/// `board.json` (the name else the manifest's `board_name`, else the slug), created now.
fn imported_meta(
    extracted: &Path,
    manifest: &Value,
    target: &str,
    now: i64,
) -> super::paths::BoardMeta {
    let staged_meta: Value = fs::read_to_string(extracted.join("board.json"))
        .ok()
        .and_then(|t| serde_json::from_str(t.trim_start_matches('\u{feff}')).ok())
        .unwrap_or(Value::Null);
    let text = |k: &str| {
        staged_meta[k]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = text("name")
        .or_else(|| manifest["board_name"].as_str().map(str::to_string))
        .unwrap_or_else(|| target.to_string());
    let mut meta = super::paths::BoardMeta::synthesized(target);
    meta.name = name;
    meta.description = text("description");
    meta.icon = text("icon");
    meta.color = text("color");
    meta.created_at = Some(now);
    meta
}

/// Copy the archive's database, attachments and logs into the new board's directory.
fn land_files(paths: &BoardPaths, staged_db: &Path, extracted: &Path) -> Result<()> {
    fs::create_dir_all(&paths.dir).map_err(|e| KernelError::io(&paths.dir, e))?;
    fs::copy(staged_db, &paths.db).map_err(|e| KernelError::io(&paths.db, e))?;
    for tree in ["attachments", "logs"] {
        let src = extracted.join(tree);
        if src.is_dir() {
            copy_regular_files(&src, &paths.dir.join(tree))?;
        }
    }
    Ok(())
}

/// What fixing up a landed board's rows did.
struct Landed {
    restored: i64,
    parked: i64,
    warnings: Vec<String>,
    counts: serde_json::Map<String, Value>,
}

/// Open the landed board, fix its rows up in one write (`land_rows`) and count them.
fn land_board(env: &Env, paths: &BoardPaths, target: &str, now: i64) -> Result<Landed> {
    let env_b = env.clone().without("HERMES_KANBAN_DB");
    let board = Board::open_paths(&env_b, paths.clone())?;
    let attachments_dir = paths.attachments.clone();
    let (restored, parked, warnings) =
        board.write(|c| land_rows(c, &attachments_dir, target, now))?;
    let counts = board.read(count_rows)?;
    Ok(Landed {
        restored,
        parked,
        warnings,
        counts,
    })
}

/// Inside the new board's first write: scrub live state, re-point attachment rows at the
/// landed files (dropping rows whose file did not travel), clear workspace paths, park
/// dispatchable `dir`/`worktree` tasks in triage, and record `imported` on every task.
/// Returns (attachments restored, tasks parked, warnings).
fn land_rows(
    c: &Tx,
    attachments_dir: &Path,
    target: &str,
    now: i64,
) -> Result<(i64, i64, Vec<String>)> {
    scrub_local_state(c, now)?;
    let mut warnings = Vec::new();
    let rows: Vec<(i64, String, String)> = c.rows(
        "SELECT id, task_id, stored_path FROM task_attachments",
        args![],
    )?;
    let (mut restored, mut dropped) = (0i64, 0i64);
    for (id, task, stored) in rows {
        let file = Path::new(&stored)
            .file_name()
            .map(|f| f.to_os_string())
            .unwrap_or_default();
        let landed = attachments_dir.join(&task).join(file);
        if landed.is_file() && !task.contains(['/', '\\']) && !task.contains("..") {
            c.exec(
                "UPDATE task_attachments SET stored_path=?1 WHERE id=?2",
                args![landed.to_string_lossy().into_owned(), id],
            )?;
            restored += 1;
        } else {
            c.exec("DELETE FROM task_attachments WHERE id=?1", args![id])?;
            dropped += 1;
        }
    }
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} attachment record(s) dropped: the files were not in the archive"
        ));
    }
    let parked: Vec<String> = c.rows(
        &format!(
            "SELECT id FROM tasks WHERE workspace_kind IN ('dir','worktree') AND status IN ({})",
            DISPATCHABLE.map(|s| format!("'{s}'")).join(", ")
        ),
        args![],
    )?;
    c.exec(
        "UPDATE tasks SET workspace_path=NULL, branch_name=NULL",
        args![],
    )?;
    for id in &parked {
        c.exec("UPDATE tasks SET status='triage' WHERE id=?1", args![id])?;
    }
    if !parked.is_empty() {
        warnings.push(format!(
            "{} task(s) moved to triage: their workspace was a directory or git worktree on the \
            exporting machine; point it somewhere on this one",
            parked.len()
        ));
    }
    let ids: Vec<String> = c.rows("SELECT id FROM tasks", args![])?;
    for id in &ids {
        let payload = crate::obj! {"board" => target, "parked" => parked.contains(id)};
        add_event(c, id, None, "imported", payload, now)?;
    }
    Ok((restored, parked.len() as i64, warnings))
}
