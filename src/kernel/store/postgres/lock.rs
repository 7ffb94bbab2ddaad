//! The dispatcher's tick lock on PostgreSQL: a session-level `pg_try_advisory_lock` on the
//! board's key, taken on the board's own session (a tick lock costs no session of its own).
//! A session's advisory locks are re-entrant, so the session keeps [`TickSlot`] beside it:
//! while one tick of this process holds the lock, another on the same handle is refused here
//! as the server refuses other sessions. Dropping the [`TickLock`] marks it released; the
//! session unlocks before its next statement ([`super::PgConn`] checks on every use, and
//! [`crate::kernel::Board::release_tick_lock`] does it at once at the end of a tick). The
//! session ending releases it too: its holder dying, or a lost connection (the tick then runs
//! on without it, as it did on a dedicated connection; the slot is cleared on reconnect).

use std::sync::{Arc, Mutex};

use super::Client;
use crate::kernel::error::Result;

/// The advisory-lock class of tick locks (the object is the board schema's hash).
pub(crate) const TICK_CLASS: i32 = 0x4b43;

/// Where a board session's tick lock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not held by this session.
    Free,
    /// Held for the [`TickLock`] with this id.
    Held(u64),
    /// Still held by the session, its [`TickLock`] dropped: unlock before the next statement.
    Dropped,
}

/// The tick-lock state of one board session (shared with its [`TickLock`], which may drop on
/// another thread).
#[derive(Debug)]
pub(crate) struct TickSlot(Mutex<(Slot, u64)>);

/// A held tick lock.
#[derive(Debug)]
pub(crate) struct TickLock {
    slot: Arc<TickSlot>,
    id: u64,
}

impl Drop for TickLock {
    fn drop(&mut self) {
        let mut st = self.slot.state();
        if st.0 == Slot::Held(self.id) {
            st.0 = Slot::Dropped;
        }
    }
}

impl TickSlot {
    pub(crate) fn new() -> Arc<TickSlot> {
        Arc::new(TickSlot(Mutex::new((Slot::Free, 0))))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (Slot, u64)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold(self: &Arc<Self>) -> TickLock {
        let mut st = self.state();
        st.1 += 1;
        st.0 = Slot::Held(st.1);
        TickLock {
            slot: self.clone(),
            id: st.1,
        }
    }

    /// The session was replaced (reconnected): the old one's lock went with it.
    pub(crate) fn forget(&self) {
        self.state().0 = Slot::Free;
    }

    /// Try the tick lock of `schema` on `client` (the board's session) without waiting:
    /// `None` when another session holds it, or another tick of this process on this one.
    pub(crate) fn try_lock(
        self: &Arc<Self>,
        client: &Client,
        schema: &str,
        shown: &str,
    ) -> Result<Option<TickLock>> {
        match self.state().0 {
            Slot::Held(_) => return Ok(None),
            // The session holds it still: take it over without a round trip.
            Slot::Dropped => return Ok(Some(self.hold())),
            Slot::Free => {}
        }
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&TICK_CLASS, &schema],
            )
            .map_err(|e| super::map_err(&e, shown))?
            .get(0);
        Ok(got.then(|| self.hold()))
    }

    /// Unlock on `client` (the board's session, outside a transaction) if the holder dropped
    /// the lock. A failed unlock on a live session is retried at the next statement.
    pub(crate) fn release_dropped(&self, client: &Client, schema: &str) {
        if self.state().0 != Slot::Dropped {
            return;
        }
        let r = client.query_one(
            "SELECT pg_advisory_unlock($1, hashtext($2))",
            &[&TICK_CLASS, &schema],
        );
        let mut st = self.state();
        if st.0 == Slot::Dropped && (r.is_ok() || client.is_closed()) {
            st.0 = Slot::Free;
        }
        if let Err(e) = r {
            tracing::debug!("tick lock of {schema}: unlock failed: {e}");
        }
    }
}
