//! The CLI fixture: [`Cli`] runs the real `hermes-kanban` binary on a temp HERMES_HOME and
//! inspects exit code, stdout and stderr ([`Run`]); its teardown runs the invariant checker on
//! every board of the home. On PostgreSQL every child gets the fixture's database in
//! `HERMES_KANBAN_DATABASE_URL` (see [`super::backend`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use super::backend::{DATABASE_URL_VAR, TestDb};

/// A temp HERMES_HOME and a way to run the binary in it.
pub struct Cli {
    pub dir: TempDir,
    pub extra_env: Vec<(String, String)>,
    /// Whether the teardown checks the invariants (see [`Cli::skip_invariant_check`]).
    check_on_drop: bool,
    /// The fixture's PostgreSQL database (dropped last), `None` on SQLite.
    pub pg: Option<TestDb>,
}

/// The result of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Assert exit 0 and return stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
    /// Assert exit `code`.
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    /// Parse stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl Cli {
    pub fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().expect("tempdir"),
            extra_env: vec![],
            check_on_drop: true,
            pg: TestDb::for_fixture(),
        }
    }

    /// For a test whose board is deliberately not a healthy kanban DB at its end (a corrupt
    /// or foreign file): its teardown does not open it for the invariant check.
    pub fn skip_invariant_check(&mut self) {
        self.check_on_drop = false;
    }

    /// The kernel's view of this home: `HOME`, `HERMES_HOME` and [`Cli::extra_env`], as the
    /// binary sees them.
    pub fn env(&self) -> hermes_kanban::kernel::Env {
        let mut env = super::board::fixture_env(self.dir.path(), self.pg.as_ref());
        for (k, v) in &self.extra_env {
            env = env.with(k, v);
        }
        env
    }

    /// The HERMES_HOME directory.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("hermes")
    }

    /// The default board's DB file (SQLite; on PostgreSQL the board lives in [`Cli::pg`]).
    pub fn db(&self) -> PathBuf {
        self.home().join("kanban.db")
    }

    /// A Command for the binary with a clean, isolated environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hermes-kanban"));
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("HERMES_HOME", self.home())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        if let Some(db) = &self.pg {
            c.env(DATABASE_URL_VAR, &db.url);
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Run and capture.
    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.cmd(args).output().expect("run hermes-kanban");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run with extra env vars.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run hermes-kanban");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `create <title> --assignee <a> [extra…] --json` → id.
    pub fn create(&self, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", title, "--json"];
        args.extend_from_slice(extra);
        self.run(&args).json()["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Whether the board `slug` has a database, on either backend (nothing is created).
    pub fn has_board(&self, slug: &str) -> bool {
        super::board::board_exists(&self.env(), slug)
    }

    /// Open the board with the kernel (for invariant checks) — only between CLI runs.
    pub fn board(&self) -> hermes_kanban::kernel::Board {
        super::board::open_board(&self.env(), None)
    }

    /// Assert the kernel invariants on the default board.
    pub fn assert_invariants(&self) {
        let v = self.board().check_invariants().expect("invariants");
        assert!(v.is_empty(), "invariants violated: {v:#?}");
    }
}

impl Drop for Cli {
    /// Every CLI scenario ends with the invariant check on every board of its home (unless
    /// the test already failed or opted out with [`Cli::skip_invariant_check`]).
    fn drop(&mut self) {
        if self.check_on_drop && !std::thread::panicking() {
            super::board::check_home(&self.env());
        }
    }
}

/// True if `p` exists.
pub fn exists(p: &Path) -> bool {
    p.exists()
}
