//! Waiting for SQLite's write lock: the fair busy handler (short jittered sleeps under one
//! deadline per operation), the notice of a long wait naming the holder (`/proc/locks`), and
//! the retry of a BEGIN/COMMIT that came back busy.

use std::time::Duration;

use rusqlite::Connection;

use super::DEFAULT_BUSY_TIMEOUT_MS;
use crate::kernel::error::{KernelError, Result};

pub(super) static BUSY_TIMEOUT_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_BUSY_TIMEOUT_MS as u64);

/// After this long waiting for the lock, say on stderr what we wait for (once per operation).
const WAIT_NOTICE_AFTER: Duration = Duration::from_secs(2);

/// The lock wait of the current operation on this thread.
#[derive(Clone)]
struct Wait {
    /// When the first busy answer of this operation came.
    since: std::time::Instant,
    /// Give up at this instant: `since` + the busy timeout, for the whole operation (BEGIN,
    /// body, COMMIT and their retries together), so the timeout means what it says.
    deadline: std::time::Instant,
    /// The DB file, for the notice.
    db: Option<String>,
    /// Whether the notice was printed.
    told: bool,
}

thread_local! {
    static WAIT: std::cell::RefCell<Option<Wait>> = const { std::cell::RefCell::new(None) };
    /// Set while a write transaction runs on this thread: busy waits share its deadline.
    static IN_OP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static OP_DB: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn busy_limit() -> Duration {
    Duration::from_millis(BUSY_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Start (or continue) the wait of this operation and return it.
fn wait_state(now: std::time::Instant, fresh: bool) -> Wait {
    WAIT.with(|w| {
        let mut w = w.borrow_mut();
        if fresh || w.is_none() {
            *w = Some(Wait {
                since: now,
                deadline: now + busy_limit(),
                db: OP_DB.with(|d| d.borrow().clone()),
                told: false,
            });
        }
        w.clone().expect("set above")
    })
}

/// Busy handler used instead of SQLite's default. The default backs off to sleeps of tens of
/// milliseconds, so a process that commits in a tight loop re-takes the write lock before any
/// sleeper wakes and starves the others (seen in the claim race: one process won every claim).
/// Short jittered sleeps (0.1–1 ms, then up to 5 ms) give every waiter a fair chance. The limit
/// is `HERMES_KANBAN_BUSY_TIMEOUT_MS` for the whole operation: inside a write transaction the
/// wait started by BEGIN is shared by the body, COMMIT and their retries (it used to restart on
/// every statement and retry, so a 1 s timeout gave up after 6.5 s). A wait past 2 s says on
/// stderr which board it waits for and, when /proc/locks tells, which process holds it.
pub(super) fn fair_busy_handler(count: i32) -> bool {
    let now = std::time::Instant::now();
    // Outside a write transaction each statement waits on its own; inside, the operation's.
    let fresh = count == 0 && !IN_OP.with(|o| o.get());
    let w = wait_state(now, fresh);
    if now >= w.deadline {
        return false;
    }
    if !w.told && now.duration_since(w.since) >= WAIT_NOTICE_AFTER {
        WAIT.with(|s| {
            if let Some(s) = s.borrow_mut().as_mut() {
                s.told = true;
            }
        });
        announce_wait(&w, now);
    }
    let micros = if count < 200 {
        100 + jitter_ms(900)
    } else {
        1000 + jitter_ms(4000)
    };
    let left = w.deadline.saturating_duration_since(now);
    std::thread::sleep(Duration::from_micros(micros).min(left));
    true
}

/// The one-line notice of a long lock wait, on stderr.
fn announce_wait(w: &Wait, now: std::time::Instant) {
    let db = w.db.clone().unwrap_or_else(|| "the board".into());
    let holders = lock_holders(&db);
    let who = if holders.is_empty() {
        "another process holds it".to_string()
    } else {
        format!(
            "held by {}",
            holders
                .iter()
                .map(|(pid, cmd)| format!("pid {pid} ({cmd})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let left = w.deadline.saturating_duration_since(now).as_secs_f64();
    eprintln!(
        "hermes-kanban: waiting {:.0}s for the write lock on {db}: {who}; giving up in {left:.0}s \
        (HERMES_KANBAN_BUSY_TIMEOUT_MS={})",
        now.duration_since(w.since).as_secs_f64(),
        BUSY_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Best effort: the other processes holding an exclusive POSIX lock on the DB, its `-wal` or
/// `-shm` (SQLite's write lock lives there in WAL mode), or a flock on its dispatch lock file,
/// from /proc/locks, with their command lines. Empty when unknown.
pub(crate) fn lock_holders(db: &str) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let inodes: Vec<u64> = ["", "-wal", "-shm", ".dispatch.lock"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{db}{suffix}")).ok())
        .map(|m| m.ino())
        .collect();
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return vec![];
    };
    let me = std::process::id();
    let mut out: Vec<(u32, String)> = Vec::new();
    for line in locks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "N: POSIX  ADVISORY  WRITE 1234 08:01:5678 120 120"; waiters have a "->" column.
        if f.len() < 6 || f[1] == "->" || f[3] != "WRITE" {
            continue;
        }
        let Ok(pid) = f[4].parse::<u32>() else {
            continue;
        };
        let ino = f[5].rsplit(':').next().and_then(|i| i.parse::<u64>().ok());
        if pid == me || !ino.is_some_and(|i| inodes.contains(&i)) || out.iter().any(|o| o.0 == pid)
        {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let cmd: String = cmd.chars().take(120).collect();
        out.push((pid, if cmd.is_empty() { "?".into() } else { cmd }));
    }
    out
}

/// Marks this thread as inside one write operation for the busy handler; restores on drop.
pub(super) struct OpGuard {
    outer: bool,
}

impl OpGuard {
    pub(super) fn enter(conn: &Connection) -> OpGuard {
        let outer = !IN_OP.with(|o| o.replace(true));
        if outer {
            WAIT.with(|w| *w.borrow_mut() = None);
            OP_DB.with(|d| *d.borrow_mut() = conn.path().map(str::to_string));
        }
        OpGuard { outer }
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        if self.outer {
            IN_OP.with(|o| o.set(false));
            WAIT.with(|w| *w.borrow_mut() = None);
        }
    }
}

/// Retry a BEGIN/COMMIT that came back busy (SQLite skips the busy handler when it would
/// deadlock) with short jittered sleeps, while the operation's busy deadline allows.
pub(super) fn retry_busy(mut op: impl FnMut() -> rusqlite::Result<()>) -> Result<()> {
    loop {
        match op() {
            Ok(()) => return Ok(()),
            Err(e) => {
                let err: KernelError = e.into();
                if matches!(err, KernelError::Busy) {
                    let now = std::time::Instant::now();
                    let w = wait_state(now, false);
                    if now < w.deadline {
                        let nap = Duration::from_millis(5 + jitter_ms(45));
                        std::thread::sleep(nap.min(w.deadline - now));
                        continue;
                    }
                }
                return Err(err);
            }
        }
    }
}

pub(super) fn jitter_ms(max: u64) -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) % max.max(1)
}
