//! The in-process half of `scripts/bench-compare`: one small driver, compiled once against
//! HEAD's kernel and once against a base revision's (the script copies this file into the base
//! worktree), so BASE and HEAD run the very same measurement code. It uses only kernel API that
//! both sides have (`Board::open`/`open_paths`, `create_task`, `claim_task`, `complete_task`,
//! `task_detail`, `seed_tasks`, `dispatch_once`). Each invocation is one sample; the script
//! alternates the two binaries and takes medians. Output is one JSON object on stdout.
//!
//! Modes (`cargo bench --bench compare_ops -- MODE …`):
//! - `kernel N`: a fresh board; N creates, N claims, N completes, N shows (`task_detail`), each
//!   one kernel call → ops/s per operation.
//! - `seed-cli HOME N EXTRA`: the CLI board under `HOME/hermes` (N tasks like the CLI latency
//!   bench, plus EXTRA ready tasks for `complete` runs) → the EXTRA ids and a shown id.
//! - `seed-tick HOME N`: a board of N tasks with the dispatcher benchmark's status mix.
//! - `tick HOME K`: open that board, one warm-up tick, then K ticks, K dry-run ticks → ms lists.
//! - `loop OP K`: for instruction counts under callgrind: a fresh board seeded with `SEED_N`
//!   (200) ready tasks (claimed first for `complete`), then K operations OP (create, claim,
//!   complete, show). The script runs K=0 and K>0 and divides the difference by K.

use std::path::Path;
use std::time::Instant;

use hermes_kanban::dispatch::config::KanbanConfig;
use hermes_kanban::dispatch::{HostState, TickOptions, dispatch_once};
use hermes_kanban::kernel::{Board, BoardPaths, Completion, Env, NewTask, SeedTask, Status};

const SEED_N: usize = 200;

fn env_for(home: &Path) -> Env {
    let sync = std::env::var("HERMES_KANBAN_SYNCHRONOUS").unwrap_or_else(|_| "FULL".into());
    Env::empty()
        .with("HOME", home.to_string_lossy())
        .with("HERMES_HOME", home.join("hermes").to_string_lossy())
        .with("PATH", std::env::var("PATH").unwrap_or_default())
        .with("HERMES_KANBAN_SYNCHRONOUS", sync)
}

fn fresh_board(dir: &Path) -> Board {
    let sync = std::env::var("HERMES_KANBAN_SYNCHRONOUS").unwrap_or_else(|_| "FULL".into());
    let env = Env::empty().with("HERMES_KANBAN_SYNCHRONOUS", sync);
    Board::open_paths(&env, BoardPaths::for_db_file(&dir.join("kanban.db"))).expect("open board")
}

fn new_task(title: String) -> NewTask {
    NewTask {
        title,
        assignee: Some("worker".into()),
        ..Default::default()
    }
}

fn create(board: &Board, title: String) -> String {
    board.create_task(new_task(title)).expect("create").task.id
}

fn claim(board: &Board, id: &str) -> i64 {
    board.claim_task(id, None).expect("claim").run_id
}

fn complete(board: &Board, id: &str, run: i64) {
    board
        .complete_task(Completion {
            task_id: id.to_string(),
            summary: Some("done".into()),
            expected_run_id: Some(run),
            ..Default::default()
        })
        .expect("complete");
}

fn show(board: &Board, id: &str) {
    let d = board.task_detail(id).expect("show");
    assert_eq!(d.task.id, id);
}

fn rate(n: usize, t: Instant) -> f64 {
    n as f64 / t.elapsed().as_secs_f64()
}

fn kernel(n: usize) -> serde_json::Value {
    let dir = bench_dir();
    let board = fresh_board(dir.path());
    let t = Instant::now();
    let ids: Vec<String> = (0..n)
        .map(|i| create(&board, format!("bench #{i}")))
        .collect();
    let c = rate(n, t);
    let t = Instant::now();
    let runs: Vec<i64> = ids.iter().map(|id| claim(&board, id)).collect();
    let l = rate(n, t);
    let t = Instant::now();
    for (id, run) in ids.iter().zip(&runs) {
        complete(&board, id, *run);
    }
    let d = rate(n, t);
    let t = Instant::now();
    for id in &ids {
        show(&board, id);
    }
    let s = rate(n, t);
    serde_json::json!({"create": c, "claim": l, "complete": d, "show": s})
}

fn op_loop(op: &str, k: usize) -> serde_json::Value {
    let dir = bench_dir();
    let board = fresh_board(dir.path());
    let ids: Vec<String> = (0..SEED_N)
        .map(|i| create(&board, format!("seed #{i}")))
        .collect();
    let runs: Vec<i64> = if op == "complete" {
        ids.iter().map(|id| claim(&board, id)).collect()
    } else {
        vec![]
    };
    assert!(k <= SEED_N, "at most {SEED_N} operations");
    for i in 0..k {
        match op {
            "create" => drop(create(&board, format!("op #{i}"))),
            "claim" => drop(claim(&board, &ids[i])),
            "complete" => complete(&board, &ids[i], runs[i]),
            "show" => show(&board, &ids[i]),
            other => panic!("unknown op {other:?} (create, claim, complete, show)"),
        }
    }
    serde_json::json!({"op": op, "k": k})
}

fn seed_cli(home: &Path, n: usize, extra: usize) -> serde_json::Value {
    let board = Board::open(&env_for(home), None).expect("open");
    let mut first = None;
    for i in 0..n {
        let id = board
            .create_task(NewTask {
                title: format!("seed task {i}"),
                assignee: Some(["coder", "reviewer", "writer"][i % 3].into()),
                priority: (i % 5) as i64,
                body: Some("Some body text for the task.".into()),
                ..Default::default()
            })
            .expect("seed")
            .task
            .id;
        first.get_or_insert(id);
    }
    let ids: Vec<String> = (0..extra)
        .map(|i| create(&board, format!("to complete {i}")))
        .collect();
    serde_json::json!({"show": first, "complete": ids})
}

/// The dispatcher benchmark's mix per 100: 55 done, 10 archived, 12 todo waiting on an
/// unfinished parent, 10 ready, 7 blocked, 3 triage, 3 scheduled; 1 in 1,000 running.
fn status_of(i: usize) -> Status {
    if i % 1000 == 999 {
        return Status::Running;
    }
    match i % 100 {
        0..=54 => Status::Done,
        55..=64 => Status::Archived,
        65..=76 => Status::Todo,
        77..=86 => Status::Ready,
        87..=93 => Status::Blocked,
        94..=96 => Status::Triage,
        _ => Status::Scheduled,
    }
}

fn seed_tick(home: &Path, n: usize) -> serde_json::Value {
    let board = Board::open(&env_for(home), None).expect("open");
    let mut unfinished: Vec<usize> = Vec::new();
    let tasks: Vec<SeedTask> = (0..n)
        .map(|i| {
            let status = status_of(i);
            let parents = if status == Status::Todo && !unfinished.is_empty() {
                vec![unfinished[(i * 7919) % unfinished.len()]]
            } else {
                vec![]
            };
            if matches!(status, Status::Ready | Status::Running | Status::Blocked) {
                unfinished.push(i);
            }
            SeedTask {
                title: format!("seeded task {i}"),
                assignee: Some(format!("agent-{}", i % 8)),
                status,
                priority: (i % 5) as i64,
                parents,
                claim_lock: None,
            }
        })
        .collect();
    board.seed_tasks(&tasks).expect("seed");
    serde_json::json!({"seeded": n})
}

fn tick(home: &Path, k: usize) -> serde_json::Value {
    let env = env_for(home);
    let board = Board::open(&env, None).expect("open");
    let mut opts = TickOptions::from_config(&env, &KanbanConfig::default());
    let mut host = HostState::default();
    let warm = dispatch_once(&board, &opts, &mut host).expect("tick");
    assert!(warm.spawned.is_empty(), "the benchmark must not spawn");
    let (mut real, mut dry) = (vec![], vec![]);
    for _ in 0..k {
        opts.dry_run = false;
        let t = Instant::now();
        let r = dispatch_once(&board, &opts, &mut host).expect("tick");
        real.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(r.spawned.is_empty() && r.reclaimed == 0);
        opts.dry_run = true;
        let t = Instant::now();
        dispatch_once(&board, &opts, &mut host).expect("dry tick");
        dry.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    serde_json::json!({"tick_ms": real, "dry_tick_ms": dry})
}

fn bench_dir() -> tempfile::TempDir {
    let base =
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    tempfile::tempdir_in(base).expect("tempdir")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |i: usize| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("missing argument {i}: see the module doc"))
    };
    let num = |i: usize| -> usize { arg(i).parse().expect("a number") };
    let out = match arg(0) {
        "kernel" => kernel(num(1)),
        "loop" => op_loop(arg(1), num(2)),
        "seed-cli" => seed_cli(Path::new(arg(1)), num(2), num(3)),
        "seed-tick" => seed_tick(Path::new(arg(1)), num(2)),
        "tick" => tick(Path::new(arg(1)), num(2)),
        other => panic!("unknown mode {other:?}: kernel, loop, seed-cli, seed-tick, tick"),
    };
    println!("{out}");
}
