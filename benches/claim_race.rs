//! Claim throughput with 8 competing OS processes, ours vs Hermes 0.19.0: a board of N ready
//! tasks; 8 processes each list the ready tasks, wait for a common go signal, then try to claim
//! every one of them in the same order (maximum contention). Throughput = N / wall time from
//! go to the last process' exit. A double claim is a task that two processes both believe they
//! won; a lost claim is one a process believes it won but the DB does not show (no run row, or
//! another lock). Both must be 0.
//!
//! Ours: this bench binary re-executed as a racer (`CLAIM_RACER=1`), one `Board` per process,
//! `claim_task` per task. Hermes: `benches/hermes_bench.py race` with `HK_HERMES_PYTHON` — 8
//! Python processes, one `kanban_db.connect()` each, `claim_task` per task — on a board seeded
//! the same way. Rounds alternate ours / Hermes'.
//!
//! With `--database-url URL` (a PostgreSQL database of its own) every round races on a SQLite
//! file and on a new board of that database (issue 15: claims/s on each); the racers open the
//! board as every front door does (`Kanban::open`), and the check reads the database through the
//! kernel (`get_task`; no `integrity_check` there).
//!
//! Run: `cargo bench --bench claim_race -- [--database-url URL] [tasks] [rounds]` (default 1000
//! tasks, 3 rounds).
//! Prints a markdown table on stdout; target verdicts go to `$BENCH_TARGETS` when set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hermes_kanban::kernel::{
    Board, BoardPaths, Env, Kanban, KernelError, ListFilter, NewBoard, OpenMode, SeedTask, Status,
};

const PROCS: usize = 8;

fn open(db: &Path) -> Board {
    Board::open_paths(&Env::empty(), BoardPaths::for_db_file(db)).expect("open board")
}

/// The board `slug` of the database at `url` (host-local paths under `dir`), created on first
/// use.
fn open_url(url: &str, slug: &str, dir: &Path) -> Board {
    let env = Env::empty()
        .with("HOME", dir.to_string_lossy())
        .with("HERMES_HOME", dir.join("pg-home").to_string_lossy());
    let k = Kanban::open(&env, Some(url)).unwrap_or_else(|e| panic!("--database-url: {e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    k.create(slug, NewBoard::default(), now)
        .unwrap_or_else(|e| panic!("board {slug}: {e}"));
    k.open_board(Some(slug), OpenMode::Create)
        .unwrap_or_else(|e| panic!("board {slug}: {e}"))
        .0
}

/// Where a race runs: a SQLite file, or a board of a database URL.
#[derive(Clone)]
enum Target {
    File(PathBuf),
    Url {
        url: String,
        slug: String,
        dir: PathBuf,
    },
}

impl Target {
    fn open(&self) -> Board {
        match self {
            Target::File(db) => open(db),
            Target::Url { url, slug, dir } => open_url(url, slug, dir),
        }
    }

    /// The environment a racer process finds its board by.
    fn pass(&self, c: &mut Command) {
        match self {
            Target::File(db) => c.env("KANBAN_RACE_DB", db),
            Target::Url { url, slug, dir } => c
                .env("KANBAN_RACE_URL", url)
                .env("KANBAN_RACE_SLUG", slug)
                .env("KANBAN_RACE_DIR", dir),
        };
    }

    fn from_env() -> Target {
        match std::env::var("KANBAN_RACE_URL") {
            Ok(url) => Target::Url {
                url,
                slug: std::env::var("KANBAN_RACE_SLUG").unwrap(),
                dir: PathBuf::from(std::env::var("KANBAN_RACE_DIR").unwrap()),
            },
            Err(_) => Target::File(PathBuf::from(std::env::var("KANBAN_RACE_DB").unwrap())),
        }
    }
}

fn racer() {
    let out = PathBuf::from(std::env::var("KANBAN_RACE_OUT").unwrap());
    let go = PathBuf::from(std::env::var("KANBAN_RACE_GO").unwrap());
    let mut board = Target::from_env().open();
    board.set_claimer(format!("racer:{}", std::process::id()));
    let ids: Vec<String> = board
        .list_tasks(&ListFilter {
            status: Some(Status::Ready),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    std::fs::write(format!("{}.ready", out.display()), ids.len().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !go.exists() {
        assert!(Instant::now() < deadline, "no go signal");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut won = Vec::new();
    let mut errors = 0;
    for id in &ids {
        match board.claim_task(id, Some(900)) {
            Ok(c) => won.push(format!("{} {} {}", c.task_id, c.run_id, c.lock)),
            Err(KernelError::Refused { .. }) => {}
            Err(e) => {
                errors += 1;
                eprintln!("racer {}: {id}: {e}", std::process::id());
            }
        }
    }
    std::fs::write(&out, won.join("\n")).unwrap();
    std::fs::write(format!("{}.errors", out.display()), errors.to_string()).unwrap();
}

fn seed(db: &Path, n: usize) {
    seed_board(&open(db), n);
}

fn seed_board(board: &Board, n: usize) {
    let tasks: Vec<SeedTask> = (0..n)
        .map(|i| SeedTask {
            title: format!("race {i}"),
            assignee: Some("worker".into()),
            status: Status::Ready,
            priority: 0,
            parents: vec![],
            claim_lock: None,
        })
        .collect();
    board.seed_tasks(&tasks).unwrap();
}

/// (task, run id, lock) a racer believes it won.
type Win = (String, i64, String);

fn parse_wins(text: &str) -> Vec<Win> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut p = l.split_whitespace();
            (
                p.next().unwrap().to_string(),
                p.next().unwrap().parse().unwrap_or(-1),
                p.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

struct Outcome {
    wall: f64,
    claimed: usize,
    double: usize,
    lost: usize,
    errors: usize,
    /// `PRAGMA integrity_check` was not `ok` after the race.
    corrupt: bool,
}

/// Compare what the racers believe with what the DB says (read with a plain SQLite client once
/// every racer has exited).
fn verify(db: &Path, wins: &[Win], n: usize, wall: f64, errors: usize) -> Outcome {
    let mut per: HashMap<&str, usize> = HashMap::new();
    for (t, _, _) in wins {
        *per.entry(t.as_str()).or_default() += 1;
    }
    let double = per.values().filter(|&&c| c > 1).count();
    let c = rusqlite::Connection::open(db).unwrap();
    let mut lost = 0;
    for (t, run, lock) in wins {
        let row: Option<(String, Option<String>, Option<i64>)> = c
            .query_row(
                "SELECT status, claim_lock, current_run_id FROM tasks WHERE id=?1",
                [t],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        let runs: i64 = c
            .query_row(
                "SELECT count(*) FROM task_runs WHERE task_id=?1 AND id=?2",
                rusqlite::params![t, run],
                |r| r.get(0),
            )
            .unwrap_or(0);
        match row {
            Some((s, l, r))
                if s == "running" && l.as_deref() == Some(lock) && r == Some(*run) && runs == 1 => {
            }
            _ => lost += 1,
        }
    }
    let running: i64 = c
        .query_row(
            "SELECT count(*) FROM tasks WHERE status='running'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(-1);
    // Hermes 0.19.0 can damage the file here (REF §3.3): report it, do not stop the bench.
    let problems: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_else(|e| vec![e.to_string()]);
    let corrupt = problems != ["ok"];
    eprintln!(
        "  {} wins, {} tasks running of {n}, {double} double, {lost} lost, {errors} errors, {wall:.2}s, integrity: {}",
        wins.len(),
        running,
        problems.join("; ")
    );
    Outcome {
        wall,
        claimed: per.len(),
        double,
        lost,
        errors,
        corrupt,
    }
}

/// `verify` through the kernel, for a board that is not a SQLite file: a win holds when the
/// task is running on that run under that lock.
fn verify_kernel(board: &Board, wins: &[Win], n: usize, wall: f64, errors: usize) -> Outcome {
    let mut per: HashMap<&str, usize> = HashMap::new();
    for (t, _, _) in wins {
        *per.entry(t.as_str()).or_default() += 1;
    }
    let double = per.values().filter(|&&c| c > 1).count();
    let lost = wins
        .iter()
        .filter(|(t, run, lock)| {
            !board.get_task(t).is_ok_and(|x| {
                x.status == Status::Running
                    && x.claim_lock.as_deref() == Some(lock.as_str())
                    && x.current_run_id == Some(*run)
            })
        })
        .count();
    eprintln!(
        "  {} wins of {n}, {double} double, {lost} lost, {errors} errors, {wall:.2}s",
        wins.len()
    );
    Outcome {
        wall,
        claimed: per.len(),
        double,
        lost,
        errors,
        corrupt: false,
    }
}

fn wait_ready(outs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !outs
        .iter()
        .all(|o| Path::new(&format!("{}.ready", o.display())).exists())
    {
        assert!(Instant::now() < deadline, "racers did not get ready");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn race_ours(dir: &Path, n: usize) -> Outcome {
    race_on(dir, &Target::File(dir.join("ours.db")), n)
}

fn race_on(dir: &Path, target: &Target, n: usize) -> Outcome {
    seed_board(&target.open(), n);
    let tag = if matches!(target, Target::File(_)) {
        "ours"
    } else {
        "url"
    };
    let go = dir.join(format!("{tag}.go"));
    let outs: Vec<PathBuf> = (0..PROCS).map(|i| dir.join(format!("{tag}.{i}"))).collect();
    let exe = std::env::current_exe().unwrap();
    let mut kids: Vec<_> = outs
        .iter()
        .map(|o| {
            let mut c = Command::new(&exe);
            target.pass(&mut c);
            c.env("CLAIM_RACER", "1")
                .env("KANBAN_RACE_OUT", o)
                .env("KANBAN_RACE_GO", &go)
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    wait_ready(&outs);
    let t = Instant::now();
    std::fs::write(&go, "go").unwrap();
    for k in &mut kids {
        assert!(k.wait().unwrap().success(), "a racer failed");
    }
    let wall = t.elapsed().as_secs_f64();
    let mut wins = vec![];
    let mut errors = 0;
    for o in &outs {
        wins.extend(parse_wins(&std::fs::read_to_string(o).unwrap()));
        errors += std::fs::read_to_string(format!("{}.errors", o.display()))
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap();
    }
    let board = target.open();
    let v = board.check_invariants().unwrap();
    assert!(v.is_empty(), "{v:?}");
    match target {
        Target::File(db) => verify(db, &wins, n, wall, errors),
        Target::Url { .. } => verify_kernel(&board, &wins, n, wall, errors),
    }
}

/// Hermes' race; `patched` replaces its post-commit plain-file length check with a no-op (what
/// the 0.19.1 fix amounts to, REF §3.3), to tell its lost-write defect from its speed.
fn race_hermes(python: &str, dir: &Path, n: usize, patched: bool) -> Outcome {
    let home = dir.join(if patched { "hermes-patched" } else { "hermes" });
    std::fs::create_dir_all(&home).unwrap();
    let db = home.join("kanban.db");
    seed(&db, n);
    let go = home.join("go");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/hermes_bench.py");
    let out = Command::new(python)
        .arg(script)
        .arg("race")
        .arg(&db)
        .arg(PROCS.to_string())
        .arg(&go)
        .env("HERMES_HOME", &home)
        .env("HOME", dir)
        .env(
            "HK_BENCH_SKIP_LENGTH_CHECK",
            if patched { "1" } else { "0" },
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hermes_bench.py race: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut wins = vec![];
    for w in v["wins"].as_array().unwrap() {
        for l in w.as_array().unwrap() {
            wins.extend(parse_wins(l.as_str().unwrap()));
        }
    }
    let errors: i64 = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_i64().unwrap().max(0))
        .sum();
    verify(
        &db,
        &wins,
        n,
        v["wall_s"].as_f64().unwrap(),
        errors as usize,
    )
}

/// Each round races on a SQLite file and on a new board of the database at `url` (order
/// alternating) → the backends table.
fn backends(url: &str, n: usize, rounds: usize) {
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into());
    let (mut s, mut p) = (vec![], vec![]);
    for r in 0..rounds {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let pg = Target::Url {
            url: url.to_string(),
            slug: format!("race-{}-{r}", std::process::id()),
            dir: dir.path().to_path_buf(),
        };
        for first_sqlite in [r % 2 == 0, r % 2 != 0] {
            if first_sqlite {
                eprintln!("round {r}: SQLite");
                s.push(race_ours(dir.path(), n));
            } else {
                eprintln!("round {r}: PostgreSQL");
                p.push(race_on(dir.path(), &pg, n));
            }
        }
    }
    println!(
        "| {PROCS} processes race for {n} ready tasks ({rounds} alternating rounds) \
         | claims/s (median) | tasks claimed (min) | double claims | lost claims | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, v) in [("SQLite (one file)", &s), ("PostgreSQL (one board)", &p)] {
        let rate = median(v.iter().map(|o| o.claimed as f64 / o.wall).collect());
        println!(
            "| {name} | {rate:.0} | {} | {} | {} | {} |",
            v.iter().map(|o| o.claimed).min().unwrap_or(0),
            v.iter().map(|o| o.double).sum::<usize>(),
            v.iter().map(|o| o.lost).sum::<usize>(),
            v.iter().map(|o| o.errors).sum::<usize>()
        );
    }
    let bad = s
        .iter()
        .chain(&p)
        .any(|o| o.double > 0 || o.lost > 0 || o.claimed != n);
    target(&format!(
        "| no double claim with {PROCS} competing processes on PostgreSQL | {} | {} |",
        if bad {
            "double, lost or missing claims (see the table)"
        } else {
            "0 double, 0 lost"
        },
        if bad { "**not met**" } else { "met" }
    ));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
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

fn main() {
    if std::env::var_os("CLAIM_RACER").is_some() {
        racer();
        return;
    }
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
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    if let Some(url) = url {
        backends(&url, n, rounds);
        return;
    }
    let python = std::env::var("HK_HERMES_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into());
    let (mut ours, mut theirs, mut patched) = (vec![], vec![], vec![]);
    for r in 0..rounds {
        let dir = tempfile::tempdir_in(&base).unwrap();
        eprintln!("round {r}: hermes-kanban");
        ours.push(race_ours(dir.path(), n));
        if let Some(py) = &python {
            eprintln!("round {r}: Hermes 0.19.0");
            theirs.push(race_hermes(py, dir.path(), n, false));
            eprintln!("round {r}: Hermes 0.19.0 without its post-commit file check");
            patched.push(race_hermes(py, dir.path(), n, true));
        }
    }
    let summarize = |v: &[Outcome]| {
        (
            median(v.iter().map(|o| o.claimed as f64 / o.wall).collect()),
            v.iter().map(|o| o.double).sum::<usize>(),
            v.iter().map(|o| o.lost).sum::<usize>(),
            v.iter().map(|o| o.errors).sum::<usize>(),
            v.iter().map(|o| o.claimed).min().unwrap_or(0),
            v.iter().filter(|o| o.corrupt).count(),
        )
    };
    println!(
        "| {PROCS} processes race for {n} ready tasks ({rounds} alternating rounds) | claims/s (median) | tasks claimed (min) | double claims | lost claims | errors | rounds that left a corrupt DB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (o_rate, o_double, o_lost, o_err, o_min, o_corrupt) = summarize(&ours);
    println!(
        "| hermes-kanban (`Board::claim_task`) | {o_rate:.0} | {o_min} | {o_double} | {o_lost} | {o_err} | {o_corrupt} of {rounds} |"
    );
    if python.is_some() {
        let (h_rate, h_double, h_lost, h_err, h_min, h_corrupt) = summarize(&theirs);
        println!(
            "| Hermes 0.19.0 (`kanban_db.claim_task`) | {h_rate:.0} | {h_min} | {h_double} | {h_lost} | {h_err} | {h_corrupt} of {rounds} |"
        );
        let (p_rate, p_double, p_lost, p_err, p_min, p_corrupt) = summarize(&patched);
        println!(
            "| Hermes 0.19.0, post-commit file check disabled (≈ the 0.19.1 fix) | {p_rate:.0} | {p_min} | {p_double} | {p_lost} | {p_err} | {p_corrupt} of {rounds} |"
        );
        println!();
        println!(
            "Speed-up: {:.0}× the claims per second of Hermes as shipped, {:.0}× of Hermes with \
             its lost-write defect patched out (REF §3.3; docs/compatibility.md). Hermes' double \
             and lost claims, errors and corrupt files come from that defect: with the plain-file \
             check after each commit replaced by a no-op, the same race is clean.",
            o_rate / h_rate,
            o_rate / p_rate
        );
    }
    target(&format!(
        "| no double claim with {PROCS} competing processes | hermes-kanban: {o_double} double, {o_lost} lost, {o_corrupt} corrupt over {rounds} rounds | {} |",
        if o_double == 0 && o_lost == 0 && o_min == n && o_corrupt == 0 {
            "met"
        } else {
            "**not met**"
        }
    ));
}
