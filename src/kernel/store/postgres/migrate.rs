//! The board schema on PostgreSQL: `migrations/postgres/NNNN_*.sql`, applied in order inside
//! the board's schema (`search_path` = `board_<slug>`), each recorded in that schema's
//! `schema_migrations (version, name, applied_at)`. The whole upgrade is one transaction under a
//! database-wide advisory lock, so concurrent `init`s on many hosts apply each file once; an
//! up-to-date board costs one query per open.

use super::client::{Client, Error};
use super::{map_err, quote_ident};
use crate::kernel::error::Result;

/// One migration file.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every PostgreSQL migration, in order. A new file gets a line here (0002: the host lease
/// table of multi-host dispatch).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../../../migrations/postgres/0001_init.sql"),
    },
    // Host leases and attachment blobs (host15).
    Migration {
        version: 2,
        name: "0002_hosts",
        sql: include_str!("../../../../migrations/postgres/0002_hosts.sql"),
    },
];

/// The advisory lock key (class, object) every schema change takes.
const MIGRATE_LOCK: (i32, i32) = (0x4b42, 1);

/// The newest migration version.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// The version `schema` is at (0: not created, or no migration recorded).
pub(crate) fn version(client: &Client, schema: &str, shown: &str) -> Result<i64> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 \
             AND tablename = 'schema_migrations')",
            &[&schema],
        )
        .map_err(|e| map_err(&e, shown))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let sql = format!(
        "SELECT COALESCE(max(version), 0) FROM {}.schema_migrations",
        quote_ident(schema)
    );
    let v: i64 = client
        .query_one(&sql, &[])
        .map_err(|e| map_err(&e, shown))?
        .get(0);
    Ok(v)
}

/// Create `schema` if needed and apply every migration it lacks; returns how many were applied.
pub(crate) fn migrate(client: &Client, schema: &str, shown: &str, now: i64) -> Result<usize> {
    if version(client, schema, shown)? >= latest() {
        return Ok(0);
    }
    let err = |e: Error| map_err(&e, shown);
    client.transaction(err, |tx| {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&MIGRATE_LOCK.0, &MIGRATE_LOCK.1],
        )
        .map_err(err)?;
        let q = quote_ident(schema);
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {q}; SET LOCAL search_path TO {q};
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at BIGINT NOT NULL
         );"
        ))
        .map_err(err)?;
        let done: Vec<i64> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut applied = 0;
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            tx.batch_execute(m.sql).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &now],
            )
            .map_err(err)?;
            applied += 1;
        }
        Ok(applied)
    })
}
