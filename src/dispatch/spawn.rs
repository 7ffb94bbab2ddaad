//! Starting a worker (REF §10, SPEC §6.2–§6.3, UP §10): which program and argv (`hermes -p
//! <assignee> --cli --accept-hooks [--skills <s>]… [-m <model> [--provider <p>]] [--reasoning
//! <l>] chat -q "work kanban task <id>"` as Hermes' own dispatcher spawns it — `kanban-worker`
//! only when that profile has the skill, and only the flags the installed `hermes --help`
//! lists, probed once per binary — with `hermes` from `HERMES_BIN` or `PATH`, or a
//! `kanban.worker_command` template), the worker's environment
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
use crate::kernel::{Env, Task, hermes_root, worker_skills};

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
            format!(
                "HERMES_BIN={b}: {e} (point it at the hermes executable, or configure \
                kanban.worker_command)"
            )
        }),
        None => resolve_program("hermes", env).map_err(|_| {
            "`hermes` executable not found on PATH (install hermes-agent, set HERMES_BIN to its \
            path, or configure kanban.worker_command)"
                .to_string()
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
    let flags = hermes_flags(&bin, env);
    Ok(hermes_argv(spec, &bin, &flags, env))
}

/// The default Hermes worker argv for `flags` (UP §10 "Worker argv"):
/// `hermes -p <assignee> --cli --accept-hooks [--skills <s>]… [-m <model> [--provider <p>]]
/// [--reasoning <l>] chat -q "work kanban task <id>" [-Q]`. `kanban-worker` is passed only
/// when the assignee's profile has it (Hermes refuses to start when every requested skill is
/// missing, and injects its kanban protocol itself); flags the installed Hermes lacks are left
/// out.
pub fn hermes_argv(
    spec: &WorkerSpec<'_>,
    bin: &Path,
    flags: &HermesFlags,
    env: &Env,
) -> Vec<String> {
    let t = spec.task;
    let mut argv = vec![
        bin.to_string_lossy().into_owned(),
        "-p".into(),
        spec.assignee.into(),
    ];
    if flags.cli {
        argv.push("--cli".into());
    }
    if flags.accept_hooks {
        argv.push("--accept-hooks".into());
    }
    for s in worker_skills(&hermes_root(env), spec.assignee, &t.skills).pass {
        argv.push("--skills".into());
        argv.push(s);
    }
    if let Some(m) = t.model_override.as_deref().filter(|m| !m.trim().is_empty()) {
        argv.push("-m".into());
        argv.push(m.into());
        if let Some(p) = t.provider_override.as_deref().filter(|_| flags.provider) {
            argv.push("--provider".into());
            argv.push(p.into());
        }
    }
    if let Some(r) = t.reasoning_effort.as_deref().filter(|_| flags.reasoning) {
        argv.push("--reasoning".into());
        argv.push(r.into());
    }
    argv.extend(["chat".into(), "-q".into(), prompt(&t.id)]);
    if t.goal_mode {
        argv.push("-Q".into());
    }
    argv
}

/// The top-level flags of the installed `hermes` that the worker argv uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HermesFlags {
    /// `--cli` (force the classic CLI, never the TUI).
    pub cli: bool,
    /// `--accept-hooks`.
    pub accept_hooks: bool,
    /// `--provider` (with `-m`).
    pub provider: bool,
    /// `--reasoning` (upstream 0.20.0).
    pub reasoning: bool,
}

impl HermesFlags {
    /// What Hermes 0.19.0 accepts (`--reasoning` came in 0.20.0): assumed when `--help` does
    /// not answer like Hermes (a wrapper script, a test double).
    pub const V0_19: HermesFlags = HermesFlags {
        cli: true,
        accept_hooks: true,
        provider: true,
        reasoning: false,
    };

    /// Read the flags off `hermes --help` output; `None` when it is not argparse help.
    pub fn from_help(text: &str) -> Option<HermesFlags> {
        let usage = text.find("usage:")?;
        let text = &text[usage..];
        let has = |flag: &str| {
            text.match_indices(flag).any(|(i, _)| {
                let after = text[i + flag.len()..].chars().next();
                !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        };
        Some(HermesFlags {
            cli: has("--cli"),
            accept_hooks: has("--accept-hooks"),
            provider: has("--provider"),
            reasoning: has("--reasoning"),
        })
    }
}

/// How long `hermes --help` may take before the probe gives up (a cold Python start on a
/// loaded machine takes a few seconds).
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The flags of the `hermes` at `bin`, from its `--help`: probed once per binary (path, size
/// and mtime) and remembered in this process and in `<hermes root>/kanban/hermes-flags.json`,
/// so one-shot `dispatch` runs do not pay a Python start each. A probe that fails, times out
/// or does not print argparse help gives [`HermesFlags::V0_19`].
pub fn hermes_flags(bin: &Path, env: &Env) -> HermesFlags {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashMap<String, HermesFlags>>> = Mutex::new(None);
    let Some(key) = binary_key(bin) else {
        return HermesFlags::V0_19;
    };
    if let Some(f) = SEEN
        .lock()
        .ok()
        .and_then(|m| m.as_ref()?.get(&key).copied())
    {
        return f;
    }
    let cache = hermes_root(env).join("kanban").join("hermes-flags.json");
    let mut on_disk: BTreeMap<String, HermesFlags> = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let flags = match on_disk.get(&key) {
        Some(f) => *f,
        None => {
            let probed = probe_help(bin, env);
            let flags = probed.unwrap_or(HermesFlags::V0_19);
            if probed.is_some() {
                on_disk.retain(|k, _| !k.starts_with(&format!("{}|", bin.display())));
                on_disk.insert(key.clone(), flags);
                if let Some(dir) = cache.parent()
                    && dir.is_dir()
                    && let Ok(text) = serde_json::to_string_pretty(&on_disk)
                {
                    let tmp = cache.with_extension(format!("json.{}", std::process::id()));
                    if std::fs::write(&tmp, text).is_ok() {
                        let _ = std::fs::rename(&tmp, &cache);
                    }
                }
            }
            tracing::info!("hermes flags of {}: {flags:?}", bin.display());
            flags
        }
    };
    if let Ok(mut m) = SEEN.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, flags);
    }
    flags
}

/// `<path>|<size>|<mtime ns>` of a binary, or `None` when it cannot be read.
fn binary_key(bin: &Path) -> Option<String> {
    let m = std::fs::metadata(bin).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{}|{}|{mtime}", bin.display(), m.len()))
}

/// Run `<bin> --help` (stdin closed, no kanban variables, its own process group, killed after
/// [`PROBE_TIMEOUT`]) and parse it.
fn probe_help(bin: &Path, env: &Env) -> Option<HermesFlags> {
    use std::io::Read;
    let mut cmd = Command::new(bin);
    cmd.arg("--help")
        .env_clear()
        .envs(env.vars().filter(|(k, _)| !k.starts_with("HERMES_KANBAN_")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().ok()?;
    let mut out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.by_ref().take(1 << 20).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                tracing::warn!(
                    "`{} --help` did not answer within {}s; assuming Hermes 0.19.0's flags",
                    bin.display(),
                    PROBE_TIMEOUT.as_secs()
                );
                return None;
            }
        }
    }
    let wait = std::time::Duration::from_secs(2);
    let buf = match rx.recv_timeout(wait) {
        Ok(buf) => buf,
        Err(_) => {
            // Something it left in its group (a test double's `sleep &`) still holds stdout;
            // while it lives the group id cannot be reused, so this hits only that group.
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            rx.recv_timeout(wait).ok()?
        }
    };
    HermesFlags::from_help(&String::from_utf8_lossy(&buf))
}

/// Where the worker's board lives, pinned in its environment.
#[derive(Debug, Clone)]
pub struct BoardPins<'a> {
    /// `HERMES_KANBAN_BOARD`: on PostgreSQL the pin itself (with `HERMES_KANBAN_TASK`, see
    /// `kernel::paths`), on SQLite the board's name.
    pub slug: &'a str,
    /// `HERMES_KANBAN_DB`, the SQLite pin; `None` on PostgreSQL, where the board has no file
    /// (the variable is then removed: an inherited one would name an unrelated file).
    pub db: Option<&'a Path>,
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
    // On PostgreSQL the database URL is already in `env` (the home put it there) and the
    // board slug below is the pin.
    match pins.db {
        Some(db) => out.insert("HERMES_KANBAN_DB".into(), db.to_string_lossy().into_owned()),
        None => out.remove("HERMES_KANBAN_DB"),
    };
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
    fn flags_are_read_off_argparse_help() {
        // Hermes 0.19.0's `hermes --help` usage block.
        let v019 = "usage: hermes [-h] [--version] [-z PROMPT] [--usage-file PATH] [-m \
            MODEL]\n              [--provider PROVIDER] [-t TOOLSETS] [--resume \
            SESSION]\n              [--accept-hooks] [--skills SKILLS] [--yolo] \
            [--pass-session-id]\n              [--ignore-user-config] [--ignore-rules] \
            [--safe-mode] [--tui]\n              [--cli] [--dev]\n";
        assert_eq!(HermesFlags::from_help(v019), Some(HermesFlags::V0_19));
        let newer = format!("{v019} [--reasoning LEVEL]");
        assert!(HermesFlags::from_help(&newer).unwrap().reasoning);
        let old = "usage: hermes [-h] [-m MODEL] [--cli-mode]";
        let f = HermesFlags::from_help(old).unwrap();
        assert!(!f.cli && !f.accept_hooks && !f.provider, "{f:?}");
        assert_eq!(HermesFlags::from_help("I think I am done"), None);
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
