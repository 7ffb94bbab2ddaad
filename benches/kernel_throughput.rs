//! Kernel throughput benchmark: creates, claims and completes per second through the kernel
//! (each one `BEGIN IMMEDIATE` transaction), measured side by side with a raw rusqlite loop doing
//! one single-row transaction per op on the same file with the same pragmas. Rounds alternate
//! (kernel, raw, kernel, raw, ...) and medians are reported. The raw loop is the physical
//! baseline, so it is the one place outside src/kernel/ that writes SQL.
//!
//! With `HK_HERMES_PYTHON` (the Python of the hermes-agent 0.19.0 venv) each round also runs
//! Hermes' own kernel in-process (`benches/hermes_bench.py kernel`: `kanban_db.create_task`,
//! `claim_task`, `complete_task` on one connection, as Hermes does) on its own DB file in the
//! same directory; only the calls are timed, not the interpreter start.
//!
//! With `--database-url URL` (a PostgreSQL database of its own: the bench writes to its default
//! board) the rounds alternate the same kernel operations on a SQLite file and on that database
//! instead (issue 15: kernel ops/s on PostgreSQL vs SQLite); the board on the URL is opened as
//! every front door opens it, through `Kanban::open`.
//!
//! Run: `cargo bench --bench kernel_throughput -- [--database-url URL] [ops_per_round] [rounds]`
//! Prints a markdown table on stdout; target verdicts go to `$BENCH_TARGETS` when set.

use std::time::Instant;

use hermes_kanban::kernel::{Board, BoardPaths, Completion, Env, Kanban, NewTask, OpenMode};
use rusqlite::{Connection, params};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn kernel_round(board: &Board, n: usize, round: usize) -> (f64, f64, f64) {
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let c = board
            .create_task(NewTask {
                title: format!("bench r{round} #{i}"),
                assignee: Some("worker".into()),
                ..Default::default()
            })
            .unwrap();
        ids.push(c.task.id);
    }
    let create = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut runs = Vec::with_capacity(n);
    for id in &ids {
        runs.push(board.claim_task(id, None).unwrap().run_id);
    }
    let claim = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (id, run) in ids.iter().zip(runs) {
        board
            .complete_task(Completion {
                task_id: id.clone(),
                summary: Some("done".into()),
                expected_run_id: Some(run),
                ..Default::default()
            })
            .unwrap();
    }
    let complete = n as f64 / t.elapsed().as_secs_f64();
    (create, claim, complete)
}

fn raw_round(conn: &Connection, n: usize, round: usize) -> (f64, f64) {
    let base = (round * n) as i64;
    let t = Instant::now();
    for i in 0..n as i64 {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached(
            "INSERT INTO bench_raw (id, status, title, updated_at) VALUES (?1, 'ready', ?2, ?3)",
        )
        .unwrap()
        .execute(params![base + i, format!("raw {i}"), i])
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    let insert = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..n as i64 {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let k = conn
            .prepare_cached("UPDATE bench_raw SET status='running', claimed_by=?1, updated_at=?2 WHERE id=?3 AND status='ready'")
            .unwrap()
            .execute(params!["bench:1", i, base + i])
            .unwrap();
        assert_eq!(k, 1);
        conn.execute_batch("COMMIT").unwrap();
    }
    let cas = n as f64 / t.elapsed().as_secs_f64();
    (insert, cas)
}

/// One round of Hermes' kernel through the Python bench script → (create, claim, complete) /s.
fn hermes_round(python: &str, db: &std::path::Path, n: usize) -> (f64, f64, f64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hermes_bench.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg("kernel")
        .arg(db)
        .arg(n.to_string())
        .env("HERMES_HOME", db.parent().unwrap())
        .env("HOME", db.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hermes_bench.py kernel: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["create"].as_f64().unwrap(),
        v["claim"].as_f64().unwrap(),
        v["complete"].as_f64().unwrap(),
    )
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

/// The kernel on SQLite and on the database at `url`, rounds alternating → the backends table.
fn backends(url: &str, dir: &std::path::Path, n: usize, rounds: usize) {
    let sqlite = Board::open_paths(
        &Env::empty(),
        BoardPaths::for_db_file(&dir.join("kanban.db")),
    )
    .unwrap();
    // Host-local paths (logs, workspaces) under the temp dir; the board itself on the URL.
    let env = Env::empty()
        .with("HOME", dir.to_string_lossy())
        .with("HERMES_HOME", dir.join("pg-home").to_string_lossy());
    let pg = Kanban::open(&env, Some(url))
        .and_then(|k| k.open_board(None, OpenMode::Create))
        .unwrap_or_else(|e| panic!("--database-url: {e}"))
        .0;
    let (mut s, mut p) = (vec![], vec![]);
    for r in 0..rounds {
        // Alternate which backend goes first.
        let order: [(&Board, &mut Vec<_>); 2] = if r % 2 == 0 {
            [(&sqlite, &mut s), (&pg, &mut p)]
        } else {
            [(&pg, &mut p), (&sqlite, &mut s)]
        };
        for (b, out) in order {
            out.push(kernel_round(b, n, r));
        }
        eprintln!("round {r}: sqlite {:?} | postgres {:?}", s[r], p[r]);
    }
    println!(
        "| kernel operation ({n} ops × {rounds} alternating rounds, medians) | SQLite ops/s \
         | PostgreSQL ops/s | PostgreSQL / SQLite |"
    );
    println!("|---|---:|---:|---:|");
    let pick = |v: &[(f64, f64, f64)], k: usize| -> f64 {
        median(v.iter().map(|t| [t.0, t.1, t.2][k]).collect())
    };
    for (k, name) in ["create", "claim", "complete"].iter().enumerate() {
        let (a, b) = (pick(&s, k), pick(&p, k));
        println!("| {name} | {a:.0} | {b:.0} | {:.2} |", b / a);
    }
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let url = all
        .iter()
        .position(|a| a == "--database-url")
        .map(|i| all.get(i + 1).expect("--database-url takes a URL").clone());
    let args: Vec<String> = all
        .iter()
        .filter(|a| !a.starts_with("--") && Some(*a) != url.as_ref())
        .cloned()
        .collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    if let Some(url) = url {
        backends(&url, dir.path(), n, rounds);
        return;
    }
    let db = dir.path().join("kanban.db");
    let sync = std::env::var("HERMES_KANBAN_SYNCHRONOUS")
        .unwrap_or_else(|_| "FULL".into())
        .to_uppercase();
    let env = Env::empty().with("HERMES_KANBAN_SYNCHRONOUS", sync.clone());
    let board = Board::open_paths(&env, BoardPaths::for_db_file(&db)).unwrap();
    let raw = Connection::open(&db).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(120))
        .unwrap();
    raw.execute_batch(
        &format!("PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; PRAGMA cell_size_check=ON;
         CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, status TEXT, title TEXT, claimed_by TEXT, updated_at INTEGER);
         CREATE INDEX IF NOT EXISTS idx_bench_raw_status ON bench_raw(status);"),
    )
    .unwrap();
    let python = std::env::var("HK_HERMES_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    let hermes_db = dir.path().join("hermes").join("kanban.db");
    std::fs::create_dir_all(hermes_db.parent().unwrap()).unwrap();
    let (mut kc, mut kl, mut kd, mut ri, mut ru) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut hc, mut hl, mut hd) = (vec![], vec![], vec![]);
    for r in 0..rounds {
        let (c, l, d) = kernel_round(&board, n, r);
        let (i, u) = raw_round(&raw, n, r);
        eprintln!(
            "round {r}: kernel create {c:.0}/s claim {l:.0}/s complete {d:.0}/s | raw insert {i:.0}/s cas {u:.0}/s"
        );
        kc.push(c);
        kl.push(l);
        kd.push(d);
        ri.push(i);
        ru.push(u);
        if let Some(py) = &python {
            let (c, l, d) = hermes_round(py, &hermes_db, n);
            eprintln!("round {r}: hermes create {c:.0}/s claim {l:.0}/s complete {d:.0}/s");
            hc.push(c);
            hl.push(l);
            hd.push(d);
        }
    }
    let (kc, kl, kd, ri, ru) = (median(kc), median(kl), median(kd), median(ri), median(ru));
    let h = python
        .is_some()
        .then(|| (median(hc), median(hl), median(hd)));
    println!(
        "| operation ({n} ops × {rounds} alternating rounds, medians; synchronous={sync}) | hermes-kanban kernel ops/s | raw single-row tx/s | kernel / raw | Hermes `kanban_db` ops/s | kernel / Hermes |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, k: f64, raw: f64, h: Option<f64>| {
        let (hs, ratio) = match h {
            Some(h) => (format!("{h:.0}"), format!("{:.1}×", k / h)),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {name} | {k:.0} | {raw:.0} | {:.0} % | {hs} | {ratio} |",
            100.0 * k / raw
        );
    };
    row("create (raw: INSERT)", kc, ri, h.map(|h| h.0));
    row("claim (raw: CAS UPDATE)", kl, ru, h.map(|h| h.1));
    row("complete (raw: CAS UPDATE)", kd, ru, h.map(|h| h.2));
    let worst = (kc / ri).min(kl / ru).min(kd / ru);
    target(&format!(
        "| kernel ops ≥ 80 % of the raw SQLite single-transaction limit | create {:.0} %, claim {:.0} %, complete {:.0} % | {} |",
        100.0 * kc / ri,
        100.0 * kl / ru,
        100.0 * kd / ru,
        if worst >= 0.8 { "met" } else { "**not met**" }
    ));
}
