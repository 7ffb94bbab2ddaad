//! [`Kanban`]: the home handle — the one object a front door holds. It chooses the backend
//! (the SQLite boards under the kanban home, or a PostgreSQL database named by a
//! `postgres://` URL: one schema per board and a registry, see [`super::store::postgres`]),
//! resolves, lists, creates and removes boards, and caches one open handle per board
//! ([`SharedBoard`]) so a process holds one connection per board: in `serve` the MCP server,
//! the REST API, the dispatcher and the webhook threads share one `Kanban`. Board paths (logs,
//! workspaces, attachments, the `current` pointer) stay host-local under the kanban home on
//! either backend.
//!
//! Opening keeps [`OpenMode`]'s rule: nothing creates a board silently. [`Kanban::board`]
//! opens an existing database only; [`Kanban::board_or_create`] creates one and says so.
//! One-shot processes (CLI verbs) take an owned, uncached [`Board`] from [`Kanban::open_board`].
//!
//! A cached handle is checked against its file on every lookup: when the database file was
//! removed or replaced behind this process (`boards rm` and a new board of the same slug from
//! another process), the stale handle is dropped and the board reopened.
//!
//! By concern: this file holds the home's types, its constructors and the board registry
//! (resolve, list, create, metadata, remove, switch, rename) on either backend;
//! [`database_url`] chooses the backend from the database URL; [`cache`] opens boards and
//! keeps the shared handles.
//!
//! [`Board`]: super::board::Board
//! [`OpenMode`]: super::board::OpenMode

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::env::Env;
use super::error::{KernelError, Result};
use super::paths::{
    BoardEntry, BoardMeta, BoardPaths, DEFAULT_BOARD, NewBoard, create_board, kanban_home,
    list_boards, normalize_slug, read_board_meta, remove_board, rename_board, resolve_board,
    set_default_workdir, switch_board,
};
pub use super::store::group::SharedBoard;
use super::store::postgres::{self as pg, PgConn, PgTarget};
// The children name `super::env` and `super::fence` as they did when they were this file.
use super::{env, fence};

mod cache;
mod database_url;

pub(crate) use database_url::chosen_url;
pub use database_url::redact_url;

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
    /// One PostgreSQL database: a schema per board and the `hermes_kanban.boards` registry.
    Postgres {
        /// The database URL without its password.
        url: String,
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
    /// The PostgreSQL target and the spare registry session.
    pg: Option<PgHome>,
    /// Set when the chosen database URL could not be used ([`From<Env>`] keeps the error here).
    refused: Option<String>,
}

/// A PostgreSQL home holds no session of its own while a board is open: registry work runs on
/// an open board's session ([`Kanban::registry`]). With none open it opens a spare one, and the
/// next board opened takes it over, so `mcp` and `serve` hold one session per board.
struct PgHome {
    target: Arc<PgTarget>,
    spare: Mutex<Option<pg::Client>>,
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

/// The home `env` names (its `HERMES_KANBAN_DATABASE_URL` / `kanban.database_url`, else the
/// SQLite boards): what embedders that build a router or loop from an [`Env`] get. A URL that
/// cannot be used is kept as the answer of every board operation, never a SQLite fallback.
impl From<Env> for Kanban {
    fn from(env: Env) -> Kanban {
        match Kanban::open(&env, None) {
            Ok(k) => k,
            Err(e) => Kanban::refused(env, e.to_string()),
        }
    }
}

impl From<&Kanban> for Kanban {
    fn from(k: &Kanban) -> Kanban {
        k.clone()
    }
}

impl Kanban {
    /// The boards of one PostgreSQL database (nothing is connected until a board is used).
    pub(crate) fn postgres(env: Env, target: PgTarget) -> Kanban {
        Kanban {
            inner: Arc::new(Inner {
                env,
                backend: Backend::Postgres {
                    url: target.shown().to_string(),
                },
                boards: Mutex::new(HashMap::new()),
                refused: None,
                pg: Some(PgHome {
                    target: Arc::new(target),
                    spare: Mutex::new(None),
                }),
            }),
        }
    }

    /// The database URL as given (it may hold a password) when this home is on PostgreSQL:
    /// what the dispatcher passes to its workers and supervisors in the environment.
    pub fn database_url(&self) -> Option<&str> {
        self.inner.pg.as_ref().map(|p| p.target.url())
    }

    /// Run `f` for the registry on a session of this home's: an open board's (no session of
    /// its own while one is open), else the spare one (opened when missing or closed). Like
    /// every board call it waits on the network: front doors make it off their async workers.
    fn registry<T>(&self, f: impl FnOnce(&pg::Client, &str) -> Result<T>) -> Result<T> {
        let lender = self.lender();
        self.registry_via(lender.as_ref(), f)
    }

    /// An open board whose session can do registry work (any: the registry's SQL names its
    /// schemas).
    fn lender(&self) -> Option<SharedBoard> {
        self.inner.pg.as_ref()?;
        let map = self.inner.boards.lock().unwrap_or_else(|p| p.into_inner());
        map.values().next().map(|c| c.handle.clone())
    }

    /// [`Kanban::registry`] on `lender`'s session (held for the call), else the spare one.
    fn registry_via<T>(
        &self,
        lender: Option<&SharedBoard>,
        f: impl FnOnce(&pg::Client, &str) -> Result<T>,
    ) -> Result<T> {
        let pgh = self.inner.pg.as_ref().expect("a PostgreSQL home");
        if let Some(b) = lender {
            let board = b.lock();
            if let Some(session) = board.store.pg().and_then(PgConn::idle_session) {
                let session = session?;
                return f(&session, pgh.target.shown());
            }
        }
        let mut spare = pgh.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.as_ref().is_none_or(|c| c.is_closed()) {
            *spare = Some(pg::connect(&pgh.target, None)?);
        }
        f(spare.as_ref().expect("connected above"), pgh.target.shown())
    }

    /// Whether board `slug` exists on PostgreSQL (`default` always does).
    fn pg_exists(&self, slug: &str) -> Result<bool> {
        if slug == DEFAULT_BOARD {
            return Ok(true);
        }
        self.registry(|c, shown| Ok(pg::registry::get(c, shown, slug)?.is_some()))
    }

    /// Where board `slug` keeps its data, for messages and `db_path` fields: the SQLite file,
    /// or the PostgreSQL URL (without its password) and schema.
    pub fn location(&self, slug: &str) -> PathBuf {
        match self.inner.pg {
            Some(_) => self.pg_location(slug),
            None => self.paths(slug).db,
        }
    }

    /// Apply `patch` to a board's metadata (the dashboard's board settings).
    pub fn update(&self, raw_slug: &str, patch: super::BoardPatch, now: i64) -> Result<BoardMeta> {
        if self.inner.pg.is_none() {
            return super::update_board(&self.inner.env, raw_slug, patch, now);
        }
        let slug = self.resolve(Some(raw_slug))?;
        let meta = super::board_view::apply_board_patch(self.meta(&slug)?, patch, now)?;
        self.put_meta(&meta, now)?;
        Ok(meta)
    }

    fn pg_location(&self, slug: &str) -> PathBuf {
        let pgh = self.inner.pg.as_ref().expect("a PostgreSQL home");
        PathBuf::from(format!(
            "{} (schema {})",
            pgh.target.shown(),
            pg::registry::schema_for(slug)
        ))
    }

    /// The SQLite boards under the kanban home of `env` (the path form; no URL consulted).
    pub fn sqlite(env: Env) -> Kanban {
        let home = kanban_home(&env);
        Kanban {
            inner: Arc::new(Inner {
                env,
                backend: Backend::Sqlite { home },
                boards: Mutex::new(HashMap::new()),
                pg: None,
                refused: None,
            }),
        }
    }

    /// A home whose database URL could not be used: every board operation answers `why`
    /// (never a silent fallback to the SQLite boards).
    fn refused(env: Env, why: String) -> Kanban {
        let k = Kanban::sqlite(env);
        let inner = Inner {
            env: k.inner.env.clone(),
            backend: k.inner.backend.clone(),
            boards: Mutex::new(HashMap::new()),
            pg: None,
            refused: Some(why),
        };
        Kanban {
            inner: Arc::new(inner),
        }
    }

    /// The refusal of a home built from an unusable URL.
    fn usable(&self) -> Result<()> {
        match &self.inner.refused {
            None => Ok(()),
            Some(why) => Err(KernelError::Invalid {
                field: "database_url",
                message: why.clone(),
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
    /// `current` pointer, `default`. The worker pin comes first on PostgreSQL: a worker
    /// (`HERMES_KANBAN_TASK` set) with `HERMES_KANBAN_BOARD` resolves every slug to that board
    /// ([`super::paths::url_worker_pin`]; on SQLite `HERMES_KANBAN_DB` pins the file instead,
    /// in [`BoardPaths::resolve`]). A pinned board that is not there is an error, never
    /// another board.
    pub fn resolve(&self, slug: Option<&str>) -> Result<String> {
        self.usable()?;
        if self.inner.pg.is_none() {
            return resolve_board(&self.inner.env, slug);
        }
        if let Some(raw) = super::paths::url_worker_pin(&self.inner.env) {
            let pinned = normalize_slug(raw)?;
            if !self.pg_exists(&pinned)? {
                return Err(KernelError::BoardNotFound(pinned));
            }
            return Ok(pinned);
        }
        if let Some(raw) = slug {
            let slug = normalize_slug(raw)?;
            if !self.pg_exists(&slug)? {
                return Err(KernelError::BoardNotFound(slug));
            }
            return Ok(slug);
        }
        let env = &self.inner.env;
        let candidates = [
            env.get("HERMES_KANBAN_BOARD")
                .and_then(|r| normalize_slug(r).ok()),
            super::paths::current_slug(env),
        ];
        for slug in candidates.into_iter().flatten() {
            if self.pg_exists(&slug)? {
                return Ok(slug);
            }
        }
        Ok(DEFAULT_BOARD.to_string())
    }

    /// Every path of the board `slug` (already resolved).
    pub fn paths(&self, slug: &str) -> BoardPaths {
        BoardPaths::resolve(&self.inner.env, slug)
    }

    /// The boards, `default` first (archived ones only with `include_archived`).
    pub fn list(&self, include_archived: bool) -> Result<Vec<BoardEntry>> {
        self.usable()?;
        if self.inner.pg.is_none() {
            return list_boards(&self.inner.env, include_archived);
        }
        let current = self.resolve(None)?;
        let mut metas = self.registry(pg::registry::list)?;
        let default = match metas.iter().position(|m| m.slug == DEFAULT_BOARD) {
            Some(i) => metas.remove(i),
            None => BoardMeta::synthesized(DEFAULT_BOARD),
        };
        metas.sort_by_key(|m| m.slug.to_lowercase());
        Ok(std::iter::once(default)
            .chain(metas)
            .filter(|m| include_archived || !m.archived)
            .map(|meta| BoardEntry {
                db_path: self.pg_location(&meta.slug),
                is_current: meta.slug == current,
                meta,
            })
            .collect())
    }

    /// Create a board: on SQLite its directory and `board.json` (the database comes on first
    /// open); on PostgreSQL its registry row and migrated schema. `false` when it already
    /// existed.
    pub fn create(&self, raw_slug: &str, opts: NewBoard, now: i64) -> Result<(BoardMeta, bool)> {
        self.usable()?;
        if self.inner.pg.is_none() {
            return create_board(&self.inner.env, raw_slug, opts, now);
        }
        let slug = normalize_slug(raw_slug)?;
        if let Some(w) = &opts.default_workdir {
            super::paths::validate_workdir_path(w)?;
        }
        super::fence::check(&self.inner.env, &kanban_home(&self.inner.env))?;
        if let Some((_, meta)) = self.registry(|c, shown| pg::registry::get(c, shown, &slug))? {
            return Ok((meta, false));
        }
        let meta = opts.into_meta(&slug, now);
        let created = self.registry(|c, shown| {
            let created = pg::registry::insert_new(c, shown, &meta, now)?;
            pg::migrate::migrate(c, &pg::registry::schema_for(&slug), shown, now)?;
            Ok(created)
        })?;
        Ok((self.meta(&slug)?, created))
    }

    /// A board's metadata (`board.json` on SQLite, the registry row on PostgreSQL; synthesized
    /// defaults when there is none).
    pub fn meta(&self, slug: &str) -> Result<BoardMeta> {
        if self.inner.pg.is_none() {
            return Ok(read_board_meta(&self.inner.env, slug));
        }
        Ok(self
            .registry(|c, shown| pg::registry::get(c, shown, slug))?
            .map(|(_, m)| m)
            .unwrap_or_else(|| BoardMeta::synthesized(slug)))
    }

    fn put_meta(&self, meta: &BoardMeta, now: i64) -> Result<()> {
        super::fence::check(&self.inner.env, &kanban_home(&self.inner.env))?;
        self.registry(|c, shown| pg::registry::put(c, shown, meta, now).map(|_| ()))
    }

    /// Remove a board (`default` cannot be): archive or, with `hard`, delete. SQLite moves its
    /// directory to `boards/_archived/<slug>-<epoch>`; PostgreSQL renames its schema to
    /// `archived_<slug>_<epoch>` (or drops it). Clears the `current` pointer if it named this
    /// board and forgets the cached handle. Returns where the board went (`None`: deleted).
    pub fn remove(&self, raw_slug: &str, hard: bool, now: i64) -> Result<Option<PathBuf>> {
        self.usable()?;
        let slug = normalize_slug(raw_slug)?;
        if self.inner.pg.is_none() {
            let out = remove_board(&self.inner.env, &slug, hard, now);
            self.evict(&slug);
            return out;
        }
        if slug == DEFAULT_BOARD {
            return Err(KernelError::BoardRefused(
                "the default board cannot be removed".into(),
            ));
        }
        super::fence::check(&self.inner.env, &kanban_home(&self.inner.env))?;
        let out = self.registry(|c, shown| pg::registry::remove(c, shown, &slug, hard, now))?;
        self.evict(&slug);
        super::paths::write_current(&self.inner.env, None, &slug)?;
        match out {
            pg::registry::Removed::NotFound => Err(KernelError::BoardNotFound(slug)),
            pg::registry::Removed::Deleted => Ok(None),
            pg::registry::Removed::Archived(schema) => Ok(Some(PathBuf::from(format!(
                "{} (schema {schema})",
                self.inner.pg.as_ref().expect("pg").target.shown()
            )))),
        }
    }

    /// Make `slug` this home's current board (the host-local `<R>/kanban/current` pointer).
    pub fn switch(&self, raw_slug: &str) -> Result<String> {
        self.usable()?;
        if self.inner.pg.is_none() {
            return switch_board(&self.inner.env, raw_slug);
        }
        let slug = self.resolve(Some(raw_slug))?;
        super::paths::write_current(&self.inner.env, Some(&slug), "")?;
        Ok(slug)
    }

    /// Change a board's display name.
    pub fn rename(&self, raw_slug: &str, name: &str, now: i64) -> Result<BoardMeta> {
        if self.inner.pg.is_none() {
            return rename_board(&self.inner.env, raw_slug, name, now);
        }
        let slug = self.resolve(Some(raw_slug))?;
        if name.trim().is_empty() {
            return Err(KernelError::invalid("name", "board name must not be blank"));
        }
        let mut meta = self.meta(&slug)?;
        meta.name = name.trim().to_string();
        meta.created_at.get_or_insert(now);
        self.put_meta(&meta, now)?;
        Ok(meta)
    }

    /// Set (or with `None`, clear) a board's default workdir; the path must be absolute.
    pub fn set_default_workdir(
        &self,
        raw_slug: &str,
        path: Option<&str>,
        now: i64,
    ) -> Result<BoardMeta> {
        if self.inner.pg.is_none() {
            return set_default_workdir(&self.inner.env, raw_slug, path, now);
        }
        let slug = self.resolve(Some(raw_slug))?;
        if let Some(p) = path {
            super::paths::validate_workdir_path(p)?;
        }
        let mut meta = self.meta(&slug)?;
        meta.default_workdir = path.map(str::to_string);
        meta.created_at.get_or_insert(now);
        self.put_meta(&meta, now)?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests;
