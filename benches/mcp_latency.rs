//! MCP latency benchmark: p50/p99 of `kanban_show` and `kanban_heartbeat` over stdio (1,000
//! sequential calls each, board of 1,000 tasks, release binary, raw newline-delimited JSON-RPC so
//! the client adds nothing), and the idle RSS of `hermes-kanban mcp`.
//!
//! Run: `cargo bench --bench mcp_latency -- [calls]`. Prints a markdown table on stdout.

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
    println!();
    println!("| process | RSS |");
    println!("|---|---:|");
    println!(
        "| `hermes-kanban mcp`, idle after initialize | {:.1} MB |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| `hermes-kanban mcp`, after {} calls | {:.1} MB |",
        2 * calls,
        busy_rss as f64 / 1024.0
    );
}
