//! The dispatcher's tick lock on PostgreSQL: a session-level `pg_try_advisory_lock` on the
//! board's key, held on a dedicated connection for as long as the [`TickLock`] lives (dropping
//! it closes the connection, which releases the lock; so does the holder dying).

use super::{Client, PgTarget, connect, map_err};
use crate::kernel::error::Result;

/// The advisory-lock class of tick locks (the object is the board schema's hash).
const TICK_CLASS: i32 = 0x4b43;

/// A held tick lock.
pub(crate) struct TickLock {
    _client: Client,
}

/// Try the tick lock of `schema` without waiting: `None` when another session holds it.
pub(crate) fn try_tick_lock(target: &PgTarget, schema: &str) -> Result<Option<TickLock>> {
    let client = connect(target, None)?;
    let got: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&TICK_CLASS, &schema],
        )
        .map_err(|e| map_err(&e, &target.shown))?
        .get(0);
    Ok(got.then_some(TickLock { _client: client }))
}
