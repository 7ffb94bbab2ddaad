//! The dispatcher against real processes: fake `hermes` scripts (selected with `HERMES_BIN`)
//! that act on the board through our own CLI binary — complete, block, exit 0 silently, exit 3,
//! exit 75, hang past their max runtime, die by SIGKILL — driven by one-shot `dispatch` runs, by
//! the `daemon` host and by in-process ticks. Every scenario ends with the invariant check.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Cli;
use hermes_kanban::dispatch::config::KanbanConfig;
use hermes_kanban::dispatch::{HostState, TickOptions, dispatch_once};
use hermes_kanban::kernel::{Board, Env, Status, Task};
use serde_json::Value;

const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");

/// The first lines of every fake `hermes`: answer the dispatcher's `--help` flag probe like
/// Hermes 0.19.0 (its top-level flags), without running the worker body.
const FAKE_HELP: &str = "if [ \"$1\" = --help ]; then echo 'usage: hermes [-h] [-m MODEL] \
                         [--provider PROVIDER] [--accept-hooks] [--skills SKILLS] [--cli]'; exit \
                         0; fi\n";

/// A temp HERMES_HOME with a `worker` profile, fake worker scripts and short knobs.
struct Lab {
    cli: Cli,
    /// Process groups to kill when the test ends (hanging workers).
    pids: Vec<i32>,
}

impl Lab {
    fn new() -> Lab {
        let mut cli = Cli::new();
        std::fs::create_dir_all(cli.home().join("profiles").join("worker")).unwrap();
        // An identity file makes the directory a profile (UP §10).
        std::fs::write(cli.home().join("profiles/worker/config.yaml"), "{}\n").unwrap();
        cli.extra_env
            .push(("HERMES_KANBAN_CRASH_GRACE_SECONDS".into(), "0".into()));
        cli.extra_env
            .push(("HERMES_KANBAN_KILL_GRACE_SECONDS".into(), "1".into()));
        Lab { cli, pids: vec![] }
    }

    fn dir(&self) -> PathBuf {
        self.cli.dir.path().to_path_buf()
    }

    /// Write a fake `hermes`: bash with `$HK` (our binary), `$LAB` (the temp dir) and
    /// `$T` (the task id) set, then `body`.
    fn worker(&self, name: &str, body: &str) -> PathBuf {
        self.worker_with_help(name, FAKE_HELP, body)
    }

    /// A fake `hermes` whose `--help` answer is `help` (shell lines).
    fn worker_with_help(&self, name: &str, help: &str, body: &str) -> PathBuf {
        let p = self.dir().join(name);
        let script = format!(
            "#!/bin/bash\n{help}HK={HK}\nLAB={lab}\nT=\"$HERMES_KANBAN_TASK\"\necho \"$$\" > \
             \"$LAB/$T.pid\"\n{body}\n",
            lab = self.dir().display()
        );
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn create(&self, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["--assignee", "worker"];
        args.extend_from_slice(extra);
        self.cli.create(title, &args)
    }

    /// One-shot `dispatch --json` with `HERMES_BIN=<hermes>` and extra env.
    fn dispatch_env(&self, hermes: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut a = vec!["dispatch", "--json"];
        a.extend_from_slice(args);
        let h = hermes.to_string_lossy().into_owned();
        let mut e: Vec<(&str, &str)> = vec![("HERMES_BIN", h.as_str())];
        e.extend_from_slice(env);
        self.cli.run_env(&a, &e).json()
    }

    fn dispatch(&self, hermes: &Path) -> Value {
        self.dispatch_env(hermes, &[], &[])
    }

    fn board(&self) -> Board {
        self.cli.board()
    }

    fn task(&self, id: &str) -> Task {
        self.board().get_task(id).unwrap()
    }

    /// Poll until `f` holds (deadline 30 s: generous for a loaded 2-core CI machine).
    fn until(&self, what: &str, mut f: impl FnMut(&Board) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let b = self.board();
        while !f(&b) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Wait until the task is no longer running (its supervisor settled it or it finished).
    fn settled(&self, id: &str) -> Task {
        self.until(&format!("{id} to leave running"), |b| {
            b.get_task(id).unwrap().status != Status::Running
        });
        self.task(id)
    }

    fn events(&self, id: &str) -> Vec<String> {
        self.board()
            .list_events(id, None)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    fn outcomes(&self, id: &str) -> Vec<String> {
        self.board()
            .list_runs(id, None)
            .unwrap()
            .into_iter()
            .map(|r| r.outcome.unwrap_or_else(|| "(open)".into()))
            .collect()
    }

    fn pid_of(&self, id: &str) -> i32 {
        let p = self.dir().join(format!("{id}.pid"));
        self.until(&format!("{} to exist", p.display()), |_| {
            std::fs::read_to_string(&p).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
        });
        std::fs::read_to_string(&p).unwrap().trim().parse().unwrap()
    }

    fn check(&self) {
        self.cli.assert_invariants();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| x["task_id"].as_str().unwrap().to_string())
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    hermes_kanban::process::pid_alive(pid as i64)
}

#[test]
fn a_worker_that_heartbeats_and_completes_finishes_the_task() {
    let lab = Lab::new();
    let hermes = lab.worker(
        "complete.sh",
        r#"echo "argv: $*"
env | grep -E '^(HERMES_|TERMINAL_)' | sort > "$LAB/$T.env"; pwd > "$LAB/$T.cwd"
$HK heartbeat "$T" --note working
$HK complete "$T" --summary "done by the fake worker" --metadata '{"files": 2}'"#,
    );
    let t = lab.create("happy path", &["--skill", "github-code-review"]);
    let r = lab.dispatch(&hermes);
    assert_eq!(ids(&r, "spawned"), vec![t.clone()]);
    let ws = r["spawned"][0]["workspace"].as_str().unwrap().to_string();
    assert!(ws.ends_with(&format!("kanban/workspaces/{t}")), "{ws}");
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Done);
    let runs = lab.board().list_runs(&t, None).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
    assert_eq!(runs[0].summary.as_deref(), Some("done by the fake worker"));
    let ev = lab.events(&t);
    for k in ["claimed", "spawned", "heartbeat", "completed"] {
        assert!(ev.contains(&k.to_string()), "{k} missing: {ev:?}");
    }
    // The worker's environment (REF §10.2) and argv.
    let env: BTreeMap<String, String> = std::fs::read_to_string(lab.dir().join(format!("{t}.env")))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env["HERMES_KANBAN_TASK"], t);
    assert_eq!(env["HERMES_KANBAN_RUN_ID"], runs[0].id.to_string());
    assert_eq!(env["HERMES_KANBAN_WORKSPACE"], ws);
    assert_eq!(env["TERMINAL_CWD"], ws);
    assert_eq!(env["HERMES_KANBAN_BOARD"], "default");
    assert_eq!(env["HERMES_PROFILE"], "worker");
    assert_eq!(
        env["HERMES_HOME"],
        lab.cli.home().join("profiles/worker").to_string_lossy()
    );
    // The board pin: the file on SQLite; on PostgreSQL the database URL and the board's slug
    // above (with HERMES_KANBAN_TASK), and no file.
    match &lab.cli.pg {
        None => assert_eq!(env["HERMES_KANBAN_DB"], lab.cli.db().to_string_lossy()),
        Some(db) => {
            assert_eq!(env["HERMES_KANBAN_DATABASE_URL"], db.url);
            assert!(!env.contains_key("HERMES_KANBAN_DB"), "{env:?}");
        }
    }
    assert!(env["HERMES_KANBAN_CLAIM_LOCK"].contains(':'));
    assert!(env["HERMES_KANBAN_TOKEN"].starts_with("hkr_"));
    assert!(
        lab.board()
            .resolve_run_token(&env["HERMES_KANBAN_TOKEN"])
            .unwrap()
            .is_some()
    );
    let cwd = std::fs::read_to_string(lab.dir().join(format!("{t}.cwd"))).unwrap();
    assert_eq!(cwd.trim(), ws);
    let log = std::fs::read_to_string(lab.cli.home().join(format!("kanban/logs/{t}.log"))).unwrap();
    assert!(
        log.contains(&format!(
            "argv: -p worker --cli --accept-hooks --skills github-code-review chat -q work kanban \
             task {t}"
        )),
        "{log}"
    );
    // The scratch workspace is removed once the task is done.
    lab.until("scratch cleanup", |_| !Path::new(&ws).exists());
    lab.check();
}

/// The default argv follows the installed Hermes (UP §10): `--skills kanban-worker` only once
/// `skills install --profile` put it in the assignee's profile, `-m/--provider` from the task,
/// and `--reasoning` only when `hermes --help` lists it (upstream ≥ 0.20), probed once per
/// binary and cached in `kanban/hermes-flags.json`.
#[test]
fn the_default_argv_follows_the_profile_skills_and_the_installed_hermes_flags() {
    let lab = Lab::new();
    let body = r#"echo "argv: $*"; $HK complete "$T" --summary ok"#;
    let v019 = lab.worker("hermes-019.sh", body);
    let v022 = lab.worker_with_help(
        "hermes-022.sh",
        "if [ \"$1\" = --help ]; then echo 'usage: hermes [-h] [-m MODEL] [--provider PROVIDER] \
         [--reasoning LEVEL] [--accept-hooks] [--skills SKILLS] [--cli]'; echo probed >> \
         \"$0.probes\"; exit 0; fi\n",
        body,
    );
    let argv_of = |t: &str| {
        let log =
            std::fs::read_to_string(lab.cli.home().join(format!("kanban/logs/{t}.log"))).unwrap();
        log.lines()
            .find_map(|l| l.strip_prefix("argv: "))
            .unwrap_or_else(|| panic!("no argv in {log}"))
            .to_string()
    };
    let pinned = [
        "--model",
        "gpt-5.5",
        "--provider",
        "openrouter",
        "--reasoning",
        "high",
    ];

    let a = lab.create("on 0.19", &pinned);
    lab.dispatch(&v019);
    lab.settled(&a);
    assert_eq!(
        argv_of(&a),
        format!(
            "-p worker --cli --accept-hooks -m gpt-5.5 --provider openrouter chat -q work kanban \
             task {a}"
        ),
        "0.19.0 has no --reasoning; no kanban-worker skill in the profile"
    );

    lab.cli
        .run(&["skills", "install", "--profile", "worker"])
        .ok();
    assert!(
        lab.cli
            .home()
            .join("profiles/worker/skills/kanban-worker/SKILL.md")
            .is_file()
    );
    let b = lab.create("on 0.22", &pinned);
    lab.dispatch(&v022);
    lab.settled(&b);
    assert_eq!(
        argv_of(&b),
        format!(
            "-p worker --cli --accept-hooks --skills kanban-worker -m gpt-5.5 --provider \
             openrouter --reasoning high chat -q work kanban task {b}"
        )
    );
    let c = lab.create("plain", &[]);
    lab.dispatch(&v022);
    lab.settled(&c);
    assert_eq!(
        argv_of(&c),
        format!(
            "-p worker --cli --accept-hooks --skills kanban-worker chat -q work kanban task {c}"
        )
    );
    // Probed once for both dispatches (the second one-shot read the on-disk cache).
    let probes = std::fs::read_to_string(format!("{}.probes", v022.display())).unwrap();
    assert_eq!(probes.lines().count(), 1, "{probes}");
    let cache = std::fs::read_to_string(lab.cli.home().join("kanban/hermes-flags.json")).unwrap();
    assert!(
        cache.contains("hermes-022.sh") && cache.contains("\"reasoning\": true"),
        "{cache}"
    );
    // Another Hermes installed at the same path (new size and mtime): probed again.
    std::thread::sleep(Duration::from_millis(20));
    lab.worker_with_help(
        "hermes-022.sh",
        "if [ \"$1\" = --help ]; then echo 'usage: hermes [-h] [-m MODEL] [--cli] [--accept-hooks] \
         [--skills SKILLS]   '; echo probed >> \"$0.probes\"; exit 0; fi\n",
        body,
    );
    let d = lab.create("after an upgrade", &pinned);
    lab.dispatch(&v022);
    lab.settled(&d);
    assert_eq!(
        argv_of(&d),
        format!(
            "-p worker --cli --accept-hooks --skills kanban-worker -m gpt-5.5 chat -q work kanban \
             task {d}"
        ),
        "this hermes lists neither --provider nor --reasoning"
    );
    let probes = std::fs::read_to_string(format!("{}.probes", v022.display())).unwrap();
    assert_eq!(probes.lines().count(), 2, "{probes}");
    lab.check();
}

#[test]
fn a_worker_that_blocks_leaves_the_task_blocked_with_its_reason() {
    let lab = Lab::new();
    let hermes = lab.worker(
        "block.sh",
        r#"$HK block "$T" "which region should I deploy to?" --kind needs_input"#,
    );
    let t = lab.create("asks a human", &[]);
    lab.dispatch(&hermes);
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Blocked);
    assert_eq!(task.block_kind.as_deref(), Some("needs_input"));
    let runs = lab.board().list_runs(&t, None).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("blocked"));
    assert_eq!(
        runs[0].summary.as_deref(),
        Some("which region should I deploy to?")
    );
    // Nothing counted as a failure, and the next tick leaves it alone.
    assert_eq!(task.consecutive_failures, 0);
    let r = lab.dispatch(&hermes);
    assert!(ids(&r, "spawned").is_empty());
    assert_eq!(lab.task(&t).status, Status::Blocked);
    lab.check();
}

#[test]
fn clean_exits_without_a_handoff_are_protocol_violations_until_the_breaker_trips() {
    let lab = Lab::new();
    let hermes = lab.worker("silent.sh", "echo 'I think I am done'; exit 0");
    let t = lab.create("forgets to complete", &[]);
    for attempt in 1..=3 {
        let r = lab.dispatch(&hermes);
        assert_eq!(ids(&r, "spawned"), vec![t.clone()], "attempt {attempt}");
        if attempt > 1 {
            // The previous attempt's settlement (by its supervisor) is reported now.
            assert_eq!(
                ids(&r, "crashed"),
                vec![t.clone()],
                "attempt {attempt}: {r}"
            );
        }
        let task = lab.settled(&t);
        let runs = lab.board().list_runs(&t, None).unwrap();
        let last = runs.last().unwrap();
        assert_eq!(last.outcome.as_deref(), Some("crashed"));
        assert_eq!(last.metadata.as_ref().unwrap()["protocol_violation"], true);
        if attempt < 3 {
            assert_eq!(task.status, Status::Ready, "attempt {attempt} is retried");
            assert_eq!(
                task.consecutive_failures, 0,
                "below the limit nothing counts"
            );
            assert!(
                task.last_failure_error
                    .as_deref()
                    .unwrap()
                    .contains("kanban_complete")
            );
        } else {
            assert_eq!(task.status, Status::Blocked, "the third violation trips");
            assert_eq!(task.consecutive_failures, 1);
        }
    }
    let ev = lab.events(&t);
    assert_eq!(
        ev.iter().filter(|k| *k == "protocol_violation").count(),
        3,
        "{ev:?}"
    );
    assert_eq!(ev.last().map(String::as_str), Some("gave_up"));
    let r = lab.dispatch(&hermes);
    assert_eq!(ids(&r, "auto_blocked"), vec![t.clone()]);
    assert!(ids(&r, "spawned").is_empty());
    lab.check();
}

#[test]
fn exit_3_twice_gives_up_and_the_task_stays_blocked() {
    let lab = Lab::new();
    let hermes = lab.worker("crash.sh", "echo boom >&2; exit 3");
    let t = lab.create("crashes", &[]);
    lab.dispatch(&hermes);
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 1);
    let runs = lab.board().list_runs(&t, None).unwrap();
    // The worker's last words (its log's tail, our supervisor's lines left out) travel with the
    // crash, as upstream records them (UP §7 `crashed.worker_output`).
    assert!(
        runs[0]
            .error
            .as_deref()
            .unwrap()
            .ends_with("exited with code 3 Worker's last output: \"boom\""),
        "{:?}",
        runs[0].error
    );
    let crashed = lab
        .board()
        .list_events(&t, None)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "crashed")
        .unwrap();
    assert_eq!(crashed.payload.unwrap()["worker_output"], "boom");
    let r = lab.dispatch(&hermes);
    assert_eq!(ids(&r, "crashed"), vec![t.clone()]);
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Blocked);
    assert_eq!(task.consecutive_failures, 2);
    assert_eq!(lab.outcomes(&t), vec!["crashed", "crashed"]);
    assert!(lab.events(&t).contains(&"gave_up".to_string()));
    // It stays blocked across further ticks (SPEC §3.3 fix 2).
    for _ in 0..3 {
        let r = lab.dispatch(&hermes);
        assert!(ids(&r, "spawned").is_empty(), "{r}");
        assert_eq!(lab.task(&t).status, Status::Blocked);
    }
    assert_eq!(lab.board().list_runs(&t, None).unwrap().len(), 2);
    lab.check();
}

#[test]
fn exit_75_is_rate_limited_with_a_cooldown_and_no_failure() {
    let lab = Lab::new();
    let hermes = lab.worker("quota.sh", "echo 'quota exceeded' >&2; exit 75");
    let t = lab.create("quota", &[]);
    lab.dispatch(&hermes);
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 0, "no failure counted");
    assert_eq!(lab.outcomes(&t), vec!["rate_limited"]);
    // Inside the cool-down the respawn guard holds it back (and reports the settlement).
    let r = lab.dispatch(&hermes);
    assert_eq!(ids(&r, "rate_limited"), vec![t.clone()]);
    assert!(ids(&r, "spawned").is_empty());
    assert_eq!(r["respawn_guarded"][0]["task_id"], t.as_str());
    assert_eq!(r["respawn_guarded"][0]["reason"], "rate_limit_cooldown");
    assert!(lab.events(&t).contains(&"respawn_guarded".to_string()));
    // A cool-down of 0 respawns at once.
    let r = lab.dispatch_env(
        &hermes,
        &[],
        &[("HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS", "0")],
    );
    assert_eq!(ids(&r, "spawned"), vec![t.clone()]);
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 0);
    lab.check();
}

#[test]
fn a_hung_worker_is_timed_out_by_its_supervisor_and_its_group_killed() {
    let mut lab = Lab::new();
    let hermes = lab.worker(
        "hang.sh",
        r#"sleep 300 &
echo $! > "$LAB/$T.child"
wait"#,
    );
    let t = lab.create("hangs", &["--max-runtime", "2"]);
    let started = Instant::now();
    lab.dispatch(&hermes);
    let worker = lab.pid_of(&t);
    lab.pids.push(worker);
    let child_file = lab.dir().join(format!("{t}.child"));
    // Exists before `echo` wrote to it: wait for a whole pid.
    lab.until("the child pid", |_| {
        std::fs::read_to_string(&child_file).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let child: i32 = std::fs::read_to_string(&child_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(child));
    // Only the one-shot dispatch ran: the supervisor enforces the limit on its own.
    let task = lab.settled(&t);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 1);
    let runs = lab.board().list_runs(&t, None).unwrap();
    assert_eq!(runs[0].outcome.as_deref(), Some("timed_out"));
    assert!(
        runs[0].error.as_deref().unwrap().contains("> limit 2s"),
        "{:?}",
        runs[0].error
    );
    assert!(lab.events(&t).contains(&"timed_out".to_string()));
    // No orphan: the worker and the child it started are gone.
    lab.until("the worker's child to die", |_| {
        !alive(child) && !alive(worker)
    });
    let r = lab.dispatch_env(&hermes, &["--max", "0"], &[]);
    assert_eq!(ids(&r, "timed_out"), vec![t.clone()]);
    lab.check();
}

#[test]
fn a_worker_killed_by_sigkill_is_a_crash() {
    let lab = Lab::new();
    let hermes = lab.worker("sigkill.sh", "kill -KILL $$");
    let t = lab.create("dies", &[]);
    lab.dispatch(&hermes);
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 1);
    let runs = lab.board().list_runs(&t, None).unwrap();
    assert_eq!(runs[0].outcome.as_deref(), Some("crashed"));
    assert!(
        runs[0]
            .error
            .as_deref()
            .unwrap()
            .ends_with("killed by signal 9"),
        "{:?}",
        runs[0].error
    );
    lab.check();
}

#[test]
fn a_missing_hermes_binary_is_a_spawn_failure_then_gives_up() {
    let lab = Lab::new();
    let missing = lab.dir().join("no-such-hermes");
    let t = lab.create("cannot start", &[]);
    let r = lab.dispatch(&missing);
    assert!(ids(&r, "spawned").is_empty());
    let task = lab.task(&t);
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 1);
    assert!(
        task.last_failure_error
            .as_deref()
            .unwrap()
            .contains("no-such-hermes"),
        "{:?}",
        task.last_failure_error
    );
    assert_eq!(lab.outcomes(&t), vec!["spawn_failed"]);
    let r = lab.dispatch(&missing);
    assert_eq!(ids(&r, "auto_blocked"), vec![t.clone()]);
    assert_eq!(lab.task(&t).status, Status::Blocked);
    assert_eq!(lab.outcomes(&t), vec!["spawn_failed", "gave_up"]);
    // The dispatcher itself is fine: another tick runs normally.
    let ok = lab.worker("ok.sh", r#"$HK complete "$T" --summary ok"#);
    let u = lab.create("fine", &[]);
    let r = lab.dispatch(&ok);
    assert_eq!(ids(&r, "spawned"), vec![u.clone()]);
    assert_eq!(lab.settled(&u).status, Status::Done);
    lab.check();
}

#[test]
fn expired_claims_are_extended_for_live_workers_and_reclaimed_for_dead_ones() {
    let mut lab = Lab::new();
    let ttl = [("HERMES_KANBAN_CLAIM_TTL_SECONDS", "1")];
    let hermes = lab.worker(
        "patient.sh",
        r#"while [ ! -f "$LAB/release" ]; do $HK heartbeat "$T" >/dev/null; sleep 0.2; done
$HK complete "$T" --summary "finished after a long time""#,
    );
    let live = lab.create("long but alive", &[]);
    lab.dispatch_env(&hermes, &[], &ttl);
    lab.pids.push(lab.pid_of(&live));
    // Tick past several TTLs: the live worker keeps its claim — its heartbeats extend it, the
    // tick renews it (or extends it once expired) — and it is never reclaimed. (The expired
    // claim's `claim_extended` path on its own: `dispatch::hosts`.)
    let first = lab.task(&live).claim_expires.unwrap();
    lab.until("the claim to outlive three TTLs", |b| {
        let r = lab.dispatch_env(&hermes, &["--max", "0"], &ttl);
        assert_eq!(r["reclaimed"], 0, "{r}");
        b.get_task(&live)
            .unwrap()
            .claim_expires
            .is_some_and(|e| e > first + 3)
    });
    assert_eq!(lab.task(&live).status, Status::Running);
    std::fs::write(lab.dir().join("release"), "").unwrap();
    assert_eq!(lab.settled(&live).status, Status::Done);
    assert_eq!(lab.outcomes(&live), vec!["completed"]);

    // A dead worker (its supervisor SIGKILLed too) loses its expired claim.
    let hang = lab.worker("hang2.sh", "sleep 300 & wait");
    let dead = lab.create("dies quietly", &[]);
    lab.dispatch_env(&hang, &[], &ttl);
    let worker = lab.pid_of(&dead);
    lab.pids.push(worker);
    // The supervisor records the worker's pid (its process group) right after starting it;
    // killing it before that would leave the group unknown to every tick.
    let run = lab.task(&dead).current_run_id.unwrap();
    lab.until("the worker's pid on the process row", |b| {
        b.run_process(run)
            .unwrap()
            .is_some_and(|p| p.worker_pid.is_some())
    });
    let sup = lab.task(&dead).worker_pid.unwrap() as i32;
    assert_ne!(sup, worker, "the recorded pid is the supervisor's");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // (A long crash grace keeps the crash path out of it: this is the stale-claim path.)
    lab.until("the claim to be reclaimed", |_| {
        let r = lab.dispatch_env(
            &hang,
            &["--max", "0"],
            &[ttl[0], ("HERMES_KANBAN_CRASH_GRACE_SECONDS", "3600")],
        );
        r["reclaimed"] == 1
    });
    let task = lab.task(&dead);
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 0, "a reclaim is not a failure");
    assert_eq!(lab.outcomes(&dead), vec!["reclaimed"]);
    lab.until("the worker group to be gone", |_| {
        !hermes_kanban::process::group_alive(worker as i64)
    });
    lab.check();
}

fn spawn_daemon(lab: &Lab, hermes: &Path, interval: &str) -> Child {
    lab.cli
        .cmd(&["daemon", "--interval", interval])
        .env("HERMES_BIN", hermes)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop_daemon(mut d: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = d.try_wait().unwrap() {
            assert!(s.success(), "daemon exit status {s:?}");
            return;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_daemon_runs_a_parent_child_chain_end_to_end() {
    let lab = Lab::new();
    let hermes = lab.worker(
        "chain.sh",
        r#"$HK context "$T" > "$LAB/$T.context"
$HK complete "$T" --summary "result of $T: 42" --metadata '{"answer": 42}'"#,
    );
    let parent = lab.create("compute the answer", &[]);
    let child = lab.create("use the answer", &["--parent", &parent]);
    assert_eq!(lab.task(&child).status, Status::Todo);
    // Without a dispatcher, create warns; with the daemon up, it does not.
    let r = lab.cli.run(&["create", "probe", "--assignee", "nobody"]);
    assert!(
        r.stderr.contains("no dispatcher is running"),
        "{}",
        r.stderr
    );
    let daemon = spawn_daemon(&lab, &hermes, "0.2");
    lab.until("the dispatcher's presence lock", |_| {
        !lab.cli
            .run(&["create", "probe 2", "--assignee", "nobody"])
            .stderr
            .contains("no dispatcher")
    });
    let r = lab
        .cli
        .run(&["create", "probe 3", "--assignee", "nobody", "--json"]);
    assert!(r.stderr.is_empty(), "never warn with --json: {}", r.stderr);
    lab.until("the child to be done", |b| {
        b.get_task(&child).unwrap().status == Status::Done
    });
    stop_daemon(daemon);
    assert_eq!(lab.task(&parent).status, Status::Done);
    let ctx = std::fs::read_to_string(lab.dir().join(format!("{child}.context"))).unwrap();
    assert!(ctx.contains(&parent), "{ctx}");
    assert!(ctx.contains(&format!("result of {parent}: 42")), "{ctx}");
    assert!(ctx.contains("answer"), "{ctx}");
    // After the daemon stopped, create warns again.
    let r = lab.cli.run(&["create", "probe 4", "--assignee", "nobody"]);
    assert!(
        r.stderr.contains("no dispatcher is running"),
        "{}",
        r.stderr
    );
    lab.check();
}

#[test]
fn a_stopped_daemon_leaves_workers_running_and_the_next_host_adopts_them() {
    let mut lab = Lab::new();
    let hermes = lab.worker(
        "slow.sh",
        r#"while [ ! -f "$LAB/release" ]; do sleep 0.1; done
$HK complete "$T" --summary adopted"#,
    );
    let t = lab.create("outlives its dispatcher", &[]);
    let daemon = spawn_daemon(&lab, &hermes, "0.2");
    let worker = lab.pid_of(&t);
    lab.pids.push(worker);
    stop_daemon(daemon);
    // The worker and its claim survive the host.
    assert!(alive(worker));
    let task = lab.task(&t);
    assert_eq!(task.status, Status::Running);
    assert!(task.claim_lock.is_some());
    // A new host ticks: nothing is reclaimed or respawned while the worker lives.
    let r = lab.dispatch(&hermes);
    assert_eq!(r["reclaimed"], 0);
    assert!(
        ids(&r, "crashed").is_empty() && ids(&r, "spawned").is_empty(),
        "{r}"
    );
    std::fs::write(lab.dir().join("release"), "").unwrap();
    assert_eq!(lab.settled(&t).status, Status::Done);
    lab.check();
}

#[test]
fn concurrent_dispatchers_never_spawn_a_task_twice() {
    let lab = Lab::new();
    let hermes = lab.worker(
        "wait.sh",
        r#"while [ ! -f "$LAB/release" ]; do sleep 0.1; done
$HK complete "$T" --summary done"#,
    );
    let tasks: Vec<String> = (0..6)
        .map(|i| lab.create(&format!("task {i}"), &[]))
        .collect();
    let procs: Vec<Child> = (0..4)
        .map(|_| {
            lab.cli
                .cmd(&["dispatch", "--json"])
                .env("HERMES_BIN", &hermes)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut spawned: Vec<String> = Vec::new();
    let mut locked = 0;
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["skipped_locked"] == true {
            locked += 1;
            assert!(ids(&v, "spawned").is_empty());
        }
        spawned.extend(ids(&v, "spawned"));
    }
    let unique: HashSet<&String> = spawned.iter().collect();
    assert_eq!(
        unique.len(),
        spawned.len(),
        "a task was spawned twice: {spawned:?}"
    );
    assert_eq!(
        unique.len(),
        6,
        "every task spawned once ({locked} ticks were locked out)"
    );
    std::fs::write(lab.dir().join("release"), "").unwrap();
    for t in &tasks {
        assert_eq!(lab.settled(t).status, Status::Done);
        assert_eq!(lab.outcomes(t), vec!["completed"]);
        let spawned_events = lab.events(t).iter().filter(|k| *k == "spawned").count();
        assert_eq!(spawned_events, 1);
    }
    lab.check();
}

fn stat(p: &Path) -> Option<(u64, std::time::SystemTime)> {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.len(), m.modified().unwrap()))
}

#[test]
fn a_dry_run_writes_nothing() {
    let lab = Lab::new();
    let hermes = lab.worker("never.sh", "exit 99");
    let parent = lab.create("parent", &[]);
    let ready = lab.create("ready", &[]);
    let child = lab.create("child", &["--parent", &parent]);
    lab.cli.create("unassigned", &[]);
    lab.cli.run(&["claim", &parent, "--ttl", "1"]).ok();
    lab.cli
        .run(&["complete", &parent, "--summary", "done"])
        .ok();
    lab.cli
        .run(&["create", "ghost's", "--assignee", "ghost"])
        .ok();
    let expired = lab.create("expired claim", &[]);
    lab.cli.run(&["claim", &expired, "--ttl", "1"]).ok();
    std::thread::sleep(Duration::from_millis(2100));

    let rows = lab.board().snapshot().unwrap();
    let db = lab.cli.db();
    let side = |s: &str| PathBuf::from(format!("{}{s}", db.display()));
    // The DB and its WAL (the -shm is SQLite's shared-memory index, rebuilt by whichever
    // process opens a kept WAL first: any reader changes it, so its mtime says nothing).
    let files = || (stat(&db), stat(&side("-wal")), side("-shm").exists());
    let before = files();
    let r = lab.dispatch_env(&hermes, &["--dry-run"], &[]);
    let after = files();
    assert_eq!(before, after, "dry run touched the database files");
    assert_eq!(
        lab.board().snapshot().unwrap(),
        rows,
        "dry run changed rows"
    );
    let spawned = ids(&r, "spawned");
    assert!(spawned.contains(&ready) && spawned.contains(&child), "{r}");
    assert!(r["spawned"][0]["workspace"] == "", "{r}");
    assert_eq!(ids(&r, "skipped_unassigned").len(), 1);
    assert_eq!(ids(&r, "skipped_nonspawnable").len(), 1);
    assert_eq!(lab.task(&expired).status, Status::Running, "not reclaimed");
    assert_eq!(lab.outcomes(&expired), vec!["(open)"]);
    assert!(!lab.cli.home().join("kanban/logs").exists());
    lab.check();
}

#[test]
fn worker_command_templates_serve_assignees_without_a_profile() {
    let lab = Lab::new();
    let agent = lab.worker(
        "agent.sh",
        r#"echo "$@" > "$LAB/$T.argv"
$HK complete "$T" --summary "served by another agent CLI""#,
    );
    std::fs::write(
        lab.cli.home().join("config.yaml"),
        format!(
            "kanban:\n  worker_command:\n    codex: [\"{}\", \"--task\", \"{{task_id}}\", \
             \"--board\", \"{{board}}\", \"--as\", \"{{assignee}}\", \"{{prompt}}\"]\n",
            agent.display()
        ),
    )
    .unwrap();
    let t = lab.cli.create("templated", &["--assignee", "codex"]);
    // HERMES_BIN points nowhere: the template is used instead.
    let r = lab.dispatch(&lab.dir().join("missing-hermes"));
    assert_eq!(ids(&r, "spawned"), vec![t.clone()], "{r}");
    assert_eq!(lab.settled(&t).status, Status::Done);
    let argv = std::fs::read_to_string(lab.dir().join(format!("{t}.argv"))).unwrap();
    assert_eq!(
        argv.trim(),
        format!("--task {t} --board default --as codex work kanban task {t}")
    );
    lab.check();
}

#[test]
fn bare_profile_dirs_and_dispatch_profiles_make_assignees_nonspawnable_once() {
    let lab = Lab::new();
    let done = lab.worker("done.sh", r#"$HK complete "$T" --summary ok"#);
    let profiles = lab.cli.home().join("profiles");
    std::fs::create_dir_all(profiles.join("bare")).unwrap();
    std::fs::create_dir_all(profiles.join("other")).unwrap();
    std::fs::write(profiles.join("other/config.yaml"), "{}\n").unwrap();
    // Assignees are lower-cased on write.
    let bare = lab.cli.create("for a bare dir", &["--assignee", "BARE"]);
    assert_eq!(lab.task(&bare).assignee.as_deref(), Some("bare"));
    let r = lab.dispatch(&done);
    assert_eq!(ids(&r, "skipped_nonspawnable"), vec![bare.clone()], "{r}");
    assert_eq!(r["reaped_terminal_workers"], serde_json::json!([]), "{r}");
    assert_eq!(r["memory_pressure"], false, "{r}");
    lab.dispatch(&done);
    let skips = |id: &str| {
        lab.events(id)
            .iter()
            .filter(|k| *k == "skipped_nonspawnable")
            .count()
    };
    assert_eq!(skips(&bare), 1, "recorded once, not once per tick");
    let ev = lab.board().list_events(&bare, None).unwrap();
    let e = ev
        .iter()
        .find(|e| e.kind == "skipped_nonspawnable")
        .unwrap();
    assert_eq!(e.payload.as_ref().unwrap()["assignee"], "bare");
    // `assignees` says why.
    let a = lab.cli.run(&["assignees", "--json"]).json();
    let row = a
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "bare")
        .unwrap()
        .clone();
    assert_eq!(row["on_disk"], false);
    assert!(
        row["not_a_profile"]
            .as_str()
            .unwrap()
            .contains("config.yaml"),
        "{row}"
    );
    // A config.yaml makes it a profile: the next tick spawns it.
    std::fs::write(profiles.join("bare/config.yaml"), "{}\n").unwrap();
    let r = lab.dispatch(&done);
    assert_eq!(ids(&r, "spawned"), vec![bare.clone()], "{r}");
    assert_eq!(lab.settled(&bare).status, Status::Done);

    // kanban.dispatch_profiles: this home claims only `worker`.
    std::fs::write(
        lab.cli.home().join("config.yaml"),
        "kanban:\n  dispatch_profiles: [Worker]\n",
    )
    .unwrap();
    let foreign = lab.cli.create("another home's", &["--assignee", "other"]);
    let mine = lab.create("mine", &[]);
    let r = lab.dispatch(&done);
    assert_eq!(ids(&r, "spawned"), vec![mine.clone()], "{r}");
    assert_eq!(
        ids(&r, "skipped_nonspawnable"),
        vec![foreign.clone()],
        "{r}"
    );
    assert_eq!(lab.settled(&mine).status, Status::Done);
    let r = lab.dispatch_env(&done, &["--dry-run"], &[]);
    assert_eq!(
        ids(&r, "skipped_nonspawnable"),
        vec![foreign.clone()],
        "{r}"
    );
    // Present but empty fails closed: nothing is claimed.
    std::fs::write(
        lab.cli.home().join("config.yaml"),
        "kanban:\n  dispatch_profiles: []\n",
    )
    .unwrap();
    let mine2 = lab.create("mine too", &[]);
    let r = lab.dispatch(&done);
    assert!(ids(&r, "spawned").is_empty(), "{r}");
    let mut skipped = ids(&r, "skipped_nonspawnable");
    skipped.sort();
    let mut want = vec![foreign.clone(), mine2.clone()];
    want.sort();
    assert_eq!(skipped, want, "{r}");
    assert_eq!(lab.task(&mine2).status, Status::Ready);
    assert_eq!(skips(&foreign), 1);
    lab.check();
}

#[test]
fn a_worker_exiting_78_blocks_its_task_sticky_after_one_run() {
    let lab = Lab::new();
    let revoked = lab.worker("revoked.sh", "exit 78");
    let t = lab.create("provider says no", &["--max-retries", "5"]);
    let r = lab.dispatch(&revoked);
    assert_eq!(ids(&r, "spawned"), vec![t.clone()], "{r}");
    let task = lab.settled(&t);
    assert_eq!(task.status, Status::Blocked, "blocked on the first failure");
    assert_eq!(task.consecutive_failures, 1);
    assert_eq!(lab.outcomes(&t), vec!["crashed"]);
    let ev = lab.board().list_events(&t, None).unwrap();
    let g = ev.iter().find(|e| e.kind == "gave_up").expect("gave_up");
    let p = g.payload.as_ref().unwrap();
    assert_eq!(
        (p["sticky"].clone(), p["terminal_provider"].clone()),
        (true.into(), true.into()),
        "{p}"
    );
    // Further ticks leave it alone.
    let r = lab.dispatch(&revoked);
    assert!(ids(&r, "spawned").is_empty(), "{r}");
    assert_eq!(lab.task(&t).status, Status::Blocked);
    lab.check();
}

/// Tick options for the in-process host: our binary supervises.
fn in_process(env: &Env) -> TickOptions {
    let mut o = TickOptions::from_config(env, &KanbanConfig::default());
    o.supervisor_exe = PathBuf::from(HK);
    o
}

#[test]
fn the_in_process_host_settles_crashes_and_stale_runs() {
    let mut lab = Lab::new();
    let crash = lab.worker("crash.sh", "exit 3");
    let hang = lab.worker("quiet.sh", "sleep 300 & wait");
    let env = Env::empty()
        .with("HOME", lab.dir().to_string_lossy())
        .with("HERMES_HOME", lab.cli.home().to_string_lossy())
        .with("PATH", std::env::var("PATH").unwrap_or_default())
        .with("HERMES_KANBAN_CRASH_GRACE_SECONDS", "0");
    let env = crate::helpers::backend::with_db(env, lab.cli.pg.as_ref());
    let board = Board::open(
        &env.clone().with("HERMES_BIN", crash.to_string_lossy()),
        None,
    )
    .unwrap();
    let mut host = HostState::default();
    let t = lab.create("crashes in-process", &["--max-retries", "1"]);
    let opts = in_process(board.env());
    let r = dispatch_once(&board, &opts, &mut host).unwrap();
    assert_eq!(r.spawned.len(), 1);
    lab.settled(&t);
    let r = dispatch_once(&board, &opts, &mut host).unwrap();
    assert_eq!(r.crashed, vec![t.clone()]);
    assert_eq!(
        r.auto_blocked,
        vec![t.clone()],
        "max_retries 1 trips at once"
    );
    lab.until("the host to reap its supervisor", |_| {
        host.reap();
        host.children() == 0
    });

    // Stale detection (long-lived hosts only): no heartbeat for too long → released, the
    // worker's group stopped, no failure counted.
    let board = Board::open(
        &env.clone().with("HERMES_BIN", hang.to_string_lossy()),
        None,
    )
    .unwrap();
    let s = lab.create("never heartbeats", &[]);
    let mut opts = in_process(board.env());
    let r = dispatch_once(&board, &opts, &mut host).unwrap();
    assert_eq!(r.spawned.len(), 1);
    let worker = lab.pid_of(&s);
    lab.pids.push(worker);
    std::thread::sleep(Duration::from_millis(2100));
    opts.stale_timeout_seconds = 1;
    opts.heartbeat_stale_seconds = 1;
    opts.max_spawn = Some(0);
    let r = dispatch_once(&board, &opts, &mut host).unwrap();
    assert_eq!(r.stale, vec![s.clone()]);
    let task = lab.task(&s);
    assert_eq!(task.status, Status::Ready);
    assert_eq!(task.consecutive_failures, 0);
    assert_eq!(lab.outcomes(&s), vec!["stale"]);
    lab.until("the stale worker's group to stop", |_| {
        !hermes_kanban::process::group_alive(worker as i64)
    });
    lab.check();
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {:?}", out);
}

#[test]
fn worktree_and_dir_workspaces_are_created_persisted_and_kept() {
    let lab = Lab::new();
    let repo = lab.dir().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README"), "hi\n").unwrap();
    git(&repo, &["add", "README"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    let hermes = lab.worker(
        "where.sh",
        r#"pwd > "$LAB/$T.cwd"; echo "${HERMES_KANBAN_BRANCH:-}" > "$LAB/$T.branch"
$HK complete "$T" --summary here"#,
    );
    let ws = format!("worktree:{}", repo.display());
    let wt = lab.create("in a worktree", &["--workspace", &ws, "--branch", "feat/x"]);
    let plain = lab.dir().join("plain-dir");
    let dir_ws = format!("dir:{}", plain.display());
    let d = lab.create("in a dir", &["--workspace", &dir_ws]);
    let r = lab.dispatch(&hermes);
    assert_eq!(ids(&r, "spawned").len(), 2, "{r}");
    assert_eq!(lab.settled(&wt).status, Status::Done);
    assert_eq!(lab.settled(&d).status, Status::Done);
    let target = repo.join(".worktrees").join(&wt);
    let task = lab.task(&wt);
    assert_eq!(
        task.workspace_path.as_deref(),
        Some(target.to_string_lossy().as_ref())
    );
    assert_eq!(task.branch_name.as_deref(), Some("feat/x"));
    let cwd = std::fs::read_to_string(lab.dir().join(format!("{wt}.cwd"))).unwrap();
    assert_eq!(cwd.trim(), target.to_string_lossy());
    let branch = std::fs::read_to_string(lab.dir().join(format!("{wt}.branch"))).unwrap();
    assert_eq!(branch.trim(), "feat/x");
    assert!(
        target.join("README").is_file(),
        "a real worktree, kept after completion"
    );
    assert!(plain.is_dir(), "dir workspaces are created and kept");
    let cwd = std::fs::read_to_string(lab.dir().join(format!("{d}.cwd"))).unwrap();
    assert_eq!(cwd.trim(), plain.to_string_lossy());
    // A relative dir: path is refused at create; a worktree outside any repo is a spawn failure.
    let outside = lab.dir().join("not-a-repo").join("wt");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    let bad = lab.create(
        "no repo",
        &["--workspace", &format!("worktree:{}", outside.display())],
    );
    lab.dispatch(&hermes);
    let t = lab.task(&bad);
    assert_eq!(lab.outcomes(&bad), vec!["spawn_failed"]);
    assert!(
        t.last_failure_error
            .as_deref()
            .unwrap()
            .starts_with("workspace: "),
        "{:?}",
        t.last_failure_error
    );
    lab.check();
}

/// `serve` runs the dispatcher next to the HTTP server: a ready task is spawned and finished
/// while the server is up, the worker gets a per-run MCP token, and SIGTERM stops both.
#[test]
fn serve_hosts_the_dispatcher_next_to_the_http_server() {
    let lab = Lab::new();
    let hermes = lab.worker(
        "served.sh",
        r#"echo "${HERMES_KANBAN_TOKEN:-none}" > "$LAB/$T.token"
$HK complete "$T" --summary "done under serve""#,
    );
    let id = lab.create("served task", &[]);
    let mut server = lab
        .cli
        .cmd(&["serve", "--bind", "127.0.0.1:0", "--interval", "0.2"])
        .env("HERMES_BIN", &hermes)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lab.until("the task to be done by the served dispatcher", |b| {
        b.get_task(&id).unwrap().status == Status::Done
    });
    // The dashboard's nudge runs one tick through the same dispatcher.
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut err = String::new();
    let port = loop {
        let mut line = String::new();
        use std::io::BufRead;
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve ended early: {err}"
        );
        err.push_str(&line);
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .to_string();
        }
    };
    let nudge = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        write!(
            c,
            "POST /api/dispatch?dry_run=true HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: \
             0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).unwrap();
        resp
    };
    assert!(nudge.starts_with("HTTP/1.1 200"), "{nudge}");
    assert!(
        nudge.contains("\"spawned\"") && nudge.contains("\"promoted\""),
        "{nudge}"
    );
    let token = std::fs::read_to_string(lab.dir().join(format!("{id}.token"))).unwrap();
    assert!(token.trim().starts_with("hkr_"), "worker token: {token:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::io::Read;
    stderr.read_to_string(&mut err).unwrap();
    assert!(status.success(), "serve exit {status:?}: {err}");
    assert!(
        err.contains("dispatcher ticking on every board change, at least every 0.2s"),
        "{err}"
    );
    assert_eq!(lab.outcomes(&id), vec!["completed"]);
    lab.check();
}

/// The port a `serve` child prints on stderr (`… http://127.0.0.1:<port> …`); the rest of its
/// stderr keeps draining on a thread so the child never blocks on a full pipe.
fn served_port(server: &mut Child) -> u16 {
    use std::io::BufRead;
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut err = String::new();
    let port = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve ended early: {err}"
        );
        err.push_str(&line);
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    port
}

/// One HTTP/1.1 request with a JSON body to 127.0.0.1:`port`; the whole response text.
fn http_post(port: u16, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    resp
}

/// The dashboard's reclaim stops a running worker through the dispatcher's one stop-a-worker:
/// the supervisor's group AND the worker's own group, with the configured grace, then SIGKILL.
/// The supervisor is frozen (SIGSTOP) so it cannot stop its worker itself, and the worker and
/// its child ignore SIGTERM: only signalling the worker's group with SIGKILL ends them.
#[test]
fn a_web_reclaim_stops_the_supervisor_and_the_worker_groups() {
    let mut lab = Lab::new();
    let hermes = lab.worker(
        "stubborn.sh",
        r#"trap '' TERM
sleep 300 &
echo $! > "$LAB/$T.child"
wait
wait"#,
    );
    let t = lab.create("stubborn", &[]);
    lab.dispatch(&hermes);
    let worker = lab.pid_of(&t);
    lab.pids.push(worker);
    let child_file = lab.dir().join(format!("{t}.child"));
    lab.until("the child pid", |_| {
        std::fs::read_to_string(&child_file).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let child: i32 = std::fs::read_to_string(&child_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let task = lab.task(&t);
    assert_eq!(task.status, Status::Running);
    let supervisor = task.worker_pid.unwrap() as i32;
    lab.pids.push(supervisor);
    assert_ne!(supervisor, worker, "the task's pid is the supervisor");
    let run = task.current_run_id.unwrap();
    lab.until("the worker's process row", |b| {
        b.run_process(run)
            .unwrap()
            .is_some_and(|p| p.worker_pid == Some(worker as i64))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let mut server = lab
        .cli
        .cmd(&["serve", "--bind", "127.0.0.1:0", "--no-dispatch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let port = served_port(&mut server);
    let resp = http_post(
        port,
        &format!("/api/tasks/{t}/reclaim"),
        r#"{"reason": "stuck, reclaimed from the dashboard"}"#,
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    lab.until("the supervisor, the worker and its child to die", |_| {
        !alive(supervisor) && !alive(worker) && !alive(child)
    });
    let task = lab.task(&t);
    assert_eq!(task.status, Status::Ready, "back to ready");
    assert_eq!(task.worker_pid, None);
    let ev = lab
        .board()
        .list_events(&t, None)
        .unwrap()
        .into_iter()
        .rfind(|e| e.kind == "reclaimed")
        .expect("a reclaimed event");
    let p = ev.payload.unwrap_or_default();
    assert_eq!(p["terminated"], true, "{p}");
    assert_eq!(
        p["sigkill"], true,
        "SIGTERM was ignored, so SIGKILL ended them: {p}"
    );
    lab.check();
}

/// `skills install` reaches profiles (`--profile`, `--all-profiles`; an unknown profile is an
/// error naming its directory), and `dispatch --dry-run` / `diagnostics` warn when a task's
/// skill is missing from its assignee's profile — fatal when it is the only one Hermes is asked
/// for (Hermes exits with `Unknown skill(s)`).
#[test]
fn skills_reach_profiles_and_missing_skills_are_warned_before_a_spawn() {
    let lab = Lab::new();
    let r = lab.cli.run(&["skills", "install", "--profile", "ghost"]);
    r.code(1);
    assert!(r.stderr.contains("profiles/ghost"), "{}", r.stderr);

    let t = lab.create("needs a review skill", &["--skill", "github-code-review"]);
    let dry = lab.cli.run(&["dispatch", "--dry-run", "--json"]).json();
    assert_eq!(ids(&dry, "spawned"), vec![t.clone()]);
    let w = dry["warnings"].as_array().expect("warnings").clone();
    assert_eq!(w.len(), 1, "{w:?}");
    let w = w[0].as_str().unwrap();
    assert!(
        w.contains(&t) && w.contains("github-code-review") && w.contains("refuse to start"),
        "{w}"
    );
    let text = lab.cli.run(&["dispatch", "--dry-run"]);
    assert!(text.stderr.contains("warning: task"), "{}", text.stderr);
    let diag = lab.cli.run(&["diagnostics", "--json"]).json();
    let d = &diag[0]["diagnostics"][0];
    assert_eq!(d["kind"], "missing_skill");
    assert_eq!(d["severity"], "error");
    assert_eq!(
        d["data"]["missing"],
        serde_json::json!(["github-code-review"])
    );

    // Every profile gets the kanban skills; the task's own skill is still missing, but no
    // longer fatal (kanban-worker loads), so it is a warning.
    let out = lab.cli.run(&["skills", "install", "--all-profiles"]);
    for p in [
        "skills/kanban-worker",
        "profiles/worker/skills/kanban-worker",
        "profiles/worker/skills/kanban-orchestrator",
    ] {
        assert!(
            lab.cli.home().join(p).join("SKILL.md").is_file(),
            "{p}: {}",
            out.stdout
        );
    }
    let diag = lab.cli.run(&["diagnostics", "--json"]).json();
    assert_eq!(diag[0]["diagnostics"][0]["severity"], "warning");
    let dry = lab.cli.run(&["dispatch", "--dry-run", "--json"]).json();
    assert!(
        dry["warnings"][0]
            .as_str()
            .unwrap()
            .contains("hermes will skip it")
    );
    // Installed: no warning left.
    let skill = lab
        .cli
        .home()
        .join("profiles/worker/skills/github-code-review");
    std::fs::create_dir_all(&skill).unwrap();
    std::fs::write(
        skill.join("SKILL.md"),
        "---\nname: github-code-review\n---\n",
    )
    .unwrap();
    let dry = lab.cli.run(&["dispatch", "--dry-run", "--json"]).json();
    assert!(dry.get("warnings").is_none(), "{dry}");
    assert_eq!(
        lab.cli.run(&["diagnostics", "--json"]).json(),
        serde_json::json!([])
    );
    // Nothing was written by the dry runs.
    assert_eq!(lab.task(&t).status, Status::Ready);
}

/// One board for the dry-run/tick comparison: two profiles, ready work of both at several
/// priorities, an unassigned task, a task of an assignee without a profile, a respawn-guarded
/// task (its last failure reads like a quota problem), a running task, a review task and a
/// todo child (of the highest priority) whose parent is done. Returns the lab and its fake
/// `hermes` (waits for `$LAB/release`, then completes).
fn comparison_board() -> (Lab, PathBuf) {
    use hermes_kanban::kernel::{NewTask, ReviewRequest, SettledBy, WorkerExit};
    let lab = Lab::new();
    std::fs::create_dir_all(lab.cli.home().join("profiles/other")).unwrap();
    std::fs::write(lab.cli.home().join("profiles/other/config.yaml"), "{}\n").unwrap();
    let hermes = lab.worker(
        "waits.sh",
        r#"while [ ! -f "$LAB/release" ]; do sleep 0.1; done
$HK complete "$T" --summary "released" || true"#,
    );
    let b = lab.board();
    let task = |title: &str, assignee: Option<&str>, priority: i64| {
        b.create_task(NewTask {
            title: title.into(),
            assignee: assignee.map(str::to_string),
            priority,
            ..Default::default()
        })
        .unwrap()
        .task
        .id
    };
    for (i, (a, p)) in [
        ("worker", 0),
        ("worker", 5),
        ("other", 1),
        ("worker", 2),
        ("other", 3),
    ]
    .iter()
    .enumerate()
    {
        task(&format!("ready {i}"), Some(a), *p);
    }
    task("nobody's", None, 4);
    task("ghost's", Some("ghost"), 6);
    let guarded = task("hit a quota", Some("worker"), 7);
    let c = b.claim_task(&guarded, None).unwrap();
    b.settle_worker_exit(
        &guarded,
        c.run_id,
        SettledBy::Tick,
        Some(5),
        Some(&WorkerExit::spawn_failed("HTTP 429: quota exceeded")),
    )
    .unwrap();
    let running = task("already running", Some("worker"), 0);
    b.claim_task(&running, None).unwrap();
    let reviewed = task("to review", Some("worker"), 0);
    let c = b.claim_task(&reviewed, None).unwrap();
    b.request_review(ReviewRequest {
        task_id: reviewed.clone(),
        summary: Some("ready for review".into()),
        reviewer: Some("other".into()),
        expected_run_id: Some(c.run_id),
        ..Default::default()
    })
    .unwrap();
    let parent = task("parent", Some("worker"), 0);
    let child = b
        .create_task(NewTask {
            title: "child of a done parent".into(),
            assignee: Some("other".into()),
            priority: 8,
            parents: vec![parent.clone()],
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    // The parent is finished by a writer that does not promote (a hand edit): only a tick's
    // recompute promotes the child.
    match &lab.cli.pg {
        Some(db) => {
            db.sql(&format!(
                "UPDATE board_default.tasks SET status='done' WHERE id='{parent}'"
            ));
        }
        None => {
            rusqlite::Connection::open(lab.cli.db())
                .unwrap()
                .execute("UPDATE tasks SET status='done' WHERE id=?1", [&parent])
                .unwrap();
        }
    }
    assert_eq!(b.get_task(&child).unwrap().status, Status::Todo);
    (lab, hermes)
}

/// The comparable part of a tick's result: everything but resolved workspaces.
fn spawn_view(r: &hermes_kanban::dispatch::DispatchResult) -> Value {
    let mut v = r.to_json();
    for s in v["spawned"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("workspace");
    }
    for k in ["warnings", "reaped", "reaped_terminal_workers"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

/// Issue 13: one spawn policy drives the dry run and the tick, so on the same board, under
/// every cap combination, the dry run reports exactly what the real tick then does — the same
/// tasks spawned as the same assignees in the same order, the same skips, caps, default
/// assignments, guard holds and promotions.
#[test]
fn a_dry_run_shows_what_the_tick_then_does() {
    type Tweak = fn(&mut TickOptions);
    let cases: [(&str, Tweak); 6] = [
        ("no caps", |_| {}),
        ("default assignee", |o| {
            o.default_assignee = Some("other".into())
        }),
        ("max_spawn 4", |o| o.max_spawn = Some(4)),
        ("max_in_progress 5, per profile 1", |o| {
            o.max_in_progress = Some(5);
            o.max_in_progress_per_profile = Some(1);
        }),
        ("max_in_progress 1 (already reached)", |o| {
            o.max_in_progress = Some(1)
        }),
        ("dispatch_profiles [other], no review lane", |o| {
            o.dispatch_profiles = Some(vec!["other".into()]);
            o.review_dispatch = false;
        }),
    ];
    for (name, tweak) in cases {
        let (mut lab, hermes) = comparison_board();
        let env = Env::empty()
            .with("HOME", lab.dir().to_string_lossy())
            .with("HERMES_HOME", lab.cli.home().to_string_lossy())
            .with("PATH", std::env::var("PATH").unwrap_or_default())
            .with("HERMES_BIN", hermes.to_string_lossy());
        let env = crate::helpers::backend::with_db(env, lab.cli.pg.as_ref());
        let board = Board::open(&env, None).unwrap();
        let mut opts = in_process(board.env());
        tweak(&mut opts);
        let mut host = HostState::default();
        opts.dry_run = true;
        let dry = dispatch_once(&board, &opts, &mut host).unwrap();
        opts.dry_run = false;
        let real = dispatch_once(&board, &opts, &mut host).unwrap();
        assert_eq!(
            spawn_view(&dry),
            spawn_view(&real),
            "{name}: the dry run and the tick differ"
        );
        for s in &real.spawned {
            assert_eq!(lab.task(&s.task_id).status, Status::Running, "{name}");
        }
        match name {
            "no caps" => {
                assert_eq!(real.spawned.len(), 7, "{name}: {}", real.to_json());
                assert_eq!(real.respawn_guarded.len(), 1, "{name}");
                assert_eq!(real.promoted, 1, "{name}");
            }
            "max_spawn 4" => assert_eq!(real.spawned.len(), 3, "{name}: one runs"),
            "max_in_progress 5, per profile 1" => {
                assert!(!real.skipped_per_profile_capped.is_empty(), "{name}")
            }
            "max_in_progress 1 (already reached)" => {
                assert!(real.spawned.is_empty(), "{name}")
            }
            _ => {}
        }
        assert!(
            !real.spawned.is_empty() || name.contains("reached"),
            "{name}"
        );
        std::fs::write(lab.dir().join("release"), "").unwrap();
        for s in &real.spawned {
            lab.pids.push(lab.pid_of(&s.task_id));
            lab.settled(&s.task_id);
        }
        lab.until("the host to reap its supervisors", |_| {
            host.reap();
            host.children() == 0
        });
    }
}

/// Issue 14: `daemon` ticks on change, not only every interval — with a 60 s interval, a
/// task created while it waits is spawned within seconds.
#[test]
fn the_daemon_spawns_new_work_long_before_its_interval() {
    let lab = Lab::new();
    let hermes = lab.worker(
        "quick.sh",
        r#"date +%s.%N > "$LAB/$T.started"
$HK complete "$T" --summary quick"#,
    );
    let first = lab.create("spawned by the first tick", &[]);
    lab.cli.run(&["boards", "create", "side"]).ok();
    let daemon = spawn_daemon(&lab, &hermes, "60");
    lab.until("the first tick's task to be done", |b| {
        b.get_task(&first).unwrap().status == Status::Done
    });
    let created = Instant::now();
    let second = lab.create("created while the daemon waits", &[]);
    lab.until("the second task to be spawned", |b| {
        b.get_task(&second).unwrap().status != Status::Ready
    });
    let latency = created.elapsed();
    lab.until("the second task to be done", |b| {
        b.get_task(&second).unwrap().status == Status::Done
    });
    // Another board the daemon serves: a change there is noticed just as fast.
    // The home's own view (on PostgreSQL: its database URL), as the daemon opens it.
    let side_board = Board::open(&lab.cli.env(), Some("side")).unwrap();
    let side = || &side_board;
    let created = Instant::now();
    let third = lab.cli.create(
        "created on another board",
        &["--board", "side", "--assignee", "worker"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while side().get_task(&third).unwrap().status == Status::Ready {
        assert!(
            Instant::now() < deadline,
            "the side board's task was never spawned"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let side_latency = created.elapsed();
    while side().get_task(&third).unwrap().status != Status::Done {
        assert!(
            Instant::now() < deadline,
            "the side board's task was never done"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    stop_daemon(daemon);
    assert!(
        latency < Duration::from_secs(10),
        "spawned {latency:?} after create with a 60 s interval"
    );
    assert!(
        side_latency < Duration::from_secs(10),
        "spawned {side_latency:?} after create on a second board"
    );
    lab.check();
}

/// Issue 13: the caps are checked in the claim's own transaction (under the board lock), not
/// only by the tick that planned the spawn: a claim at `max_running`, or at the assignee's
/// per-profile cap, is refused and writes nothing — so two hosts cannot overshoot together.
#[test]
fn spawn_claims_recheck_the_caps_in_their_own_transaction() {
    use hermes_kanban::kernel::{CapClaim, Lane, SpawnCaps};
    let lab = Lab::new();
    let b = lab.board();
    let running = lab.create("running", &[]);
    b.claim_task(&running, None).unwrap();
    let next = lab.create("next", &[]);
    let rows = b.snapshot().unwrap();
    let at = |caps: SpawnCaps| {
        b.claim_under_caps(&next, Lane::Ready, None, "host:1", caps)
            .unwrap()
    };
    let full = SpawnCaps {
        max_running: Some(1),
        per_profile: None,
        per_host: None,
    };
    assert!(matches!(at(full), CapClaim::AtCap { running: 1 }));
    let profile_full = SpawnCaps {
        max_running: Some(5),
        per_profile: Some(1),
        per_host: None,
    };
    assert!(matches!(
        at(profile_full),
        CapClaim::ProfileAtCap { running: 1 }
    ));
    assert_eq!(b.snapshot().unwrap(), rows, "a refused claim wrote");
    let free = SpawnCaps {
        max_running: Some(2),
        per_profile: Some(2),
        per_host: None,
    };
    assert!(matches!(at(free), CapClaim::Claimed(_)));
    assert_eq!(lab.task(&next).status, Status::Running);
    assert!(matches!(at(free), CapClaim::AtCap { running: 2 }));
    lab.check();
}
