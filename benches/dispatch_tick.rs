//! Dispatcher tick on big boards: one full `dispatch_once` (tick lock, supervisor settlements,
//! liveness pass over running tasks, readiness recompute, a walk of the whole ready queue) where
//! nothing gets spawned — every ready task belongs to an assignee without a profile — and the
//! dry-run tick (the kernel's read-only plan), on boards of 10,000 and 100,000 tasks seeded
//! through the kernel in one transaction with a realistic status mix. Medians of several ticks
//! after a warm-up.
//!
//! Run: `cargo bench --bench dispatch_tick -- [ticks] [sizes…]` (default 9 ticks; 10000 100000).
//! Prints a markdown table on stdout.

use std::time::{Duration, Instant};

use hermes_kanban::dispatch::config::KanbanConfig;
use hermes_kanban::dispatch::{HostState, TickOptions, dispatch_once};
use hermes_kanban::kernel::{Board, Env, SeedTask, Status};

/// Status by position (per 100): 55 done, 10 archived, 12 todo (waiting on an unfinished
/// parent), 10 ready, 7 blocked, 3 triage, 3 scheduled — and 1 task in 1,000 running (claimed
/// on another host; a board's concurrency is bounded by its workers, not its size).
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

fn seed(board: &Board, n: usize) -> (usize, usize) {
    let mut tasks = Vec::with_capacity(n);
    let mut unfinished: Vec<usize> = Vec::new();
    let (mut ready, mut running) = (0, 0);
    for i in 0..n {
        let status = status_of(i);
        let parents = if status == Status::Todo && !unfinished.is_empty() {
            vec![unfinished[(i * 7919) % unfinished.len()]]
        } else {
            vec![]
        };
        if matches!(status, Status::Ready | Status::Running | Status::Blocked) {
            unfinished.push(i);
        }
        ready += (status == Status::Ready) as usize;
        running += (status == Status::Running) as usize;
        tasks.push(SeedTask {
            title: format!("seeded task {i}"),
            assignee: Some(format!("agent-{}", i % 8)),
            status,
            priority: (i % 5) as i64,
            parents,
            claim_lock: None,
        });
    }
    board.seed_tasks(&tasks).expect("seed");
    (ready, running)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let ticks: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(9);
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![10_000, 100_000]
    };
    println!(
        "| board (release, median of {ticks} ticks) | ready | running | tick, no spawns | dry-run tick |"
    );
    println!("|---|---:|---:|---:|---:|");
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Env::empty()
            .with("HOME", dir.path().to_string_lossy())
            .with("HERMES_HOME", dir.path().join("hermes").to_string_lossy())
            .with("PATH", std::env::var("PATH").unwrap_or_default());
        let board = Board::open(&env, None).expect("open");
        let t = Instant::now();
        let (ready, running) = seed(&board, n);
        eprintln!("seeded {n} tasks in {:.1}s", t.elapsed().as_secs_f64());
        let mut opts = TickOptions::from_config(&env, &KanbanConfig::default());
        let mut host = HostState::default();
        let warm = dispatch_once(&board, &opts, &mut host).expect("tick");
        assert!(warm.spawned.is_empty(), "the benchmark must not spawn");
        assert_eq!(warm.skipped_nonspawnable.len(), ready + warm.promoted);
        let ready = ready + warm.promoted;
        let real: Vec<Duration> = (0..ticks)
            .map(|_| {
                let t = Instant::now();
                let r = dispatch_once(&board, &opts, &mut host).expect("tick");
                let d = t.elapsed();
                assert!(r.spawned.is_empty() && r.reclaimed == 0);
                d
            })
            .collect();
        opts.dry_run = true;
        let dry: Vec<Duration> = (0..ticks)
            .map(|_| {
                let t = Instant::now();
                dispatch_once(&board, &opts, &mut host).expect("dry tick");
                t.elapsed()
            })
            .collect();
        println!(
            "| {n} tasks | {ready} | {running} | {} | {} |",
            ms(median(real)),
            ms(median(dry))
        );
        let v = board.check_invariants().expect("invariants");
        assert!(v.is_empty(), "{v:?}");
    }
}
