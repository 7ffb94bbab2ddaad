//! Starting a worker (REF §10, SPEC §6.2–§6.3): which program and argv (`hermes -p <assignee>
//! --skills kanban-worker [--skills <s>]… chat -q "work kanban task <id>"` with `hermes` from
//! `HERMES_BIN` or `PATH`, or a `kanban.worker_command` template), the worker's environment
//! (REF §10.2 plus the per-run `HERMES_KANBAN_TOKEN`), the per-task log file with rotation, and
//! launching the supervisor (`hermes-kanban supervise`, a hidden verb) in a new session with the
//! log as stdout/stderr and a pipe on stdin that carries the "go" once the dispatcher has
//! recorded its pid.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};

use super::config::WorkerCommands;
use crate::kernel::{Env, Task, hermes_root};

/// The prompt a worker starts from.
pub fn prompt(task_id: &str) -> String {
    format!("work kanban task {task_id}")
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolve a program: a path (containing `/`; relative paths are taken from the current
/// directory) must be an executable file; a bare name is looked up on `PATH` (never in the
/// current directory).
pub fn resolve_program(spec: &str, env: &Env) -> Result<PathBuf, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty program name".into());
    }
    if spec.contains('/') {
        let p = env.expand_tilde(spec);
        let p = if p.is_absolute() {
            p
        } else {
            std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
        };
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("{} is not an executable file", p.display()))
        };
    }
    for dir in env.get("PATH").unwrap_or("").split(':') {
        if dir.is_empty() || !Path::new(dir).is_absolute() {
            continue;
        }
        let p = Path::new(dir).join(spec);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err(format!("`{spec}` executable not found on PATH"))
}

/// The `hermes` binary: `$HERMES_BIN` (path or bare name), else `hermes` on `PATH`.
pub fn hermes_bin(env: &Env) -> Result<PathBuf, String> {
    match env.get("HERMES_BIN") {
        Some(b) => resolve_program(b, env).map_err(|e| {
            format!("HERMES_BIN={b}: {e} (point it at the hermes executable, or configure kanban.worker_command)")
        }),
        None => resolve_program("hermes", env).map_err(|_| {
            "`hermes` executable not found on PATH (install hermes-agent, set HERMES_BIN to its path, or configure kanban.worker_command)".to_string()
        }),
    }
}

/// What a worker is started with.
#[derive(Debug, Clone)]
pub struct WorkerSpec<'a> {
    pub task: &'a Task,
    pub assignee: &'a str,
    pub board: &'a str,
    pub workspace: &'a Path,
    pub run_id: i64,
}

/// The worker argv: the assignee's `worker_command` template with placeholders filled, or the
/// default `hermes` command line. The program is resolved to an absolute path.
pub fn build_argv(
    spec: &WorkerSpec<'_>,
    commands: &WorkerCommands,
    env: &Env,
) -> Result<Vec<String>, String> {
    let task_id = spec.task.id.as_str();
    if let Some(tpl) = commands.for_assignee(spec.assignee) {
        let ws = spec.workspace.to_string_lossy();
        let run = spec.run_id.to_string();
        let p = prompt(task_id);
        let mut argv: Vec<String> = tpl
            .iter()
            .map(|a| {
                a.replace("{task_id}", task_id)
                    .replace("{assignee}", spec.assignee)
                    .replace("{board}", spec.board)
                    .replace("{workspace}", &ws)
                    .replace("{run_id}", &run)
                    .replace("{prompt}", &p)
            })
            .collect();
        let prog = resolve_program(&argv[0], env)
            .map_err(|e| format!("kanban.worker_command for {}: {e}", spec.assignee))?;
        argv[0] = prog.to_string_lossy().into_owned();
        return Ok(argv);
    }
    let bin = hermes_bin(env)?;
    let mut argv = vec![
        bin.to_string_lossy().into_owned(),
        "-p".into(),
        spec.assignee.into(),
        "--skills".into(),
        "kanban-worker".into(),
    ];
    for s in &spec.task.skills {
        if s != "kanban-worker" {
            argv.push("--skills".into());
            argv.push(s.clone());
        }
    }
    if let Some(m) = spec
        .task
        .model_override
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        argv.push("-m".into());
        argv.push(m.into());
    }
    argv.extend(["chat".into(), "-q".into(), prompt(task_id)]);
    if spec.task.goal_mode {
        argv.push("-Q".into());
    }
    Ok(argv)
}

/// Where the worker's board lives, pinned in its environment.
#[derive(Debug, Clone)]
pub struct BoardPins<'a> {
    pub slug: &'a str,
    pub db: &'a Path,
    pub workspaces_root: &'a Path,
}

/// The worker's environment (REF §10.2): a copy of the dispatcher's, plus the task, run, claim
/// and board pins, the profile's `HERMES_HOME`, the run token, and `TERMINAL_TIMEOUT` raised to
/// fit the max runtime.
pub fn worker_env(
    env: &Env,
    spec: &WorkerSpec<'_>,
    branch: Option<&str>,
    claim_lock: &str,
    token: &str,
    pins: &BoardPins<'_>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = env
        .vars()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.remove("HERMES_TUI");
    let root = hermes_root(env);
    let profile_home = if spec.assignee == "default" {
        root.clone()
    } else {
        root.join("profiles").join(spec.assignee)
    };
    if profile_home.is_dir() {
        out.insert(
            "HERMES_HOME".into(),
            profile_home.to_string_lossy().into_owned(),
        );
    }
    let t = spec.task;
    if let Some(tenant) = t.tenant.as_deref().filter(|s| !s.is_empty()) {
        out.insert("HERMES_TENANT".into(), tenant.into());
    }
    let ws = spec.workspace.to_string_lossy().into_owned();
    out.insert("HERMES_KANBAN_TASK".into(), t.id.clone());
    out.insert("HERMES_KANBAN_WORKSPACE".into(), ws.clone());
    if spec.workspace.is_absolute() && spec.workspace.is_dir() {
        out.insert("TERMINAL_CWD".into(), ws);
    }
    if let Some(b) = branch {
        out.insert("HERMES_KANBAN_BRANCH".into(), b.into());
    }
    out.insert("HERMES_KANBAN_RUN_ID".into(), spec.run_id.to_string());
    out.insert("HERMES_KANBAN_CLAIM_LOCK".into(), claim_lock.into());
    out.insert("HERMES_KANBAN_TOKEN".into(), token.into());
    if t.goal_mode {
        out.insert("HERMES_KANBAN_GOAL_MODE".into(), "1".into());
        if let Some(n) = t.goal_max_turns {
            out.insert("HERMES_KANBAN_GOAL_MAX_TURNS".into(), n.to_string());
        }
    }
    if let Some(limit) = t.max_runtime_seconds {
        let want = limit - 30;
        for key in ["TERMINAL_TIMEOUT", "TERMINAL_MAX_FOREGROUND_TIMEOUT"] {
            let have = out.get(key).and_then(|v| v.trim().parse::<i64>().ok());
            if want > 0 && have.is_none_or(|h| want > h) {
                out.insert(key.into(), want.to_string());
            }
        }
    }
    out.insert(
        "HERMES_KANBAN_DB".into(),
        pins.db.to_string_lossy().into_owned(),
    );
    out.insert(
        "HERMES_KANBAN_WORKSPACES_ROOT".into(),
        pins.workspaces_root.to_string_lossy().into_owned(),
    );
    out.insert("HERMES_KANBAN_BOARD".into(), pins.slug.into());
    out.insert("HERMES_PROFILE".into(), spec.assignee.into());
    out
}

/// Rotate `log` before a spawn when it has grown past `max_bytes`: shift `.log.N` up to
/// `backups`, move the log to `.log.1`; with `backups` 0 the log is deleted instead.
pub fn rotate_log(log: &Path, max_bytes: u64, backups: u32) {
    let Ok(meta) = std::fs::metadata(log) else {
        return;
    };
    if meta.len() <= max_bytes {
        return;
    }
    if backups == 0 {
        let _ = std::fs::remove_file(log);
        return;
    }
    let name = |n: u32| {
        let mut s = log.as_os_str().to_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    };
    let _ = std::fs::remove_file(name(backups));
    for n in (1..backups).rev() {
        let _ = std::fs::rename(name(n), name(n + 1));
    }
    let _ = std::fs::rename(log, name(1));
}

/// A supervisor that has started and waits for its go.
#[derive(Debug)]
pub struct StartedSupervisor {
    pub pid: i64,
    /// `/proc` start time (pid-reuse guard).
    pub start_time: Option<i64>,
    go: Option<ChildStdin>,
}

impl StartedSupervisor {
    /// Let it start the worker (after its pid is recorded).
    pub fn go(mut self) {
        if let Some(mut w) = self.go.take() {
            let _ = w.write_all(b"go\n");
        }
    }

    /// Tell it not to start (closing the pipe without a go): it exits on its own.
    pub fn abort(mut self) {
        self.go.take();
    }
}

/// How the supervisor is asked to run one worker.
#[derive(Debug, Clone)]
pub struct SupervisorLaunch<'a> {
    pub exe: &'a Path,
    pub task_id: &'a str,
    pub run_id: i64,
    pub failure_limit: i64,
    pub max_runtime: Option<i64>,
    pub kill_grace_seconds: f64,
    pub cwd: &'a Path,
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub log: &'a Path,
}

/// Launch `hermes-kanban supervise` in a new session (its own process group), stdin a pipe for
/// the go, stdout and stderr appended to the task's log. The dispatcher never waits for it.
pub fn start_supervisor(l: &SupervisorLaunch<'_>) -> Result<StartedSupervisor, String> {
    if let Some(dir) = l.log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(l.log)
        .map_err(|e| format!("log {}: {e}", l.log.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("log {}: {e}", l.log.display()))?;
    let mut cmd = Command::new(l.exe);
    cmd.arg("supervise")
        .arg("--task")
        .arg(l.task_id)
        .arg("--run")
        .arg(l.run_id.to_string())
        .arg("--failure-limit")
        .arg(l.failure_limit.to_string())
        .arg("--kill-grace")
        .arg(l.kill_grace_seconds.to_string())
        .arg("--cwd")
        .arg(l.cwd);
    if let Some(m) = l.max_runtime {
        cmd.arg("--max-runtime").arg(m.to_string());
    }
    cmd.arg("--")
        .args(l.argv)
        .env_clear()
        .envs(l.env)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the supervisor {}: {e}", l.exe.display()))?;
    let pid = child.id() as i64;
    Ok(StartedSupervisor {
        pid,
        start_time: crate::process::proc_start_time(pid),
        go: child.stdin.take(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_configured_backups() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        std::fs::write(&log, "x".repeat(100)).unwrap();
        rotate_log(&log, 200, 1);
        assert!(log.exists(), "small logs stay");
        rotate_log(&log, 50, 1);
        assert!(!log.exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("t.log.1"))
                .unwrap()
                .len(),
            100
        );
        std::fs::write(&log, "y".repeat(60)).unwrap();
        rotate_log(&log, 50, 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("t.log.1")).unwrap(),
            "y".repeat(60)
        );
        std::fs::write(&log, "z".repeat(60)).unwrap();
        rotate_log(&log, 50, 0);
        assert!(!log.exists(), "0 backups deletes");
    }

    #[test]
    fn programs_resolve_on_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("agent");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = Env::empty().with("PATH", format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(resolve_program("agent", &env).unwrap(), bin);
        assert_eq!(resolve_program(&bin.to_string_lossy(), &env).unwrap(), bin);
        assert!(resolve_program("nope-not-here", &env).is_err());
        let env = env.with("HERMES_BIN", "/nonexistent/hermes");
        let e = hermes_bin(&env).unwrap_err();
        assert!(e.contains("HERMES_BIN"), "{e}");
    }
}
