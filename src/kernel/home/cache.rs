//! The board handle cache of a home: [`Kanban::board`] and [`Kanban::board_or_create`] share
//! one [`SharedBoard`] per board per process (checked against its file on every lookup, so a
//! board removed or replaced behind this process is reopened), [`Kanban::open_board`] gives a
//! one-shot process an owned, uncached [`Board`]; opening a board on either backend.

use std::path::Path;

use super::{Cached, Kanban, PgHome, SharedBoard};
use crate::kernel::board::{Board, OpenMode};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::paths::{BoardMeta, kanban_home};
use crate::kernel::store::postgres::{self as pg, PgConn};

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Kanban {
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
        self.open_resolved(&slug, mode, self.lender().as_ref())
    }

    /// Open board `slug`; on PostgreSQL `lender` (an open board) does the registry work.
    fn open_resolved(
        &self,
        slug: &str,
        mode: OpenMode,
        lender: Option<&SharedBoard>,
    ) -> Result<(Board, bool)> {
        if let Some(pgh) = &self.inner.pg {
            return self.open_pg(pgh, slug, mode, lender);
        }
        let paths = self.paths(slug);
        let existed = paths.db.exists();
        if !existed && mode == OpenMode::Existing {
            return Err(KernelError::NoDatabase {
                slug: slug.to_string(),
                path: paths.db,
            });
        }
        Ok((Board::open_sqlite(&self.inner.env, paths)?, !existed))
    }

    /// Open a PostgreSQL board: its registry row names the schema (migrated up on open);
    /// `default` without a row is created in `Create` mode, else [`KernelError::NoDatabase`].
    /// The board takes over the spare registry session when there is one (no board was open).
    fn open_pg(
        &self,
        pgh: &PgHome,
        slug: &str,
        mode: OpenMode,
        lender: Option<&SharedBoard>,
    ) -> Result<(Board, bool)> {
        let now = chrono::Utc::now().timestamp();
        let (schema, created) = self.registry_via(lender, |c, shown| {
            if let Some((schema, _)) = pg::registry::get(c, shown, slug)? {
                pg::migrate::migrate(c, &schema, shown, now)?;
                return Ok((Some(schema), false));
            }
            if mode == OpenMode::Existing {
                return Ok((None, false));
            }
            super::fence::check(&self.inner.env, &kanban_home(&self.inner.env))?;
            let mut meta = BoardMeta::synthesized(slug);
            meta.created_at = Some(now);
            let created = pg::registry::insert_new(c, shown, &meta, now)?;
            let (schema, _) = pg::registry::get(c, shown, slug)?
                .ok_or_else(|| KernelError::Storage(format!("board {slug} vanished")))?;
            pg::migrate::migrate(c, &schema, shown, now)?;
            Ok((Some(schema), created))
        })?;
        let Some(schema) = schema else {
            return Err(KernelError::NoDatabase {
                slug: slug.to_string(),
                path: self.pg_location(slug),
            });
        };
        let spare = pgh.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        let conn = match spare.filter(|c| !c.is_closed()) {
            Some(c) => PgConn::adopt(pgh.target.clone(), &schema, c)?,
            None => PgConn::open(pgh.target.clone(), &schema)?,
        };
        Ok((
            Board::from_pg(&self.inner.env, self.paths(slug), conn),
            created,
        ))
    }

    fn cached(&self, slug: Option<&str>, mode: OpenMode) -> Result<(SharedBoard, bool)> {
        let slug = self.resolve(slug)?;
        let db = self.paths(&slug).db;
        // The map lock is held while opening so two threads never open the same board twice.
        let mut map = self.inner.boards.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&slug) {
            // A PostgreSQL board has no file: its handle lives until `remove` evicts it.
            if self.inner.pg.is_some() {
                return Ok((c.handle.clone(), false));
            }
            let now = file_id(&db);
            if now.is_some() && now == c.file {
                return Ok((c.handle.clone(), false));
            }
            // Removed or replaced behind this process: never keep writing to the old file.
            map.remove(&slug);
        }
        // Registry work for the open runs on a board already open (the map is locked here).
        let lender = match self.inner.pg {
            Some(_) => map.values().next().map(|c| c.handle.clone()),
            None => None,
        };
        let (board, created) = self.open_resolved(&slug, mode, lender.as_ref())?;
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
