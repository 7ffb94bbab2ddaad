//! Helpers for CLI integration tests: run the real `hermes-kanban` binary on a temp
//! HERMES_HOME and inspect exit code, stdout and stderr.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// A temp HERMES_HOME and a way to run the binary in it.
pub struct Cli {
    pub dir: TempDir,
    pub extra_env: Vec<(String, String)>,
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
        }
    }

    /// The HERMES_HOME directory.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("hermes")
    }

    /// The default board's DB.
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

    /// Open the board with the kernel (for invariant checks) — only between CLI runs.
    pub fn board(&self) -> hermes_kanban::kernel::Board {
        let env = hermes_kanban::kernel::Env::empty()
            .with("HOME", self.dir.path().to_string_lossy())
            .with("HERMES_HOME", self.home().to_string_lossy());
        hermes_kanban::kernel::Board::open(&env, None).expect("open board")
    }

    /// Assert the kernel invariants on the default board.
    pub fn assert_invariants(&self) {
        let v = self.board().check_invariants().expect("invariants");
        assert!(v.is_empty(), "invariants violated: {v:#?}");
    }
}

/// True if `p` exists.
pub fn exists(p: &Path) -> bool {
    p.exists()
}
