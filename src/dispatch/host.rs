//! The long-lived dispatcher host of `daemon` and `serve` ([`run_loop`]): ticks every board it
//! serves, then waits for the next tick — event-driven: every [`WATCH_PERIOD`] it probes each
//! board's change marker ([`Board::change_marker`], one indexed `max(id)`), and ticks as soon as
//! one moved, that board only (new ready work is spawned within a second); every board, re-listed,
//! once per interval (the interval is the upper bound); with a floor between rounds that grows
//! with their cost ([`next_tick_floor`]). It also owns [`HostState`] (this host's supervisor
//! children) and the board handles kept open between ticks ([`HostBoards`]: the one place a
//! host opens boards).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::config::KanbanConfig;
use super::locks::{self, TryLock};
use super::{DispatchResult, TickOptions, dispatch_once};
use crate::kernel::{HostTick, Kanban, SharedBoard, host_id};

/// How often a waiting host probes its boards for changes.
pub const WATCH_PERIOD: Duration = Duration::from_millis(250);

/// State a long-lived host keeps between ticks: its own supervisor children, reaped here so
/// they do not linger as zombies.
#[derive(Debug, Default)]
pub struct HostState {
    children: Vec<i32>,
}

impl HostState {
    /// Reap exited children of this process (non-blocking, only the ones we spawned).
    pub fn reap(&mut self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        self.children.retain(|pid| {
            !matches!(
                waitpid(nix::unistd::Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_)
            )
        });
    }

    /// Track a supervisor this host spawned, to reap it later.
    pub(crate) fn adopt(&mut self, pid: i32) {
        self.children.push(pid);
    }

    /// Supervisors spawned by this host that are not reaped yet.
    pub fn children(&self) -> usize {
        self.children.len()
    }
}

/// The boards a loop dispatches: the given one; else the one pinned by `HERMES_KANBAN_DB` /
/// `HERMES_KANBAN_BOARD`; else every non-archived board (re-listed each tick, as the gateway).
pub(crate) fn loop_boards(home: &Kanban, board: Option<&str>) -> Vec<String> {
    if let Some(b) = board {
        return vec![b.to_string()];
    }
    let env = home.env();
    if (env.get("HERMES_KANBAN_DB").is_some() && home.database_url().is_none())
        || env.get("HERMES_KANBAN_BOARD").is_some()
    {
        return home.resolve(None).map(|b| vec![b]).unwrap_or_default();
    }
    match home.list(false) {
        Ok(list) => list.into_iter().map(|b| b.meta.slug).collect(),
        Err(e) => {
            tracing::warn!("dispatch: cannot list boards: {e}");
            vec![crate::kernel::DEFAULT_BOARD.to_string()]
        }
    }
}

/// Run ticks until `stop` is set — the dispatcher of `daemon` and `serve`: on every change of a
/// board (probed every [`WATCH_PERIOD`]), and at least every `interval`.
/// Settings come from `$HERMES_HOME/config.yaml` (`kanban:`, REF §9.3) with stale detection on
/// (`dispatch_stale_timeout_seconds`, 14400). `board` limits it to one board; `None` dispatches
/// every board. Blocking: call it from a thread (`tokio::task::spawn_blocking` in `serve`).
/// Stopping leaves workers running with their claims: their supervisors live in their own
/// sessions, and the next host adopts them (or reclaims them when their claims expire).
pub fn run_loop(
    home: impl Into<Kanban>,
    board: Option<String>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let kb: Kanban = home.into();
    let env = kb.env().clone();
    let (cfg, warnings) = KanbanConfig::load(&env);
    for w in warnings {
        tracing::warn!("{w}");
    }
    let mut opts = TickOptions::from_config(&env, &cfg);
    opts.failure_limit = cfg.failure_limit;
    opts.stale_timeout_seconds = cfg.dispatch_stale_timeout_seconds;
    run_loop_with(&kb, board.as_deref(), interval, &stop, &opts, |slug, r| {
        if r.did_work() {
            tracing::info!(
                "dispatch {slug}: spawned {}, promoted {}, reclaimed {}, crashed {}, timed out {}, \
                blocked {}",
                r.spawned.len(),
                r.promoted,
                r.reclaimed,
                r.crashed.len(),
                r.timed_out.len(),
                r.auto_blocked.len()
            );
        }
    })
}

/// [`run_loop`] with explicit tick options and a callback after every board's tick. Boards
/// come from `home`'s shared handles (in `serve`, the ones MCP and the REST API use); a tick
/// takes its board one step at a time ([`super::TickBoard`]), and records this host's lease
/// on it after every tick.
pub fn run_loop_with(
    home: &Kanban,
    board: Option<&str>,
    interval: Duration,
    stop: &AtomicBool,
    opts: &TickOptions,
    mut on_tick: impl FnMut(&str, &DispatchResult),
) -> anyhow::Result<()> {
    let env = home.env();
    let _presence = match locks::hold_presence(env) {
        TryLock::Held(l) => Some(l),
        other => {
            tracing::warn!("dispatcher presence lock not held ({other:?})");
            None
        }
    };
    let mut host = HostState::default();
    let mut boards = HostBoards::default();
    let mut lease = HostLeaseWriter::new(interval);
    // A full round (every board, re-listed) starts the host and follows every `interval`; in
    // between, only the boards whose change marker moved are ticked.
    let mut due: Option<Vec<String>> = None;
    let mut last_full = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let slugs = match due.take() {
            Some(changed) => changed,
            None => {
                boards.retain(&loop_boards(home, board));
                last_full = started;
                boards.slugs()
            }
        };
        for slug in slugs {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Some(shared) = boards.open(home, &slug) else {
                continue;
            };
            match dispatch_once(&shared, opts, &mut host) {
                Ok(r) => on_tick(&slug, &r),
                Err(e) => tracing::warn!("dispatch: board {slug}: {e}"),
            }
            lease.write(&shared, &slug);
        }
        let floor = started + next_tick_floor(started.elapsed());
        due = wait_for_work(&mut boards, &mut host, stop, floor, last_full + interval);
    }
    Ok(())
}

/// This host's lease row on every board it ticks (`kanban_hosts`: host id, pid, version, start,
/// last tick, interval), written after each tick so `diagnostics` and the dashboard can tell
/// the live hosts from the gone ones — at most once a second per board, so change-driven
/// ticks on a busy board do not add a commit each.
struct HostLeaseWriter {
    started_at: i64,
    interval_seconds: i64,
    written: HashMap<String, Instant>,
}

impl HostLeaseWriter {
    fn new(interval: Duration) -> Self {
        HostLeaseWriter {
            started_at: chrono::Utc::now().timestamp(),
            interval_seconds: (interval.as_secs_f64().ceil() as i64).max(1),
            written: HashMap::new(),
        }
    }

    fn write(&mut self, board: &SharedBoard, slug: &str) {
        let now = Instant::now();
        if self
            .written
            .get(slug)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        self.written.insert(slug.to_string(), now);
        let tick = HostTick {
            host_id: host_id(),
            pid: i64::from(std::process::id()),
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_at,
            interval_seconds: self.interval_seconds,
        };
        if let Err(e) = board.lock().record_host_tick(&tick) {
            tracing::warn!("dispatch: board {slug}: recording this host's lease: {e}");
        }
    }
}

/// The earliest a change may trigger the next tick, `busy` after the last round started: at
/// least one [`WATCH_PERIOD`], and four times what that round of ticks took, so a host on a
/// large, busy board spends at most a fifth of its time ticking.
pub fn next_tick_floor(busy: Duration) -> Duration {
    WATCH_PERIOD.max(busy * 4)
}

/// Sleep until `deadline` (then `None`: a full round is due), or until boards changed once
/// `floor` has passed (then their slugs), reaping children meanwhile; returns early (`None`)
/// when `stop` is set.
fn wait_for_work(
    boards: &mut HostBoards,
    host: &mut HostState,
    stop: &AtomicBool,
    floor: Instant,
    deadline: Instant,
) -> Option<Vec<String>> {
    let slice = Duration::from_millis(50);
    let mut next_probe = Instant::now() + WATCH_PERIOD;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if now >= next_probe {
            next_probe = now + WATCH_PERIOD;
            if now >= floor {
                let changed = boards.changed();
                if !changed.is_empty() {
                    return Some(changed);
                }
            }
        }
        std::thread::sleep(slice.min(deadline - now));
        host.reap();
    }
    None
}

/// One board a host keeps open: the handle, the identity of its DB file when opened (a file
/// replaced or removed underneath is reopened) and its change marker when last ticked.
struct HostBoard {
    board: SharedBoard,
    file: Option<(u64, u64)>,
    marker: Option<i64>,
}

/// The board handles a host keeps open between ticks, by slug, in listing order.
#[derive(Default)]
pub struct HostBoards {
    order: Vec<String>,
    open: HashMap<String, HostBoard>,
}

fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl HostBoards {
    /// Serve exactly `slugs` (in this order); handles of boards no longer listed are closed.
    pub fn retain(&mut self, slugs: &[String]) {
        self.order = slugs.to_vec();
        self.open.retain(|s, _| slugs.contains(s));
    }

    /// The boards served, in listing order.
    pub fn slugs(&self) -> Vec<String> {
        self.order.clone()
    }

    /// The open handle of `slug` — opened (and created, said so, when missing) on first use,
    /// reopened when its DB file (SQLite) was replaced — with its change marker taken now,
    /// before the tick, so that any write during or after the tick triggers the next one.
    /// `None` (logged) when it cannot be opened, and when the file of an open handle is gone
    /// (removed or its board renamed): the handle is dropped and the next full round re-lists
    /// the boards, so a change round never recreates a board at a path that was just moved
    /// away.
    pub fn open(&mut self, home: &Kanban, slug: &str) -> Option<SharedBoard> {
        // Only a board in a file can have its file replaced (one on PostgreSQL has none: its
        // handle stays open; the full rounds' re-listing drops a board removed from the registry).
        if let Some(h) = self.open.get(slug).filter(|h| h.file.is_some()) {
            let now = file_id(&h.board.lock().paths().db);
            if now.is_none() || now != h.file {
                self.open.remove(slug);
                now?;
            }
        }
        if !self.open.contains_key(slug) {
            let b = open_board(home, slug)?;
            let file = file_id(&b.lock().paths().db);
            self.open.insert(
                slug.to_string(),
                HostBoard {
                    board: b,
                    file,
                    marker: None,
                },
            );
        }
        let h = self.open.get_mut(slug)?;
        h.marker = h.board.lock().change_marker().ok();
        Some(h.board.clone())
    }

    /// The open boards whose change marker moved since their last tick, in listing order (a
    /// board whose marker cannot be read waits for the next full round).
    pub fn changed(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|s| {
                self.open.get(*s).is_some_and(|h| {
                    h.marker
                        .is_some_and(|m| h.board.lock().change_marker().is_ok_and(|now| now != m))
                })
            })
            .cloned()
            .collect()
    }
}

/// Open (creating if missing) the board a host dispatches — the one place a host opens a board.
fn open_board(home: &Kanban, slug: &str) -> Option<SharedBoard> {
    match home.board_or_create(Some(slug)) {
        Ok((b, created)) => {
            if created {
                eprintln!(
                    "hermes-kanban: created a new board database at {} (board '{slug}'); if you \
                     meant another board, set HERMES_HOME, --board SLUG or HERMES_KANBAN_DB",
                    b.lock().paths().db.display()
                );
            }
            Some(b)
        }
        Err(e) => {
            tracing::warn!("dispatch: board {slug}: {e}");
            None
        }
    }
}
