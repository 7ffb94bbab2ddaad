//! Dashboard benchmark: `GET /api/board` through the real router at 1,000 and 10,000 tasks
//! (full and the dashboard's compact cards), an incremental `?ids=` refresh, and — when node,
//! playwright-core (target/browser-node, see scripts/browser-test) and /usr/bin/chromium are
//! present — the page's time to first full render with 10,000 tasks, read from the
//! `hk:board-painted` performance mark the dashboard sets once its columns are painted.
//!
//! The memory part runs the real `hermes-kanban serve` (release binary, `--no-dispatch`) on
//! boards seeded through the kernel's bulk seeding at 10,000 and 100,000 tasks (55 % done,
//! 10 % archived, as the dispatcher bench), refreshes `?compact=1` as dashboards would and
//! reads the server's RSS and peak (VmHWM) from /proc; with the browser tooling it also times
//! the 100,000-task first render against that server.
//!
//! Run: `cargo bench --bench web_board -- [runs]`. Prints markdown tables on stdout;
//! `-- --only serve [runs]` runs only the memory part.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use hermes_kanban::kernel::{BlockRequest, Board, Completion, Env, NewTask, SeedTask, Status};
use hermes_kanban::web::ServeConfig;
use tokio_util::sync::CancellationToken;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A board of `n` tasks shaped like a busy one: created one a minute, four profiles, five
/// priorities, a tenant on every 7th task, a parent on every 10th; ~20 % done with a summary,
/// 5 % running, 5 % blocked, 5 % triage, comments on 10 %.
fn seed(n: usize) -> (tempfile::TempDir, Env) {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    let env = Env::empty()
        .with("HOME", dir.path().to_string_lossy())
        .with("HERMES_HOME", dir.path().join("hermes").to_string_lossy())
        .with("HERMES_KANBAN_SYNCHRONOUS", "NORMAL");
    let mut b = Board::open(&env, None).unwrap();
    // Tasks were created one a minute over the past days, so the diagnostics engine has real
    // work (ready tasks older than 30 minutes are "stranded" on a board without a dispatcher).
    let now = chrono::Utc::now().timestamp();
    let clock = Arc::new(AtomicI64::new(now - 60 * n as i64));
    let c = clock.clone();
    b.set_clock(Arc::new(move || c.load(Ordering::Relaxed)));
    let profiles = ["coder", "reviewer", "researcher", "writer"];
    let mut ids: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        let parents = if i % 10 == 9 {
            vec![ids[i - 1].clone()]
        } else {
            vec![]
        };
        let t = b
            .create_task(NewTask {
                title: format!("Task {i}: do the thing number {i} carefully"),
                body: Some(format!(
                    "## Goal\nMake **thing {i}** work.\n\n- step one\n- step two"
                )),
                assignee: Some(profiles[i % 4].into()),
                priority: (i % 5) as i64,
                tenant: (i % 7 == 0).then(|| "acme".to_string()),
                parents,
                ..Default::default()
            })
            .unwrap();
        ids.push(t.task.id);
        clock.fetch_add(60, Ordering::Relaxed);
    }
    for (i, id) in ids.iter().enumerate() {
        let st = b.get_task(id).unwrap().status;
        if st != Status::Ready {
            continue;
        }
        match i % 20 {
            0..=3 => {
                b.claim_task(id, None).unwrap();
                b.complete_task(Completion {
                    task_id: id.clone(),
                    summary: Some(format!("finished {id}: all green")),
                    ..Default::default()
                })
                .unwrap();
            }
            4 => {
                b.claim_task(id, None).unwrap();
            }
            5 => {
                b.block_task(BlockRequest {
                    task_id: id.clone(),
                    reason: Some("needs a decision".into()),
                    ..Default::default()
                })
                .unwrap();
            }
            6 => {
                b.set_status_direct(id, Status::Triage).unwrap();
            }
            _ => {}
        }
        if i % 10 == 3 {
            b.add_comment(id, "bench", "a comment").unwrap();
        }
    }
    (dir, env)
}

/// Status by position (per 100), as `benches/dispatch_tick.rs`: 55 done, 10 archived, 12 todo,
/// 10 ready, 7 blocked, 3 triage, 3 scheduled; one task in 1,000 running.
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

/// A board of `n` tasks through the kernel's bulk seeding (fast enough for 100,000).
fn bulk_seed(n: usize) -> (tempfile::TempDir, Env) {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    let env = Env::empty()
        .with("HOME", dir.path().to_string_lossy())
        .with("HERMES_HOME", dir.path().join("hermes").to_string_lossy());
    let b = Board::open(&env, None).unwrap();
    let tasks: Vec<SeedTask> = (0..n)
        .map(|i| SeedTask {
            title: format!("seeded task {i}: do the thing number {i} carefully"),
            assignee: Some(format!("agent-{}", i % 8)),
            status: status_of(i),
            priority: (i % 5) as i64,
            parents: if i % 10 == 9 { vec![i - 1] } else { vec![] },
            claim_lock: None,
        })
        .collect();
    for chunk in tasks.chunks(20_000) {
        // Parents index into the same batch: keep each chunk self-contained.
        let chunk: Vec<SeedTask> = chunk
            .iter()
            .enumerate()
            .map(|(j, t)| SeedTask {
                parents: if j % 10 == 9 { vec![j - 1] } else { vec![] },
                ..t.clone()
            })
            .collect();
        b.seed_tasks(&chunk).unwrap();
    }
    (dir, env)
}

/// `(VmRSS, VmHWM)` of a process, in MB.
fn rss_mb(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// One board size under the real `serve`: refreshes of `?compact=1` by three dashboards at
/// once (`rounds` each), then the server's RSS and peak; also the full board's time, size
/// and the RSS after it; and, at 100k, the first render in Chromium.
struct ServeRow {
    n: usize,
    compact_ms: f64,
    compact_bytes: usize,
    uncapped_bytes: usize,
    rss_compact: f64,
    hwm_compact: f64,
    full_ms: f64,
    full_bytes: usize,
    rss_full: f64,
    hwm_full: f64,
    render: Option<(f64, f64, f64, usize)>,
}

fn serve_rss(rt: &tokio::runtime::Runtime, n: usize, rounds: usize, render: bool) -> ServeRow {
    let t = Instant::now();
    let (dir, env) = bulk_seed(n);
    eprintln!(
        "bulk-seeded {n} tasks in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let _ = env;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermes-kanban"))
        .args([
            "serve",
            "--no-dispatch",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("HERMES_HOME", dir.path().join("hermes"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hermes-kanban serve");
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}");
    let row = rt.block_on(async {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{url}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let get = |path: &'static str| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let t = Instant::now();
                let r = http.get(format!("{url}{path}")).send().await.unwrap();
                assert!(r.status().is_success(), "{path}: {}", r.status());
                let len = r.bytes().await.unwrap().len();
                (t.elapsed().as_secs_f64() * 1000.0, len)
            }
        };
        let (_, uncapped_bytes) = get("/api/board?compact=1&done_limit=0").await;
        // Three dashboards refreshing at once (the page re-reads the board on reconnects and
        // every five minutes; a burst is the worst case for the allocator).
        let mut times = Vec::new();
        let mut compact_bytes = 0;
        for _ in 0..rounds {
            let (a, b, c) = tokio::join!(
                get("/api/board?compact=1"),
                get("/api/board?compact=1"),
                get("/api/board?compact=1&status_since=1")
            );
            times.extend([a.0, b.0, c.0]);
            compact_bytes = a.1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let (rss_compact, hwm_compact) = rss_mb(pid);
        let mut full = Vec::new();
        let mut full_bytes = 0;
        for _ in 0..3 {
            let (ms, len) = get("/api/board").await;
            full.push(ms);
            full_bytes = len;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let (rss_full, hwm_full) = rss_mb(pid);
        ServeRow {
            n,
            compact_ms: median(times),
            compact_bytes,
            uncapped_bytes,
            rss_compact,
            hwm_compact,
            full_ms: median(full),
            full_bytes,
            rss_full,
            hwm_full,
            render: None,
        }
    });
    let mut row = row;
    if render {
        row.render = browser_render(&format!("{url}/"), 5);
    }
    let _ = child.kill();
    let _ = child.wait();
    row
}

/// A row of BENCHMARKS.md's targets table (scripts/bench collects them in $BENCH_TARGETS).
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

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn print_serve(rows: &[ServeRow], rounds: usize) {
    if let Some(r) = rows.iter().find(|r| r.n == 100_000) {
        target(&format!(
            "| `serve` on a 100k board under refreshing dashboards < 100 MB RSS | {:.0} MB after {} refreshes (peak {:.0} MB) | {} |",
            r.rss_compact,
            3 * rounds,
            r.hwm_compact,
            verdict(r.rss_compact < 100.0)
        ));
        if let Some((painted, ..)) = r.render {
            target(&format!(
                "| dashboard first full render at 100k tasks < 1 s (headless Chromium) | {painted:.0} ms | {} |",
                verdict(painted < 1000.0)
            ));
        }
    }
    println!(
        "| `serve` (release, `--no-dispatch`), 3 dashboards × {rounds} refreshes | `?compact=1` | body (Done/Archived capped at 200) | body uncapped (`done_limit=0`) | RSS after | peak (VmHWM) | full `GET /api/board` | body | RSS after | peak |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} tasks | {:.0} ms | {:.1} MB | {:.1} MB | {:.0} MB | {:.0} MB | {:.0} ms | {:.1} MB | {:.0} MB | {:.0} MB |",
            r.n,
            r.compact_ms,
            r.compact_bytes as f64 / 1e6,
            r.uncapped_bytes as f64 / 1e6,
            r.rss_compact,
            r.hwm_compact,
            r.full_ms,
            r.full_bytes as f64 / 1e6,
            r.rss_full,
            r.hwm_full
        );
    }
    for r in rows {
        if let Some((painted, fetched, dcl, cards)) = r.render {
            println!();
            println!(
                "| dashboard in headless Chromium, {} tasks via `serve` (median of 5 page loads) | time |",
                r.n
            );
            println!("|---|---:|");
            println!("| DOMContentLoaded | {dcl:.0} ms |");
            println!("| board JSON received and parsed (`hk:board-fetched`) | {fetched:.0} ms |");
            println!(
                "| first full render (`hk:board-painted`: fetched, laid out, columns painted) | {painted:.0} ms |"
            );
            println!(
                "| card elements in the DOM (virtualised columns) | {cards} of {} |",
                r.n
            );
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Median times (ms) to the `hk:board-painted` and `hk:board-fetched` marks and to
/// DOMContentLoaded, and the number of card elements in the DOM once painted; `None` when the browser tooling is absent.
fn browser_render(url: &str, runs: usize) -> Option<(f64, f64, f64, usize)> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| repo().join("target").to_string_lossy().into());
    let node_dir = PathBuf::from(&target).join("browser-node");
    if !node_dir.join("node_modules/playwright-core").exists()
        || !std::path::Path::new("/usr/bin/chromium").exists()
    {
        eprintln!(
            "(skipping the browser render: run scripts/browser-test once to install chromium and playwright-core)"
        );
        return None;
    }
    let out = Command::new("node")
        .arg(repo().join("tests/browser/bench-render.mjs"))
        .arg(url)
        .arg(runs.to_string())
        .env("HK_NODE_DIR", &node_dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "browser render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let painted: Vec<f64> = v["painted_ms"]
        .as_array()?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    let loaded: Vec<f64> = v["dom_content_loaded_ms"]
        .as_array()?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    let fetched: Vec<f64> = v["fetched_ms"]
        .as_array()?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    Some((
        median(painted),
        median(fetched),
        median(loaded),
        v["cards_in_dom"].as_u64()? as usize,
    ))
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let serve_rounds = 10;
    let serve_rows: Vec<ServeRow> = [(10_000usize, false), (100_000, true)]
        .into_iter()
        .map(|(n, render)| serve_rss(&rt, n, serve_rounds, render))
        .collect();
    if std::env::args().any(|a| a == "serve") {
        print_serve(&serve_rows, serve_rounds);
        return;
    }
    let mut rows = Vec::new();
    let mut render = None;
    for n in [1_000usize, 10_000] {
        let t = Instant::now();
        let (_dir, env) = seed(n);
        eprintln!("seeded {n} tasks in {:.1} s", t.elapsed().as_secs_f64());
        let sample_ids: Vec<String> = {
            let b = Board::open(&env, None).unwrap();
            b.list_tasks(&Default::default())
                .unwrap()
                .into_iter()
                .step_by(n / 10)
                .take(10)
                .map(|t| t.id)
                .collect()
        };
        let kernel_ms = {
            let b = Board::open(&env, None).unwrap();
            let cfg = hermes_kanban::kernel::DiagnosticsConfig::default();
            let q = hermes_kanban::kernel::BoardViewQuery::default();
            b.board_view(&q, &cfg).unwrap();
            median(
                (0..runs)
                    .map(|_| {
                        let t = Instant::now();
                        b.board_view(&q, &cfg).unwrap();
                        t.elapsed().as_secs_f64() * 1000.0
                    })
                    .collect(),
            )
        };
        rt.block_on(async {
            let ct = CancellationToken::new();
            let cfg = ServeConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                admin_token: None,
                board: None,
                allowed_hosts: vec![],
                tools: None,
                dispatch: None,
            };
            let app = hermes_kanban::web::router(env.clone(), &cfg, ct.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = ct.clone();
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
            });
            let http = reqwest::Client::new();
            let url = format!("http://{addr}");
            let time = |path: String| {
                let http = http.clone();
                let url = url.clone();
                async move {
                    // Warm-up, then the timed runs.
                    let bytes = http
                        .get(format!("{url}{path}"))
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap()
                        .len();
                    let mut v = Vec::new();
                    for _ in 0..runs {
                        let t = Instant::now();
                        let r = http.get(format!("{url}{path}")).send().await.unwrap();
                        assert!(r.status().is_success());
                        r.bytes().await.unwrap();
                        v.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    (median(v), bytes)
                }
            };
            let (full, full_bytes) = time("/api/board".into()).await;
            let (compact, compact_bytes) = time("/api/board?compact=1".into()).await;
            let (ids, _) = time(format!("/api/board?compact=1&ids={}", sample_ids.join(","))).await;
            rows.push((n, kernel_ms, full, full_bytes, compact, compact_bytes, ids));
            if n == 10_000 {
                let u = url.clone();
                render = tokio::task::spawn_blocking(move || {
                    browser_render(&format!("{u}/"), 5.min(runs))
                })
                .await
                .unwrap();
            }
            ct.cancel();
        });
    }
    println!(
        "| board size (release, median of {runs}) | kernel `board_view` | `GET /api/board` | body | `?compact=1` (dashboard) | body | `?ids=` 10 cards |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (n, kernel, full, fb, compact, cb, ids) in &rows {
        println!(
            "| {n} tasks | {kernel:.1} ms | {full:.1} ms | {:.1} MB | {compact:.1} ms | {:.1} MB | {ids:.1} ms |",
            *fb as f64 / 1e6,
            *cb as f64 / 1e6
        );
    }
    println!();
    match render {
        Some((painted, fetched, dcl, cards)) => {
            println!(
                "| dashboard in headless Chromium, 10,000 tasks (median of {} page loads) | time |",
                5.min(runs)
            );
            println!("|---|---:|");
            println!("| DOMContentLoaded | {dcl:.0} ms |");
            println!("| board JSON received and parsed (`hk:board-fetched`) | {fetched:.0} ms |");
            println!(
                "| first full render (`hk:board-painted`: fetched, laid out, columns painted) | {painted:.0} ms |"
            );
            println!("| card elements in the DOM (virtualised columns) | {cards} of 10,000 |");
        }
        None => println!("(browser render not measured: chromium or playwright-core missing)"),
    }
    println!();
    print_serve(&serve_rows, serve_rounds);
}
