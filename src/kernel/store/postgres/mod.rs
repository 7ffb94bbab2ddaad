//! The PostgreSQL backend (issue 15), over our own thin synchronous client
//! ([`client`]: `tokio-postgres` whose I/O runs on one process-wide background runtime, waited
//! on with a runtime-agnostic `block_on`), so a board handle opens, works and drops on any
//! thread, a tokio worker included. The issue named the synchronous `postgres` crate, but it
//! `block_on`s a runtime of its own for connect, every query and drop, which panics on a thread
//! that drives one (a `#[tokio::test]`, the stdio MCP server, an axum handler). Front doors
//! still call boards off their async workers (`spawn_blocking`, `SharedBoard::call`): a
//! statement waits on the network, and a waiting worker is a latency bug.
//!
//! * **Layout.** One PostgreSQL schema per board, `board_<slug>` (a slug too long for a
//!   63-byte name is cut and suffixed with a hash), holding the SQLite tables under their
//!   SQLite names and columns, each with one extra column `_seq_ BIGSERIAL` (insertion order,
//!   which the kernel's SQL names `_seq_`). The registry of boards is `hermes_kanban.boards`
//!   ([`registry`]). Migrations (`migrations/postgres/`) are tracked per board in
//!   `board_<slug>.schema_migrations` ([`migrate`]). Logs, workspaces and tokens stay
//!   host-local under the kanban home.
//! * **Statements.** `?N` becomes `$N` once per statement text ([`value::rewrite_placeholders`]);
//!   prepared statements are cached per connection. Parameters bind by the type the server
//!   inferred; a placeholder it cannot type (`?1 IS NULL` alone) is declared from the value
//!   (`prepare_typed`). Columns read back as the [`Val`]s SQLite would give.
//! * **Transactions.** READ COMMITTED writes (`BEGIN … COMMIT`, nested calls as savepoints, the
//!   body never replayed) with the seam's explicit locks: `lock_task` is `SELECT … FOR UPDATE`,
//!   `lock_board` a per-board `pg_advisory_xact_lock`. Writes to one board are serialised by a
//!   per-board writer lock taken at BEGIN ([`PgConn::write_txn`] says why: id-ordered event
//!   cursors); boards are independent, and reads run in one REPEATABLE READ snapshot without
//!   waiting. Every session sets `search_path` to its board, `lock_timeout` (the busy timeout)
//!   and `statement_timeout`.
//! * **Errors.** Lock timeouts, deadlocks, serialization failures and cancelled statements are
//!   [`KernelError::Busy`]; a lost or refused connection is [`KernelError::Unavailable`]
//!   (naming the URL without its password). A connection found closed before a transaction is
//!   re-opened, with a bounded back-off, so long-lived hosts survive a server restart.
//! * **Sessions.** One connection per open board and nothing else: a process shares one
//!   handle per board (`Kanban`), and that handle is used by one call at a time, so a larger
//!   pool would idle. The registry's work runs on an open board's session
//!   ([`PgConn::idle_session`]); with no board open on a spare one, which the first board
//!   opened then takes over ([`PgConn::adopt`]). The dispatcher's tick lock is a session
//!   advisory lock on the board's own session ([`lock`]).

pub(crate) mod client;
pub(crate) mod lock;
pub(crate) mod migrate;
pub(crate) mod registry;
mod target;
pub(crate) mod value;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

pub(crate) use client::Client;
use client::Statement;

use super::{Param, Val};
use crate::kernel::error::{KernelError, Result};

pub use target::{PgTarget, is_postgres_url};

/// Prepared statements kept per connection before the cache is emptied.
const STATEMENT_CACHE: usize = 512;

/// One board's connection: the client (re-opened when found closed), its schema and its
/// statement cache.
pub(crate) struct PgConn {
    target: Arc<PgTarget>,
    schema: String,
    client: RefCell<Option<Client>>,
    cache: RefCell<HashMap<String, Statement>>,
    /// Open transaction depth (0: autocommit; 1: BEGIN; more: savepoints).
    depth: Cell<u32>,
    /// The dispatcher's tick lock on this session ([`lock`]).
    tick: Arc<lock::TickSlot>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgConn({} schema {})", self.target.shown, self.schema)
    }
}

/// Open a client with the session settings of `target` and `search_path` = `schema`.
pub(crate) fn connect(target: &PgTarget, schema: Option<&str>) -> Result<Client> {
    // Whatever stops a connect (refused, timed out, authentication, no such database) is the
    // one-line "cannot reach" error naming the URL without its password.
    let client = Client::connect(&target.config).map_err(|e| match map_err(&e, &target.shown) {
        u @ KernelError::Unavailable { .. } => u,
        other => unavailable(&target.shown, &other.to_string()),
    })?;
    let mut setup = format!(
        "SET lock_timeout = {}; SET statement_timeout = {}; \
         SET idle_in_transaction_session_timeout = 600000; SET client_min_messages = warning;",
        target.lock_timeout_ms, target.statement_timeout_ms
    );
    if let Some(s) = schema {
        setup.push_str(&format!(" SET search_path TO {};", quote_ident(s)));
    }
    client
        .batch_execute(&setup)
        .map_err(|e| map_err(&e, &target.shown))?;
    Ok(client)
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgConn {
    /// A connection for the board whose schema is `schema`.
    pub(crate) fn open(target: Arc<PgTarget>, schema: &str) -> Result<PgConn> {
        let client = connect(&target, Some(schema))?;
        Ok(PgConn::over(target, schema, client))
    }

    /// A connection for the board whose schema is `schema` over a session already open (the
    /// home's spare registry session, handed over so that opening a board adds no session).
    pub(crate) fn adopt(target: Arc<PgTarget>, schema: &str, client: Client) -> Result<PgConn> {
        client
            .batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))
            .map_err(|e| map_err(&e, &target.shown))?;
        Ok(PgConn::over(target, schema, client))
    }

    /// The board connection over `client`, a session whose `search_path` is `schema`.
    fn over(target: Arc<PgTarget>, schema: &str, client: Client) -> PgConn {
        PgConn {
            target,
            schema: schema.to_string(),
            client: RefCell::new(Some(client)),
            cache: RefCell::new(HashMap::new()),
            depth: Cell::new(0),
            tick: lock::TickSlot::new(),
        }
    }

    /// This board's session for the home's registry work (whose SQL names its schemas, so the
    /// board's `search_path` does not matter), re-opened when closed; `None` inside one of
    /// the board's transactions.
    pub(crate) fn idle_session(&self) -> Option<Result<std::cell::RefMut<'_, Client>>> {
        (self.depth.get() == 0).then(|| self.client())
    }

    /// Try the dispatcher's tick lock of this board on its session ([`lock`]).
    pub(crate) fn try_tick_lock(&self) -> Result<Option<lock::TickLock>> {
        let client = self.client()?;
        self.tick
            .try_lock(&client, &self.schema, &self.target.shown)
    }

    /// Unlock a tick lock its holder dropped now rather than before the next statement.
    pub(crate) fn release_tick_lock(&self) {
        let client = self.client.borrow();
        if let Some(c) = client.as_ref().filter(|c| !c.is_closed())
            && self.depth.get() == 0
        {
            self.tick.release_dropped(c, &self.schema);
        }
    }

    /// The board's schema name.
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    /// Where this connection points (no password).
    pub(crate) fn target(&self) -> &Arc<PgTarget> {
        &self.target
    }

    fn err(&self, e: client::Error) -> KernelError {
        map_err(&e, &self.target.shown)
    }

    /// The client; outside a transaction a closed one is re-opened first (bounded back-off:
    /// `HERMES_KANBAN_PG_RECONNECT_SECONDS`, default 30 s in total).
    fn client(&self) -> Result<std::cell::RefMut<'_, Client>> {
        let closed = self.client.borrow().as_ref().is_none_or(|c| c.is_closed());
        if closed {
            if self.depth.get() > 0 {
                return Err(unavailable(&self.target.shown, "the connection was lost"));
            }
            self.reconnect()?;
        }
        self.release_tick_lock();
        Ok(std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut().expect("connected above")
        }))
    }

    fn reconnect(&self) -> Result<()> {
        *self.client.borrow_mut() = None;
        self.cache.borrow_mut().clear();
        self.tick.forget();
        let budget = std::env::var("HERMES_KANBAN_PG_RECONNECT_SECONDS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(30);
        let deadline = Instant::now() + Duration::from_secs(budget);
        let mut nap = Duration::from_millis(100);
        loop {
            match connect(&self.target, Some(&self.schema)) {
                Ok(c) => {
                    tracing::info!("reconnected to {}", self.target.shown);
                    *self.client.borrow_mut() = Some(c);
                    return Ok(());
                }
                Err(e @ KernelError::Unavailable { .. }) if Instant::now() + nap < deadline => {
                    tracing::warn!("{e}; retrying in {nap:?}");
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The prepared statement for `sql` (rewritten and cached on first use).
    fn statement(&self, client: &mut Client, sql: &str, vals: &[Val<'_>]) -> Result<Statement> {
        if let Some(s) = self.cache.borrow().get(sql) {
            return Ok(s.clone());
        }
        let text = value::rewrite_placeholders(sql);
        // A failed PREPARE inside a transaction aborts it: guard the attempt with a savepoint.
        let in_tx = self.depth.get() > 0;
        if in_tx {
            client
                .batch_execute("SAVEPOINT hk_prepare")
                .map_err(|e| self.err(e))?;
        }
        let st = match client.prepare(&text) {
            Ok(s) => Ok(s),
            Err(e) if e.code() == Some(&SqlState::INDETERMINATE_DATATYPE) => {
                if in_tx {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT hk_prepare")
                        .map_err(|e| self.err(e))?;
                }
                let types: Vec<_> = vals.iter().map(value::declared_type).collect();
                client.prepare_typed(&text, &types)
            }
            Err(e) => Err(e),
        };
        if in_tx {
            let end = if st.is_ok() {
                "RELEASE SAVEPOINT hk_prepare"
            } else {
                "ROLLBACK TO SAVEPOINT hk_prepare; RELEASE SAVEPOINT hk_prepare"
            };
            client.batch_execute(end).map_err(|e| self.err(e))?;
        }
        let st = st.map_err(|e| self.err(e))?;
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    /// Run a query and collect its rows.
    pub(crate) fn query(&self, sql: &str, args: &[&dyn Param]) -> Result<Vec<client::Row>> {
        let vals: Vec<Val<'_>> = args.iter().map(|a| a.val()).collect();
        if holds_nul(&vals) {
            return refuse_nul(sql).map(|()| Vec::new());
        }
        let mut client = self.client()?;
        let st = self.statement(&mut client, sql, &vals)?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vals.iter().map(|v| v as _).collect();
        client.query(&st, &params).map_err(|e| self.err(e))
    }

    /// Run a statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[&dyn Param]) -> Result<usize> {
        let vals: Vec<Val<'_>> = args.iter().map(|a| a.val()).collect();
        if holds_nul(&vals) {
            return refuse_nul(sql).map(|()| 0);
        }
        let mut client = self.client()?;
        let st = self.statement(&mut client, sql, &vals)?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vals.iter().map(|v| v as _).collect();
        client
            .execute(&st, &params)
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// Run parameterless statements (simple protocol).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.client()?.batch_execute(sql).map_err(|e| self.err(e))
    }

    /// Run `body` in a READ COMMITTED transaction (a savepoint when one is open). Any error
    /// rolls back; the body is never replayed.
    ///
    /// Every write transaction first takes the board's writer lock (a transaction-scoped
    /// advisory lock), so writes to one board commit one at a time, in the order their ids were
    /// drawn. The kernel's readers follow id-ordered cursors over `task_events` (SSE, notify
    /// subscriptions, webhooks, the dispatcher's change marker): with concurrent writers a
    /// reader could see id 145 committed before 144 and move past 144 for good. It also keeps
    /// every read-then-write rule as safe as on SQLite's single writer. Readers never wait.
    pub(crate) fn write_txn<T>(&self, body: impl FnOnce() -> Result<T>) -> Result<T> {
        self.txn(
            "BEGIN; SELECT pg_advisory_xact_lock(19269, hashtext(current_schema()))",
            "SAVEPOINT nested_op",
            body,
        )
    }

    /// Run `body` in one REPEATABLE READ snapshot (inside a transaction: in that one).
    pub(crate) fn read_txn<T>(&self, body: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.depth.get() > 0 {
            return body();
        }
        self.txn("BEGIN ISOLATION LEVEL REPEATABLE READ", "", body)
    }

    fn txn<T>(&self, begin: &str, nested: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
        let outer = self.depth.get() == 0;
        if let Err(e) = self.batch(if outer { begin } else { nested }) {
            // BEGIN may have run before the lock wait failed: leave no transaction open.
            if outer {
                let _ = self.client_raw_batch("ROLLBACK");
            }
            return Err(e);
        }
        let guard = Depth::enter(self);
        let out = body();
        let finish = match (&out, outer) {
            (Ok(_), true) => "COMMIT",
            (Ok(_), false) => "RELEASE nested_op",
            (Err(_), true) => "ROLLBACK",
            (Err(_), false) => "ROLLBACK TO nested_op; RELEASE nested_op",
        };
        guard.done();
        let ended = self.client_raw_batch(finish);
        match (out, ended) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => {
                if outer {
                    let _ = self.client_raw_batch("ROLLBACK");
                }
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// A batch on the current client, without re-opening a closed one (ending a transaction
    /// on a lost connection must fail, not start a fresh session).
    fn client_raw_batch(&self, sql: &str) -> Result<()> {
        let mut c = self.client.borrow_mut();
        match c.as_mut() {
            Some(c) if !c.is_closed() => c.batch_execute(sql).map_err(|e| self.err(e)),
            _ => Err(unavailable(&self.target.shown, "the connection was lost")),
        }
    }
}

/// Whether a text parameter holds a NUL byte. PostgreSQL's `text` can neither store nor even
/// receive one (SQLSTATE 22021), so no stored value can equal it: such a statement matches
/// nothing, which is what SQLite answers for the same lookup (an id or filter holding a NUL is
/// an unknown task or an empty list on both backends). The statement is not sent.
fn holds_nul(vals: &[Val<'_>]) -> bool {
    vals.iter()
        .any(|v| matches!(v, Val::Text(t) if t.as_bytes().contains(&0)))
}

/// The answer for a statement [`holds_nul`] keeps from the server: a read or a guarded
/// UPDATE/DELETE matches no row (`Ok`), an INSERT would store the NUL and is refused.
fn refuse_nul(sql: &str) -> Result<()> {
    let head = sql.trim_start().get(..6).unwrap_or("");
    if head.eq_ignore_ascii_case("insert") {
        return Err(KernelError::Invalid {
            field: "text",
            message: "text may not contain a NUL byte".into(),
        });
    }
    Ok(())
}

/// Tracks the transaction depth; a body that panics leaves the session rolled back.
struct Depth<'a> {
    conn: &'a PgConn,
    live: bool,
}

impl<'a> Depth<'a> {
    fn enter(conn: &'a PgConn) -> Depth<'a> {
        conn.depth.set(conn.depth.get() + 1);
        Depth { conn, live: true }
    }
    fn done(mut self) {
        self.live = false;
        self.conn.depth.set(self.conn.depth.get() - 1);
    }
}

impl Drop for Depth<'_> {
    fn drop(&mut self) {
        if self.live {
            self.conn.depth.set(0);
            let _ = self.conn.client_raw_batch("ROLLBACK");
        }
    }
}

/// The one-line "cannot reach" error.
pub(crate) fn unavailable(shown: &str, detail: &str) -> KernelError {
    KernelError::Unavailable {
        url: shown.to_string(),
        detail: detail.replace(['\n', '\r'], " "),
    }
}

/// A driver error in the kernel's terms (`shown`: the URL without its password).
pub(crate) fn map_err(e: &client::Error, shown: &str) -> KernelError {
    let Some(code) = e.code() else {
        // No SQLSTATE: I/O, a closed connection, a refused or timed-out connect.
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            detail = format!("{detail}: {s}");
            src = s.source();
        }
        return unavailable(shown, &detail);
    };
    let c = code.code();
    if matches!(c, "40P01" | "55P03" | "40001" | "57014") {
        return KernelError::Busy;
    }
    if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300") {
        return unavailable(shown, &e.to_string());
    }
    let msg = match e.as_db_error() {
        Some(db) => match (c, db.table(), db.constraint()) {
            // The words SQLite uses, so messages read the same on both backends.
            ("23505", Some(t), Some(k)) => format!("UNIQUE constraint failed: {t} ({k})"),
            _ => format!("{} ({c})", db.message()),
        },
        None => e.to_string(),
    };
    KernelError::Storage(msg.replace(['\n', '\r'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_unavailable_in_one_line_without_the_password() {
        // Port 1 on loopback: nothing listens, the connect is refused at once.
        let env = crate::kernel::Env::empty();
        let t = PgTarget::parse(&env, "postgres://kb:s3cret@127.0.0.1:1/kanban", "test").unwrap();
        let Err(e) = connect(&t, None) else {
            panic!("connected to a closed port")
        };
        assert!(matches!(e, KernelError::Unavailable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("postgres://kb:***@127.0.0.1:1/kanban"),
            "{text}"
        );
        assert!(!text.contains("s3cret") && !text.contains('\n'), "{text}");
    }
}
