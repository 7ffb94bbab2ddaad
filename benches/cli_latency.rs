//! CLI latency, side by side with Hermes 0.19.0: median wall time of `create`, `list` (board of
//! ~1,000 tasks), `show` and `complete`, each a fresh process as a script would run it, through
//! our release binary and through `hermes kanban` on the SAME board (one HERMES_HOME). Runs
//! alternate (ours, Hermes, ours, Hermes, …) so machine noise hits both alike.
//!
//! Hermes comes from `HK_HERMES` (scripts/bench installs it); without it only our column is
//! measured. Run: `cargo bench --bench cli_latency -- [runs]`. Prints a markdown table on stdout;
//! target verdicts are appended to `$BENCH_TARGETS` when set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Append a target verdict row to `$BENCH_TARGETS`.
pub fn target(row: &str) {
    if let Ok(p) = std::env::var("BENCH_TARGETS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        writeln!(f, "{row}").unwrap();
    }
}

struct Runner {
    dir: PathBuf,
    home: PathBuf,
}

impl Runner {
    fn cmd(&self, prog: &Path, pre: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new(prog);
        c.args(pre)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("HERMES_HOME", &self.home)
            .env("TZ", "UTC")
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null());
        c
    }

    /// Run and time; the command must succeed (for Hermes, which exits 0 whatever happens:
    /// `expect` must be in stdout).
    fn time(&self, prog: &Path, pre: &[&str], args: &[&str], expect: &str) -> (f64, String) {
        let t = Instant::now();
        let out = self.cmd(prog, pre, args).output().unwrap();
        let el = t.elapsed().as_secs_f64() * 1000.0;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.contains(expect),
            "{} {pre:?} {args:?}: exit {:?}\n{stdout}\n{}",
            prog.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        (el, stdout)
    }
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_hermes-kanban"));
    let hermes = std::env::var_os("HK_HERMES").map(PathBuf::from);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    let r = Runner {
        dir: dir.path().to_path_buf(),
        home: dir.path().join("hermes"),
    };
    // Seed a board with 1,000 tasks through the kernel (fast), plus the ready tasks the
    // `complete` runs will finish (one per run and tool), then time the CLIs.
    let mut to_complete = Vec::new();
    {
        let env = hermes_kanban::kernel::Env::empty()
            .with("HOME", dir.path().to_string_lossy())
            .with("HERMES_HOME", r.home.to_string_lossy());
        let b = hermes_kanban::kernel::Board::open(&env, None).unwrap();
        for i in 0..1000 {
            b.create_task(hermes_kanban::kernel::NewTask {
                title: format!("seed task {i}"),
                assignee: Some(["coder", "reviewer", "writer"][i % 3].into()),
                priority: (i % 5) as i64,
                body: Some("Some body text for the task.".into()),
                ..Default::default()
            })
            .unwrap();
        }
        for i in 0..2 * runs {
            let t = b
                .create_task(hermes_kanban::kernel::NewTask {
                    title: format!("to complete {i}"),
                    assignee: Some("coder".into()),
                    ..Default::default()
                })
                .unwrap();
            to_complete.push(t.task.id);
        }
    }
    let id = r
        .time(
            &ours,
            &[],
            &["create", "probe", "--assignee", "coder", "--json"],
            "",
        )
        .1;
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    let kb: &[&str] = &["kanban"];
    // Warm both (page cache, Python bytecode).
    if let Some(h) = &hermes {
        r.time(h, kb, &["show", &id], &id);
    }
    r.time(&ours, &[], &["show", &id], &id);
    let ops = ["create", "list", "show", "complete"];
    let mut mine: Vec<Vec<f64>> = vec![vec![]; 4];
    let mut theirs: Vec<Vec<f64>> = vec![vec![]; 4];
    for i in 0..runs {
        let title_o = format!("bench ours {i}");
        let title_h = format!("bench hermes {i}");
        let (co, ch) = (&to_complete[2 * i], &to_complete[2 * i + 1]);
        let done_o = format!("Completed {co}");
        let done_h = format!("Completed {ch}");
        let show_expect = id.clone();
        let plan: [(Vec<&str>, Vec<&str>, &str, &str); 4] = [
            (
                vec!["create", &title_o, "--assignee", "coder"],
                vec!["create", &title_h, "--assignee", "coder"],
                "Created",
                "Created",
            ),
            (vec!["list"], vec!["list"], "seed task", "seed task"),
            (
                vec!["show", &id],
                vec!["show", &id],
                &show_expect,
                &show_expect,
            ),
            (
                vec!["complete", co, "--summary", "done"],
                vec!["complete", ch, "--summary", "done"],
                &done_o,
                &done_h,
            ),
        ];
        for (k, (oa, ha, oe, he)) in plan.iter().enumerate() {
            // Alternate which tool goes first, so neither always runs on a warmer cache.
            let first_ours = i % 2 == 0;
            if first_ours {
                mine[k].push(r.time(&ours, &[], oa, oe).0);
            }
            if let Some(h) = &hermes {
                theirs[k].push(r.time(h, kb, ha, he).0);
            }
            if !first_ours {
                mine[k].push(r.time(&ours, &[], oa, oe).0);
            }
        }
    }
    let label = [
        "`create \"…\" --assignee coder`",
        "`list` (board of ~1,000 tasks)",
        "`show <id>`",
        "`complete <id> --summary …`",
    ];
    println!(
        "| CLI command (fresh process each, same board, median of {runs} alternating runs) | hermes-kanban | `hermes kanban` 0.19.0 | speed-up |"
    );
    println!("|---|---:|---:|---:|");
    let mut worst = f64::INFINITY;
    for k in 0..4 {
        let o = median(mine[k].clone());
        if theirs[k].is_empty() {
            println!("| {} | {o:.1} ms | — | — |", label[k]);
            continue;
        }
        let h = median(theirs[k].clone());
        worst = worst.min(h / o);
        eprintln!("{}: ours {o:.1} ms, hermes {h:.1} ms", ops[k]);
        println!("| {} | {o:.1} ms | {h:.0} ms | {:.0}× |", label[k], h / o);
    }
    if hermes.is_some() {
        target(&format!(
            "| CLI ops ≥ 50× faster than `hermes kanban` | slowest ratio {worst:.1}× (create, list, show and complete each; see the table) | {} |",
            if worst >= 50.0 { "met" } else { "**not met**" }
        ));
    }
}
