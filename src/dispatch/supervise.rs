//! The supervisor: `hermes-kanban supervise` (hidden verb), one per run, started by the
//! dispatcher in a new session. It waits for the dispatcher's go (sent once its pid is recorded
//! on the run), starts the real worker in its own process group (with a parent-death SIGKILL, so
//! a killed supervisor never leaves an unsupervised worker), waits for it, enforces the task's
//! max runtime (SIGTERM to the group, grace, SIGKILL), and records the exit in the database
//! through the kernel: first the raw status (`record_worker_exit`), then the classification
//! (`settle_worker_exit`) — so exit codes are classified correctly even when the dispatcher was
//! a one-shot `dispatch` that exited long ago. Its stdout/stderr is the task's log.
//!
//! Handshake with ticks: a run is settled once (kernel CAS on the open run + a `settled_at`
//! mark). When the supervisor is told to stop (SIGTERM/SIGINT/SIGHUP from a reclaim, stale or
//! time-out handling of a tick, or `hermes-kanban reclaim`) it stops the worker and records its
//! status but does not settle: whoever stopped it releases the task. A tick that finds the
//! supervisor dead with the run still open settles it with the recorded status, or as
//! "pid N not alive" when none was recorded.

use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::kernel::{Board, Env, Kanban, KernelError, SettledBy, WorkerExit};
use crate::process::{group_alive, proc_start_time, signal_group_only};

/// What one supervisor runs.
#[derive(Debug, Clone)]
pub struct SuperviseSpec {
    pub task_id: String,
    pub run_id: i64,
    pub failure_limit: i64,
    pub max_runtime: Option<i64>,
    pub kill_grace: Duration,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

/// How often (seconds) a supervisor checks whether its run is still open
/// (`HERMES_KANBAN_SUPERVISOR_POLL_SECONDS` overrides).
pub const RUN_POLL_SECONDS: i64 = 5;

extern "C" fn on_stop_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = sigaction(sig, &act);
        }
    }
}

fn say(msg: &str) {
    eprintln!(
        "[supervisor {} {}] {msg}",
        std::process::id(),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    );
}

/// Retry a kernel call a few times when the database stays busy.
fn with_retry<T>(mut f: impl FnMut() -> crate::kernel::Result<T>) -> crate::kernel::Result<T> {
    let mut n = 0;
    loop {
        match f() {
            Err(KernelError::Busy) if n < 5 => {
                n += 1;
                std::thread::sleep(Duration::from_millis(200 * n));
            }
            other => return other,
        }
    }
}

/// The supervised run's board, through the home of `env`. A named board is only normalised,
/// not required to be listed: the run must settle even if its board was archived meanwhile.
fn open_board(env: &Env, slug: Option<&str>) -> crate::kernel::Result<Board> {
    // The URL comes in the environment (HERMES_KANBAN_DATABASE_URL), never in argv.
    let home = Kanban::open(env, None)?;
    if home.database_url().is_some() {
        return home
            .open_board(slug, crate::kernel::OpenMode::Existing)
            .map(|(b, _)| b);
    }
    let slug = match slug {
        Some(s) => crate::kernel::normalize_slug(s)?,
        None => home.resolve(None)?,
    };
    Board::open_paths(env, home.paths(&slug))
}

/// Wait for the dispatcher's go on stdin. True on "go"; on EOF without it, true only when the
/// run is registered to this process anyway (the dispatcher died after recording it).
fn await_go(board: &Board, spec: &SuperviseSpec) -> bool {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "go" {
        return true;
    }
    matches!(
        board.run_process(spec.run_id),
        Ok(Some(p)) if p.supervisor_pid == Some(std::process::id() as i64)
    )
}

fn start_worker(spec: &SuperviseSpec) -> std::io::Result<Child> {
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGTERM the worker's group, wait up to `grace`, then SIGKILL. Returns the leader's status
/// and whether SIGKILL was needed.
fn stop_worker(child: &mut Child, grace: Duration) -> (Option<ExitStatus>, bool) {
    let pgid = child.id() as i64;
    signal_group_only(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut status = None;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // Wait a little for the rest of the group too, then kill whatever is left.
    while status.is_some() && group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    let mut sigkill = false;
    if status.is_none() || group_alive(pgid) {
        sigkill = status.is_none();
        signal_group_only(pgid, Signal::SIGKILL);
        if status.is_none() {
            status = child.wait().ok();
        }
    }
    (status, sigkill)
}

/// After the leader exited on its own: stop what it left running in its group.
fn sweep_group(pgid: i64) {
    if !group_alive(pgid) {
        return;
    }
    signal_group_only(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(1);
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    if group_alive(pgid) {
        signal_group_only(pgid, Signal::SIGKILL);
    }
}

/// The worker's last words from the task's log (upstream's `_worker_final_output`): the last
/// 4,000 bytes, without our own `[supervisor …]` lines, Hermes' `session_id:` trailer and rule
/// lines, joined into one line and cut to its last 400 characters. `None` when there is none.
pub(crate) fn worker_log_tail(log: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4000))).ok()?;
    let mut raw = Vec::new();
    f.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("[supervisor ")
                && !l.starts_with("session_id:")
                && !l
                    .chars()
                    .all(|c| matches!(c, '─' | '━' | '-' | '=' | '╭' | '╰' | '│'))
        })
        .collect();
    let joined = words.join(" ");
    let chars: Vec<char> = joined.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(400)..].iter().collect();
    (!tail.is_empty()).then_some(tail)
}

fn exit_of(pid: i64, status: Option<ExitStatus>) -> WorkerExit {
    match status {
        Some(s) => WorkerExit::from_status(pid, s.code().map(i64::from), s.signal().map(i64::from)),
        None => WorkerExit::unknown(Some(pid)),
    }
}

fn settle(board: &Board, spec: &SuperviseSpec, exit: Option<&WorkerExit>) {
    match with_retry(|| {
        board.settle_worker_exit(
            &spec.task_id,
            spec.run_id,
            SettledBy::Supervisor,
            Some(spec.failure_limit),
            exit,
        )
    }) {
        Ok(s) => match s.outcome {
            Some(o) => say(&format!(
                "run {} settled: {}{}{}",
                spec.run_id,
                o,
                if s.protocol_violation {
                    " (protocol violation)"
                } else {
                    ""
                },
                if s.tripped {
                    "; circuit breaker tripped, task blocked"
                } else {
                    ""
                }
            )),
            None => say(&format!(
                "run {} was already closed by the worker",
                spec.run_id
            )),
        },
        Err(e) => say(&format!(
            "could not record the outcome of run {} ({e}); the next dispatcher tick will",
            spec.run_id
        )),
    }
}

/// Run one supervised worker; returns the supervisor's exit code.
pub fn run(env: &Env, board_slug: Option<&str>, spec: &SuperviseSpec) -> i32 {
    install_stop_handlers();
    if spec.argv.is_empty() {
        say("no worker command given");
        return 2;
    }
    let board = match with_retry(|| open_board(env, board_slug)) {
        Ok(b) => b,
        Err(e) => {
            say(&format!("cannot open the board: {e}"));
            return 1;
        }
    };
    if !await_go(&board, spec) {
        say("the dispatcher did not record this run; not starting the worker");
        return 0;
    }
    if STOP.load(Ordering::SeqCst) {
        say("stopped before the worker started");
        return 0;
    }
    let deadline = run_deadline(&board, spec);
    say(&format!(
        "run {} of {}: starting {}",
        spec.run_id,
        spec.task_id,
        spec.argv.join(" ")
    ));
    let mut child = match start_worker(spec) {
        Ok(c) => c,
        Err(e) => {
            let exit = WorkerExit::spawn_failed(format!("cannot start {}: {e}", spec.argv[0]));
            say(&exit.error_text());
            settle(&board, spec, Some(&exit));
            return 0;
        }
    };
    let pid = child.id() as i64;
    if let Err(e) = with_retry(|| board.record_worker_child(spec.run_id, pid, proc_start_time(pid)))
    {
        say(&format!("could not record the worker pid: {e}"));
    }
    watch(env, &board, spec, &mut child, deadline)
}

/// When the run is over its max runtime, with the run's start and the limit: from the run's
/// start (its claim), as REF §8.4 measures it, the run is over its limit once
/// `now - started_at > limit` in whole seconds.
fn run_deadline(board: &Board, spec: &SuperviseSpec) -> Option<(Instant, i64, i64)> {
    let limit = spec.max_runtime?;
    let started = board.get_run(spec.run_id).ok()?.started_at;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let left = (started + limit + 1) as f64 - now;
    Some((
        Instant::now() + Duration::from_secs_f64(left.max(0.0)),
        started,
        limit,
    ))
}

/// Watch a started worker until it exits, its run is closed by someone else, a stop is
/// requested or its deadline passes; returns the supervisor's exit code.
fn watch(
    env: &Env,
    board: &Board,
    spec: &SuperviseSpec,
    child: &mut Child,
    deadline: Option<(Instant, i64, i64)>,
) -> i32 {
    let pid = child.id() as i64;
    // The run may be closed by someone else while the worker runs (an operator's `complete
    // --force`, Hermes' `request-changes`, a reclaim by a Hermes dispatcher that never signals
    // our unfingerprinted pid): the supervisor checks its run every poll interval and stops a
    // worker whose run is over.
    let poll = Duration::from_secs(
        env.positive_i64("HERMES_KANBAN_SUPERVISOR_POLL_SECONDS")
            .unwrap_or(RUN_POLL_SECONDS)
            .clamp(1, 3600) as u64,
    );
    let mut next_poll = Instant::now() + poll;
    loop {
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + poll;
            if let Ok(run) = board.get_run(spec.run_id)
                && run.ended_at.is_some()
                && matches!(child.try_wait(), Ok(None))
            {
                say(&format!(
                    "run {} was closed ({}) while the worker ran: terminating the worker's process \
                    group",
                    spec.run_id,
                    run.outcome.as_deref().unwrap_or("no outcome")
                ));
                let (status, _) = stop_worker(child, spec.kill_grace);
                sweep_group(pid);
                let exit = exit_of(pid, status);
                let _ = with_retry(|| board.record_worker_exit(&spec.task_id, spec.run_id, &exit));
                settle(board, spec, None);
                return 0;
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => return worker_exited(board, spec, pid, status),
            Ok(None) => {}
            Err(e) => {
                say(&format!("waiting for the worker failed: {e}"));
                let (_, _) = stop_worker(child, spec.kill_grace);
                settle(board, spec, Some(&WorkerExit::unknown(Some(pid))));
                return 1;
            }
        }
        if STOP.load(Ordering::SeqCst) {
            say("stop requested: terminating the worker's process group");
            let (status, _) = stop_worker(child, spec.kill_grace);
            let exit = exit_of(pid, status);
            let _ = with_retry(|| board.record_worker_exit(&spec.task_id, spec.run_id, &exit));
            return 0;
        }
        if let Some((at, started, limit)) = deadline
            && Instant::now() >= at
        {
            say(&format!(
                "max runtime {limit}s reached: terminating the worker's process group"
            ));
            let (_, sigkill) = stop_worker(child, spec.kill_grace);
            let elapsed = board.now() - started;
            let exit = WorkerExit::timed_out(Some(pid), elapsed, limit, sigkill);
            settle(board, spec, Some(&exit));
            return 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The worker exited by itself: record its status (with its log's tail unless rate-limited),
/// settle the run unless a stop was requested, and remove its scratch workspace.
fn worker_exited(board: &Board, spec: &SuperviseSpec, pid: i64, status: ExitStatus) -> i32 {
    sweep_group(pid);
    let exit = exit_of(pid, Some(status));
    let exit = if exit.class == crate::kernel::ExitClass::RateLimited {
        exit
    } else {
        exit.with_output(worker_log_tail(&board.paths().log_file(&spec.task_id)))
    };
    say(&format!("worker {}", exit.describe()));
    let _ = with_retry(|| board.record_worker_exit(&spec.task_id, spec.run_id, &exit));
    if STOP.load(Ordering::SeqCst) {
        say("stop requested; leaving the run to whoever stopped it");
        return 0;
    }
    settle(board, spec, None);
    let removed = super::workspace::cleanup_after_completion(board, &spec.task_id);
    for p in removed {
        say(&format!("removed scratch workspace {}", p.display()));
    }
    0
}
