//! [`Kanban`]: the home handle — the one object a front door holds. It chooses the backend
//! (today the SQLite boards under the kanban home; a `postgres://` URL is recognised and
//! refused until that backend exists), resolves and lists boards, and caches one open handle
//! per board ([`SharedBoard`]) so a process holds one connection per board: in `serve` the MCP
//! server, the REST API, the dispatcher and the webhook threads share one `Kanban`.
//!
//! Opening keeps [`OpenMode`]'s rule: nothing creates a board silently. [`Kanban::board`]
//! opens an existing database only; [`Kanban::board_or_create`] creates one and says so.
//! One-shot processes (CLI verbs) take an owned, uncached [`Board`] from [`Kanban::open_board`].
//!
//! A cached handle is checked against its file on every lookup: when the database file was
//! removed or replaced behind this process (`boards rm` and a new board of the same slug from
//! another process), the stale handle is dropped and the board reopened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::board::{Board, OpenMode};
use super::env::Env;
use super::error::{KernelError, Result};
use super::paths::{
    BoardEntry, BoardMeta, BoardPaths, NewBoard, create_board, hermes_root, kanban_home,
    list_boards, resolve_board,
};
pub use super::store::group::SharedBoard;

/// The environment variable naming the database URL (`--database-url` outranks it,
/// `kanban.database_url` in config.yaml comes after it).
pub const DATABASE_URL_VAR: &str = "HERMES_KANBAN_DATABASE_URL";

/// Which storage a [`Kanban`] talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file per board under the kanban home (`<R>/kanban.db`,
    /// `<R>/kanban/boards/<slug>/kanban.db`).
    Sqlite {
        /// The kanban home `<R>`.
        home: PathBuf,
    },
}

struct Cached {
    handle: SharedBoard,
    /// The database file's identity when it was opened (device, inode).
    file: Option<(u64, u64)>,
}

struct Inner {
    env: Env,
    backend: Backend,
    boards: Mutex<HashMap<String, Cached>>,
}

/// The home handle: backend, board registry, and the cache of open boards. Cheap to clone
/// (clones share the cache).
#[derive(Clone)]
pub struct Kanban {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Kanban {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kanban")
            .field("backend", &self.inner.backend)
            .field("open_boards", &self.open_boards())
            .finish()
    }
}

/// The SQLite boards of `env` (no database URL consulted): what tests and embedders that
/// build a router or loop from an [`Env`] get.
impl From<Env> for Kanban {
    fn from(env: Env) -> Kanban {
        Kanban::sqlite(env)
    }
}

impl From<&Kanban> for Kanban {
    fn from(k: &Kanban) -> Kanban {
        k.clone()
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Kanban {
    /// Open the home of `env`: the backend named by `database_url` (the global
    /// `--database-url`), else `$HERMES_KANBAN_DATABASE_URL`, else `kanban.database_url` in
    /// `$HERMES_HOME/config.yaml`, else the SQLite boards under the kanban home. A
    /// `postgres://` URL is refused (this build has no PostgreSQL backend yet); the message
    /// never shows the URL's password.
    pub fn open(env: &Env, database_url: Option<&str>) -> Result<Kanban> {
        let chosen = database_url
            .map(|u| ("--database-url", u.to_string()))
            .filter(|(_, u)| !u.trim().is_empty())
            .or_else(|| {
                env.get(DATABASE_URL_VAR)
                    .filter(|u| !u.trim().is_empty() && !super::env::is_placeholder(u))
                    .map(|u| (DATABASE_URL_VAR, u.to_string()))
            })
            .or_else(|| config_database_url(env).map(|u| ("kanban.database_url", u)));
        match chosen {
            None => Ok(Kanban::sqlite(env.clone())),
            Some((from, url)) => Err(refuse_url(from, url.trim())),
        }
    }

    /// The SQLite boards under the kanban home of `env` (the path form; no URL consulted).
    pub fn sqlite(env: Env) -> Kanban {
        let home = kanban_home(&env);
        Kanban {
            inner: Arc::new(Inner {
                env,
                backend: Backend::Sqlite { home },
                boards: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The environment this home was opened with.
    pub fn env(&self) -> &Env {
        &self.inner.env
    }

    /// The backend in use.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Resolve a board: `slug` (validated, must exist), else `HERMES_KANBAN_BOARD`, the
    /// `current` pointer, `default`.
    pub fn resolve(&self, slug: Option<&str>) -> Result<String> {
        resolve_board(&self.inner.env, slug)
    }

    /// Every path of the board `slug` (already resolved).
    pub fn paths(&self, slug: &str) -> BoardPaths {
        BoardPaths::resolve(&self.inner.env, slug)
    }

    /// The boards, `default` first (archived ones only with `include_archived`).
    pub fn list(&self, include_archived: bool) -> Result<Vec<BoardEntry>> {
        list_boards(&self.inner.env, include_archived)
    }

    /// Create a board's directory and `board.json` (not its database); `false` when it
    /// already existed.
    pub fn create(&self, raw_slug: &str, opts: NewBoard, now: i64) -> Result<(BoardMeta, bool)> {
        create_board(&self.inner.env, raw_slug, opts, now)
    }

    /// The shared handle of an existing board (`None`: the default chain). A board without a
    /// database is [`KernelError::NoDatabase`]; nothing is created.
    pub fn board(&self, slug: Option<&str>) -> Result<SharedBoard> {
        self.cached(slug, OpenMode::Existing).map(|(b, _)| b)
    }

    /// The shared handle of a board, creating (and migrating) its database when missing;
    /// also says whether this call created it (the caller tells the user).
    pub fn board_or_create(&self, slug: Option<&str>) -> Result<(SharedBoard, bool)> {
        self.cached(slug, OpenMode::Create)
    }

    /// An owned, uncached board for a one-shot process (a CLI verb); also says whether this
    /// call created its database.
    pub fn open_board(&self, slug: Option<&str>, mode: OpenMode) -> Result<(Board, bool)> {
        let slug = self.resolve(slug)?;
        self.open_resolved(&slug, mode)
    }

    fn open_resolved(&self, slug: &str, mode: OpenMode) -> Result<(Board, bool)> {
        let paths = self.paths(slug);
        let existed = paths.db.exists();
        if !existed && mode == OpenMode::Existing {
            return Err(KernelError::NoDatabase {
                slug: slug.to_string(),
                path: paths.db,
            });
        }
        Ok((Board::open_paths(&self.inner.env, paths)?, !existed))
    }

    fn cached(&self, slug: Option<&str>, mode: OpenMode) -> Result<(SharedBoard, bool)> {
        let slug = self.resolve(slug)?;
        let db = self.paths(&slug).db;
        // The map lock is held while opening so two threads never open the same board twice.
        let mut map = self.inner.boards.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&slug) {
            let now = file_id(&db);
            if now.is_some() && now == c.file {
                return Ok((c.handle.clone(), false));
            }
            // Removed or replaced behind this process: never keep writing to the old file.
            map.remove(&slug);
        }
        let (board, created) = self.open_resolved(&slug, mode)?;
        let handle = SharedBoard::new(board);
        map.insert(
            slug,
            Cached {
                handle: handle.clone(),
                file: file_id(&db),
            },
        );
        Ok((handle, created))
    }

    /// Forget the cached handle of `slug` (after the board is removed). Holders of the handle
    /// keep it until they drop it.
    pub fn evict(&self, slug: &str) {
        self.inner
            .boards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(slug);
    }

    /// Slugs of the boards this home holds open, sorted (`diagnostics` and tests report it).
    pub fn open_boards(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .boards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }
}

/// `kanban.database_url` from `$HERMES_HOME/config.yaml` (absent, blank or unreadable: none).
fn config_database_url(env: &Env) -> Option<String> {
    let text = std::fs::read_to_string(hermes_root(env).join("config.yaml")).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    match doc.get("kanban")?.get("database_url")? {
        serde_yaml::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The refusal for a database URL this build cannot open (one line, password hidden).
fn refuse_url(from: &str, url: &str) -> KernelError {
    let shown = redact_url(url);
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let fix = if from.starts_with("--") {
        format!("leave out {from}")
    } else {
        format!("unset {from}")
    };
    let message = match scheme.as_deref() {
        Some("postgres") | Some("postgresql") => format!(
            "{shown} (from {from}) is a PostgreSQL URL, but this hermes-kanban is not built with \
            PostgreSQL support yet; {fix} to use the SQLite boards under HERMES_HOME"
        ),
        _ => format!(
            "{shown} (from {from}) is not a database URL this build can open: only postgres://… is \
            recognised (and not built with PostgreSQL support yet); {fix} to use the SQLite boards \
            under HERMES_HOME"
        ),
    };
    KernelError::Invalid {
        field: "database_url",
        message: message.replace(['\n', '\r'], " "),
    }
}

/// `url` with any password replaced by `***`: the `user:password@` part and
/// `password=` query or key-value parameters.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some((user, _)) = userinfo.split_once(':') {
                out = format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
            }
        }
    }
    // `?password=…&…` or libpq's `password=… host=…`.
    let mut redacted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.to_ascii_lowercase().find("password=") {
        let start = i + "password=".len();
        redacted.push_str(&rest[..start]);
        redacted.push_str("***");
        let tail = &rest[start..];
        let end = tail.find(['&', ' ', '#']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    redacted.push_str(rest);
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Env) {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::empty()
            .with("HERMES_HOME", dir.path().to_string_lossy())
            .with("HOME", dir.path().to_string_lossy());
        (dir, env)
    }

    #[test]
    fn board_twice_is_one_handle_and_one_connection() {
        let (_d, env) = home();
        let k = Kanban::open(&env, None).unwrap();
        let (a, created) = k.board_or_create(None).unwrap();
        assert!(created);
        let b = k.board(Some("default")).unwrap();
        assert!(a.same(&b), "the second lookup must reuse the open board");
        let clone = k.clone();
        assert!(
            clone.board(None).unwrap().same(&a),
            "clones share the cache"
        );
        assert_eq!(k.open_boards(), vec!["default".to_string()]);
        // A write through one is visible through the other: the same connection.
        let new = crate::kernel::NewTask {
            title: "x".into(),
            ..Default::default()
        };
        let id = a.lock().create_task(new).unwrap().task.id;
        assert_eq!(b.lock().get_task(&id).unwrap().title, "x");
    }

    #[test]
    fn a_missing_database_is_never_created_by_board() {
        let (d, env) = home();
        let k = Kanban::sqlite(env);
        let e = k.board(None).unwrap_err();
        assert!(matches!(e, KernelError::NoDatabase { .. }), "{e}");
        assert!(!d.path().join("kanban.db").exists());
        assert!(k.open_boards().is_empty());
        let e = k.board(Some("nope")).unwrap_err();
        assert!(matches!(e, KernelError::BoardNotFound(_)), "{e}");
    }

    #[test]
    fn a_replaced_database_file_is_reopened() {
        let (d, env) = home();
        let k = Kanban::sqlite(env);
        let (a, _) = k.board_or_create(None).unwrap();
        let db = d.path().join("kanban.db");
        drop(a);
        std::fs::rename(&db, d.path().join("old.db")).unwrap();
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(d.path().join(format!("kanban.db{ext}")));
        }
        let e = k.board(None).unwrap_err();
        assert!(matches!(e, KernelError::NoDatabase { .. }), "{e}");
        let (b, created) = k.board_or_create(None).unwrap();
        assert!(
            created,
            "the removed file is recreated, not the old handle reused"
        );
        assert!(b.lock().list_tasks(&Default::default()).unwrap().is_empty());
    }

    #[test]
    fn a_postgres_url_is_refused_in_one_line_without_its_password() {
        let (d, env) = home();
        for (url, env) in [
            (Some("postgres://kb:s3cret@db.example/kanban"), env.clone()),
            (
                None,
                env.clone().with(
                    DATABASE_URL_VAR,
                    "postgresql://kb:s3cret@db.example/kanban?sslmode=require",
                ),
            ),
        ] {
            let e = Kanban::open(&env, url).unwrap_err().to_string();
            assert!(e.contains("not built with PostgreSQL support yet"), "{e}");
            assert!(
                !e.contains("s3cret") && e.contains("kb:***@db.example"),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
        std::fs::write(
            d.path().join("config.yaml"),
            "kanban:\n  database_url: 'host=db password=s3cret dbname=k'\n",
        )
        .unwrap();
        let e = Kanban::open(&env, None).unwrap_err().to_string();
        assert!(
            e.contains("kanban.database_url") && !e.contains("s3cret"),
            "{e}"
        );
        // Nothing set: the SQLite home.
        std::fs::write(d.path().join("config.yaml"), "kanban:\n  max_spawn: 2\n").unwrap();
        let k = Kanban::open(&env, None).unwrap();
        assert_eq!(
            k.backend(),
            &Backend::Sqlite {
                home: d.path().to_path_buf()
            }
        );
    }

    #[test]
    fn redaction_hides_every_password_form() {
        assert_eq!(
            redact_url("postgres://u:p@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            redact_url("postgres://h/d?user=u&password=p&x=1"),
            "postgres://h/d?user=u&password=***&x=1"
        );
        assert_eq!(
            redact_url("host=h password=p db=d"),
            "host=h password=*** db=d"
        );
    }
}
