//! The store's values: reading a column as a Rust value ([`FromCol`], [`FromRow`] for scalars
//! and tuples, the lenient [`Cells`] access `types.rs` uses), binding a Rust value as a
//! parameter ([`Param`]), and SQLite's side of both (PostgreSQL's is `postgres/value.rs`).

use super::{Arg, FromCol, FromRow, Param, Row, RowInner, Val};
use crate::kernel::error::{KernelError, Result};

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

pub(super) fn sqlite_val(v: rusqlite::types::ValueRef<'_>) -> Val<'_> {
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
        match self.inner {
            RowInner::Sqlite(r) => Ok(sqlite_val(r.get_ref(i)?)),
            RowInner::Pg(r) => r
                .try_get::<_, super::postgres::value::PgVal<'_>>(i)
                .map(|v| v.0)
                .map_err(|e| KernelError::Storage(format!("column {i}: {e}"))),
        }
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
pub(super) struct Val0;
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

pub(super) fn bind<'a>(args: &'a [&'a dyn Param]) -> impl rusqlite::Params + 'a {
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
