//! The store seam: the only part of the kernel that names a database driver. It owns the
//! kernel's transaction type ([`Tx`]), its parameters ([`Param`], [`Val`], [`args!`]), its row
//! mapping ([`Row`], [`FromCol`], [`FromRow`]), and the few steps where backends truly differ,
//! as named methods: [`Tx::lock_task`] (read a task under the write lock), [`Tx::lock_board`]
//! (graph edits, caps) and [`Tx::insert_id`] (`INSERT … RETURNING id`).
//!
//! SQL stays as text next to the rule it guards, written once in the dialect SQLite ≥ 3.35 and
//! PostgreSQL both accept: `?N` placeholders (rewritten to `$N` at the edge for PostgreSQL),
//! `RETURNING`, `ON CONFLICT DO NOTHING`, `IS NOT DISTINCT FROM`, no `json_each`. Insertion
//! order, the final tie-break of Hermes' orders, is spelled [`SEQ`] (`_seq_` in SQL text): the
//! implicit `rowid` on SQLite, an explicit `seq` column elsewhere.
//!
//! The SQLite backend (connection, pragmas, busy handling, `BEGIN IMMEDIATE`, migrations)
//! lives in [`sqlite`].

pub(crate) mod group;
pub(crate) mod sqlite;
mod sqlite_vfs;

use std::borrow::Cow;

use super::error::{KernelError, Result};

/// The portable name of a table's insertion order in SQL text (`ORDER BY created_at, _seq_`).
pub(crate) const SEQ: &str = "_seq_";

/// One transaction (or, inside another, a savepoint) on a board's store. Every kernel
/// operation body receives one from [`super::Board::write`] / [`super::Board::read`].
pub struct Tx<'c> {
    conn: &'c rusqlite::Connection,
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
    inner: &'r rusqlite::Row<'r>,
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
        Tx { conn }
    }

    /// Run a statement; returns the number of rows changed.
    pub fn exec(&self, sql: &str, args: &[&dyn Param]) -> Result<usize> {
        let sql = portable(sql);
        let mut st = self.conn.prepare_cached(&sql)?;
        Ok(st.execute(bind(args))?)
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
        let sql = portable(sql);
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(bind(args))?;
        match rows.next()? {
            Some(r) => Ok(Some(T::from_row(&Row { inner: r })?)),
            None => Ok(None),
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
        let sql = portable(sql);
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(bind(args))?;
        while let Some(r) = rows.next()? {
            f(&Row { inner: r })?;
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
        super::board::load_task(self, id)
    }

    /// Serialise this transaction against every other board-wide edit (links and the cycle
    /// check, ready recomputation, `max_in_progress`). SQLite: a no-op (one writer at a time);
    /// elsewhere a per-board transaction-scoped advisory lock.
    pub fn lock_board(&self) -> Result<()> {
        Ok(())
    }

    /// Every user table of the store, sorted by name, with its columns in declaration order
    /// and its primary-key columns in key order (empty for a table without one). Used to walk
    /// the whole store backend-neutrally ([`super::Board::snapshot`]). SQLite: `sqlite_master`
    /// and `pragma_table_info`; elsewhere the catalog (`information_schema`).
    pub fn tables(&self) -> Result<Vec<TableShape>> {
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

    /// The backend's connection, for store-internal code (pragmas, migrations, introspection).
    pub(crate) fn sqlite_conn(&self) -> &rusqlite::Connection {
        self.conn
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

// ----- rows -----

/// Raw cell access shared by [`Row`] and (while modules move over) rusqlite's row, so the
/// lenient readers in `types.rs` serve both.
pub trait Cells {
    fn cell(&self, i: usize) -> Option<Val<'_>>;
}

impl Cells for Row<'_> {
    fn cell(&self, i: usize) -> Option<Val<'_>> {
        self.val(i).ok()
    }
}

impl Cells for rusqlite::Row<'_> {
    fn cell(&self, i: usize) -> Option<Val<'_>> {
        sqlite_val(self.get_ref(i).ok()?).into()
    }
}

fn sqlite_val(v: rusqlite::types::ValueRef<'_>) -> Val<'_> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(n) => Val::Int(n),
        ValueRef::Real(f) => Val::Real(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Val::Text(s),
            Err(_) => Val::Blob(t),
        },
        ValueRef::Blob(b) => Val::Blob(b),
    }
}

impl<'r> Row<'r> {
    /// The raw value of column `i`.
    pub fn val(&self, i: usize) -> Result<Val<'_>> {
        Ok(sqlite_val(self.inner.get_ref(i)?))
    }

    /// Column `i` as `T`.
    pub fn get<T: FromCol>(&self, i: usize) -> Result<T> {
        let v = self.val(i)?;
        T::from_col(v).map_err(|why| KernelError::Storage(format!("column {i}: {why}")))
    }
}

fn kind(v: Val<'_>) -> &'static str {
    match v {
        Val::Null => "NULL",
        Val::Int(_) => "an integer",
        Val::Real(_) => "a real",
        Val::Text(_) => "text",
        Val::Blob(_) => "a blob",
    }
}

impl FromCol for i64 {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Int(n) => Ok(n),
            o => Err(format!("expected an integer, found {}", kind(o))),
        }
    }
}
impl FromCol for i32 {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        let n = i64::from_col(v)?;
        i32::try_from(n).map_err(|_| format!("{n} is out of range"))
    }
}
impl FromCol for u32 {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        let n = i64::from_col(v)?;
        u32::try_from(n).map_err(|_| format!("{n} is out of range"))
    }
}
impl FromCol for usize {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        let n = i64::from_col(v)?;
        usize::try_from(n).map_err(|_| format!("{n} is out of range"))
    }
}
impl FromCol for f64 {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Real(f) => Ok(f),
            Val::Int(n) => Ok(n as f64),
            o => Err(format!("expected a real, found {}", kind(o))),
        }
    }
}
impl FromCol for bool {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        Ok(i64::from_col(v)? != 0)
    }
}
impl FromCol for String {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s.to_string()),
            o => Err(format!("expected text, found {}", kind(o))),
        }
    }
}
impl FromCol for Vec<u8> {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Blob(b) => Ok(b.to_vec()),
            Val::Text(s) => Ok(s.as_bytes().to_vec()),
            o => Err(format!("expected a blob, found {}", kind(o))),
        }
    }
}
impl FromCol for Arg {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        Ok(match v {
            Val::Null => Arg::Null,
            Val::Int(n) => Arg::Int(n),
            Val::Real(f) => Arg::Real(f),
            Val::Text(s) => Arg::Text(s.to_string()),
            Val::Blob(b) => Arg::Blob(b.to_vec()),
        })
    }
}
impl<T: FromCol> FromCol for Option<T> {
    fn from_col(v: Val<'_>) -> std::result::Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            o => T::from_col(o).map(Some),
        }
    }
}

/// A row whose columns are not read (existence checks).
struct Val0;
impl FromRow for Val0 {
    fn from_row(_: &Row<'_>) -> Result<Self> {
        Ok(Val0)
    }
}

macro_rules! scalar_from_row {
    ($($t:ty),*) => { $(
        impl FromRow for $t {
            fn from_row(r: &Row<'_>) -> Result<Self> { r.get(0) }
        }
    )* };
}
scalar_from_row!(i64, i32, u32, usize, f64, bool, String, Vec<u8>, Arg);
impl<T: FromCol> FromRow for Option<T> {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        r.get(0)
    }
}

macro_rules! tuple_from_row {
    ($($n:tt $t:ident),+) => {
        impl<$($t: FromCol),+> FromRow for ($($t,)+) {
            fn from_row(r: &Row<'_>) -> Result<Self> { Ok(($(r.get::<$t>($n)?,)+)) }
        }
    };
}
tuple_from_row!(0 A);
tuple_from_row!(0 A, 1 B);
tuple_from_row!(0 A, 1 B, 2 C);
tuple_from_row!(0 A, 1 B, 2 C, 3 D);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);

// ----- parameters -----

impl Param for Val<'_> {
    fn val(&self) -> Val<'_> {
        *self
    }
}
impl Param for Arg {
    fn val(&self) -> Val<'_> {
        match self {
            Arg::Null => Val::Null,
            Arg::Int(n) => Val::Int(*n),
            Arg::Real(f) => Val::Real(*f),
            Arg::Text(s) => Val::Text(s),
            Arg::Blob(b) => Val::Blob(b),
        }
    }
}
macro_rules! int_param {
    ($($t:ty),*) => { $(
        impl Param for $t {
            fn val(&self) -> Val<'_> { Val::Int(*self as i64) }
        }
    )* };
}
int_param!(i64, i32, u32, u16, u8, usize);
impl Param for bool {
    fn val(&self) -> Val<'_> {
        Val::Int(*self as i64)
    }
}
impl Param for f64 {
    fn val(&self) -> Val<'_> {
        Val::Real(*self)
    }
}
impl Param for str {
    fn val(&self) -> Val<'_> {
        Val::Text(self)
    }
}
impl Param for String {
    fn val(&self) -> Val<'_> {
        Val::Text(self)
    }
}
impl Param for [u8] {
    fn val(&self) -> Val<'_> {
        Val::Blob(self)
    }
}
impl Param for Vec<u8> {
    fn val(&self) -> Val<'_> {
        Val::Blob(self)
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn val(&self) -> Val<'_> {
        (**self).val()
    }
}
impl<T: Param> Param for Option<T> {
    fn val(&self) -> Val<'_> {
        match self {
            Some(v) => v.val(),
            None => Val::Null,
        }
    }
}
impl Param for serde_json::Value {
    fn val(&self) -> Val<'_> {
        match self {
            serde_json::Value::Null => Val::Null,
            serde_json::Value::Bool(b) => Val::Int(*b as i64),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Real(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Val::Text(s),
            // Arrays and objects bind as their JSON text; callers serialise them first.
            _ => Val::Null,
        }
    }
}

// ----- SQLite binding -----

fn bind<'a>(args: &'a [&'a dyn Param]) -> impl rusqlite::Params + 'a {
    rusqlite::params_from_iter(args.iter().map(|p| p.val()))
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Val::Null => ValueRef::Null,
            Val::Int(n) => ValueRef::Integer(n),
            Val::Real(f) => ValueRef::Real(f),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
            Val::Blob(b) => ValueRef::Blob(b),
        }))
    }
}
