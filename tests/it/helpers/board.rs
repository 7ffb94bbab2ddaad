//! The kernel fixture: [`TestBoard`], a temp home with an open board and a clock the test
//! controls, its task factories, and the invariant check every fixture's teardown runs
//! ([`check_home`]: every board of a temp home, SPEC §3.3 fix 5). On PostgreSQL
//! (`HK_TEST_DATABASE_URL`, see [`super::backend`]) the boards live in the fixture's own
//! database instead of the temp home's files.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use hermes_kanban::kernel::{Board, BoardPaths, Env, Kanban, NewTask, OpenMode, list_boards};
use tempfile::TempDir;

use super::backend::{DATABASE_URL_VAR, TestDb, template, with_db};

/// The environment of a temp home rooted at `dir`: `HOME=dir`, `HERMES_HOME=dir/hermes` (what
/// every fixture and the binary under test see). On PostgreSQL a fixture adds its database
/// with [`fixture_env`].
pub fn home_env(dir: &Path) -> Env {
    Env::empty()
        .with("HOME", dir.to_string_lossy())
        .with("HERMES_HOME", dir.join("hermes").to_string_lossy())
}

/// The environment of a fixture's temp home `dir` whose boards live in `db` (PostgreSQL) or
/// under `dir` (SQLite, `db` is `None`).
pub fn fixture_env(dir: &Path, db: Option<&TestDb>) -> Env {
    with_db(home_env(dir), db)
}

/// The home handle a front door opens for `env` (its database URL, else its files).
pub fn home(env: &Env) -> Kanban {
    Kanban::open(env, None).unwrap_or_else(|e| panic!("open the home: {e}"))
}

/// Open (creating when missing) the board `slug` of the home `env` describes — in its
/// database when `env` names one, else under its files — the way a front door does
/// (`Kanban::open`).
pub fn open_board(env: &Env, slug: Option<&str>) -> Board {
    Kanban::open(env, None)
        .and_then(|home| home.open_board(slug, OpenMode::Create))
        .map(|(board, _)| board)
        .unwrap_or_else(|e| panic!("open board {slug:?}: {e}"))
}

/// The template database holding what [`open_board`] creates for the default board of an
/// empty database (the registry and the migrated `board_default` schema), made once per test
/// process (see [`super::backend::template`]).
fn default_board_template() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        template("default_board", |url| {
            let dir = tempfile::tempdir().expect("tempdir");
            let env = home_env(dir.path()).with(DATABASE_URL_VAR, url);
            drop(open_board(&env, None));
        })
    })
}

/// Whether the board `slug` of the home `env` describes has a database (on SQLite its file
/// exists; on PostgreSQL its schema is there) — without creating anything.
pub fn board_exists(env: &Env, slug: &str) -> bool {
    let home = Kanban::open(env, None).unwrap_or_else(|e| panic!("open the home: {e}"));
    let listed = home
        .list(true)
        .unwrap_or_else(|e| panic!("list the boards: {e}"))
        .iter()
        .any(|b| b.meta.slug == slug);
    if !listed {
        return false;
    }
    match home.open_board(Some(slug), OpenMode::Existing) {
        Ok(_) => true,
        Err(hermes_kanban::kernel::KernelError::NoDatabase { .. }) => false,
        Err(e) => panic!("board_exists({slug}): {e}"),
    }
}

/// A temp home and, on PostgreSQL, the fixture's own database: what a fixture that is not
/// one of the helpers' (an area's own `Fx`) holds to follow the backend switch. Its `Drop`
/// runs the invariant check on every board, then drops the database.
pub struct TestHome {
    pub dir: TempDir,
    pub env: Env,
    pub db: Option<TestDb>,
}

impl TestHome {
    pub fn new() -> TestHome {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDb::for_fixture();
        let env = fixture_env(dir.path(), db.as_ref());
        TestHome { dir, env, db }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            check_home(&self.env);
        }
    }
}

/// A board on a fresh temp HERMES_HOME, with a clock the test controls.
pub struct TestBoard {
    pub dir: TempDir,
    pub env: Env,
    pub board: Board,
    pub clock: Arc<AtomicI64>,
    /// The fixture's PostgreSQL database (dropped last), `None` on SQLite.
    pub pg: Option<TestDb>,
}

impl TestBoard {
    pub fn new() -> TestBoard {
        let dir = tempfile::tempdir().expect("tempdir");
        // It opens (creates) the default board at once: copy a database that holds it.
        let pg = TestDb::from_template(default_board_template);
        let env = fixture_env(dir.path(), pg.as_ref());
        let mut board = open_board(&env, None);
        let clock = Arc::new(AtomicI64::new(1_800_000_000));
        let c = clock.clone();
        board.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        board.set_claimer("testhost:4242");
        TestBoard {
            dir,
            env,
            board,
            clock,
            pg,
        }
    }

    /// Advance the clock by `secs`.
    pub fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Create a task with a title and assignee, panicking on error.
    pub fn task(&self, title: &str) -> String {
        self.board
            .create_task(NewTask {
                title: title.into(),
                assignee: Some("worker".into()),
                ..Default::default()
            })
            .expect("create")
            .task
            .id
    }

    /// Create a child of `parents`.
    pub fn child(&self, title: &str, parents: &[&str]) -> String {
        self.board
            .create_task(NewTask {
                title: title.into(),
                assignee: Some("worker".into()),
                parents: parents.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .expect("create child")
            .task
            .id
    }
}

impl Drop for TestBoard {
    /// Every scenario ends with the invariant check (SPEC §3.3 fix 5), on this board and on
    /// any other board the test created in the same home.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        assert_invariants(&self.board);
        check_home(&self.env);
    }
}

/// Run the kernel's invariant checker on every board of the home `env` points at (the
/// default board and every board under `boards/`, or every board of its PostgreSQL database)
/// whose database exists, and panic naming the board and each violation. A home without any
/// database passes; nothing is created. Called by every fixture's teardown (skipped when the
/// test already panicked).
pub fn check_home(env: &Env) {
    if env.get(DATABASE_URL_VAR).is_some() {
        return check_database(env);
    }
    let mut dbs = vec![BoardPaths::resolve(env, "default").db];
    if let Ok(boards) = list_boards(env, true) {
        dbs.extend(boards.into_iter().map(|b| b.db_path));
    }
    dbs.sort();
    dbs.dedup();
    for db in dbs.into_iter().filter(|d| d.exists()) {
        let board = Board::open_paths(env, BoardPaths::for_db_file(&db)).unwrap_or_else(|e| {
            panic!(
                "teardown: cannot open {} to check invariants: {e}",
                db.display()
            )
        });
        let v = board.check_invariants().unwrap_or_else(|e| {
            panic!(
                "teardown: invariant checker failed on {}: {e}",
                db.display()
            )
        });
        assert!(
            v.is_empty(),
            "invariants violated on {}: {v:#?}",
            db.display()
        );
    }
}

/// [`check_home`] for a home whose boards live in a PostgreSQL database: every board the
/// database lists, opened without creating anything.
fn check_database(env: &Env) {
    let home = Kanban::open(env, None)
        .unwrap_or_else(|e| panic!("teardown: cannot open the test database: {e}"));
    let boards = home
        .list(true)
        .unwrap_or_else(|e| panic!("teardown: cannot list the boards: {e}"));
    for entry in boards {
        let slug = entry.meta.slug.clone();
        let board = match home.open_board(Some(&slug), OpenMode::Existing) {
            Ok((b, _)) => b,
            Err(hermes_kanban::kernel::KernelError::NoDatabase { .. }) => continue,
            Err(e) => panic!("teardown: cannot open board {slug} to check invariants: {e}"),
        };
        let v = board
            .check_invariants()
            .unwrap_or_else(|e| panic!("teardown: invariant checker failed on {slug}: {e}"));
        assert!(v.is_empty(), "invariants violated on board {slug}: {v:#?}");
    }
}

/// Assert the board's invariants hold.
pub fn assert_invariants(board: &Board) {
    let v = board.check_invariants().expect("check invariants");
    assert!(v.is_empty(), "invariants violated: {v:#?}");
}
