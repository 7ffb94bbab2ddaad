//! Reading SQLite's catalogue: table and column names (`sqlite_master`, `PRAGMA table_info`),
//! `PRAGMA integrity_check`, and the whole-board row dump tests compare. Another backend
//! answers the same questions from its own catalogue.

use crate::kernel::error::Result;
use crate::kernel::store::Tx;

/// Names of all user tables, sorted (for schema comparisons and invariant checks).
pub(crate) fn table_names(c: &Tx) -> Result<Vec<String>> {
    let mut st = c.sqlite_conn()?.prepare(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY \
        name",
    )?;
    let v = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

/// Whether a table named `table` exists.
pub(crate) fn has_table(c: &Tx, table: &str) -> Result<bool> {
    let n: i64 = c.sqlite_conn()?.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
        [table],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Column names of `table` in declaration order (empty when the table does not exist).
/// `table` is a table name the caller controls, never user input.
pub(crate) fn column_names(c: &Tx, table: &str) -> Result<Vec<String>> {
    let mut st = c
        .sqlite_conn()?
        .prepare(&format!("PRAGMA table_info({table})"))?;
    let v = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Whether `table` has a column named `column`.
pub(crate) fn has_column(c: &Tx, table: &str, column: &str) -> Result<bool> {
    Ok(column_names(c, table)?.iter().any(|n| n == column))
}

/// `count(*)` of `table` (a table name the caller controls).
pub(crate) fn count_rows(c: &Tx, table: &str) -> Result<i64> {
    c.one(&format!("SELECT count(*) FROM {table}"), crate::args![])
}

/// `PRAGMA integrity_check` result (`"ok"` when healthy).
pub(crate) fn integrity_check(c: &Tx) -> Result<String> {
    let mut st = c.sqlite_conn()?.prepare("PRAGMA integrity_check")?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.join("; "))
}
