//! Group commit in long-lived hosts: [`SharedBoard`], the board handle the threads of one
//! process share (`serve`'s MCP server, REST API, dispatcher and webhook threads; `daemon`; the
//! MCP server), and the mechanism that commits their concurrent writes together.
//!
//! A call made through [`SharedBoard::call`] runs under the board's connection mutex as before,
//! but its writes do not commit on their own: the first opens the group's transaction
//! (`BEGIN IMMEDIATE`), and each write operation runs as a `SAVEPOINT` of it, released on
//! success and rolled back to on error, so one refusal (an error result, a CAS miss) undoes
//! only its own writes. The call then lets go of the connection and waits until the group's
//! `COMMIT` is on disk: the holder that lets go while no other thread waits for the connection
//! commits (or the group reaches [`MAX_MEMBERS`] operations or [`MAX_OPEN`] of age), so N
//! writers queued behind each other share one transaction and one fsync. Durability is
//! unchanged: a call returns only after the commit that contains its writes; a failed commit
//! fails every member of the group.
//!
//! While a group is open, plain reads go through a second, read-only connection (opened the
//! first time a read meets an open group; [`Board::read_conn`]) and so never see uncommitted
//! writes; a call that has written reads
//! its own writes on the board's connection (they commit, or fail, together).
//!
//! Holders of [`SharedBoard::lock`] (the dispatcher's tick, admin paths) are not grouped:
//! each of their writes commits before it returns, taking any open group with it.
//! One-shot processes (CLI verbs) hold an owned [`Board`] and keep the plain
//! `BEGIN IMMEDIATE … COMMIT` path, and so does a board in a rollback journal (DELETE mode).
//! `HERMES_KANBAN_GROUP_COMMIT=0` turns grouping off; `HERMES_KANBAN_GROUP_COMMIT_DELAY_MS`
//! (default 0, at most 1000) keeps each group open at least that long so more writers join it
//! (fewer fsyncs, more latency per write): the last member to wait commits it when it expires.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::sqlite::{self as db, Conn};
use crate::kernel::board::Board;
use crate::kernel::error::{KernelError, Result};

/// A group commits once this many operations joined it, even while more writers queue.
pub const MAX_MEMBERS: u64 = 256;
/// A group commits once it has been open this long, even while more writers queue.
pub const MAX_OPEN: Duration = Duration::from_millis(20);
/// How often a waiting member checks that its group is still on its way to a commit.
const RECHECK: Duration = Duration::from_millis(250);

/// What a board's group commit has done since the handle was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupStats {
    /// Write operations made durable.
    pub writes: u64,
    /// Transactions committed for them (one fsync each).
    pub commits: u64,
    /// The most operations one commit carried.
    pub largest: u64,
    /// Commits that failed (every member of the group got the error).
    pub failed: u64,
}

/// The group state of one board, shared by the handle and the board's [`Member`].
pub(crate) struct Group {
    /// Threads waiting for the board's connection mutex.
    queued: AtomicUsize,
    /// `HERMES_KANBAN_GROUP_COMMIT_DELAY_MS`: a group stays open at least this long so more
    /// writers can join (0, the default: commit as soon as nobody waits).
    delay: Duration,
    state: Mutex<State>,
    settled: Condvar,
    writes: AtomicU64,
    commits: AtomicU64,
    largest: AtomicU64,
    failed: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The generation of the open group, if one is open.
    open: Option<u64>,
    /// Operations that joined the open group.
    members: u64,
    /// Calls waiting for the open group's commit.
    waiters: u64,
    opened: Option<Instant>,
    /// The newest generation opened.
    newest: u64,
    /// Every generation up to this one is settled.
    settled: u64,
    /// Failed generations: the error and how many waiters have still to read it.
    failures: HashMap<u64, (String, u64)>,
}

impl Group {
    fn new(delay: Duration) -> Group {
        Group {
            queued: AtomicUsize::new(0),
            delay,
            state: Mutex::new(State::default()),
            settled: Condvar::new(),
            writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            largest: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) {
        let mut st = self.state();
        st.newest += 1;
        st.open = Some(st.newest);
        st.members = 0;
        st.waiters = 0;
        st.opened = Some(Instant::now());
    }

    /// One operation joined the open group. `tickets`: the generations the joining call will
    /// wait for (a grouped call; counted once per generation), `None` for an ungrouped write.
    fn joined(&self, tickets: Option<&mut Vec<u64>>) {
        let mut st = self.state();
        st.members += 1;
        if let (Some(t), Some(generation)) = (tickets, st.open)
            && t.last() != Some(&generation)
        {
            t.push(generation);
            st.waiters += 1;
        }
    }

    /// Whether the holder letting go of the connection should commit the open group.
    fn due(&self) -> bool {
        let st = self.state();
        let age = st.opened.map(|t| t.elapsed()).unwrap_or_default();
        st.open.is_some()
            && age >= self.delay
            && (self.queued.load(Ordering::SeqCst) == 0
                || st.members >= MAX_MEMBERS
                || age >= MAX_OPEN.max(self.delay))
    }

    /// Commit the open group (the caller holds the board's connection).
    fn commit(&self, conn: &Conn) -> Result<()> {
        let members = {
            let st = self.state();
            if st.open.is_none() {
                return Ok(());
            }
            st.members
        };
        let r = db::commit(conn, members > 0);
        self.settle(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        r
    }

    /// Settle the open group: committed, or failed with `outcome`'s error for every member.
    fn settle(&self, outcome: std::result::Result<(), String>) {
        let mut st = self.state();
        let Some(generation) = st.open.take() else {
            return;
        };
        st.settled = generation;
        st.opened = None;
        let members = std::mem::take(&mut st.members);
        let waiters = std::mem::take(&mut st.waiters);
        match outcome {
            Ok(()) if members > 0 => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.writes.fetch_add(members, Ordering::Relaxed);
                self.largest.fetch_max(members, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if waiters > 0 {
                    st.failures.insert(generation, (e, waiters));
                }
            }
        }
        drop(st);
        self.settled.notify_all();
    }

    /// Wait until generation `generation` is settled; its error if its commit failed. `nudge`
    /// takes and lets go of the connection (whoever lets go with nobody queued commits), in case
    /// a wake-up was missed or a commit delay has passed with nobody left to commit.
    fn wait(&self, generation: u64, nudge: impl Fn()) -> Result<()> {
        let mut st = self.state();
        while st.settled < generation {
            let (s, timeout) = self
                .settled
                .wait_timeout(st, RECHECK.min(self.delay.max(Duration::from_millis(1))))
                .unwrap_or_else(|p| p.into_inner());
            st = s;
            if timeout.timed_out() && st.settled < generation {
                drop(st);
                nudge();
                st = self.state();
            }
        }
        let Some((e, left)) = st.failures.get_mut(&generation) else {
            return Ok(());
        };
        let err = KernelError::Storage(format!(
            "the commit of this write's group failed, so nothing it wrote was kept: {e}"
        ));
        *left -= 1;
        if *left == 0 {
            st.failures.remove(&generation);
        }
        Err(err)
    }

    fn stats(&self) -> GroupStats {
        GroupStats {
            writes: self.writes.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn count_alone(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.largest.fetch_max(1, Ordering::Relaxed);
    }
}

/// A board's part in its group (held in [`Board`], so under the connection mutex): the read
/// connection and the state of the call holding the connection.
pub(crate) struct Member {
    group: Arc<Group>,
    /// The board's file, for the read connection.
    path: std::path::PathBuf,
    /// The read connection, opened the first time a read meets an open group (`None`: it
    /// could not be opened; such a read commits the group first).
    read: std::cell::OnceCell<Option<Conn>>,
    /// Depth of `Board::write` calls on the stack (> 0 at release: a write panicked).
    depth: Cell<u32>,
    /// The holder came through [`SharedBoard::call`]: its writes join the group.
    grouping: Cell<bool>,
    /// Generations this call's writes joined (usually one).
    tickets: RefCell<Vec<u64>>,
}

impl Member {
    /// `Board::write` on a grouped board.
    pub(crate) fn write<T>(&self, conn: &Conn, body: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        if self.depth.get() > 0 {
            // A write inside a write: a savepoint of the outer one (as without groups).
            return db::write_txn(conn, body);
        }
        self.depth.set(1);
        let r = if self.grouping.get() {
            self.join(conn, body)
        } else {
            self.alone(conn, body)
        };
        self.depth.set(0);
        r
    }

    /// Join (or open) the group; the commit comes later, when the connection is let go.
    fn join<T>(&self, conn: &Conn, body: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        let opened = conn.is_autocommit();
        if opened {
            db::begin_immediate(conn)?;
            self.group.open();
        }
        let out = self.savepoint(conn, body);
        if out.is_ok() {
            self.group.joined(Some(&mut self.tickets.borrow_mut()));
        } else if opened {
            // A refusal that opened the group leaves it empty: end it now (a rollback, no
            // fsync) rather than hold the write lock for nothing.
            let _ = self.group.commit(conn);
        }
        out
    }

    /// An ungrouped write: its own transaction, or — with a group open — a savepoint of it,
    /// committed (with the group) before returning.
    fn alone<T>(&self, conn: &Conn, body: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        if conn.is_autocommit() {
            let r = db::write_txn(conn, body);
            if r.is_ok() {
                self.group.count_alone();
            }
            return r;
        }
        let out = self.savepoint(conn, body);
        if out.is_ok() {
            self.group.joined(None);
        }
        self.group.commit(conn).and(out)
    }

    /// `body` as a savepoint of the open group's transaction.
    fn savepoint<T>(&self, conn: &Conn, body: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        let out = db::write_txn(conn, body);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk): every
            // member's work is gone, and each of them is told.
            let why = match &out {
                Err(e) => e.to_string(),
                Ok(_) => "the transaction was rolled back".to_string(),
            };
            self.group.settle(Err(why.clone()));
            return Err(KernelError::Storage(format!(
                "the group's transaction was rolled back: {why}"
            )));
        }
        out
    }

    /// The connection plain reads use: the read connection while a group is open that this
    /// call has not written to, else the board's.
    pub(crate) fn reader<'c>(&'c self, conn: &'c Conn) -> &'c Conn {
        // (The board's connection may be in a plain read transaction: no group then.)
        let open = self.group.state().open.is_some();
        if !open || self.depth.get() > 0 || !self.tickets.borrow().is_empty() {
            return conn;
        }
        let read = self.read.get_or_init(|| match db::open_reader(&self.path) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "no read connection on {} ({e}): reads commit the open group first",
                    self.path.display()
                );
                None
            }
        });
        match read {
            Some(r) => r,
            None => {
                // Its members wait for this commit anyway; an error reaches them.
                let _ = self.group.commit(conn);
                conn
            }
        }
    }

    /// The holder lets go of the connection: commit when due; a write that panicked midway
    /// fails its group.
    fn release(&self, conn: &Conn) {
        self.grouping.set(false);
        self.tickets.borrow_mut().clear();
        if self.depth.replace(0) != 0 {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.group
                .settle(Err("an operation in the group panicked".to_string()));
            return;
        }
        if self.group.due()
            && let Err(e) = self.group.commit(conn)
        {
            tracing::error!("group commit failed: {e}");
        }
    }
}

struct Shared {
    board: Mutex<Board>,
    group: Option<Arc<Group>>,
}

/// An open board shared by the threads of one process. [`SharedBoard::call`] runs one kernel
/// call with its writes group-committed; [`SharedBoard::lock`] holds the board for a longer
/// stretch (a dispatcher tick) with every write committed on its own. Never hold either
/// across a network round trip.
#[derive(Clone)]
pub struct SharedBoard(Arc<Shared>);

/// The board held by one thread ([`SharedBoard::lock`]); letting go may commit the open group.
pub struct BoardGuard<'a> {
    board: Option<MutexGuard<'a, Board>>,
}

impl Deref for BoardGuard<'_> {
    type Target = Board;
    fn deref(&self) -> &Board {
        self.board.as_ref().expect("held until drop")
    }
}

impl DerefMut for BoardGuard<'_> {
    fn deref_mut(&mut self) -> &mut Board {
        self.board.as_mut().expect("held until drop")
    }
}

impl Drop for BoardGuard<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.board.take()
            && let (Some(m), super::Store::Sqlite(c)) = (&b.group, &b.store)
        {
            m.release(c);
        }
    }
}

/// Whether `HERMES_KANBAN_GROUP_COMMIT` leaves grouping on (anything but `0`/`off`/`false`).
fn grouping_enabled(board: &Board) -> bool {
    !board
        .env()
        .get("HERMES_KANBAN_GROUP_COMMIT")
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| matches!(v.as_str(), "0" | "off" | "false" | "no"))
}

impl SharedBoard {
    /// Share `board`; a SQLite board in WAL mode gets group commit.
    pub(crate) fn new(mut board: Board) -> SharedBoard {
        let mut group = None;
        // WAL only: there the read connection never waits for the group's writer. (In a
        // rollback journal a writer that spills its cache takes the exclusive lock mid-group,
        // and a read on the second connection would then wait for this very thread.)
        if board.group.is_none() && board.journal().mode == "wal" && grouping_enabled(&board) {
            let delay = board
                .env()
                .positive_i64("HERMES_KANBAN_GROUP_COMMIT_DELAY_MS")
                .map_or(Duration::ZERO, |ms| {
                    Duration::from_millis(ms.min(1000) as u64)
                });
            let g = Arc::new(Group::new(delay));
            board.group = Some(Member {
                group: g.clone(),
                path: board.paths().db.clone(),
                read: std::cell::OnceCell::new(),
                depth: Cell::new(0),
                grouping: Cell::new(false),
                tickets: RefCell::new(Vec::new()),
            });
            group = Some(g);
        }
        SharedBoard(Arc::new(Shared {
            board: Mutex::new(board),
            group,
        }))
    }

    /// The board, for a stretch of calls; each write commits before it returns. A panic in an
    /// earlier holder does not poison it: every kernel call is one transaction, so a half-done
    /// call left nothing behind.
    pub fn lock(&self) -> BoardGuard<'_> {
        let group = self.0.group.as_deref();
        if let Some(g) = group {
            g.queued.fetch_add(1, Ordering::SeqCst);
        }
        let board = self.0.board.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = group {
            g.queued.fetch_sub(1, Ordering::SeqCst);
        }
        BoardGuard { board: Some(board) }
    }

    /// Run one call on the board with its writes group-committed: it returns once the commit
    /// that holds them is on disk, or with that commit's error (then nothing it wrote was
    /// kept). Its refusals are its own: they roll back only its own writes.
    pub fn call<T, E: From<KernelError>>(
        &self,
        f: impl FnOnce(&Board) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let guard = self.lock();
        let (Some(group), Some(member)) = (self.0.group.as_deref(), guard.group.as_ref()) else {
            return f(&guard);
        };
        member.grouping.set(true);
        let out = f(&guard);
        let tickets = std::mem::take(&mut *member.tickets.borrow_mut());
        drop(guard);
        for generation in tickets {
            group.wait(generation, || drop(self.lock()))?;
        }
        out
    }

    /// Whether two handles are the same open board (the same connection).
    pub fn same(&self, other: &SharedBoard) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// What group commit has done on this handle (`None`: not grouped — PostgreSQL, a board
    /// not in WAL mode, or `HERMES_KANBAN_GROUP_COMMIT=0`).
    pub fn group_stats(&self) -> Option<GroupStats> {
        self.0.group.as_ref().map(|g| g.stats())
    }
}

impl std::fmt::Debug for SharedBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedBoard").finish_non_exhaustive()
    }
}

impl Board {
    /// What group commit has done on this board's shared handle (`None` when the board is not
    /// grouped: a one-shot process, PostgreSQL, a board not in WAL mode,
    /// `HERMES_KANBAN_GROUP_COMMIT=0`).
    pub fn group_commit_stats(&self) -> Option<GroupStats> {
        self.group.as_ref().map(|m| m.group.stats())
    }
}

#[cfg(test)]
impl Board {
    fn sqlite_conn(&self) -> &Conn {
        match &self.store {
            super::Store::Sqlite(c) => c,
            _ => panic!("not a SQLite board"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::kernel::{Env, Kanban, KernelError, NewTask};

    fn home() -> (tempfile::TempDir, Kanban) {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::empty()
            .with("HERMES_HOME", dir.path().to_string_lossy())
            .with("HOME", dir.path().to_string_lossy());
        (dir, Kanban::sqlite(env))
    }

    fn task(b: &super::SharedBoard, title: &str) -> String {
        let new = NewTask {
            title: title.into(),
            ..Default::default()
        };
        b.call(|b| b.create_task(new)).unwrap().task.id
    }

    #[test]
    fn concurrent_calls_share_commits_and_a_refusal_changes_only_itself() {
        let (_d, k) = home();
        let (b, _) = k.board_or_create(None).unwrap();
        let ids: Vec<String> = (0..8).map(|i| task(&b, &format!("t{i}"))).collect();
        let before = b.group_stats().expect("a shared SQLite board is grouped");
        let threads: Vec<_> = ids
            .iter()
            .cloned()
            .enumerate()
            .map(|(t, id)| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..40 {
                        let body = format!("w{t}-{i}");
                        if i % 4 == 3 {
                            // Refused inside its savepoint: the task does not exist.
                            let e = b.call(|b| b.add_comment("t_nope", "w", &body)).unwrap_err();
                            assert!(matches!(e, KernelError::TaskNotFound(_)), "{e}");
                        } else {
                            b.call(|b| b.add_comment(&id, "w", &body)).unwrap();
                            kept.push(body);
                        }
                    }
                    kept
                })
            })
            .collect();
        let kept: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        // Read through a fresh, ungrouped connection: what is on disk.
        let disk = crate::kernel::Board::open_file(&k.paths("default").db).unwrap();
        for (id, kept) in ids.iter().zip(&kept) {
            let got: Vec<String> = disk
                .list_comments(id)
                .unwrap()
                .into_iter()
                .map(|c| c.body)
                .collect();
            assert_eq!(
                &got, kept,
                "every accepted comment landed, in order, and only those"
            );
        }
        let s = b.group_stats().unwrap();
        let writes = s.writes - before.writes;
        let commits = s.commits - before.commits;
        assert_eq!(writes, 8 * 30, "{s:?}");
        assert!(
            commits < writes,
            "concurrent writers must share commits: {s:?}"
        );
        assert!(s.largest > 1 && s.failed == 0, "{s:?}");
        assert_eq!(disk.check_invariants().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn reads_outside_the_group_see_only_committed_state_and_a_call_sees_its_own() {
        let (_d, k) = home();
        let (b, _) = k.board_or_create(None).unwrap();
        let id = task(&b, "seen");
        let g = b.lock();
        let m = g.group.as_ref().unwrap();
        // A grouped call writes; its group stays open while the connection is held.
        m.grouping.set(true);
        let c = g.add_comment(&id, "w", "pending").unwrap();
        assert!(
            !g.sqlite_conn().is_autocommit(),
            "the group's transaction is open"
        );
        assert_eq!(
            g.list_comments(&id).unwrap().len(),
            1,
            "a call reads its own write"
        );
        // Another call holding the connection now (no write of its own) reads committed state.
        let tickets = std::mem::take(&mut *m.tickets.borrow_mut());
        m.grouping.set(false);
        assert!(
            g.list_comments(&id).unwrap().is_empty(),
            "uncommitted: not visible"
        );
        assert_eq!(g.get_task(&id).unwrap().title, "seen");
        drop(g); // nobody queued: the group commits
        let group = b.0.group.as_ref().unwrap();
        for t in tickets {
            group.wait(t, || ()).unwrap();
        }
        let g = b.lock();
        assert_eq!(g.list_comments(&id).unwrap()[0].id, c);
        assert!(g.sqlite_conn().is_autocommit());
    }

    #[test]
    fn an_ungrouped_write_commits_the_open_group_with_it() {
        let (_d, k) = home();
        let (b, _) = k.board_or_create(None).unwrap();
        let id = task(&b, "x");
        let g = b.lock();
        let m = g.group.as_ref().unwrap();
        m.grouping.set(true);
        g.add_comment(&id, "w", "grouped").unwrap();
        let tickets = std::mem::take(&mut *m.tickets.borrow_mut());
        m.grouping.set(false);
        // A `lock()` holder's write (the dispatcher's): committed before it returns.
        g.add_comment(&id, "d", "alone").unwrap();
        assert!(
            g.sqlite_conn().is_autocommit(),
            "the group committed with the ungrouped write"
        );
        let group = b.0.group.clone().unwrap();
        drop(g);
        for t in tickets {
            group.wait(t, || ()).unwrap();
        }
        let disk = crate::kernel::Board::open_file(&k.paths("default").db).unwrap();
        assert_eq!(disk.list_comments(&id).unwrap().len(), 2);
    }

    #[test]
    fn grouping_can_be_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::empty()
            .with("HERMES_HOME", dir.path().to_string_lossy())
            .with("HOME", dir.path().to_string_lossy())
            .with("HERMES_KANBAN_GROUP_COMMIT", "0");
        let (b, _) = Kanban::sqlite(env).board_or_create(None).unwrap();
        assert!(b.group_stats().is_none());
        task(&b, "plain");
    }
}
