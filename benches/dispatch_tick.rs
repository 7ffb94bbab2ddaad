//! Dispatcher tick on big boards: one full `dispatch_once` (tick lock, supervisor settlements,
//! liveness pass over running tasks, readiness recompute, a walk of the whole ready queue) where
//! nothing gets spawned — every ready task belongs to an assignee without a profile — and the
//! dry-run tick (the kernel's read-only plan), on boards of 10,000 and 100,000 tasks seeded
//! through the kernel in one transaction with a realistic status mix. Medians of several ticks
//! after a warm-up.
//!
//! Also `list_tasks` (non-archived, default order) in-process. With `HK_HERMES_PYTHON` (the
//! Python of the hermes-agent 0.19.0 venv) Hermes' own `dispatch_once(dry_run=True)`,
//! `dispatch_once()` (no spawns either) and `list_tasks()` run on an identical copy of the seeded
//! DB (`benches/hermes_bench.py tick`); batches alternate ours / Hermes'.
//!
//! Run: `cargo bench --bench dispatch_tick -- [ticks] [sizes…]` (default 9 ticks; 10000 100000).
//! Prints a markdown table on stdout; target verdicts go to `$BENCH_TARGETS` when set.

use std::time::{Duration, Instant};

use hermes_kanban::dispatch::config::KanbanConfig;
use hermes_kanban::dispatch::{HostState, TickOptions, dispatch_once};
use hermes_kanban::kernel::{Board, Env, ListFilter, SeedTask, Status};

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

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn target(row: &str) {
    use std::io::Write;
    if let Ok(p) = std::env::var("BENCH_TARGETS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        writeln!(f, "{row}").unwrap();
    }
}

/// One batch of Hermes' tick / dry tick / list on `db` (a copy of ours) → ms lists.
fn hermes_batch(python: &str, db: &std::path::Path, samples: usize) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hermes_bench.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg("tick")
        .arg(db)
        .arg(samples.to_string())
        .env("HERMES_HOME", db.parent().unwrap())
        .env("HOME", db.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hermes_bench.py tick: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ms_list(v: &serde_json::Value, k: &str) -> Vec<f64> {
    v[k].as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

struct Row {
    n: usize,
    ready: usize,
    running: usize,
    ours: [f64; 3],
    hermes: Option<[f64; 3]>,
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
    let python = std::env::var("HK_HERMES_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    // Three alternating batches (ours, Hermes', ours, …) of ticks/3 samples each.
    let batches = 3;
    let per = ticks.div_ceil(batches).max(1);
    let mut rows = Vec::new();
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Env::empty()
            .with("HOME", dir.path().to_string_lossy())
            .with("HERMES_HOME", dir.path().join("hermes").to_string_lossy())
            .with("PATH", std::env::var("PATH").unwrap_or_default());
        let t = Instant::now();
        let (ready, running) = {
            let board = Board::open(&env, None).expect("open");
            seed(&board, n)
        };
        eprintln!("seeded {n} tasks in {:.1}s", t.elapsed().as_secs_f64());
        // An identical copy for Hermes (no connection is open: the file is complete).
        let hermes_db = dir.path().join("hermes-copy").join("kanban.db");
        std::fs::create_dir_all(hermes_db.parent().unwrap()).unwrap();
        std::fs::copy(dir.path().join("hermes").join("kanban.db"), &hermes_db).unwrap();
        let board = Board::open(&env, None).expect("open");
        let mut opts = TickOptions::from_config(&env, &KanbanConfig::default());
        let mut host = HostState::default();
        let warm = dispatch_once(&board, &opts, &mut host).expect("tick");
        assert!(warm.spawned.is_empty(), "the benchmark must not spawn");
        assert_eq!(warm.skipped_nonspawnable.len(), ready + warm.promoted);
        let ready = ready + warm.promoted;
        let (mut real, mut dry, mut list) = (vec![], vec![], vec![]);
        let (mut h_real, mut h_dry, mut h_list) = (vec![], vec![], vec![]);
        for _ in 0..batches {
            for _ in 0..per {
                opts.dry_run = false;
                let t = Instant::now();
                let r = dispatch_once(&board, &opts, &mut host).expect("tick");
                real.push(t.elapsed());
                assert!(r.spawned.is_empty() && r.reclaimed == 0);
                opts.dry_run = true;
                let t = Instant::now();
                dispatch_once(&board, &opts, &mut host).expect("dry tick");
                dry.push(t.elapsed());
                let t = Instant::now();
                let l = board.list_tasks(&ListFilter::default()).expect("list");
                list.push(t.elapsed());
                assert!(l.len() > n / 2);
            }
            if let Some(py) = &python {
                let v = hermes_batch(py, &hermes_db, per);
                assert_eq!(
                    v["ready"].as_u64().unwrap() as usize,
                    ready,
                    "Hermes' copy must keep the same ready queue: {v}"
                );
                h_real.extend(ms_list(&v, "tick_ms"));
                h_dry.extend(ms_list(&v, "dry_tick_ms"));
                h_list.extend(ms_list(&v, "list_ms"));
            }
        }
        let v = board.check_invariants().expect("invariants");
        assert!(v.is_empty(), "{v:?}");
        let ours = [ms(median(real)), ms(median(dry)), ms(median(list))];
        let hermes = python
            .is_some()
            .then(|| [median_f(h_real), median_f(h_dry), median_f(h_list)]);
        eprintln!("{n}: ours {ours:?} hermes {hermes:?}");
        rows.push(Row {
            n,
            ready,
            running,
            ours,
            hermes,
        });
    }
    let samples = batches * per;
    print!("| in-process, median of {samples} (3 alternating batches) |");
    for r in &rows {
        print!(" {} tasks: hermes-kanban | Hermes 0.19.0 | speed-up |", r.n);
    }
    println!();
    print!("|---|");
    for _ in &rows {
        print!("---:|---:|---:|");
    }
    println!();
    let names = [
        "dispatcher tick, no spawns (`dispatch_once`)",
        "dry-run tick (`dispatch_once(dry_run=True)`)",
        "`list_tasks` (non-archived, default order)",
    ];
    for (k, name) in names.iter().enumerate() {
        print!("| {name} |");
        for r in &rows {
            match r.hermes {
                Some(h) => print!(
                    " {:.1} ms | {:.0} ms | {:.0}× |",
                    r.ours[k],
                    h[k],
                    h[k] / r.ours[k]
                ),
                None => print!(" {:.1} ms | — | — |", r.ours[k]),
            }
        }
        println!();
    }
    println!();
    print!("Board mix:");
    for r in &rows {
        print!(" {} tasks → {} ready, {} running;", r.n, r.ready, r.running);
    }
    println!();
    if let Some(big) = rows.iter().max_by_key(|r| r.n)
        && let Some(h) = big.hermes
    {
        let ratios = [h[0] / big.ours[0], h[1] / big.ours[1], h[2] / big.ours[2]];
        let worst = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
        target(&format!(
            "| tick and list at {}k tasks ≥ 10× faster than Hermes | tick {:.1}×, dry-run tick {:.1}×, list {:.1}× | {} |",
            big.n / 1000,
            ratios[0],
            ratios[1],
            ratios[2],
            if worst >= 10.0 { "met" } else { "**not met**" }
        ));
    }
}
