//! The one backend switch of the integration tests. `HK_TEST_DATABASE_URL` unset: every
//! fixture keeps its boards in SQLite files under its temp home, as always. Set (to a
//! PostgreSQL admin URL, e.g. what `scripts/pg start` prints): every fixture creates a fresh
//! database ([`TestDb`]: `CREATE DATABASE`, dropped when the fixture is dropped) and reaches
//! it through `HERMES_KANBAN_DATABASE_URL` — in the kernel [`Env`] it builds and in the
//! environment of every child process (the `Cli` helper, `serve`, `daemon`, workers).
//!
//! Tests that are SQLite by nature (they open the file with rusqlite, count fsyncs, look at
//! WAL files or interoperate with Hermes over its file) start with [`sqlite_only!`], which
//! returns early on PostgreSQL (saying so on stderr); they still run on SQLite. Tests that
//! only make sense on PostgreSQL (`tests/it/pg/`) start with [`postgres_only!`].
//!
//! Databases are created and dropped with `psql` (the client of the same Debian package as
//! the server scripts/pg runs). Migrating a board's schema costs far more than copying a
//! database, so a fixture that opens the default board at once ([`super::TestBoard`]) copies
//! a template that already holds it ([`template`]: migrated once per test process with
//! `CREATE DATABASE … TEMPLATE`); the others start from an empty database, as a user does.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hermes_kanban::kernel::Env;

/// The variable naming the PostgreSQL admin URL the tests run against.
pub const TEST_URL_VAR: &str = "HK_TEST_DATABASE_URL";
/// The variable the binary and the kernel read the database URL from.
pub const DATABASE_URL_VAR: &str = "HERMES_KANBAN_DATABASE_URL";

/// The admin URL when the suite runs on PostgreSQL.
pub fn admin_url() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var(TEST_URL_VAR)
            .ok()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
    })
    .as_deref()
}

/// Whether this run's fixtures live on PostgreSQL.
pub fn on_postgres() -> bool {
    admin_url().is_some()
}

/// Skip the rest of a test that is SQLite by nature when the suite runs on PostgreSQL (it
/// still runs on SQLite). The reason is printed: `sqlite_only!("opens the file with
/// rusqlite");`.
macro_rules! sqlite_only {
    ($why:expr) => {
        if $crate::helpers::backend::skip_on_postgres($why) {
            return;
        }
    };
}

/// Skip the rest of a test that only makes sense on PostgreSQL when the suite runs on
/// SQLite (scripts/test runs it with a server).
macro_rules! postgres_only {
    ($why:expr) => {
        if $crate::helpers::backend::skip_on_sqlite($why) {
            return;
        }
    };
}

/// [`sqlite_only!`]'s test: true (and a note on stderr) on PostgreSQL.
pub fn skip_on_postgres(why: &str) -> bool {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: SQLite by nature ({why})");
    }
    on_postgres()
}

/// [`postgres_only!`]'s test: true (and a note on stderr) without a server.
pub fn skip_on_sqlite(why: &str) -> bool {
    if !on_postgres() {
        eprintln!("skipped: needs PostgreSQL ({why}); set {TEST_URL_VAR} (scripts/pg start)");
    }
    !on_postgres()
}

/// `psql`: on PATH, else the newest Debian install.
fn psql() -> PathBuf {
    static PSQL: OnceLock<PathBuf> = OnceLock::new();
    PSQL.get_or_init(|| {
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("psql"))
                .find(|f| f.is_file())
        });
        on_path.unwrap_or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin/psql"))
                .filter(|f| f.is_file())
                .collect();
            found.sort();
            found
                .pop()
                .expect("psql not found (apt-get install postgresql-client)")
        })
    })
    .clone()
}

/// Run one SQL statement as the admin; panic with psql's error.
pub fn admin_sql(sql: &str) -> String {
    run_psql(
        admin_url().expect("admin_sql needs HK_TEST_DATABASE_URL"),
        sql,
    )
}

/// Run one SQL statement on the database `url` names; panic with psql's error.
fn run_psql(url: &str, sql: &str) -> String {
    let out = Command::new(psql())
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `url` with its database (the path after host:port) replaced by `db`.
pub fn url_with_db(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL has a scheme");
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{scheme}://{authority}/{db}{query}")
}

/// A fresh PostgreSQL database for one fixture, dropped (with any connection still open to
/// it) when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A new database when the suite runs on PostgreSQL; `None` on SQLite.
    pub fn for_fixture() -> Option<TestDb> {
        admin_url().map(|_| TestDb::create())
    }

    /// A copy of the template database `template` when the suite runs on PostgreSQL.
    pub fn from_template(template: impl FnOnce() -> &'static str) -> Option<TestDb> {
        admin_url().map(|_| TestDb::create_as(Some(template())))
    }

    /// Create a new, empty database (on PostgreSQL only).
    pub fn create() -> TestDb {
        TestDb::create_as(None)
    }

    /// Create a new database: empty, or a copy of `template`.
    fn create_as(template: Option<&str>) -> TestDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "hk_t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        match template {
            Some(t) => admin_sql(&format!("CREATE DATABASE {name} TEMPLATE {t}")),
            None => admin_sql(&format!("CREATE DATABASE {name}")),
        };
        let url = url_with_db(admin_url().unwrap(), &name);
        TestDb { name, url }
    }

    /// Run one SQL statement in this database as the admin (a hand edit no front door makes);
    /// the board's tables are in its schema, e.g. `board_default.tasks`.
    pub fn sql(&self, sql: &str) -> String {
        run_psql(&self.url, sql)
    }

    /// How many sessions the processes under test hold on this database: client backends
    /// only (an autovacuum worker visits a busy database now and then), and not psql's — this
    /// one's, nor an earlier call's whose backend may still be exiting on a loaded machine.
    pub fn sessions(&self) -> usize {
        self.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
             AND application_name IS DISTINCT FROM 'psql'",
        )
        .parse()
        .unwrap()
    }

    /// `env` pointed at this database.
    pub fn apply(&self, env: Env) -> Env {
        env.with(DATABASE_URL_VAR, &self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let url = admin_url().unwrap_or_default();
        let ok = Command::new(psql())
            .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &sql])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok && !std::thread::panicking() {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// The template database `hk_tpl_<pid>_<tag>` of this test process, made once by `fill` (given
/// its URL; it must close every connection it opens, or no copy can be made), and its name.
/// Templates and test databases that earlier, killed test processes left behind are dropped
/// first; a template outlives its process until the next run or `scripts/pg stop`.
pub fn template(tag: &str, fill: impl FnOnce(&str)) -> String {
    drop_leftovers();
    let name = format!("hk_tpl_{}_{tag}", std::process::id());
    admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    admin_sql(&format!("CREATE DATABASE {name}"));
    fill(&url_with_db(
        admin_url().expect("template needs PostgreSQL"),
        &name,
    ));
    name
}

/// Drop the `hk_t_<pid>_*` / `hk_tpl_<pid>_*` databases whose test process no longer runs.
fn drop_leftovers() {
    let names = admin_sql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'hk\\_t\\_%' \
         OR datname LIKE 'hk\\_tpl\\_%'",
    );
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if pid.is_some() && !alive {
            admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `env` with the fixture's database URL when it has one.
pub fn with_db(env: Env, db: Option<&TestDb>) -> Env {
    match db {
        Some(db) => db.apply(env),
        None => env,
    }
}
