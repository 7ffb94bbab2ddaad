//! MCP latency benchmark: p50/p99 of `kanban_show` and `kanban_heartbeat` over stdio (1,000
//! sequential calls each, board of 1,000 tasks, release binary, raw newline-delimited JSON-RPC so
//! the client adds nothing), and the idle RSS of `hermes-kanban mcp` and `hermes-kanban serve`.
//!
//! Hermes 0.19.0 has no stand-alone kanban MCP server (its `kanban_*` tools run inside the agent
//! process) and its dispatcher lives in the gateway, so the RSS comparison is with the closest
//! Hermes processes for the same job, on the same board: with `HK_HERMES_PYTHON`, a Python
//! process that has imported Hermes' kanban tool surface (`tools.kanban_tools`) and opened the
//! board (`benches/hermes_bench.py idle`: the floor of any Hermes process serving these tools);
//! with `HK_HERMES`, `hermes dashboard` (the process serving Hermes' kanban board and REST API,
//! what `serve` replaces).
//!
//! Run: `cargo bench --bench mcp_latency -- [calls]`. Prints a markdown table on stdout; target
//! verdicts go to `$BENCH_TARGETS` when set.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hermes_kanban::kernel::{Board, Env, NewTask};
use serde_json::{Value, json};

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn target(row: &str) {
    if let Ok(p) = std::env::var("BENCH_TARGETS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        writeln!(f, "{row}").unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `cmd`, wait until `ready` says so (deadline 60 s), let it settle, read its RSS (KiB),
/// then stop it.
fn measure_idle_rss(
    mut cmd: Command,
    what: &str,
    ready: impl Fn(&mut std::process::Child) -> bool,
) -> u64 {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&mut child) {
        assert!(Instant::now() < deadline, "{what} did not start");
        assert!(child.try_wait().unwrap().is_none(), "{what} exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let rss = rss_kib(child.id());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rss
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    let home = dir.path().join("hermes");
    let env = Env::empty()
        .with("HOME", dir.path().to_string_lossy())
        .with("HERMES_HOME", home.to_string_lossy());
    let (task, run, lock) = {
        let b = Board::open(&env, None).unwrap();
        for i in 0..999 {
            b.create_task(NewTask {
                title: format!("seed {i}"),
                assignee: Some("coder".into()),
                ..Default::default()
            })
            .unwrap();
        }
        let t = b
            .create_task(NewTask {
                title: "the worker's task".into(),
                assignee: Some("coder".into()),
                body: Some("Do the thing.".into()),
                ..Default::default()
            })
            .unwrap()
            .task
            .id;
        let lock = format!("{}:1", hermes_kanban::kernel::hostname());
        let c = b.claim_task_as(&t, Some(3600), &lock).unwrap();
        (t, c.run_id, lock)
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermes-kanban"))
        .arg("mcp")
        .env("HOME", dir.path())
        .env("HERMES_HOME", &home)
        .env("HERMES_KANBAN_TASK", &task)
        .env("HERMES_KANBAN_RUN_ID", run.to_string())
        .env("HERMES_KANBAN_CLAIM_LOCK", &lock)
        .env("HERMES_PROFILE", "coder")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut id = 0u64;
    let mut call = |method: &str, params: Value| -> (f64, Value) {
        if method.starts_with("notifications/") {
            writeln!(stdin, "{}", json!({"jsonrpc": "2.0", "method": method})).unwrap();
            stdin.flush().unwrap();
            return (0.0, Value::Null);
        }
        id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let t = Instant::now();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            stdout.read_line(&mut line).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("id") == Some(&json!(id)) {
                return (t.elapsed().as_secs_f64() * 1000.0, v);
            }
        }
    };
    let (_, init) = call(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    call("notifications/initialized", Value::Null);
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = rss_kib(pid);
    let mut show = Vec::with_capacity(calls);
    let mut hb = Vec::with_capacity(calls);
    for i in 0..calls {
        let (ms, v) = call(
            "tools/call",
            json!({"name": "kanban_show", "arguments": {}}),
        );
        assert!(v["result"]["isError"] != json!(true), "{v}");
        show.push(ms);
        let (ms, v) = call(
            "tools/call",
            json!({"name": "kanban_heartbeat", "arguments": {"note": format!("step {i}")}}),
        );
        assert!(v["result"]["isError"] != json!(true), "{v}");
        hb.push(ms);
    }
    let busy_rss = rss_kib(pid);
    drop(stdin);
    let _ = child.wait();
    show.sort_by(|a, b| a.partial_cmp(b).unwrap());
    hb.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "show p50 {:.3} p99 {:.3}; heartbeat p50 {:.3} p99 {:.3}; rss idle {idle_rss} KiB",
        pct(&show, 0.5),
        pct(&show, 0.99),
        pct(&hb, 0.5),
        pct(&hb, 0.99)
    );
    println!(
        "| MCP over stdio (release, {calls} sequential calls, board of 1,000 tasks) | p50 | p99 |"
    );
    println!("|---|---:|---:|");
    println!(
        "| `kanban_show` (with worker_context) | {:.2} ms | {:.2} ms |",
        pct(&show, 0.5),
        pct(&show, 0.99)
    );
    println!(
        "| `kanban_heartbeat` (claim extension + heartbeat, one durable commit each) | {:.2} ms | {:.2} ms |",
        pct(&hb, 0.5),
        pct(&hb, 0.99)
    );
    let p99 = pct(&show, 0.99);
    target(&format!(
        "| MCP `kanban_show` p99 < 2 ms at 1k tasks | p50 {:.2} ms, p99 {p99:.2} ms | {} |",
        pct(&show, 0.5),
        if p99 < 2.0 { "met" } else { "**not met**" }
    ));

    // Idle RSS of `serve` (dashboard, REST, MCP over HTTP, dispatcher every 60 s) on the same
    // board, and of the Hermes processes for the same jobs.
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermes-kanban"));
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("HOME", dir.path())
        .env("HERMES_HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let serve_rss = measure_idle_rss(cmd, "hermes-kanban serve", |_| port_open(port));
    let mut hermes_rows = Vec::new();
    if let Ok(py) = std::env::var("HK_HERMES_PYTHON") {
        let mut cmd = Command::new(&py);
        cmd.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/hermes_bench.py"
        ))
        .arg("idle")
        .env("HOME", dir.path())
        .env("HERMES_HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let rss = measure_idle_rss(cmd, "hermes_bench.py idle", |c| {
            let mut line = String::new();
            BufReader::new(c.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .is_ok()
                && line.trim() == "ready"
        });
        hermes_rows.push((
            "Python with Hermes' kanban tools imported and the board open (`tools.kanban_tools`)",
            rss,
            idle_rss,
            "mcp",
        ));
    }
    if let Ok(h) = std::env::var("HK_HERMES") {
        let hport = free_port();
        let mut cmd = Command::new(&h);
        cmd.args([
            "dashboard",
            "--port",
            &hport.to_string(),
            "--skip-build",
            "--no-open",
        ])
        .env("HOME", dir.path())
        .env("HERMES_HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let rss = measure_idle_rss(cmd, "hermes dashboard", |_| port_open(hport));
        hermes_rows.push((
            "`hermes dashboard` (Hermes' kanban board + REST API; its dispatcher runs in the gateway)",
            rss,
            serve_rss,
            "serve",
        ));
    }
    println!();
    println!(
        "| process, idle, board of 1,000 tasks | RSS | Hermes 0.19.0 process for the same job | its RSS | ratio |"
    );
    println!("|---|---:|---|---:|---:|");
    let mb = |k: u64| k as f64 / 1024.0;
    let find = |job: &str| hermes_rows.iter().find(|r| r.3 == job);
    for (label, ours, job) in [
        (
            "`hermes-kanban mcp` (stdio), after initialize",
            idle_rss,
            "mcp",
        ),
        (
            "`hermes-kanban serve` (dashboard, REST, MCP over HTTP, dispatcher)",
            serve_rss,
            "serve",
        ),
    ] {
        match find(job) {
            Some((hl, hk, _, _)) => println!(
                "| {label} | {:.1} MB | {hl} | {:.1} MB | {:.0}× smaller |",
                mb(ours),
                mb(*hk),
                *hk as f64 / ours as f64
            ),
            None => println!("| {label} | {:.1} MB | — | — | — |", mb(ours)),
        }
    }
    println!(
        "| `hermes-kanban mcp`, after {} calls | {:.1} MB | | | |",
        2 * calls,
        mb(busy_rss)
    );
    target(&format!(
        "| `mcp` idle RSS < 15 MB | {:.1} MB (`serve`: {:.1} MB) | {} |",
        mb(idle_rss),
        mb(serve_rss),
        if mb(idle_rss) < 15.0 {
            "met"
        } else {
            "**not met**"
        }
    ));
}
