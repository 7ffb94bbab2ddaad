//! The board registry on PostgreSQL: `hermes_kanban.boards`, one row per board with its slug,
//! its schema and its `board.json` metadata (the same fields the SQLite home keeps in
//! `kanban/boards/<slug>/board.json`). `default` is always a board; others exist while they have
//! a row. Removing a board drops its schema (hard) or renames it to
//! `archived_<slug>_<epoch>` and forgets its row (the SQLite home's `_archived/` directory).

use sha2::Digest;

use super::client::{Client, Error};
use super::{map_err, quote_ident};
use crate::kernel::error::Result;
use crate::kernel::paths::BoardMeta;

/// The schema of board `slug`: `board_<slug>`, or for a slug too long for PostgreSQL's 63-byte
/// names its first 46 characters and 8 hex digits of its SHA-256.
pub(crate) fn schema_for(slug: &str) -> String {
    let name = format!("board_{slug}");
    if name.len() <= 63 {
        return name;
    }
    let h = sha2::Sha256::digest(slug.as_bytes());
    let hex: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("board_{}_{hex}", &slug[..46])
}

const ENSURE: &str = "CREATE SCHEMA IF NOT EXISTS hermes_kanban;
    CREATE TABLE IF NOT EXISTS hermes_kanban.boards (
        slug        TEXT PRIMARY KEY,
        schema_name TEXT NOT NULL UNIQUE,
        meta        TEXT NOT NULL,
        created_at  BIGINT NOT NULL
    );";

/// Whether the registry table exists (a database nothing was created in has none).
fn present(c: &Client, shown: &str) -> Result<bool> {
    Ok(c.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'hermes_kanban' \
         AND tablename = 'boards')",
        &[],
    )
    .map_err(|e| map_err(&e, shown))?
    .get(0))
}

/// Create the registry when missing (under the migration lock's transaction of the caller,
/// or on its own: `IF NOT EXISTS` races are retried once).
pub(crate) fn ensure(c: &Client, shown: &str) -> Result<()> {
    if present(c, shown)? {
        return Ok(());
    }
    let err = |e: Error| map_err(&e, shown);
    c.transaction(err, |tx| {
        tx.execute("SELECT pg_advisory_xact_lock(19266, 1)", &[])
            .map_err(err)?;
        tx.batch_execute(ENSURE).map_err(err)
    })
}

/// The registered board `slug`: its schema and metadata.
pub(crate) fn get(c: &Client, shown: &str, slug: &str) -> Result<Option<(String, BoardMeta)>> {
    if !present(c, shown)? {
        return Ok(None);
    }
    let rows = c
        .query(
            "SELECT schema_name, meta FROM hermes_kanban.boards WHERE slug = $1",
            &[&slug],
        )
        .map_err(|e| map_err(&e, shown))?;
    Ok(rows.first().map(|r| {
        let schema: String = r.get(0);
        (schema, parse_meta(slug, r.get(1)))
    }))
}

fn parse_meta(slug: &str, text: &str) -> BoardMeta {
    let mut m =
        serde_json::from_str::<BoardMeta>(text).unwrap_or_else(|_| BoardMeta::synthesized(slug));
    m.slug = slug.to_string();
    if m.name.trim().is_empty() {
        m.name = crate::kernel::paths::default_display_name(slug);
    }
    m
}

/// Every registered board's metadata, by slug.
pub(crate) fn list(c: &Client, shown: &str) -> Result<Vec<BoardMeta>> {
    if !present(c, shown)? {
        return Ok(vec![]);
    }
    let rows = c
        .query(
            "SELECT slug, meta FROM hermes_kanban.boards ORDER BY slug",
            &[],
        )
        .map_err(|e| map_err(&e, shown))?;
    Ok(rows
        .iter()
        .map(|r| parse_meta(r.get(0), r.get(1)))
        .collect())
}

/// Insert or replace the metadata of `meta.slug` (its schema is [`schema_for`] on insert).
/// Returns the board's schema.
pub(crate) fn put(c: &Client, shown: &str, meta: &BoardMeta, now: i64) -> Result<String> {
    ensure(c, shown)?;
    let text = serde_json::to_string(meta)?;
    let schema = schema_for(&meta.slug);
    let row = c
        .query_one(
            "INSERT INTO hermes_kanban.boards (slug, schema_name, meta, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (slug) DO UPDATE SET meta = EXCLUDED.meta RETURNING schema_name",
            &[&meta.slug, &schema, &text, &now],
        )
        .map_err(|e| map_err(&e, shown))?;
    Ok(row.get(0))
}

/// Insert the row of `meta.slug` unless it exists; `true` when this call inserted it.
pub(crate) fn insert_new(c: &Client, shown: &str, meta: &BoardMeta, now: i64) -> Result<bool> {
    ensure(c, shown)?;
    let text = serde_json::to_string(meta)?;
    let n = c
        .execute(
            "INSERT INTO hermes_kanban.boards (slug, schema_name, meta, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (slug) DO NOTHING",
            &[&meta.slug, &schema_for(&meta.slug), &text, &now],
        )
        .map_err(|e| map_err(&e, shown))?;
    Ok(n == 1)
}

/// What [`remove`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Removed {
    /// No such board.
    NotFound,
    /// The schema was dropped (or had never been created).
    Deleted,
    /// The schema was renamed to this.
    Archived(String),
}

/// Remove board `slug`: drop its schema (`hard`) or rename it to `archived_<slug>_<now>`; the
/// row goes either way.
pub(crate) fn remove(c: &Client, shown: &str, slug: &str, hard: bool, now: i64) -> Result<Removed> {
    let err = |e: Error| map_err(&e, shown);
    c.transaction(err, |tx| {
        let row = tx
            .query_opt(
                "DELETE FROM hermes_kanban.boards WHERE slug = $1 RETURNING schema_name",
                &[&slug],
            )
            .map_err(err)?;
        let Some(row) = row else {
            return Ok(Removed::NotFound);
        };
        let schema: String = row.get(0);
        let exists: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )
            .map_err(err)?
            .get(0);
        let out = if !exists {
            Removed::Deleted
        } else if hard {
            tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(&schema)))
                .map_err(err)?;
            Removed::Deleted
        } else {
            let base: String = format!("archived_{slug}_{now}").chars().take(55).collect();
            let mut dest = base.clone();
            let mut n = 1;
            loop {
                let taken: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                        &[&dest],
                    )
                    .map_err(err)?
                    .get(0);
                if !taken {
                    break;
                }
                dest = format!("{base}_{n}");
                n += 1;
            }
            tx.batch_execute(&format!(
                "ALTER SCHEMA {} RENAME TO {}",
                quote_ident(&schema),
                quote_ident(&dest)
            ))
            .map_err(err)?;
            Removed::Archived(dest)
        };
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_board_prefixed_and_fit_postgres_names() {
        assert_eq!(schema_for("default"), "board_default");
        assert_eq!(schema_for("my-board_2"), "board_my-board_2");
        let long = "a".repeat(64);
        let s = schema_for(&long);
        assert!(s.len() <= 63 && s.starts_with("board_aaaa"), "{s}");
        assert_ne!(s, schema_for(&format!("{}b", "a".repeat(63))));
    }
}
