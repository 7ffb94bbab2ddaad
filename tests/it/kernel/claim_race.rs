//! Multi-process claim race: 8 OS processes (this test binary re-executed) claim from 2,000
//! ready tasks on one board at once — one SQLite file, or one PostgreSQL database when the
//! suite runs there (`HK_TEST_DATABASE_URL`). Every task must be claimed exactly once, with
//! one run and one `claimed` event each, and the invariants must hold.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hermes_kanban::kernel::{Board, ListFilter, NewTask, Status};

use crate::helpers::backend::DATABASE_URL_VAR;
use crate::helpers::board::{TestHome, home_env};

const PROCESSES: usize = 8;
const TASKS: usize = 2_000;

/// The race's board: the default board of the temp home `home`, in the database `url` names
/// when there is one (what the parent's [`TestHome`] holds).
fn open(home: &Path, url: Option<&str>) -> Board {
    let mut env = home_env(home);
    if let Some(url) = url {
        env = env.with(DATABASE_URL_VAR, url);
    }
    crate::helpers::board::open_board(&env, None)
}

/// Child-process entry: claims every ready task it can and writes the ids it won to
/// `KANBAN_RACE_OUT`. Ignored in normal runs; the race test runs it with `--ignored`.
#[test]
#[ignore = "child process entry of the claim race; run by \
            eight_processes_claim_each_task_exactly_once"]
fn race_child_entry() {
    let home = PathBuf::from(std::env::var("KANBAN_RACE_HOME").expect("KANBAN_RACE_HOME"));
    let url = std::env::var("KANBAN_RACE_URL").ok();
    let out = PathBuf::from(std::env::var("KANBAN_RACE_OUT").expect("KANBAN_RACE_OUT"));
    let go = PathBuf::from(std::env::var("KANBAN_RACE_GO").expect("KANBAN_RACE_GO"));
    let mut board = open(&home, url.as_deref());
    board.set_claimer(format!("racer:{}", std::process::id()));
    let ids: Vec<String> = board
        .list_tasks(&ListFilter {
            status: Some(Status::Ready),
            ..Default::default()
        })
        .expect("list")
        .into_iter()
        .map(|t| t.id)
        .collect();
    // Tell the parent this racer is ready, then start together on its go signal.
    std::fs::write(out.with_extension("ready"), ids.len().to_string()).expect("write ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < deadline, "no go signal");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut won = Vec::new();
    let mut refused = 0usize;
    for id in &ids {
        match board.claim_task(id, Some(600)) {
            Ok(c) => won.push(format!("{} {} {}", c.task_id, c.run_id, c.lock)),
            Err(hermes_kanban::kernel::KernelError::Refused { .. }) => refused += 1,
            Err(e) => panic!("unexpected error claiming {id}: {e}"),
        }
    }
    std::fs::write(&out, won.join("\n")).expect("write out");
    eprintln!(
        "racer {}: won {}, refused {refused}",
        std::process::id(),
        won.len()
    );
}

#[test]
fn eight_processes_claim_each_task_exactly_once() {
    let fx = TestHome::new();
    let dir = &fx.dir;
    let url = fx.db.as_ref().map(|d| d.url.clone());
    {
        let board = open(dir.path(), url.as_deref());
        for i in 0..TASKS {
            board
                .create_task(NewTask {
                    title: format!("race task {i}"),
                    assignee: Some("worker".into()),
                    priority: (i % 7) as i64,
                    ..Default::default()
                })
                .unwrap();
        }
    }
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    // The child's test name inside the one test binary (`kernel::claim_race::race_child_entry`).
    let child_test = format!(
        "{}::race_child_entry",
        module_path!().split_once("::").expect("crate::path").1
    );
    let mut children = Vec::new();
    for i in 0..PROCESSES {
        let out = dir.path().join(format!("won-{i}.txt"));
        let mut cmd = Command::new(&exe);
        if let Some(url) = &url {
            cmd.env("KANBAN_RACE_URL", url);
        }
        let child = cmd
            .args([
                child_test.as_str(),
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KANBAN_RACE_HOME", dir.path())
            .env("KANBAN_RACE_OUT", &out)
            .env("KANBAN_RACE_GO", &go)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn racer");
        children.push((child, out));
    }
    // Wait until every racer has opened the DB and listed the ready tasks, then start them
    // together.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !children
        .iter()
        .all(|(_, out)| out.with_extension("ready").exists())
    {
        assert!(Instant::now() < deadline, "racers did not get ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(&go, b"go").unwrap();
    let mut claims: Vec<(String, i64, String)> = Vec::new();
    let mut per_process = Vec::new();
    for (child, out) in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a racer failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let mut n = 0;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let mut parts = line.split(' ');
            let id = parts.next().unwrap().to_string();
            let run: i64 = parts.next().unwrap().parse().unwrap();
            let lock = parts.next().unwrap().to_string();
            claims.push((id, run, lock));
            n += 1;
        }
        per_process.push(n);
    }
    eprintln!("claims won per process: {per_process:?}");
    let ids: HashSet<&String> = claims.iter().map(|c| &c.0).collect();
    assert_eq!(claims.len(), TASKS, "claims per process: {per_process:?}");
    assert_eq!(ids.len(), TASKS, "a task was claimed twice");
    assert!(
        per_process.iter().filter(|n| **n > 0).count() >= 2,
        "no contention happened: {per_process:?}"
    );

    let board = open(dir.path(), url.as_deref());
    let won: HashMap<&String, (&i64, &String)> =
        claims.iter().map(|c| (&c.0, (&c.1, &c.2))).collect();
    let tasks = board.list_tasks(&ListFilter::default()).unwrap();
    assert_eq!(tasks.len(), TASKS);
    for t in &tasks {
        assert_eq!(t.status, Status::Running, "{} not running", t.id);
        let (run, lock) = won[&t.id];
        assert_eq!(
            t.claim_lock.as_deref(),
            Some(lock.as_str()),
            "lost update on {}",
            t.id
        );
        assert_eq!(t.current_run_id, Some(*run), "run pointer of {}", t.id);
        let runs = board.list_runs(&t.id, None).unwrap();
        assert_eq!(runs.len(), 1, "{} has {} runs", t.id, runs.len());
        let claimed = board
            .list_events(&t.id, None)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "claimed")
            .count();
        assert_eq!(claimed, 1, "{} has {claimed} claimed events", t.id);
    }
    crate::helpers::assert_invariants(&board);
    if url.is_none() {
        assert_eq!(board.integrity_check().unwrap(), "ok");
    }
}
