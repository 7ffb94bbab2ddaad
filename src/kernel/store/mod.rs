//! The store seam: the only part of the kernel that names a database driver. It owns the
//! kernel's transaction type ([`Tx`]), its parameters ([`Param`], [`Val`], [`args!`]), its row
//! mapping ([`Row`], [`FromCol`], [`FromRow`]), and the few steps where backends truly differ,
//! as named methods: [`Tx::lock_task`] (read a task under the write lock), [`Tx::lock_board`]
//! (graph edits, caps), [`Tx::claim_next`] (the ordered pick of the next ready tasks),
//! [`Tx::sqlite_hint`] (planner hints only SQLite has) and [`Tx::insert_id`]
//! (`INSERT … RETURNING id`).
//!
//! SQL stays as text next to the rule it guards, written once in the dialect SQLite ≥ 3.35 and
//! PostgreSQL both accept: `?N` placeholders (rewritten to `$N` at the edge for PostgreSQL),
//! `RETURNING`, `ON CONFLICT DO NOTHING`, `IS NOT DISTINCT FROM`, no `json_each`. Insertion
//! order, the final tie-break of Hermes' orders, is spelled [`SEQ`] (`_seq_` in SQL text): the
//! implicit `rowid` on SQLite, an explicit `seq` column elsewhere.
//!
//! The backends: SQLite (connection, pragmas, busy handling, `BEGIN IMMEDIATE`, migrations)
//! in [`sqlite`], PostgreSQL (one schema per board, READ COMMITTED plus explicit locks) in
//! [`postgres`]. A board holds a [`Store`]; [`Tx`] and [`Row`] wrap either backend's connection
//! and row, so no kernel module outside `store/` knows which one it runs on.

pub(crate) mod group;
pub(crate) mod postgres;
pub(crate) mod sqlite;
mod sqlite_vfs;
pub(crate) mod tick_lock;
mod values;

use std::borrow::Cow;

use super::error::{KernelError, Result};
pub use values::Cells;
use values::{Val0, bind};

/// The portable name of a table's insertion order in SQL text (`ORDER BY created_at, _seq_`).
pub(crate) const SEQ: &str = "_seq_";

/// One transaction (or, inside another, a savepoint) on a board's store. Every kernel
/// operation body receives one from [`super::Board::write`] / [`super::Board::read`].
pub struct Tx<'c> {
    conn: Conn<'c>,
}

#[derive(Clone, Copy)]
enum Conn<'c> {
    Sqlite(&'c rusqlite::Connection),
    Pg(&'c postgres::PgConn),
}

/// A board's open store.
pub(crate) enum Store {
    Sqlite(sqlite::BoardConn),
    Postgres(Box<postgres::PgConn>),
}

impl Store {
    /// Run `body` as one write transaction (a savepoint inside another).
    pub(crate) fn write<T>(&self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite(c) => sqlite::write_txn(c, |c| body(&Tx::sqlite(c))),
            Store::Postgres(c) => c.write_txn(|| body(&Tx::pg(c))),
        }
    }

    /// Run `body` over one read snapshot.
    pub(crate) fn read<T>(&self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite(c) => sqlite::read_txn(c, |c| body(&Tx::sqlite(c))),
            Store::Postgres(c) => c.read_txn(|| body(&Tx::pg(c))),
        }
    }

    /// Statements outside a transaction (each on its own).
    pub(crate) fn tx(&self) -> Tx<'_> {
        match self {
            Store::Sqlite(c) => Tx::sqlite(c),
            Store::Postgres(c) => Tx::pg(c),
        }
    }

    /// The PostgreSQL connection.
    pub(crate) fn pg(&self) -> Option<&postgres::PgConn> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(c) => Some(c),
        }
    }
}

/// One table as [`Tx::tables`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    pub name: String,
    /// Column names in declaration order.
    pub columns: Vec<String>,
    /// Primary-key column names in key order; empty when the table has no primary key.
    pub key: Vec<String>,
}

/// A borrowed SQL value: what a [`Param`] binds and what a [`Row`] column holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An owned SQL value, for dynamically built argument lists.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Something that binds as one SQL parameter.
pub trait Param {
    fn val(&self) -> Val<'_>;
}

/// Build a parameter slice: `args![id, now]` (each expression is borrowed).
#[macro_export]
#[doc(hidden)]
macro_rules! args {
    () => { &[] as &[&dyn $crate::kernel::store::Param] };
    ($($a:expr),+ $(,)?) => {
        &[$(&$a as &dyn $crate::kernel::store::Param),+] as &[&dyn $crate::kernel::store::Param]
    };
}

/// Borrow a list of owned arguments as a parameter slice.
pub(crate) fn arg_refs<P: Param>(v: &[P]) -> Vec<&dyn Param> {
    v.iter().map(|a| a as &dyn Param).collect()
}

/// One result row.
pub struct Row<'r> {
    inner: RowInner<'r>,
}

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Pg(&'r postgres::client::Row),
}

/// A value that can be read from one column.
pub trait FromCol: Sized {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String>;
}

/// A value that can be read from a whole row (scalars read column 0; tuples read 0..n).
pub trait FromRow: Sized {
    fn from_row(r: &Row<'_>) -> Result<Self>;
}

impl<'c> Tx<'c> {
    pub(crate) fn sqlite(conn: &'c rusqlite::Connection) -> Tx<'c> {
        Tx {
            conn: Conn::Sqlite(conn),
        }
    }

    pub(crate) fn pg(conn: &'c postgres::PgConn) -> Tx<'c> {
        Tx {
            conn: Conn::Pg(conn),
        }
    }

    /// Whether this transaction runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.conn, Conn::Pg(_))
    }

    /// A SQLite planner hint (`INDEXED BY …`, `NOT INDEXED`) as it belongs in this backend's
    /// SQL text: itself on SQLite, nothing elsewhere (PostgreSQL has no hints).
    pub fn sqlite_hint<'h>(&self, hint: &'h str) -> &'h str {
        match self.conn {
            Conn::Sqlite(_) => hint,
            Conn::Pg(_) => "",
        }
    }

    /// Run a statement; returns the number of rows changed.
    pub fn exec(&self, sql: &str, args: &[&dyn Param]) -> Result<usize> {
        match self.conn {
            Conn::Sqlite(c) => {
                let sql = portable(sql);
                let mut st = c.prepare_cached(&sql)?;
                Ok(st.execute(bind(args))?)
            }
            Conn::Pg(c) => c.execute(sql, args),
        }
    }

    /// Run an `INSERT … RETURNING id` and return the id.
    pub fn insert_id(&self, sql: &str, args: &[&dyn Param]) -> Result<i64> {
        debug_assert!(
            sql.contains("RETURNING"),
            "insert_id needs RETURNING: {sql}"
        );
        self.one::<i64>(sql, args)
    }

    /// The first row, if any.
    pub fn row<T: FromRow>(&self, sql: &str, args: &[&dyn Param]) -> Result<Option<T>> {
        match self.conn {
            Conn::Sqlite(c) => {
                let sql = portable(sql);
                let mut st = c.prepare_cached(&sql)?;
                let mut rows = st.query(bind(args))?;
                match rows.next()? {
                    Some(r) => Ok(Some(T::from_row(&Row {
                        inner: RowInner::Sqlite(r),
                    })?)),
                    None => Ok(None),
                }
            }
            Conn::Pg(c) => match c.query(sql, args)?.first() {
                Some(r) => Ok(Some(T::from_row(&Row {
                    inner: RowInner::Pg(r),
                })?)),
                None => Ok(None),
            },
        }
    }

    /// Exactly one row (an aggregate, a `RETURNING`): none is a storage error.
    pub fn one<T: FromRow>(&self, sql: &str, args: &[&dyn Param]) -> Result<T> {
        self.row(sql, args)?
            .ok_or_else(|| KernelError::Storage(format!("query returned no row: {sql}")))
    }

    /// Every row, mapped by [`FromRow`].
    pub fn rows<T: FromRow>(&self, sql: &str, args: &[&dyn Param]) -> Result<Vec<T>> {
        self.map(sql, args, |r| T::from_row(r))
    }

    /// Every row, mapped by `f`.
    pub fn map<T>(
        &self,
        sql: &str,
        args: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, args, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Visit every row in order without collecting (large reads stream through this).
    pub fn each(
        &self,
        sql: &str,
        args: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        match self.conn {
            Conn::Sqlite(c) => {
                let sql = portable(sql);
                let mut st = c.prepare_cached(&sql)?;
                let mut rows = st.query(bind(args))?;
                while let Some(r) = rows.next()? {
                    f(&Row {
                        inner: RowInner::Sqlite(r),
                    })?;
                }
            }
            // The rows arrive whole, so `f` may run further statements on this transaction.
            Conn::Pg(c) => {
                for r in &c.query(sql, args)? {
                    f(&Row {
                        inner: RowInner::Pg(r),
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Whether a row exists.
    pub fn exists(&self, sql: &str, args: &[&dyn Param]) -> Result<bool> {
        Ok(self.row::<Val0>(sql, args)?.is_some())
    }

    /// Lock one task for a read-then-write transition and return it (or `TaskNotFound`).
    /// SQLite: a plain read (`BEGIN IMMEDIATE` already holds the board's write lock);
    /// elsewhere `SELECT … FOR UPDATE`.
    pub fn lock_task(&self, id: &str) -> Result<super::types::Task> {
        match self.conn {
            Conn::Sqlite(_) => super::board::load_task(self, id),
            Conn::Pg(_) => {
                static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                let sql = SQL.get_or_init(|| {
                    format!(
                        "SELECT {} FROM tasks WHERE id=?1 FOR UPDATE",
                        super::types::TASK_COLUMNS
                    )
                });
                self.row::<super::types::Task>(sql, args![id])?
                    .ok_or_else(|| KernelError::TaskNotFound(super::validate::truncate(id, 80)))
            }
        }
    }

    /// Serialise this transaction against every other board-wide edit (links and the cycle
    /// check, ready recomputation, `max_in_progress`). SQLite: a no-op (one writer at a time);
    /// PostgreSQL: the board's transaction-scoped advisory lock (released at COMMIT/ROLLBACK).
    pub fn lock_board(&self) -> Result<()> {
        match self.conn {
            Conn::Sqlite(_) => Ok(()),
            Conn::Pg(_) => {
                self.exec(
                    "SELECT pg_advisory_xact_lock(19268, hashtext(current_schema()))",
                    args![],
                )?;
                Ok(())
            }
        }
    }

    /// The ids of the next ready, unclaimed tasks in Hermes' claim order (priority, then age,
    /// then insertion), at most `limit`, optionally only those assigned to `assignee`, locked
    /// for this transaction: SQLite reads them under the write lock `BEGIN IMMEDIATE` already
    /// holds; PostgreSQL takes them `FOR UPDATE SKIP LOCKED`, so concurrent claimers on many
    /// hosts each get different tasks instead of queueing on the same row. The caller claims
    /// each id (the claim CAS still guards it).
    pub fn claim_next(&self, assignee: Option<&str>, limit: usize) -> Result<Vec<String>> {
        const SQL: &str = "SELECT id FROM tasks WHERE status='ready' AND claim_lock IS NULL \
             AND (?1 IS NULL OR assignee = ?1) \
             ORDER BY priority DESC, created_at ASC, _seq_ ASC LIMIT ?2";
        static PG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = match self.conn {
            Conn::Sqlite(_) => SQL,
            Conn::Pg(_) => PG.get_or_init(|| format!("{SQL} FOR UPDATE SKIP LOCKED")),
        };
        self.rows(sql, args![assignee, limit as i64])
    }

    /// Every user table of the store, sorted by name, with its columns in declaration order
    /// and its primary-key columns in key order (empty for a table without one). Used to walk
    /// the whole store backend-neutrally ([`super::Board::snapshot`]). SQLite: `sqlite_master`
    /// and `pragma_table_info`; elsewhere the catalog (`information_schema`).
    pub fn tables(&self) -> Result<Vec<TableShape>> {
        if self.is_postgres() {
            return self.pg_tables();
        }
        let names: Vec<String> = self.rows(
            "SELECT name FROM sqlite_master \
             WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            args![],
        )?;
        names
            .into_iter()
            .map(|name| {
                let cols: Vec<(String, i64)> = self.rows(
                    "SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid",
                    args![name],
                )?;
                let mut key: Vec<(i64, String)> = cols
                    .iter()
                    .filter(|(_, pk)| *pk > 0)
                    .map(|(c, pk)| (*pk, c.clone()))
                    .collect();
                key.sort();
                Ok(TableShape {
                    name,
                    columns: cols.into_iter().map(|(c, _)| c).collect(),
                    key: key.into_iter().map(|(_, c)| c).collect(),
                })
            })
            .collect()
    }

    /// PostgreSQL's answer to [`Tx::tables`], from the catalog of the board's schema (without
    /// the `_seq_` column, so shapes match SQLite's).
    fn pg_tables(&self) -> Result<Vec<TableShape>> {
        // From pg_catalog, not information_schema.columns: the same rows in the same order,
        // ~50x cheaper (it is read on every snapshot, and the tests snapshot a lot).
        let cols: Vec<(String, String)> = self.rows(
            "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             WHERE c.relnamespace = current_schema()::regnamespace \
               AND c.relkind IN ('r', 'p', 'v', 'f', 'm') AND a.attnum > 0 \
               AND NOT a.attisdropped AND a.attname <> '_seq_' \
             ORDER BY c.relname::text, a.attnum",
            args![],
        )?;
        let keys: Vec<(String, String)> = self.rows(
            "SELECT k.table_name::text, k.column_name::text \
             FROM information_schema.table_constraints c \
             JOIN information_schema.key_column_usage k \
               ON k.constraint_schema = c.constraint_schema \
              AND k.constraint_name = c.constraint_name \
             WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema() \
             ORDER BY k.table_name, k.ordinal_position",
            args![],
        )?;
        let mut out: Vec<TableShape> = Vec::new();
        for (t, c) in cols {
            match out.last_mut() {
                Some(s) if s.name == t => s.columns.push(c),
                _ => out.push(TableShape {
                    key: keys
                        .iter()
                        .filter(|(kt, _)| *kt == t)
                        .map(|(_, k)| k.clone())
                        .collect(),
                    name: t,
                    columns: vec![c],
                }),
            }
        }
        Ok(out)
    }

    /// The SQLite connection, for store-internal code (pragmas, migrations, introspection);
    /// a storage error on another backend.
    pub(crate) fn sqlite_conn(&self) -> Result<&rusqlite::Connection> {
        match self.conn {
            Conn::Sqlite(c) => Ok(c),
            Conn::Pg(_) => Err(KernelError::Storage(
                "this operation reads SQLite's own catalogue and is not available on a \
                 PostgreSQL board"
                    .into(),
            )),
        }
    }
}

/// The SQL text a backend runs: SQLite maps [`SEQ`] to `rowid` (the only rewrite it needs).
fn portable(sql: &str) -> Cow<'_, str> {
    if sql.contains(SEQ) {
        Cow::Owned(sql.replace(SEQ, "rowid"))
    } else {
        Cow::Borrowed(sql)
    }
}
