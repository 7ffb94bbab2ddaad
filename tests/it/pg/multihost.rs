//! Three hosts on one board (issue 15): each "host" is a `daemon` in its own UTS and PID
//! namespace (`unshare --uts --pid --fork --mount-proc`: its own hostname and pids, loopback
//! and the file system shared) with its own `$HERMES_HOME` and fake workers, all on one board
//! — the fixture's PostgreSQL database, or on SQLite one file every host pins with
//! `HERMES_KANBAN_DB`. About 300 tasks in chains and fan-outs drain while one host is killed
//! with SIGKILL on its namespace's init mid-run (its daemon, supervisors and workers die with
//! it, as when a machine is lost). Needs root (or unprivileged user namespaces) for
//! `unshare`.
//!
//! The scenario then checks what a user of a fleet relies on: every task ends `done` with
//! exactly one completed run; no two runs of a task overlap (in the database and as the
//! workers saw them); every completion a worker saw succeed is in the database; the dead
//! host's claims were released only by expiry and re-run within TTL + a few intervals; the
//! work was spread over the hosts; no child started before its parents were done.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hermes_kanban::kernel::{Board, ListFilter, NewTask, Run, Status};

use crate::helpers::backend::DATABASE_URL_VAR;
use crate::helpers::board::TestHome;

const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");
const HOSTS: [&str; 3] = ["hk-host-a", "hk-host-b", "hk-host-c"];
/// The host killed mid-run.
const VICTIM: usize = 1;
/// Claim TTL of every host (seconds): the longest a dead host's claim blocks its task.
const TTL: i64 = 8;
/// The daemons' longest wait between ticks (seconds).
const INTERVAL: &str = "0.5";
/// Groups of 15 tasks: a root, a fan-out of 8, a join of the 8, a chain of 5.
const GROUPS: usize = 20;
const FAN: usize = 8;
const CHAIN: usize = 5;

/// The namespace's init (bash as pid 1, which reaps orphans): set the hostname, run the
/// daemon, forward SIGTERM to it, and once it stopped let the supervisors it left settle
/// before the namespace ends (every process in it dies with its init).
const INIT: &str = r#"hostname "$1" || exit 97
"$2" daemon --interval "$3" -v &
d=$!
trap 'kill -TERM $d' TERM
wait $d
wait $d
for _ in $(seq 300); do p=(/proc/[0-9]*); [ ${#p[@]} -le 1 ] && break; sleep 0.1; done
"#;

/// The fake `hermes` every host runs: answers the flag probe like Hermes 0.19.0, logs its
/// start, works briefly, completes through our CLI and logs what the CLI answered.
fn worker_script(lab: &Path) -> String {
    format!(
        r#"#!/bin/bash
if [ "$1" = --help ]; then
  echo 'usage: hermes [-h] [-m MODEL] [--provider PROVIDER] [--accept-hooks]' \
    '[--skills SKILLS] [--cli]'
  exit 0
fi
T="$HERMES_KANBAN_TASK"; R="$HERMES_KANBAN_RUN_ID"; LOG="{lab}/events/$HOSTNAME.log"
echo "start $T $R $HOSTNAME $(date +%s%N)" >> "$LOG"
sleep "0.$((RANDOM % 3 + 1))"
if {hk} complete "$T" --summary "done on $HOSTNAME run $R"; then
  echo "done $T $R $HOSTNAME $(date +%s%N)" >> "$LOG"
else
  echo "refused $T $R $HOSTNAME $(date +%s%N)" >> "$LOG"
fi
"#,
        lab = lab.display(),
        hk = HK
    )
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// The pids whose parent is `ppid` (from /proc).
fn children_of(ppid: u32) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(&ppid.to_string()) {
            out.push(pid);
        }
    }
    out
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// One simulated machine: `unshare` (in our namespace) and its child, the namespace's init.
struct Host {
    name: &'static str,
    unshare: Child,
    init: i32,
}

impl Host {
    fn start(name: &'static str, lab: &Path, board: &[(&str, String)]) -> Host {
        let root = lab.join(name);
        let home = root.join("hermes");
        std::fs::create_dir_all(home.join("profiles/worker")).unwrap();
        std::fs::write(home.join("profiles/worker/config.yaml"), "{}\n").unwrap();
        std::fs::write(
            home.join("config.yaml"),
            "kanban:\n  max_spawn: 9\n  max_in_progress_per_host: 3\n",
        )
        .unwrap();
        let log = std::fs::File::create(root.join("daemon.log")).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--uts", "--pid", "--fork", "--mount-proc", "--kill-child"])
            .args(["bash", "-c", INIT, "init", name, HK, INTERVAL])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &root)
            .env("HERMES_HOME", &home)
            .env("HERMES_BIN", lab.join("hermes"))
            .env("HERMES_KANBAN_CLAIM_TTL_SECONDS", TTL.to_string())
            .env("HERMES_KANBAN_CRASH_GRACE_SECONDS", "0")
            .env("HERMES_KANBAN_KILL_GRACE_SECONDS", "1")
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in board {
            cmd.env(k, v);
        }
        let mut unshare = cmd.spawn().expect("spawn unshare");
        let pid = unshare.id();
        let init = crate::helpers::wait_until(
            &format!("{name}'s namespace init"),
            Duration::from_secs(30),
            || {
                if let Ok(Some(s)) = unshare.try_wait() {
                    panic!(
                        "unshare for {name} exited with {s} (needs root or user namespaces): {}",
                        std::fs::read_to_string(root.join("daemon.log")).unwrap_or_default()
                    );
                }
                children_of(pid).first().copied()
            },
        );
        Host {
            name,
            unshare,
            init,
        }
    }

    /// The machine dies: SIGKILL to the namespace's init takes every process in it along.
    fn kill(&mut self) {
        signal(self.init, nix::sys::signal::Signal::SIGKILL);
        let status = self.unshare.wait().unwrap();
        assert!(!status.success(), "{} did not die: {status}", self.name);
    }

    /// Stop the daemon (SIGTERM through the init) and wait for the namespace to end.
    fn stop(&mut self) {
        signal(self.init, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.unshare.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.unshare.try_wait().ok().flatten().is_none() {
            signal(self.init, nix::sys::signal::Signal::SIGKILL);
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

/// One line a fake worker wrote.
#[derive(Debug, Clone)]
struct Seen {
    what: String,
    task: String,
    run: i64,
    host: String,
    at_ns: i128,
}

fn worker_lines(lab: &Path) -> Vec<Seen> {
    let mut out = vec![];
    for h in HOSTS {
        let text = std::fs::read_to_string(lab.join("events").join(format!("{h}.log")))
            .unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 5, "a torn worker log line: {line:?}");
            out.push(Seen {
                what: f[0].to_string(),
                task: f[1].to_string(),
                run: f[2].parse().unwrap(),
                host: f[3].to_string(),
                at_ns: f[4].parse().unwrap(),
            });
        }
    }
    out
}

/// The host part of a claim lock (`host:pid`).
fn lock_host(lock: &str) -> &str {
    lock.rsplit_once(':').map(|(h, _)| h).unwrap_or(lock)
}

/// Create the task graph: per group a root, a fan-out, a join and a chain. Returns the tasks
/// in creation order and every (parent, child) link.
fn create_graph(board: &Board) -> (Vec<String>, Vec<(String, String)>) {
    let mut tasks = vec![];
    let mut links = vec![];
    let mut new = |title: String, parents: Vec<String>, links: &mut Vec<(String, String)>| {
        let id = board
            .create_task(NewTask {
                title,
                assignee: Some("worker".into()),
                parents: parents.clone(),
                ..Default::default()
            })
            .expect("create")
            .task
            .id;
        links.extend(parents.into_iter().map(|p| (p, id.clone())));
        tasks.push(id.clone());
        id
    };
    for g in 0..GROUPS {
        let root = new(format!("g{g} root"), vec![], &mut links);
        let fan: Vec<String> = (0..FAN)
            .map(|i| new(format!("g{g} fan {i}"), vec![root.clone()], &mut links))
            .collect();
        let mut prev = new(format!("g{g} join"), fan, &mut links);
        for i in 0..CHAIN {
            prev = new(format!("g{g} chain {i}"), vec![prev], &mut links);
        }
    }
    (tasks, links)
}

#[test]
fn three_hosts_drain_chains_and_fan_outs_and_survive_one_killed() {
    let fx = TestHome::new();
    let lab = fx.path().join("lab");
    std::fs::create_dir_all(lab.join("events")).unwrap();
    let hermes = lab.join("hermes");
    std::fs::write(&hermes, worker_script(&lab)).unwrap();
    std::fs::set_permissions(&hermes, std::fs::Permissions::from_mode(0o755)).unwrap();

    let admin = Board::open(&fx.env, None).expect("open the board");
    let (tasks, links) = create_graph(&admin);
    assert_eq!(tasks.len(), GROUPS * (2 + FAN + CHAIN));
    // Where every host finds the one board.
    let board_env: Vec<(&str, String)> = match &fx.db {
        Some(db) => vec![(DATABASE_URL_VAR, db.url.clone())],
        None => vec![(
            "HERMES_KANBAN_DB",
            admin.paths().db.to_string_lossy().into_owned(),
        )],
    };

    let started = Instant::now();
    let mut hosts: Vec<Host> = HOSTS
        .iter()
        .map(|h| Host::start(h, &lab, &board_env))
        .collect();
    let done_count = |b: &Board| {
        b.list_tasks(&ListFilter {
            status: Some(Status::Done),
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    let victim = HOSTS[VICTIM];
    // Mid-run: a quarter of the work done, and the victim holding claims.
    crate::helpers::wait_until(
        "a quarter of the tasks done with the victim holding claims",
        Duration::from_secs(300),
        || {
            let running = admin
                .list_tasks(&ListFilter {
                    status: Some(Status::Running),
                    ..Default::default()
                })
                .unwrap();
            let held = running
                .iter()
                .filter(|t| t.claim_lock.as_deref().map(lock_host) == Some(victim))
                .count();
            (done_count(&admin) >= tasks.len() / 4 && held >= 1).then_some(())
        },
    );
    let killed_at = chrono::Utc::now().timestamp();
    let killed_at_ns = now_ns();
    hosts[VICTIM].kill();
    eprintln!(
        "killed {victim} with {} of {} tasks done",
        done_count(&admin),
        tasks.len()
    );

    crate::helpers::wait_until(
        "every task done on the surviving hosts",
        Duration::from_secs(600),
        || (done_count(&admin) == tasks.len()).then_some(()),
    );
    // Read by scripts/bench (--only postgres): the drain time, printed, never asserted.
    let backend = if fx.db.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    eprintln!(
        "multihost drain: {} tasks, {} hosts (one killed), {backend}: {:.1} s",
        tasks.len(),
        HOSTS.len(),
        started.elapsed().as_secs_f64()
    );
    for (i, h) in hosts.iter_mut().enumerate() {
        if i != VICTIM {
            h.stop();
        }
    }

    // Every task done, with exactly one completed run; runs never overlap.
    let mut runs: HashMap<String, Vec<Run>> = HashMap::new();
    for id in &tasks {
        let t = admin.get_task(id).unwrap();
        assert_eq!(t.status, Status::Done, "{id}: {t:?}");
        let mut r = admin.list_runs(id, None).unwrap();
        r.sort_by_key(|r| (r.started_at, r.id));
        let completed = r
            .iter()
            .filter(|r| r.outcome.as_deref() == Some("completed"))
            .count();
        assert_eq!(completed, 1, "{id} has {completed} completed runs: {r:#?}");
        for pair in r.windows(2) {
            let ended = pair[0].ended_at.expect("an earlier run is closed");
            assert!(
                ended <= pair[1].started_at,
                "{id}: run {} (ended {ended}) overlaps run {} (started {})",
                pair[0].id,
                pair[1].id,
                pair[1].started_at
            );
        }
        runs.insert(id.clone(), r);
    }

    // As the workers saw it: per task, one worker at a time (a killed worker until the kill),
    // and every completion a worker saw succeed is the task's completed run.
    let seen = worker_lines(&lab);
    let mut spans: BTreeMap<(&str, i64), (i128, Option<i128>, &str)> = BTreeMap::new();
    for s in &seen {
        match s.what.as_str() {
            "start" => {
                spans.insert((&s.task, s.run), (s.at_ns, None, &s.host));
            }
            "done" | "refused" => {
                let span = spans
                    .get_mut(&(s.task.as_str(), s.run))
                    .unwrap_or_else(|| panic!("an end without a start: {s:?}"));
                span.1 = Some(s.at_ns);
            }
            other => panic!("unknown worker line {other}"),
        }
        if s.what == "done" {
            let run = runs[&s.task].iter().find(|r| r.id == s.run);
            assert_eq!(
                run.and_then(|r| r.outcome.as_deref()),
                Some("completed"),
                "a worker saw {} complete on run {} but the board says {run:?}",
                s.task,
                s.run
            );
        }
    }
    let mut by_task: HashMap<&str, Vec<(i128, i128, i64)>> = HashMap::new();
    for ((task, run), (start, end, host)) in &spans {
        let end = match end {
            Some(e) => *e,
            None if *host == victim => killed_at_ns,
            None => panic!("worker of {task} run {run} on {host} never finished"),
        };
        by_task.entry(task).or_default().push((*start, end, *run));
    }
    for (task, mut s) in by_task {
        s.sort();
        for w in s.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "{task}: the workers of runs {} and {} overlapped",
                w[0].2,
                w[1].2
            );
        }
    }

    // Which host claimed each run, and the latest expiry the board recorded for it (a run's
    // own claim columns are cleared when it closes; the events keep them).
    let events: HashMap<&String, Vec<_>> = tasks
        .iter()
        .map(|id| (id, admin.list_events(id, None).unwrap()))
        .collect();
    let mut run_host: HashMap<i64, String> = HashMap::new();
    let mut run_expires: HashMap<i64, i64> = HashMap::new();
    for e in events.values().flatten() {
        let (Some(run), Some(p)) = (e.run_id, e.payload.as_ref()) else {
            continue;
        };
        if e.kind == "claimed" {
            let lock = p["lock"].as_str().expect("a claimed event names its lock");
            run_host.insert(run, lock_host(lock).to_string());
        }
        if (e.kind == "claimed" || e.kind == "claim_extended")
            && let Some(x) = p["expires"].as_i64()
        {
            let slot = run_expires.entry(run).or_insert(x);
            *slot = (*slot).max(x);
        }
    }
    let host_of = |r: &Run| run_host.get(&r.id).map(String::as_str).unwrap_or("?");

    // The dead host's claims: released only by expiry, and re-run within TTL + a few
    // intervals (a generous bound for a loaded machine: 20 intervals of 0.5 s).
    let slack = 10;
    let mut cut = 0;
    for (id, r) in &runs {
        for (i, run) in r.iter().enumerate() {
            if host_of(run) != victim || run.outcome.as_deref() == Some("completed") {
                continue;
            }
            cut += 1;
            let ended = run.ended_at.expect("the dead host's run was closed");
            let expires = run_expires[&run.id];
            assert!(
                ended >= expires,
                "{id}: the dead host's run {} was released at {ended} ({:?}), before its \
                 claim expired at {expires}",
                run.id,
                run.outcome
            );
            assert!(
                ended <= killed_at + TTL + slack,
                "{id}: the dead host's run {} was released {}s after the kill (TTL {TTL})",
                run.id,
                ended - killed_at
            );
            let next = r
                .get(i + 1)
                .expect("the task ran again after the host died");
            assert_ne!(host_of(next), victim, "{id} ran again on the dead host");
        }
    }
    assert!(cut >= 1, "the victim held no claim when it died");

    // Spread: every host ran work; the survivors each completed a fair share.
    let mut completed_by: HashMap<&str, usize> = HashMap::new();
    let mut started_by: HashMap<&str, usize> = HashMap::new();
    for r in runs.values().flatten() {
        let host = host_of(r);
        *started_by.entry(host).or_default() += 1;
        if r.outcome.as_deref() == Some("completed") {
            *completed_by.entry(host).or_default() += 1;
        }
    }
    eprintln!("runs started per host: {started_by:?}; completed: {completed_by:?}");
    assert!(
        started_by.keys().all(|h| HOSTS.contains(h)),
        "a run claimed by something else than the three hosts: {started_by:?}"
    );
    for (i, h) in HOSTS.iter().enumerate() {
        assert!(
            started_by.get(h).copied().unwrap_or(0) >= 1,
            "{h} ran nothing"
        );
        if i != VICTIM {
            assert!(
                completed_by.get(h).copied().unwrap_or(0) >= tasks.len() / 20,
                "{h} completed too little: {completed_by:?}"
            );
        }
    }

    // Children never started before their parents were done: every claim of a child comes
    // after its parent's completion, in the board's own event order and clock.
    for (parent, child) in &links {
        let done = events[parent]
            .iter()
            .find(|e| e.kind == "completed")
            .unwrap_or_else(|| panic!("{parent} has no completed event"));
        for claim in events[child].iter().filter(|e| e.kind == "claimed") {
            assert!(
                claim.id > done.id && claim.created_at >= done.created_at,
                "{child} was claimed (event {}) before its parent {parent} completed (event {})",
                claim.id,
                done.id
            );
        }
    }
    drop(admin);
}
