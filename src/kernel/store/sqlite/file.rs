//! File-level work on an SQLite board that bypasses the kernel's connection: the raw handle
//! `repair` checks and REINDEXes through ([`RawDb`], with page-level backups), and the
//! consistent snapshot `boards export` archives ([`snapshot`]). Both are SQLite by nature;
//! the kernel modules keep the rules (what is repairable, what is scrubbed) and call these.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::kernel::error::Result;
use crate::kernel::store::Tx;

/// A plain read-write connection to an existing DB file: no pragmas, no migration, no
/// health check (repair must look at a damaged file as it is).
pub(crate) struct RawDb {
    conn: Connection,
}

impl RawDb {
    /// Open `path` read-write (never created) with a 30 s busy timeout. The error is
    /// SQLite's own text (e.g. "file is not a database").
    pub(crate) fn open(path: &Path) -> std::result::Result<RawDb, String> {
        let open = || -> rusqlite::Result<Connection> {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(Duration::from_secs(30))?;
            Ok(c)
        };
        open().map(|conn| RawDb { conn }).map_err(|e| e.to_string())
    }

    /// The non-NULL first-column rows of `PRAGMA <pragma>` (`quick_check`, `integrity_check`).
    pub(crate) fn pragma_rows(&self, pragma: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(&format!("PRAGMA {pragma}"))?;
        let rows = st
            .query_map([], |r| r.get::<_, Option<String>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// A page-level copy of the whole DB into a new file at `dst` (SQLite's backup API).
    pub(crate) fn backup_to(&self, dst: &Path) -> Result<()> {
        let mut out = Connection::open(dst)?;
        let b = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
        b.run_to_completion(256, Duration::from_millis(0), None)?;
        Ok(())
    }

    /// Rebuild the named indexes; if any of them cannot be named (or fails), every index.
    pub(crate) fn reindex(&self, names: &[String]) -> Result<()> {
        let each = names.iter().try_for_each(|name| {
            self.conn
                .execute_batch(&format!("REINDEX \"{}\"", name.replace('"', "\"\"")))
        });
        if each.is_err() {
            self.conn.execute_batch("REINDEX")?;
        }
        Ok(())
    }
}

/// Copy the DB at `src` (opened read-only, 30 s busy timeout) into a new single-file DB at
/// `dst` through the backup API — a consistent snapshot while writers continue — switch the
/// copy to the DELETE journal (no WAL sidecar to forget), and run `body` in one transaction
/// on the copy (the caller scrubs and counts there).
pub(crate) fn snapshot<T>(
    src: &Path,
    dst: &Path,
    body: impl FnOnce(&Tx) -> Result<T>,
) -> Result<T> {
    {
        let from = Connection::open_with_flags(
            src,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        from.busy_timeout(Duration::from_secs(30))?;
        let mut to = Connection::open(dst)?;
        rusqlite::backup::Backup::new(&from, &mut to)?.run_to_completion(
            512,
            Duration::from_millis(5),
            None,
        )?;
    }
    let mut snap = Connection::open(dst)?;
    snap.pragma_update(None, "journal_mode", "DELETE")?;
    let tx = snap.transaction()?;
    let out = body(&Tx::sqlite(&tx))?;
    tx.commit()?;
    Ok(out)
}
