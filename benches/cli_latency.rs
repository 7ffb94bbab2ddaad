//! CLI latency benchmark: median wall time of `create`, `list` (1,000 tasks) and `show` through
//! the release binary, each a fresh process as a script would run it.
//!
//! Run: `cargo bench --bench cli_latency -- [runs]`. Prints a markdown table on stdout.

use std::process::{Command, Stdio};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let exe = env!("CARGO_BIN_EXE_hermes-kanban");
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    let home = dir.path().join("hermes");
    let run = |args: &[&str]| -> (f64, String) {
        let t = Instant::now();
        let out = Command::new(exe)
            .args(args)
            .env("HERMES_HOME", &home)
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let el = t.elapsed().as_secs_f64() * 1000.0;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (el, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // Seed a board with 1,000 tasks through the kernel (fast), then time the CLI.
    {
        let env = hermes_kanban::kernel::Env::empty()
            .with("HOME", dir.path().to_string_lossy())
            .with("HERMES_HOME", home.to_string_lossy());
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
    }
    let id = run(&["create", "probe", "--assignee", "coder", "--json"]).1;
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    let mut create = vec![];
    let mut list = vec![];
    let mut show = vec![];
    for i in 0..runs {
        create.push(run(&["create", &format!("bench {i}"), "--assignee", "coder"]).0);
        list.push(run(&["list"]).0);
        show.push(run(&["show", &id]).0);
    }
    let (c, l, s) = (median(create), median(list), median(show));
    eprintln!("create {c:.1} ms, list {l:.1} ms, show {s:.1} ms");
    println!("| CLI command (release binary, fresh process, median of {runs}) | wall time |");
    println!("|---|---:|");
    println!("| `create \"…\" --assignee coder` | {c:.1} ms |");
    println!("| `list` (board of 1,000 tasks) | {l:.1} ms |");
    println!("| `show <id>` | {s:.1} ms |");
}
