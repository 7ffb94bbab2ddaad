//! Where things live on disk (REF §2): the shared Hermes root, the kanban home, per-board paths
//! with their environment overrides, slug validation, the `current` pointer and `board.json`
//! metadata, and board management (create, list, remove, switch, rename, default workdir).
//!
//! It is also the one home of the **worker pin**, the rule that keeps a dispatcher-spawned
//! worker on its own board whatever board a call names (REF §10.2). On SQLite the pin is
//! `HERMES_KANBAN_DB`: every board's database is that file ([`BoardPaths::resolve`]). On a
//! database URL (PostgreSQL) there is no file to pin, so the pin is the board's slug:
//! [`url_worker_pin`] (`HERMES_KANBAN_BOARD` of a process that runs as a worker), to which
//! [`super::Kanban::resolve`] resolves every slug.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::env::Env;
use super::error::{KernelError, Result};

/// The board that always exists and keeps the legacy path `<root>/kanban.db`.
pub const DEFAULT_BOARD: &str = "default";

/// Normalise and validate a board slug: trimmed, lowercased, `^[a-z0-9][a-z0-9_-]{0,63}$`.
/// Anything else (including `..`, `/`, empty) is [`KernelError::InvalidSlug`].
pub fn normalize_slug(raw: &str) -> Result<String> {
    let s = raw.trim().to_lowercase();
    let bytes = s.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
    if ok {
        Ok(s)
    } else {
        Err(KernelError::InvalidSlug(raw.to_string()))
    }
}

/// The shared Hermes root: `~/.hermes`, or `HERMES_HOME` when it points elsewhere, except that
/// `<x>/profiles/<name>` resolves to `<x>` so every profile converges on one board set.
pub fn hermes_root(env: &Env) -> PathBuf {
    let default_root = env.home_dir().join(".hermes");
    let Some(home) = env.path("HERMES_HOME") else {
        return default_root;
    };
    if home.starts_with(&default_root) {
        return default_root;
    }
    if let Some(parent) = home.parent()
        && parent.file_name().is_some_and(|n| n == "profiles")
        && let Some(grand) = parent.parent()
    {
        return grand.to_path_buf();
    }
    home
}

/// The active profile's name as Hermes infers it from `HERMES_HOME` (its
/// `get_active_profile_name`, the CLI's author identity when no `HERMES_PROFILE[_NAME]` is set):
/// `default` when `HERMES_HOME` is unset or is the shared root, `<name>` for
/// `<root>/profiles/<name>` (a valid profile id), else `custom`.
pub fn active_profile_name(env: &Env) -> String {
    let root = hermes_root(env);
    let home = env
        .path("HERMES_HOME")
        .unwrap_or_else(|| env.home_dir().join(".hermes"));
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (home, root) = (canon(&home), canon(&root));
    if home == root {
        return "default".into();
    }
    if let Ok(rel) = home.strip_prefix(root.join("profiles"))
        && rel.components().count() == 1
    {
        let name = rel.to_string_lossy();
        let valid = name.len() <= 64
            && name.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'_' || b == b'-'))
            });
        if valid {
            return name.into_owned();
        }
    }
    "custom".into()
}

/// The kanban home `<R>`: `HERMES_KANBAN_HOME` if set, else [`hermes_root`].
pub fn kanban_home(env: &Env) -> PathBuf {
    env.path("HERMES_KANBAN_HOME")
        .unwrap_or_else(|| hermes_root(env))
}

/// Every path of one board, with environment overrides applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardPaths {
    /// Board slug.
    pub slug: String,
    /// The kanban home `<R>`.
    pub home: PathBuf,
    /// The board's metadata directory (`<R>/kanban/boards/<slug>`).
    pub dir: PathBuf,
    /// The SQLite file.
    pub db: PathBuf,
    /// Root of scratch workspaces.
    pub workspaces: PathBuf,
    /// Root of attachment blobs.
    pub attachments: PathBuf,
    /// Directory of worker logs.
    pub logs: PathBuf,
    /// `board.json`.
    pub meta: PathBuf,
}

impl BoardPaths {
    /// Paths of `slug` (already normalised) under the kanban home of `env`.
    pub fn resolve(env: &Env, slug: &str) -> BoardPaths {
        let home = kanban_home(env);
        let kanban = home.join("kanban");
        let dir = kanban.join("boards").join(slug);
        let (db, workspaces, attachments, logs) = if slug == DEFAULT_BOARD {
            (
                home.join("kanban.db"),
                kanban.join("workspaces"),
                kanban.join("attachments"),
                kanban.join("logs"),
            )
        } else {
            (
                dir.join("kanban.db"),
                dir.join("workspaces"),
                dir.join("attachments"),
                dir.join("logs"),
            )
        };
        BoardPaths {
            slug: slug.to_string(),
            meta: dir.join("board.json"),
            db: env.path("HERMES_KANBAN_DB").unwrap_or(db),
            workspaces: env
                .path("HERMES_KANBAN_WORKSPACES_ROOT")
                .unwrap_or(workspaces),
            attachments: env
                .path("HERMES_KANBAN_ATTACHMENTS_ROOT")
                .unwrap_or(attachments),
            logs,
            home,
            dir,
        }
    }

    /// Paths for a DB file opened directly (tests, tools): sidecar dirs sit next to it.
    pub fn for_db_file(db: &Path) -> BoardPaths {
        let dir = db
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        BoardPaths {
            slug: DEFAULT_BOARD.to_string(),
            home: dir.clone(),
            meta: dir.join("board.json"),
            db: db.to_path_buf(),
            workspaces: dir.join("workspaces"),
            attachments: dir.join("attachments"),
            logs: dir.join("logs"),
            dir,
        }
    }

    /// The worker log file of a task on this board.
    pub fn log_file(&self, task_id: &str) -> PathBuf {
        self.logs.join(format!("{task_id}.log"))
    }
}

/// The worker pin on a database-URL backend: `HERMES_KANBAN_BOARD` while the process runs as a
/// worker (`HERMES_KANBAN_TASK` set); the dispatcher sets both for every worker it spawns, and
/// `hermes-kanban mcp --task ID --board SLUG` sets them from its flags. Then every board
/// resolution lands on that board, as `HERMES_KANBAN_DB` makes it land on one file on SQLite.
///
/// The existing variable, not a new one: it already names the dispatching board in every
/// worker's environment (and in the MCP client configs that pass it through), and
/// `HERMES_KANBAN_DB` cannot hold a board of a database that has no files. Without
/// `HERMES_KANBAN_TASK` it stays what it is everywhere, the default board (an orchestrator,
/// or a `hermes chat` that set it for its session, can still pick another). Not applied on
/// SQLite, where `HERMES_KANBAN_DB` is the pin (SQLite's behaviour is Hermes').
pub(crate) fn url_worker_pin(env: &Env) -> Option<&str> {
    env.get("HERMES_KANBAN_TASK")?;
    env.get("HERMES_KANBAN_BOARD")
}

/// The slug `<R>/kanban/current` names, if any (not checked against the boards).
pub(crate) fn current_slug(env: &Env) -> Option<String> {
    let text = fs::read_to_string(current_pointer(env)).ok()?;
    normalize_slug(text.trim()).ok()
}

/// Point `<R>/kanban/current` at `slug` (`None`: remove the pointer when it names `clear`).
pub(crate) fn write_current(env: &Env, slug: Option<&str>, clear: &str) -> Result<()> {
    super::fence::check(env, &kanban_home(env))?;
    let ptr = current_pointer(env);
    match slug {
        Some(slug) => {
            if let Some(parent) = ptr.parent() {
                fs::create_dir_all(parent).map_err(|e| KernelError::io(parent, e))?;
            }
            fs::write(&ptr, format!("{slug}\n")).map_err(|e| KernelError::io(&ptr, e))
        }
        None => {
            if fs::read_to_string(&ptr).is_ok_and(|t| t.trim() == clear) {
                let _ = fs::remove_file(&ptr);
            }
            Ok(())
        }
    }
}

pub(crate) fn validate_workdir_path(w: &str) -> Result<()> {
    validate_workdir(w)
}

fn current_pointer(env: &Env) -> PathBuf {
    kanban_home(env).join("kanban").join("current")
}

fn boards_dir(env: &Env) -> PathBuf {
    kanban_home(env).join("kanban").join("boards")
}

/// Whether a board exists: `default` always; others when their directory holds `board.json` or
/// `kanban.db`.
pub fn board_exists(env: &Env, slug: &str) -> bool {
    if slug == DEFAULT_BOARD {
        return true;
    }
    let dir = boards_dir(env).join(slug);
    dir.join("board.json").is_file() || dir.join("kanban.db").is_file()
}

/// Resolve the active board: explicit argument (validated, must exist) → `HERMES_KANBAN_BOARD`
/// (if valid and existing) → `<R>/kanban/current` (if valid and existing) → `default`.
pub fn resolve_board(env: &Env, explicit: Option<&str>) -> Result<String> {
    if let Some(raw) = explicit {
        let slug = normalize_slug(raw)?;
        if !board_exists(env, &slug) {
            return Err(KernelError::BoardNotFound(slug));
        }
        return Ok(slug);
    }
    if let Some(raw) = env.get("HERMES_KANBAN_BOARD")
        && let Ok(slug) = normalize_slug(raw)
        && board_exists(env, &slug)
    {
        return Ok(slug);
    }
    if let Ok(text) = fs::read_to_string(current_pointer(env))
        && let Ok(slug) = normalize_slug(text.trim())
        && board_exists(env, &slug)
    {
        return Ok(slug);
    }
    Ok(DEFAULT_BOARD.to_string())
}

/// `board.json` contents (REF §2.2). Unknown keys are preserved on rewrite.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BoardMeta {
    /// Always the directory name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Emoji or short icon text.
    #[serde(default)]
    pub icon: Option<String>,
    /// CSS colour.
    #[serde(default)]
    pub color: Option<String>,
    /// Default directory for `dir`/`worktree` tasks created without a path.
    #[serde(default)]
    pub default_workdir: Option<String>,
    /// Epoch seconds of the first write.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Hidden from listings unless asked.
    #[serde(default)]
    pub archived: bool,
    /// Keys we do not know, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BoardMeta {
    pub(super) fn synthesized(slug: &str) -> BoardMeta {
        BoardMeta {
            slug: slug.to_string(),
            name: default_display_name(slug),
            description: None,
            icon: None,
            color: None,
            default_workdir: None,
            created_at: None,
            archived: false,
            extra: Default::default(),
        }
    }
}

/// `my-board_x` → `My Board X`.
pub fn default_display_name(slug: &str) -> String {
    slug.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Read a board's metadata; a missing or malformed file yields synthesized defaults.
pub fn read_board_meta(env: &Env, slug: &str) -> BoardMeta {
    let path = boards_dir(env).join(slug).join("board.json");
    let mut meta = fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<BoardMeta>(&t).ok())
        .unwrap_or_else(|| BoardMeta::synthesized(slug));
    meta.slug = slug.to_string();
    if meta.name.trim().is_empty() {
        meta.name = default_display_name(slug);
    }
    meta
}

pub(super) fn write_board_meta(env: &Env, meta: &BoardMeta) -> Result<()> {
    super::fence::check(env, &kanban_home(env))?;
    let dir = boards_dir(env).join(&meta.slug);
    fs::create_dir_all(&dir).map_err(|e| KernelError::io(&dir, e))?;
    let path = dir.join("board.json");
    let tmp = dir.join(".board.json.tmp");
    let text = serde_json::to_string_pretty(meta)?;
    fs::write(&tmp, text + "\n").map_err(|e| KernelError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| KernelError::io(&path, e))?;
    Ok(())
}

/// Options for [`create_board`].
#[derive(Debug, Clone, Default)]
pub struct NewBoard {
    /// Display name (default derived from the slug).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Icon.
    pub icon: Option<String>,
    /// Colour.
    pub color: Option<String>,
    /// Default workdir (must be absolute).
    pub default_workdir: Option<String>,
}

impl NewBoard {
    /// The metadata of a new board `slug` created at `now` with these options (a blank name
    /// keeps the one derived from the slug). Both backends' `create` write this.
    pub(crate) fn into_meta(self, slug: &str, now: i64) -> BoardMeta {
        let mut meta = BoardMeta::synthesized(slug);
        if let Some(n) = self.name.filter(|n| !n.trim().is_empty()) {
            meta.name = n.trim().to_string();
        }
        meta.description = self.description;
        meta.icon = self.icon;
        meta.color = self.color;
        meta.default_workdir = self.default_workdir;
        meta.created_at = Some(now);
        meta
    }
}

/// Create a board directory and `board.json`. Idempotent: an existing board is returned with
/// `false`. The DB itself is created on first open.
pub fn create_board(
    env: &Env,
    raw_slug: &str,
    opts: NewBoard,
    now: i64,
) -> Result<(BoardMeta, bool)> {
    let slug = normalize_slug(raw_slug)?;
    if let Some(w) = &opts.default_workdir {
        validate_workdir(w)?;
    }
    let existed =
        board_exists(env, &slug) && boards_dir(env).join(&slug).join("board.json").is_file();
    if existed {
        return Ok((read_board_meta(env, &slug), false));
    }
    let meta = opts.into_meta(&slug, now);
    write_board_meta(env, &meta)?;
    Ok((meta, true))
}

fn validate_workdir(w: &str) -> Result<()> {
    if !Path::new(w).is_absolute() {
        return Err(KernelError::invalid(
            "default_workdir",
            format!("{w:?} is not an absolute path"),
        ));
    }
    Ok(())
}

/// One entry of [`list_boards`].
#[derive(Debug, Clone, Serialize)]
pub struct BoardEntry {
    /// Metadata.
    #[serde(flatten)]
    pub meta: BoardMeta,
    /// Resolved DB path (never persisted).
    pub db_path: PathBuf,
    /// Whether this is the active board.
    pub is_current: bool,
}

/// `default` first, then boards under `boards/` sorted case-insensitively; archived boards only
/// with `include_archived`.
pub fn list_boards(env: &Env, include_archived: bool) -> Result<Vec<BoardEntry>> {
    let current = resolve_board(env, None)?;
    let mut slugs = vec![DEFAULT_BOARD.to_string()];
    let dir = boards_dir(env);
    if let Ok(rd) = fs::read_dir(&dir) {
        let mut others: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n != DEFAULT_BOARD)
            .filter(|n| normalize_slug(n).is_ok_and(|s| s == *n))
            .filter(|n| board_exists(env, n))
            .collect();
        others.sort_by_key(|s| s.to_lowercase());
        slugs.extend(others);
    }
    let mut out = Vec::new();
    for slug in slugs {
        let meta = read_board_meta(env, &slug);
        if meta.archived && !include_archived {
            continue;
        }
        out.push(BoardEntry {
            db_path: BoardPaths::resolve(env, &slug).db,
            is_current: slug == current,
            meta,
        });
    }
    Ok(out)
}

/// Remove a board: archive (rename to `boards/_archived/<slug>-<epoch>[-n]`) or hard delete.
/// `default` cannot be removed. Clears the `current` pointer if it named this board.
/// Returns where the board went (the archive dir) or `None` when deleted.
pub fn remove_board(env: &Env, raw_slug: &str, hard: bool, now: i64) -> Result<Option<PathBuf>> {
    let slug = normalize_slug(raw_slug)?;
    if slug == DEFAULT_BOARD {
        return Err(KernelError::BoardRefused(
            "the default board cannot be removed".into(),
        ));
    }
    if !board_exists(env, &slug) {
        return Err(KernelError::BoardNotFound(slug));
    }
    super::fence::check(env, &kanban_home(env))?;
    let dir = boards_dir(env).join(&slug);
    let dest = if hard {
        fs::remove_dir_all(&dir).map_err(|e| KernelError::io(&dir, e))?;
        None
    } else {
        let archive_root = boards_dir(env).join("_archived");
        fs::create_dir_all(&archive_root).map_err(|e| KernelError::io(&archive_root, e))?;
        let mut dest = archive_root.join(format!("{slug}-{now}"));
        let mut n = 1;
        while dest.exists() {
            dest = archive_root.join(format!("{slug}-{now}-{n}"));
            n += 1;
        }
        fs::rename(&dir, &dest).map_err(|e| KernelError::io(&dir, e))?;
        Some(dest)
    };
    let ptr = current_pointer(env);
    if fs::read_to_string(&ptr).is_ok_and(|t| t.trim() == slug) {
        let _ = fs::remove_file(&ptr);
    }
    Ok(dest)
}

/// Make `slug` the current board (writes `<R>/kanban/current`).
pub fn switch_board(env: &Env, raw_slug: &str) -> Result<String> {
    let slug = normalize_slug(raw_slug)?;
    if !board_exists(env, &slug) {
        return Err(KernelError::BoardNotFound(slug));
    }
    super::fence::check(env, &kanban_home(env))?;
    let ptr = current_pointer(env);
    if let Some(parent) = ptr.parent() {
        fs::create_dir_all(parent).map_err(|e| KernelError::io(parent, e))?;
    }
    fs::write(&ptr, format!("{slug}\n")).map_err(|e| KernelError::io(&ptr, e))?;
    Ok(slug)
}

/// Change a board's display name.
pub fn rename_board(env: &Env, raw_slug: &str, name: &str, now: i64) -> Result<BoardMeta> {
    let slug = normalize_slug(raw_slug)?;
    if !board_exists(env, &slug) {
        return Err(KernelError::BoardNotFound(slug));
    }
    if name.trim().is_empty() {
        return Err(KernelError::invalid("name", "board name must not be blank"));
    }
    let mut meta = read_board_meta(env, &slug);
    meta.name = name.trim().to_string();
    meta.created_at.get_or_insert(now);
    write_board_meta(env, &meta)?;
    Ok(meta)
}

/// Set (or with `None`, clear) a board's default workdir; the path must be absolute.
pub fn set_default_workdir(
    env: &Env,
    raw_slug: &str,
    path: Option<&str>,
    now: i64,
) -> Result<BoardMeta> {
    let slug = normalize_slug(raw_slug)?;
    if !board_exists(env, &slug) {
        return Err(KernelError::BoardNotFound(slug));
    }
    if let Some(p) = path {
        validate_workdir(p)?;
    }
    let mut meta = read_board_meta(env, &slug);
    meta.default_workdir = path.map(str::to_string);
    meta.created_at.get_or_insert(now);
    write_board_meta(env, &meta)?;
    Ok(meta)
}
