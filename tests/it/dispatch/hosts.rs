//! Many hosts on one board (issue 15): dispatcher hosts told apart by `HERMES_KANBAN_HOST_ID`
//! sharing one SQLite file. A host judges only its own workers (another host's claim is
//! released only by expiry), keeps its live workers' claims from expiring, heartbeats keep a
//! job whose host died, the per-host cap holds per host and `max_in_progress` across them,
//! and the lease rows tell live hosts from dead ones. Real `daemon` processes with fake
//! workers, and in-process ticks on a test clock.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hermes_kanban::dispatch::config::KanbanConfig;
use hermes_kanban::dispatch::{HostState, TickOptions, dispatch_once};
use hermes_kanban::kernel::{Board, CapClaim, Lane, SpawnCaps, Status, host_id};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;

use crate::helpers::{Cli, TestBoard};

const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");
/// The claim TTL of the daemon scenarios: short, so expiry happens within the test.
const TTL: &str = "4";

/// A temp home with a `worker` profile, a fake `hermes` and the daemons and process groups
/// to stop when the test ends, whatever happens.
struct Fleet {
    cli: Cli,
    hermes: PathBuf,
    daemons: Vec<(String, Child)>,
    groups: Vec<i32>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, d) in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        for g in &self.groups {
            let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
        }
    }
}

impl Fleet {
    /// `body` is the fake worker's shell, with `$HK`, `$LAB`, `$T` and the host's
    /// `$HERMES_KANBAN_HOST_ID`; `config` the `kanban:` keys of config.yaml.
    fn new(body: &str, config: &str) -> Fleet {
        let mut cli = Cli::new();
        std::fs::create_dir_all(cli.home().join("profiles/worker")).unwrap();
        std::fs::write(cli.home().join("profiles/worker/config.yaml"), "{}\n").unwrap();
        std::fs::write(cli.home().join("config.yaml"), format!("kanban:\n{config}")).unwrap();
        for (k, v) in [
            ("HERMES_KANBAN_CRASH_GRACE_SECONDS", "0"),
            ("HERMES_KANBAN_KILL_GRACE_SECONDS", "1"),
            ("HERMES_KANBAN_CLAIM_TTL_SECONDS", TTL),
        ] {
            cli.extra_env.push((k.into(), v.into()));
        }
        let lab = cli.dir.path().to_path_buf();
        let hermes = lab.join("hermes.sh");
        let script = format!(
            "#!/bin/bash\nif [ \"$1\" = --help ]; then echo 'usage: hermes [-h] [--skills \
             SKILLS]'; exit 0; fi\nHK={HK}\nLAB={lab}\nT=\"$HERMES_KANBAN_TASK\"\necho \"$$\" > \
             \"$LAB/$T.$HERMES_KANBAN_HOST_ID.pid\"\n{body}\n",
            lab = lab.display()
        );
        std::fs::write(&hermes, script).unwrap();
        std::fs::set_permissions(&hermes, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fleet {
            cli,
            hermes,
            daemons: vec![],
            groups: vec![],
        }
    }

    /// Start `daemon --interval 0.5` as host `host`.
    fn start(&mut self, host: &str) {
        let d = self
            .cli
            .cmd(&["daemon", "--interval", "0.5"])
            .env("HERMES_BIN", &self.hermes)
            .env("HERMES_KANBAN_HOST_ID", host)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemons.push((host.to_string(), d));
    }

    /// SIGKILL host `host`'s daemon (its supervisors and workers live on unless killed too).
    fn kill_daemon(&mut self, host: &str) {
        let i = self.daemons.iter().position(|(h, _)| h == host).unwrap();
        let (_, mut d) = self.daemons.remove(i);
        d.kill().unwrap();
        d.wait().unwrap();
    }

    /// SIGKILL every process group of `host`'s workers: the supervisors (the tasks'
    /// `worker_pid`, leaders of their own sessions) and the workers they started.
    fn kill_workers(&self, host: &str, tasks: &[String]) {
        let b = self.board();
        for t in tasks {
            if let Some(sup) = b.get_task(t).unwrap().worker_pid {
                let _ = killpg(Pid::from_raw(sup as i32), Signal::SIGKILL);
            }
            let pid = self.cli.dir.path().join(format!("{t}.{host}.pid"));
            if let Ok(p) = std::fs::read_to_string(pid) {
                let _ = killpg(Pid::from_raw(p.trim().parse().unwrap()), Signal::SIGKILL);
            }
        }
    }

    fn create(&self, title: &str) -> String {
        self.cli.create(title, &["--assignee", "worker"])
    }

    fn board(&self) -> Board {
        self.cli.board()
    }

    /// Poll until `f` holds (deadline 60 s: generous for a loaded 2-core machine).
    fn until(&self, what: &str, mut f: impl FnMut(&Board) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let b = self.board();
        while !f(&b) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The hosts whose claims the running tasks carry, one entry per running task.
    fn running_hosts(b: &Board) -> Vec<String> {
        b.running_tasks()
            .unwrap()
            .into_iter()
            .filter_map(|rt| rt.task.claim_lock)
            .map(|l| l.rsplit_once(':').unwrap().0.to_string())
            .collect()
    }

    /// `diagnostics --hosts --json` → host id → live.
    fn hosts(&self) -> Vec<(String, bool)> {
        let v = self.cli.run(&["diagnostics", "--hosts", "--json"]).json();
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["host_id"].as_str().unwrap().to_string(),
                    h["live"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    fn host_live(&self, host: &str) -> Option<bool> {
        self.hosts()
            .into_iter()
            .find(|(h, _)| h == host)
            .map(|(_, l)| l)
    }

    fn dry_run_as(&self, host: &str) -> Value {
        self.cli
            .run_env(
                &["dispatch", "--dry-run", "--json"],
                &[("HERMES_KANBAN_HOST_ID", host)],
            )
            .json()
    }
}

/// The host each run of `task` was claimed by (from its `claimed` events: a closed run's own
/// claim lock is cleared), by run id.
fn run_hosts(b: &Board, task: &str) -> std::collections::HashMap<i64, String> {
    b.list_events(task, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "claimed")
        .map(|e| {
            let lock = e.payload.unwrap()["lock"].as_str().unwrap().to_string();
            (
                e.run_id.unwrap(),
                lock.rsplit_once(':').unwrap().0.to_string(),
            )
        })
        .collect()
}

fn count(hosts: &[String], host: &str) -> usize {
    hosts.iter().filter(|h| *h == host).count()
}

/// Two hosts on one board: host-a's workers hang, host-b's finish in a second. The per-host
/// cap (2) holds on each host and `max_in_progress` (3) across both; neither host reclaims
/// the other's live claims past the TTL; the dry run counts per host; diagnostics lists both
/// hosts live. Then host-a dies with its workers (kill -9): host-b reclaims its tasks once
/// their claims expire, re-runs and completes them, and diagnostics marks host-a not live.
#[test]
fn two_hosts_share_a_board_and_the_survivor_takes_over_a_dead_hosts_tasks() {
    let body = r#"case "$HERMES_KANBAN_HOST_ID" in
  host-a) exec sleep 600 ;;
  *) sleep 1; $HK complete "$T" --summary "done on $HERMES_KANBAN_HOST_ID" ;;
esac"#;
    let mut f = Fleet::new(
        body,
        "  max_in_progress: 3\n  max_in_progress_per_host: 2\n",
    );
    let tasks: Vec<String> = (0..6).map(|i| f.create(&format!("job {i}"))).collect();
    f.start("host-a");
    f.until("host-a to run two tasks", |b| {
        count(&Fleet::running_hosts(b), "host-a") == 2
    });
    let b = f.board();
    let on_a: Vec<String> = b
        .running_tasks()
        .unwrap()
        .into_iter()
        .map(|rt| rt.task.id)
        .collect();
    for t in &on_a {
        let pid = f.cli.dir.path().join(format!("{t}.host-a.pid"));
        f.until("host-a's worker to start", |_| pid.exists());
        f.groups
            .push(b.get_task(t).unwrap().worker_pid.unwrap() as i32);
    }
    // The dry run counts the asking host's claims: host-a is full, host-b has one board slot.
    let dry_a = f.dry_run_as("host-a");
    assert_eq!(dry_a["spawned"], serde_json::json!([]), "{dry_a}");
    let dry_b = f.dry_run_as("host-b");
    assert_eq!(dry_b["spawned"].as_array().unwrap().len(), 1, "{dry_b}");
    f.start("host-b");
    f.until("host-b to run a task", |b| {
        count(&Fleet::running_hosts(b), "host-b") >= 1
    });
    f.until("diagnostics to list both hosts live", |_| {
        f.host_live("host-a") == Some(true) && f.host_live("host-b") == Some(true)
    });
    // Past two TTLs with both hosts up: the caps hold at every sample, and host-a's live
    // claims stay on their first run (host-a renews them; host-b never judges them).
    let runs_before: Vec<i64> = on_a
        .iter()
        .map(|t| b.get_task(t).unwrap().current_run_id.unwrap())
        .collect();
    let window = Instant::now() + Duration::from_secs(2 * TTL.parse::<u64>().unwrap() + 1);
    while Instant::now() < window {
        let hosts = Fleet::running_hosts(&b);
        assert!(hosts.len() <= 3, "max_in_progress overshot: {hosts:?}");
        assert!(
            count(&hosts, "host-a") <= 2,
            "host-a over its cap: {hosts:?}"
        );
        assert!(
            count(&hosts, "host-b") <= 2,
            "host-b over its cap: {hosts:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (t, run) in on_a.iter().zip(&runs_before) {
        let task = b.get_task(t).unwrap();
        assert_eq!(task.status, Status::Running, "{t}");
        assert_eq!(
            task.current_run_id,
            Some(*run),
            "{t} was reclaimed while host-a lived"
        );
        assert!(task.claim_expires.unwrap() > b.now(), "{t}'s claim expired");
    }
    // host-a dies with its workers.
    f.kill_daemon("host-a");
    f.kill_workers("host-a", &on_a);
    f.until("every task to be done", |b| {
        tasks
            .iter()
            .all(|t| b.get_task(t).unwrap().status == Status::Done)
    });
    for t in &tasks {
        let runs = b.list_runs(t, None).unwrap();
        let completed: Vec<_> = runs
            .iter()
            .filter(|r| r.outcome.as_deref() == Some("completed"))
            .collect();
        assert_eq!(completed.len(), 1, "{t}: {runs:?}");
        let hosts = run_hosts(&b, t);
        assert_eq!(hosts[&completed[0].id], "host-b", "{t}: {hosts:?}");
        for w in runs.windows(2) {
            assert!(
                w[0].ended_at.is_some_and(|e| e <= w[1].started_at),
                "{t}: runs overlap: {runs:?}"
            );
        }
        if on_a.contains(t) {
            let outcomes: Vec<_> = runs.iter().map(|r| r.outcome.clone()).collect();
            assert_eq!(
                outcomes,
                [Some("reclaimed".to_string()), Some("completed".to_string())],
                "{t}"
            );
            assert_eq!(hosts[&runs[0].id], "host-a", "{t}: {hosts:?}");
        }
    }
    f.until("diagnostics to mark host-a not live", |_| {
        f.host_live("host-a") == Some(false) && f.host_live("host-b") == Some(true)
    });
    // A log lives on the host that ran the worker: where it is missing here, `log` names
    // that host instead of saying the task never ran.
    std::fs::remove_file(b.paths().log_file(&on_a[0])).unwrap();
    let r = f.cli.run(&["log", &on_a[0]]);
    assert!(
        r.code(1).stderr.contains("is on host host-b"),
        "{}",
        r.stderr
    );
}

/// A long job heartbeats: its claim is extended on every heartbeat, so after its host died
/// (its daemon killed, the worker left running) the other host never reclaims it although
/// the job runs for three TTLs; it completes on its one run.
#[test]
fn a_heartbeating_job_outlives_its_ttl_after_its_host_died() {
    let body = r#"for i in $(seq 12); do $HK heartbeat "$T" --note "beat $i"; sleep 1; done
$HK complete "$T" --summary "long job done""#;
    let mut f = Fleet::new(body, "  max_in_progress: 2\n");
    let t = f.create("long job");
    f.start("host-a");
    f.until("host-a to run the job", |b| {
        Fleet::running_hosts(b) == ["host-a"]
    });
    let b = f.board();
    f.until("the first heartbeat", |b| {
        b.get_task(&t).unwrap().last_heartbeat_at.is_some()
    });
    f.groups
        .push(b.get_task(&t).unwrap().worker_pid.unwrap() as i32);
    f.kill_daemon("host-a");
    f.start("host-b");
    f.until("host-b to tick", |_| f.host_live("host-b") == Some(true));
    f.until("the job to finish", |b| {
        b.get_task(&t).unwrap().status != Status::Running
    });
    let task = b.get_task(&t).unwrap();
    assert_eq!(task.status, Status::Done);
    let runs = b.list_runs(&t, None).unwrap();
    assert_eq!(runs.len(), 1, "the job was reclaimed: {runs:?}");
    assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
    assert_eq!(run_hosts(&b, &t)[&runs[0].id], "host-a");
    let beats = b
        .list_events(&t, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "heartbeat")
        .count();
    assert_eq!(beats, 12);
    assert!(
        runs[0].ended_at.unwrap() - runs[0].started_at > 2 * TTL.parse::<i64>().unwrap(),
        "the job did not outlive its TTL: {runs:?}"
    );
}

/// A tick's options for in-process ticks on `tb`: stale detection after 10 s, no crash grace.
fn opts(tb: &TestBoard) -> TickOptions {
    let (cfg, _) = KanbanConfig::load(&tb.env);
    let mut o = TickOptions::from_config(&tb.env, &cfg);
    o.stale_timeout_seconds = 10;
    o.crash_grace_seconds = 0;
    o.ttl_seconds = Some(60);
    o
}

/// The audit of the liveness paths: another host's claim — its pid dead here, no
/// heartbeats, running past the stale timeout — is not settled, released as stale or
/// signalled by this host's tick; only its expiry releases it. This host's own claim in the
/// same state is released as stale (the control).
#[test]
fn a_tick_releases_another_hosts_claim_only_by_expiry() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let dead_pid = i64::from(i32::MAX - 1);
    let foreign = tb.task("on another host");
    let c = b.claim_task_as(&foreign, Some(60), "elsewhere:77").unwrap();
    b.set_worker_pid(&foreign, c.run_id, dead_pid).unwrap();
    let own = tb.task("on this host");
    let lock = format!("{}:77", host_id());
    let c2 = b.claim_task_as(&own, Some(60), &lock).unwrap();
    b.set_worker_pid(&own, c2.run_id, dead_pid).unwrap();
    tb.advance(30);
    let r = dispatch_once(b, &opts(&tb), &mut HostState::default()).unwrap();
    assert_eq!(r.stale, vec![own.clone()], "{r:?}");
    assert!(r.crashed.is_empty() && r.reclaimed == 0, "{r:?}");
    let t = b.get_task(&foreign).unwrap();
    assert_eq!(t.status, Status::Running);
    assert_eq!(t.current_run_id, Some(c.run_id));
    tb.advance(31);
    let r = dispatch_once(b, &opts(&tb), &mut HostState::default()).unwrap();
    assert_eq!(r.reclaimed, 1, "{r:?}");
    let runs = b.list_runs(&foreign, None).unwrap();
    assert_eq!(runs[0].outcome.as_deref(), Some("reclaimed"));
    assert_eq!(runs[0].error.as_deref(), Some("stale_lock=elsewhere:77"));
    assert_ne!(b.get_task(&foreign).unwrap().status, Status::Running);
}

/// A live worker of this host gets its claim renewed once less than half a TTL is left
/// (before it expires, without an event), and extended (event `claim_extended`) if it expired
/// between ticks; an unexpired claim of another host is left as is, an expired one released.
#[test]
fn a_tick_renews_its_own_live_claims_before_they_expire() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let own = tb.task("alive here");
    let c = b
        .claim_task_as(&own, Some(60), &format!("{}:1", host_id()))
        .unwrap();
    b.set_worker_pid(&own, c.run_id, i64::from(sleeper.id()))
        .unwrap();
    let foreign = tb.task("alive there");
    b.claim_task_as(&foreign, Some(60), "elsewhere:1").unwrap();
    let mut o = opts(&tb);
    o.stale_timeout_seconds = 0;
    tb.advance(20);
    dispatch_once(b, &o, &mut HostState::default()).unwrap();
    assert_eq!(
        b.get_task(&own).unwrap().claim_expires,
        Some(tb.now() + 40),
        "renewed while more than half a TTL was left"
    );
    tb.advance(15);
    let events = b.list_events(&own, None).unwrap().len();
    dispatch_once(b, &o, &mut HostState::default()).unwrap();
    let t = b.get_task(&own).unwrap();
    assert_eq!(t.claim_expires, Some(tb.now() + 60), "not renewed");
    let run = b.get_run(c.run_id).unwrap();
    assert_eq!(
        run.claim_expires, t.claim_expires,
        "the run's expiry did not follow"
    );
    assert_eq!(
        b.list_events(&own, None).unwrap().len(),
        events,
        "a renewal is silent"
    );
    let f = b.get_task(&foreign).unwrap();
    assert_eq!(
        f.claim_expires,
        Some(tb.now() - 35 + 60),
        "another host's claim moved"
    );
    // Expired anyway (no tick for a while): extended, with a `claim_extended` event.
    tb.advance(61);
    let r = dispatch_once(b, &o, &mut HostState::default()).unwrap();
    assert_eq!(r.reclaimed, 1, "only the other host's expired claim: {r:?}");
    let t = b.get_task(&own).unwrap();
    assert_eq!(t.claim_expires, Some(tb.now() + 60));
    assert_eq!(t.current_run_id, Some(c.run_id));
    let kinds: Vec<String> = b
        .list_events(&own, None)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("claim_extended"),
        "{kinds:?}"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// The per-host cap in the claim's own transaction: a host at `per_host` running claims is
/// refused (nothing written) while another host on the same board still claims.
#[test]
fn the_per_host_cap_counts_only_the_claiming_hosts_tasks() {
    let tb = TestBoard::new();
    let b = &tb.board;
    let first = tb.task("first");
    b.claim_task_as(&first, None, "h1:1").unwrap();
    let next = tb.task("next");
    let caps = SpawnCaps {
        max_running: Some(5),
        per_profile: None,
        per_host: Some(1),
    };
    let rows = b.snapshot().unwrap();
    let r = b
        .claim_under_caps(&next, Lane::Ready, None, "h1:2", caps)
        .unwrap();
    assert!(matches!(r, CapClaim::HostAtCap { running: 1 }), "{r:?}");
    assert_eq!(b.snapshot().unwrap(), rows, "a refused claim wrote");
    let r = b
        .claim_under_caps(&next, Lane::Ready, None, "h10:1", caps)
        .unwrap();
    assert!(matches!(r, CapClaim::Claimed(_)), "{r:?}");
}
