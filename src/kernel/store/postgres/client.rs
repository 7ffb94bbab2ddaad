//! Our thin synchronous PostgreSQL client over `tokio-postgres`, usable on ANY thread.
//!
//! The `postgres` crate (the synchronous wrapper issue 15 named) keeps a tokio runtime per
//! connection and `block_on`s it for connect, every query and drop, which panics ("Cannot
//! start a runtime from within a runtime") on a thread that drives a runtime: a
//! `#[tokio::test]`, the stdio MCP server, an axum handler. Here one process-wide background
//! runtime ([`runtime`]: one worker thread, created on first use, never dropped) runs every
//! `connect` and every connection's I/O task; the calling thread only waits for the answer
//! with [`block_on`], a park-based executor that knows no runtime. The client's futures talk
//! to their connection task over `futures` channels, so waiting on them needs nothing of
//! tokio, and dropping a [`Client`] only closes a channel (its connection task then ends).
//!
//! Rows, errors, statements and types are `tokio-postgres`' own (the ones `postgres`
//! re-exported).

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, ToStatement};

pub(crate) use tokio_postgres::{Config, Error, Row, Statement};

/// The runtime that owns every PostgreSQL socket of this process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hk-postgres-io")
            .enable_all()
            .build()
            .expect("start the PostgreSQL I/O runtime")
    })
}

/// Wakes the thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Poll `f` to completion on this thread, parking between polls (a wake-up before the park
/// leaves the thread's unpark token, so none is lost; a spurious wake-up only re-polls).
/// Runtime-agnostic: fine on a thread that drives a tokio runtime, because the I/O it waits
/// for runs on [`runtime`]'s thread, never on this one.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// One connection to PostgreSQL (its I/O runs on the background runtime).
pub(crate) struct Client {
    inner: tokio_postgres::Client,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Client {
    /// Connect with `config` (its `connect_timeout` bounds the attempt).
    pub(crate) fn connect(config: &Config) -> Result<Client, Error> {
        let config = config.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime().spawn(async move {
            match config.connect(NoTls).await {
                Ok((client, connection)) => {
                    if tx.send(Ok(client)).is_ok()
                        && let Err(e) = connection.await
                    {
                        tracing::debug!("PostgreSQL connection ended: {e}");
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let client = rx
            .recv()
            .expect("the PostgreSQL connect task answers before it ends")?;
        Ok(Client { inner: client })
    }

    /// Whether the connection is gone (the server closed it, or its socket failed).
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Run parameterless statements (simple protocol).
    pub(crate) fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        block_on(self.inner.batch_execute(sql))
    }

    /// Prepare `sql`, letting the server infer every parameter's type.
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement, Error> {
        block_on(self.inner.prepare(sql))
    }

    /// Prepare `sql` with the parameter types given (the rest inferred).
    pub(crate) fn prepare_typed(&self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        block_on(self.inner.prepare_typed(sql, types))
    }

    /// Every row of a query.
    pub(crate) fn query<T>(&self, q: &T, params: Params<'_>) -> Result<Vec<Row>, Error>
    where
        T: ?Sized + ToStatement,
    {
        block_on(self.inner.query(q, params))
    }

    /// The one row of a query (an error when it returns none or several).
    pub(crate) fn query_one<T>(&self, q: &T, params: Params<'_>) -> Result<Row, Error>
    where
        T: ?Sized + ToStatement,
    {
        block_on(self.inner.query_one(q, params))
    }

    /// The row of a query returning at most one.
    pub(crate) fn query_opt<T>(&self, q: &T, params: Params<'_>) -> Result<Option<Row>, Error>
    where
        T: ?Sized + ToStatement,
    {
        block_on(self.inner.query_opt(q, params))
    }

    /// Run a statement; the number of rows it changed.
    pub(crate) fn execute<T>(&self, q: &T, params: Params<'_>) -> Result<u64, Error>
    where
        T: ?Sized + ToStatement,
    {
        block_on(self.inner.execute(q, params))
    }

    /// Run `body` between `BEGIN` and `COMMIT`; an error (or a panic) in it rolls back.
    /// `err` maps the driver's errors of `BEGIN`/`COMMIT` into the body's error type.
    pub(crate) fn transaction<T, E>(
        &self,
        err: impl Fn(Error) -> E,
        body: impl FnOnce(&Client) -> Result<T, E>,
    ) -> Result<T, E> {
        self.batch_execute("BEGIN").map_err(&err)?;
        let open = RollbackUnlessDone(Some(self));
        let v = body(self)?;
        open.disarm();
        self.batch_execute("COMMIT").map_err(&err)?;
        Ok(v)
    }
}

/// Rolls an open transaction back when dropped armed (the body failed or panicked).
struct RollbackUnlessDone<'a>(Option<&'a Client>);

impl RollbackUnlessDone<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RollbackUnlessDone<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            let _ = c.batch_execute("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_waits_for_work_done_on_the_background_runtime() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime().spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let _ = tx.send(7);
        });
        assert_eq!(block_on(rx).unwrap(), 7);
    }

    #[tokio::test]
    async fn a_refused_connect_answers_on_a_thread_that_drives_a_runtime() {
        // Inside a tokio runtime: the `postgres` crate panicked here; this must return.
        let config: Config = "postgres://u@127.0.0.1:1/d".parse().unwrap();
        assert!(Client::connect(&config).is_err());
    }
}
