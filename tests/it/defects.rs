//! Issue 12's defects, each a user-visible failure found by fault injection, fuzzing or a
//! first-time user, proven fixed against the real parts: the REST router on 127.0.0.1, the
//! `hermes-kanban` binary on temp boards, real lock holders and real worker processes.

use std::time::{Duration, Instant};

use crate::helpers::Cli;
use hermes_kanban::kernel::Status;
use hermes_kanban::web::ServeConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::server::{Server, start_with};

// ---------------------------------------------------------------------------------------------
// A REST server on 127.0.0.1 over a temp HERMES_HOME (helpers/server.rs).

fn config(token: Option<&str>) -> ServeConfig {
    crate::helpers::server::config(token, None)
}

/// A small seeded PRNG (xorshift64*), so a failing case can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A random value for a PATCH/bulk field: mostly plausible, often wrong.
fn fuzz_value(rng: &mut Rng, field: &str) -> Value {
    let wrong_type = [
        json!(7),
        json!(true),
        json!([1]),
        json!({"a": 1}),
        json!(null),
    ];
    if rng.chance(15) {
        return rng.pick(&wrong_type).clone();
    }
    match field {
        "title" => rng
            .pick(&[
                json!("x"),
                json!("renamed"),
                json!(""),
                json!("   "),
                json!("t".repeat(1500)),
            ])
            .clone(),
        "body" => rng
            .pick(&[json!("new body"), json!(""), json!(null)])
            .clone(),
        "priority" => rng
            .pick(&[
                json!(7),
                json!(-3),
                json!(0),
                json!(5_000_000),
                json!(1.5),
                json!(2.0),
            ])
            .clone(),
        "assignee" => rng
            .pick(&[
                json!("worker"),
                json!("other"),
                json!(""),
                json!("Not A Profile"),
                json!("../etc"),
            ])
            .clone(),
        "status" => rng
            .pick(&[
                json!("done"),
                json!("blocked"),
                json!("scheduled"),
                json!("archived"),
                json!("ready"),
                json!("todo"),
                json!("triage"),
                json!("running"),
                json!("review"),
                json!("complted"),
            ])
            .clone(),
        "result" | "summary" | "block_reason" => rng.pick(&[json!("because"), json!("")]).clone(),
        "metadata" => rng
            .pick(&[
                json!({"tests": 3}),
                json!("{\"tests\": 3}"),
                json!("not an object"),
                json!([1]),
            ])
            .clone(),
        "reclaim_first" | "archive" => rng.pick(&[json!(true), json!(false), json!("yes")]).clone(),
        _ => json!("?"),
    }
}

const FUZZ_FIELDS: &[&str] = &[
    "title",
    "body",
    "priority",
    "assignee",
    "status",
    "result",
    "summary",
    "block_reason",
    "metadata",
    "reclaim_first",
    "archive",
];

fn fuzz_body(rng: &mut Rng) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for _ in 0..1 + rng.below(4) {
        let f = *rng.pick(FUZZ_FIELDS);
        m.insert(f.into(), fuzz_value(rng, f));
    }
    if rng.chance(8) {
        m.insert(
            rng.pick(&["titel", "prio", "state"]).to_string(),
            json!("x"),
        );
    }
    m
}

/// Tasks in every status the dashboard can act on: ready, running, blocked, done, archived,
/// todo (parent unfinished), scheduled, triage.
fn seed_states(s: &Server) -> Vec<String> {
    let b = s.board();
    let ready = s.task_with("ready", &[]);
    let running = s.task_with("running", &[]);
    b.claim_task(&running, None).unwrap();
    let blocked = s.task_with("blocked", &[]);
    b.block_task(hermes_kanban::kernel::BlockRequest {
        task_id: blocked.clone(),
        reason: Some("wait".into()),
        ..Default::default()
    })
    .unwrap();
    let done = s.task_with("done", &[]);
    b.complete_task(hermes_kanban::kernel::Completion {
        task_id: done.clone(),
        summary: Some("did it".into()),
        ..Default::default()
    })
    .unwrap();
    let archived = s.task_with("archived", &[]);
    b.archive_task(&archived).unwrap();
    let todo = s.task_with("todo", std::slice::from_ref(&ready));
    let scheduled = s.task_with("scheduled", &[]);
    b.schedule_task(&scheduled, Some("later"), None, None)
        .unwrap();
    let triage = s.task_with("triage", &[]);
    b.set_status_direct(&triage, Status::Triage).unwrap();
    vec![
        ready, running, blocked, done, archived, todo, scheduled, triage,
    ]
}

/// Defect 1: a PATCH answered 400 had already committed title and priority (four kernel
/// calls, four transactions). Now one PATCH is one kernel transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_refused_for_a_bad_assignee_changes_nothing() {
    let s = start_with(config(None)).await;
    let id = s.task_with("original", &[]);
    let before = s.board().snapshot().unwrap();
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/tasks/{id}"),
            Some(json!({"title": "x", "priority": 7, "assignee": "Not A Profile"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("assignee"), "{v}");
    let t = s.board().get_task(&id).unwrap();
    assert_eq!((t.title.as_str(), t.priority), ("original", 0));
    assert_eq!(s.board().snapshot().unwrap(), before);

    // A refused status move (done → ready is not a move a done task makes while a sibling
    // step already succeeded) rolls back the title too.
    let kid_parent = s.task_with("parent", &[]);
    let kid = s.task_with("kid", std::slice::from_ref(&kid_parent));
    let before = s.board().snapshot().unwrap();
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/tasks/{kid}"),
            Some(json!({"title": "renamed", "priority": 3, "status": "ready"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains(&kid_parent), "{v}");
    assert_eq!(s.board().snapshot().unwrap(), before);

    // Bulk: every item refused → nothing applied (it used to apply the priority).
    let b = s.board();
    b.claim_task(&id, None).unwrap();
    let before = s.board().snapshot().unwrap();
    let (st, v) = s
        .call(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [id, "t_00000000"], "priority": 9, "assignee": "other"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let results = v["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["ok"] == false), "{v}");
    assert_eq!(s.board().snapshot().unwrap(), before);
}

/// Defect 1, fuzzed: a few hundred random PATCH and bulk bodies from a seeded RNG against
/// tasks in every status; after every refusal the DB is byte-for-byte what it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_patch_and_bulk_refusals_change_nothing() {
    let s = start_with(config(None)).await;
    let seed = std::env::var("HK_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_u64);
    let mut rng = Rng(seed);
    let mut ids = seed_states(&s);
    let (mut refusals, mut applied) = (0, 0);
    for case in 0..320 {
        if case % 40 == 39 {
            ids = seed_states(&s);
        }
        let body = fuzz_body(&mut rng);
        let bulk = rng.chance(35);
        let before = s.board().snapshot().unwrap();
        let (st, v, refused) = if bulk {
            let mut b = body.clone();
            let mut targets = vec![json!(rng.pick(&ids).clone())];
            if rng.chance(40) {
                targets.push(json!(rng.pick(&ids).clone()));
            }
            if rng.chance(15) {
                targets.push(json!("t_00000000"));
            }
            b.insert("ids".into(), json!(targets));
            let (st, v) = s
                .call(Method::POST, "/api/tasks/bulk", Some(Value::Object(b)))
                .await;
            let all_failed = st != StatusCode::OK
                || v["results"]
                    .as_array()
                    .is_some_and(|r| r.iter().all(|x| x["ok"] == false));
            (st, v, all_failed)
        } else {
            let id = if rng.chance(5) {
                "t_00000000".to_string()
            } else {
                rng.pick(&ids).clone()
            };
            let (st, v) = s
                .call(
                    Method::PATCH,
                    &format!("/api/tasks/{id}"),
                    Some(Value::Object(body.clone())),
                )
                .await;
            (st, v.clone(), st != StatusCode::OK)
        };
        assert!(
            st.is_success() || st.is_client_error(),
            "case {case} (seed {seed}): {st} {v}"
        );
        if refused {
            refusals += 1;
            let after = s.board().snapshot().unwrap();
            assert!(
                after == before,
                "case {case} (seed {seed}): refused ({st} {v}) but the DB changed; body {body:?}"
            );
        } else {
            applied += 1;
        }
    }
    assert!(
        refusals > 100 && applied > 20,
        "the fuzz should exercise both: {refusals} refusals, {applied} applied"
    );
    let v = s.board().check_invariants().unwrap();
    assert!(v.is_empty(), "{v:#?}");
}

/// Defect 6: REST ignored unknown fields in silence; a typo is now a 400 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_refuses_unknown_fields_naming_them() {
    let s = start_with(config(None)).await;
    let id = s.task_with("t", &[]);
    for (m, path, body) in [
        (
            Method::PATCH,
            format!("/api/tasks/{id}"),
            json!({"titel": "x"}),
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json!({"title": "y", "priorty": 3}),
        ),
        (
            Method::POST,
            "/api/tasks/bulk".into(),
            json!({"ids": [id], "prio": 3}),
        ),
        (
            Method::POST,
            format!("/api/tasks/{id}/comments"),
            json!({"body": "b", "autor": "me"}),
        ),
    ] {
        let before = s.board().snapshot().unwrap();
        let (st, v) = s.call(m.clone(), &path, Some(body.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{m} {path}: {v}");
        let d = v["detail"].as_str().unwrap();
        let key = body
            .as_object()
            .unwrap()
            .keys()
            .next_back()
            .unwrap()
            .clone();
        assert!(
            d.contains(&format!("'{key}'")) && d.contains("accepts"),
            "{d}"
        );
        assert_eq!(s.board().snapshot().unwrap(), before);
    }
}

/// Defect 6: metadata given as a JSON string holding an object is accepted (REST and CLI
/// alike); a string holding anything else is refused saying exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_as_a_string_holding_an_object_is_accepted_everywhere() {
    let s = start_with(config(None)).await;
    let id = s.task_with("t", &[]);
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/tasks/{id}"),
            Some(json!({"status": "done", "summary": "ok", "metadata": "{\"tests\": 12}"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let runs = s.board().list_runs(&id, None).unwrap();
    assert_eq!(runs.last().unwrap().metadata, Some(json!({"tests": 12})));
    let id2 = s.task_with("t2", &[]);
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/tasks/{id2}"),
            Some(json!({"status": "done", "metadata": "tests=12"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("accepted only when it holds a JSON object"),
        "{v}"
    );

    let cli = Cli::new();
    let id = cli.create("c", &["--assignee", "worker"]);
    cli.run(&[
        "complete",
        &id,
        "--summary",
        "s",
        "--metadata",
        "\"{\\\"n\\\": 1}\"",
    ])
    .ok();
    let runs = cli.board().list_runs(&id, None).unwrap();
    assert_eq!(runs.last().unwrap().metadata, Some(json!({"n": 1})));
    let r = cli.run(&["complete", &cli.create("d", &[]), "--metadata", "\"text\""]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("accepted only when it holds a JSON object"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Defect 4: the lock wait means what it says.

/// Hold the board's write lock from this process until the returned sender is dropped.
fn hold_write_lock(db: &std::path::Path) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let db = db.to_path_buf();
    std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        ready_tx.send(()).unwrap();
        let _ = rx.recv();
        c.execute_batch("ROLLBACK").unwrap();
    });
    ready_rx.recv().unwrap();
    tx
}

#[test]
fn busy_timeout_is_the_whole_wait_not_six_times_it() {
    let cli = Cli::new();
    cli.create("first", &[]);
    let hold = hold_write_lock(&cli.db());
    let t0 = Instant::now();
    let r = cli.run_env(
        &["create", "second"],
        &[("HERMES_KANBAN_BUSY_TIMEOUT_MS", "1000")],
    );
    let took = t0.elapsed();
    drop(hold);
    assert_ne!(r.code, 0, "the write must give up while the lock is held");
    assert!(r.stderr.contains("busy"), "{}", r.stderr);
    // 1 s configured; it used to give up after ~6.5 s. Allow process start-up on a loaded box.
    assert!(
        took < Duration::from_millis(2900),
        "gave up after {took:?} with a 1000 ms busy timeout"
    );
    assert!(
        took >= Duration::from_millis(950),
        "gave up early: {took:?}"
    );
}

#[test]
fn a_long_lock_wait_says_what_it_waits_for() {
    let cli = Cli::new();
    cli.create("first", &[]);
    let hold = hold_write_lock(&cli.db());
    let child = cli
        .cmd(&["create", "second", "--json"])
        .env("HERMES_KANBAN_BUSY_TIMEOUT_MS", "60000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    drop(hold);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting") && stderr.contains(&cli.db().to_string_lossy().to_string()),
        "a wait past 2 s names the board: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "and the process holding it (this test): {stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Defect 3: with a token configured, loopback peers need it too (on /mcp as everywhere).

const INIT: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","#,
    r#""capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#,
);

async fn mcp_init(s: &Server, bearer: Option<&str>) -> reqwest::Response {
    let mut rq = s
        .http
        .post(s.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT);
    if let Some(t) = bearer {
        rq = rq.bearer_auth(t);
    }
    rq.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_token_protects_mcp_from_loopback_peers() {
    let s = start_with(config(Some("s3cret-admin"))).await;
    // Loopback without a token: refused (it used to get orchestrator scope).
    let r = mcp_init(&s, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A wrong token: 401 invalid_token.
    let r = mcp_init(&s, Some("wrong")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    // The admin token and a live run token work.
    assert_eq!(
        mcp_init(&s, Some("s3cret-admin")).await.status(),
        StatusCode::OK
    );
    let id = s.task_with("w", &[]);
    let b = s.board();
    let claim = b.claim_task(&id, None).unwrap();
    let run_token = b.mint_run_token(&id, claim.run_id).unwrap();
    assert_eq!(
        mcp_init(&s, Some(&run_token)).await.status(),
        StatusCode::OK
    );
    // REST: a wrong bearer is invalid_token as well; /healthz stays open.
    let r = s
        .http
        .get(s.url("/api/board"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let r = s.http.get(s.url("/api/board")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Without a configured token, loopback stays the orchestrator by default.
    let open = start_with(config(None)).await;
    assert_eq!(mcp_init(&open, None).await.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Defect 7: serve binds first, accepts host names, colours only a terminal.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait for `serve` to answer /healthz on `port`, or panic with its stderr.
fn wait_healthz(port: u16, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = write!(
                c,
                "GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = c.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("serve exited early: {st}");
        }
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_on_a_busy_port_fails_before_the_dispatcher_ticks() {
    let cli = Cli::new();
    cli.create("x", &[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let r = cli.run(&["serve", "--bind", &format!("127.0.0.1:{port}")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cannot bind"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("dispatcher ticking"),
        "the dispatcher must not start before the bind: {}",
        r.stderr
    );
}

#[test]
fn serve_accepts_a_host_name_and_logs_plain_text_to_a_file() {
    let cli = Cli::new();
    cli.create("x", &[]);
    let port = free_port();
    let log = cli.dir.path().join("serve.log");
    let mut child = cli
        .cmd(&[
            "serve",
            "--bind",
            &format!("localhost:{port}"),
            "--interval",
            "0.5",
        ])
        .env_remove("NO_COLOR")
        .env("HERMES_KANBAN_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_healthz(port, &mut child);
    // An MCP handshake makes the server log (rmcp traces sessions).
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            c,
            "POST /mcp HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: \
             application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: \
             {}\r\nConnection: close\r\n\r\n{INIT}",
            INIT.len()
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
    }
    std::thread::sleep(Duration::from_millis(1000));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving on http://127.0.0.1:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("DEBUG") || l.contains("INFO")),
        "debug logging should have produced tracing lines: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI escapes in a redirected log: {text:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Defect 5: every command `diagnostics` suggests works in the state it is suggested in.

const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");

/// A CLI home with a `worker` profile and short grace knobs, as the dispatcher tests use.
fn lab() -> Cli {
    let mut cli = Cli::new();
    std::fs::create_dir_all(cli.home().join("profiles").join("worker")).unwrap();
    // An identity file makes the directory a profile (UP §10).
    std::fs::write(cli.home().join("profiles/worker/config.yaml"), "{}\n").unwrap();
    cli.extra_env
        .push(("HERMES_KANBAN_CRASH_GRACE_SECONDS".into(), "0".into()));
    cli.extra_env
        .push(("HERMES_KANBAN_KILL_GRACE_SECONDS".into(), "1".into()));
    cli
}

/// A fake `hermes` running `body` under bash, with `$HK` (our binary) and `$T` (the task).
fn fake_worker(cli: &Cli, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = cli.dir.path().join(name);
    std::fs::write(
        &p,
        // The first line answers the dispatcher's `hermes --help` flag probe, so the body runs
        // only as the worker.
        format!(
            "#!/bin/bash\nif [ \"$1\" = --help ]; then echo 'usage: hermes [-h] [-m MODEL] \
             [--provider PROVIDER] [--accept-hooks] [--skills SKILLS] [--cli]'; exit 0; \
             fi\nHK={HK}\nT=\"$HERMES_KANBAN_TASK\"\n{body}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Dispatch (with `HERMES_BIN`) until the task is blocked (the breaker tripped).
fn dispatch_until_blocked(cli: &Cli, id: &str, hermes: &str) {
    for _ in 0..6 {
        cli.run_env(&["dispatch", "--json"], &[("HERMES_BIN", hermes)])
            .ok();
        until("the run to settle", || {
            cli.board().get_task(id).unwrap().status != Status::Running
        });
        if cli.board().get_task(id).unwrap().status == Status::Blocked {
            return;
        }
    }
    panic!("{id} never tripped the breaker");
}

/// Every `cli_hint` command of every finding, as argv without the program name.
fn suggested_commands(cli: &Cli) -> Vec<Vec<String>> {
    let v = cli.run(&["diagnostics", "--json"]).json();
    let mut out = vec![];
    for row in v.as_array().unwrap() {
        for d in row["diagnostics"].as_array().unwrap() {
            for a in d["actions"].as_array().unwrap() {
                if a["kind"] == "cli_hint" {
                    let cmd = a["payload"]["command"].as_str().unwrap();
                    let argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
                    assert_eq!(argv[0], "hermes-kanban", "{cmd}");
                    out.push(argv[1..].to_vec());
                }
            }
        }
    }
    out
}

fn run_suggestions(cli: &Cli, want_unblock: bool) -> Vec<Vec<String>> {
    let cmds = suggested_commands(cli);
    assert!(!cmds.is_empty(), "the scenario should produce advice");
    // The state-changing one (unblock) last, so every other runs in the state it was given for.
    let (mut reads, writes): (Vec<_>, Vec<_>) =
        cmds.iter().cloned().partition(|c| c[0] != "unblock");
    reads.extend(writes);
    for argv in &reads {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let r = cli.run(&args);
        assert_eq!(
            r.code,
            0,
            "suggested `hermes-kanban {}` fails: {}",
            argv.join(" "),
            r.stderr
        );
    }
    assert_eq!(
        cmds.iter().any(|c| c[0] == "unblock"),
        want_unblock,
        "{cmds:?}"
    );
    cmds
}

#[test]
fn breaker_trip_on_spawn_failures_suggests_only_working_commands_and_the_way_out() {
    let cli = lab();
    let id = cli.create("never starts", &["--assignee", "worker"]);
    dispatch_until_blocked(&cli, &id, "/nonexistent/hermes");
    let text = cli.run(&["diagnostics"]).ok().to_string();
    assert!(text.contains("then unblock"), "{text}");
    let cmds = run_suggestions(&cli, true);
    assert!(
        !cmds.iter().any(|c| c[0] == "log"),
        "no worker ran, so no log to read: {cmds:?}"
    );
    // The way out works: after the unblock the task is ready again.
    assert_eq!(cli.board().get_task(&id).unwrap().status, Status::Ready);
    cli.assert_invariants();
}

#[test]
fn breaker_trip_on_crashes_suggests_the_log_that_exists() {
    let cli = lab();
    let hermes = fake_worker(&cli, "crash.sh", "echo boom >&2; exit 3");
    let id = cli.create("crashes", &["--assignee", "worker"]);
    dispatch_until_blocked(&cli, &id, &hermes.to_string_lossy());
    let cmds = run_suggestions(&cli, true);
    assert!(cmds.iter().any(|c| c[0] == "log"), "{cmds:?}");
    cli.assert_invariants();
}

#[test]
fn unspawnable_assignee_is_warned_on_create_assign_and_in_diagnostics() {
    let cli = lab();
    let r = cli.run(&["create", "lost", "--assignee", "ghost"]);
    r.code(0);
    assert!(
        r.stderr.contains("'ghost' has no profile") && r.stderr.contains("worker_command"),
        "{}",
        r.stderr
    );
    let id = cli.board().list_tasks(&Default::default()).unwrap()[0]
        .id
        .clone();
    let r = cli.run(&["assign", &id, "phantom"]);
    r.code(0);
    assert!(
        r.stderr.contains("'phantom' has no profile"),
        "{}",
        r.stderr
    );
    let r = cli.run(&["assign", &id, "worker"]);
    assert!(!r.stderr.contains("no profile"), "{}", r.stderr);
    cli.run(&["assign", &id, "ghost"]).ok();
    let v = cli.run(&["diagnostics", "--json"]).json();
    assert_eq!(
        v[0]["diagnostics"][0]["kind"], "unspawnable_assignee",
        "{v}"
    );
    run_suggestions(&cli, false);

    // A worker_command assignee is spawnable: no warning, and `assignees` says what runs it.
    std::fs::write(
        cli.home().join("config.yaml"),
        "kanban:\n  worker_command:\n    codex: [\"/bin/true\"]\n",
    )
    .unwrap();
    let r = cli.run(&["create", "templated", "--assignee", "codex"]);
    assert!(!r.stderr.contains("no profile"), "{}", r.stderr);
    let out = cli.run(&["assignees"]).ok().to_string();
    let codex = out.lines().find(|l| l.starts_with("codex")).unwrap();
    assert!(
        codex.contains("worker_command") && !codex.contains("no profile"),
        "{out}"
    );
    let ghost = out.lines().find(|l| l.starts_with("ghost")).unwrap();
    assert!(ghost.contains("cannot be dispatched"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Defect 6 (CLI): mistakes that were accepted in silence.

#[test]
fn watch_with_an_unknown_kind_is_an_error_listing_the_valid_ones() {
    let cli = Cli::new();
    cli.create("x", &[]);
    let mut child = cli
        .cmd(&["watch", "--kinds", "completed,complted"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watch with an unknown kind ran on, showing nothing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("complted")
            && stderr.contains("valid kinds")
            && stderr.contains("completed"),
        "{stderr}"
    );
}

#[test]
fn completions_offer_statuses_and_kinds_not_file_names() {
    let cli = Cli::new();
    let out = cli.run(&["completions", "bash"]).ok().to_string();
    let after = |flag: &str| {
        let i = out
            .find(&format!("{flag})"))
            .unwrap_or_else(|| panic!("{flag} missing"));
        out[i..].lines().nth(1).unwrap().to_string()
    };
    let status = after("--status");
    assert!(
        status.contains("compgen -W") && status.contains("blocked") && status.contains("triage"),
        "{status}"
    );
    let kinds = after("--kinds");
    assert!(
        kinds.contains("gave_up") && kinds.contains("completed"),
        "{kinds}"
    );
}

#[test]
fn archive_rm_works_before_or_after_the_ids() {
    let cli = Cli::new();
    let a = cli.create("a", &[]);
    let b = cli.create("b", &[]);
    cli.run(&["archive", &a, &b]).ok();
    let r = cli.run(&["archive", &a, "--rm"]);
    assert!(r.ok().contains(&format!("Deleted {a}")), "{r:?}");
    let r = cli.run(&["archive", "--rm", &b]);
    assert!(r.ok().contains(&format!("Deleted {b}")), "{r:?}");
    assert!(cli.board().get_task(&a).is_err() && cli.board().get_task(&b).is_err());
    // Mixing plain ids with `--rm <ids>` stays a usage error (as in Hermes).
    let c = cli.create("c", &[]);
    let r = cli.run(&["archive", &c, "--rm", "t_00000000"]);
    r.code(2);
    assert_eq!(cli.board().get_task(&c).unwrap().status, Status::Ready);
}

// ---------------------------------------------------------------------------------------------
// Defect 2: a closed run's lingering processes and workspace, after its supervisor was killed.

fn pid_alive(pid: i32) -> bool {
    // Zombies count as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

#[test]
fn a_killed_supervisor_leaves_no_orphan_and_no_workspace_behind() {
    let cli = lab();
    let marker = cli.dir.path().join("child.pid");
    // The worker completes, then lingers (as agents do) with a child of its own running.
    let hermes = fake_worker(
        &cli,
        "linger.sh",
        &format!(
            "$HK complete \"$T\" --summary done >/dev/null\nsleep 300 &\necho $! > {}\nsleep 300",
            marker.display()
        ),
    );
    let id = cli.create("lingers", &["--assignee", "worker"]);
    cli.run_env(
        &["dispatch", "--json"],
        &[("HERMES_BIN", &hermes.to_string_lossy())],
    )
    .ok();
    until("the child's pid", || {
        std::fs::read_to_string(&marker).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let child: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let b = cli.board();
    let t = b.get_task(&id).unwrap();
    assert_eq!(t.status, Status::Done);
    let ws = std::path::PathBuf::from(t.workspace_path.clone().expect("scratch workspace"));
    assert!(ws.is_dir());
    let run = b.list_runs(&id, None).unwrap()[0].id;
    until("the worker's pid on the process row", || {
        b.run_process(run)
            .unwrap()
            .is_some_and(|p| p.worker_pid.is_some())
    });
    let proc_row = b.run_process(run).unwrap().unwrap();
    let supervisor = proc_row.supervisor_pid.unwrap() as i32;
    // Kill the supervisor: the worker dies with it (parent-death signal), its child lives on.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    until("the supervisor to die", || !pid_alive(supervisor));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        pid_alive(child),
        "the orphan exists before the fix's tick runs"
    );
    assert!(b.run_process(run).unwrap().unwrap().settled_at.is_none());

    // The next tick reaps it, settles the row and removes the workspace.
    let v = cli
        .run_env(
            &["dispatch", "--json"],
            &[("HERMES_BIN", &hermes.to_string_lossy())],
        )
        .json();
    assert_eq!(v["reaped"], json!([id]), "{v}");
    until("the orphan to be gone", || !pid_alive(child));
    let row = b.run_process(run).unwrap().unwrap();
    assert_eq!(row.settled_by.as_deref(), Some("tick"));
    assert!(!ws.exists(), "the scratch workspace is removed");
    let kinds: Vec<String> = b
        .list_events(&id, None)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"terminal_worker_reaped".to_string()),
        "{kinds:?}"
    );
    // A second tick finds nothing more to do.
    let v = cli
        .run_env(
            &["dispatch", "--json"],
            &[("HERMES_BIN", &hermes.to_string_lossy())],
        )
        .json();
    assert!(v.get("reaped").is_none(), "{v}");
    cli.assert_invariants();
}

#[test]
fn gc_removes_scratch_workspaces_whose_cleanup_is_due() {
    let cli = Cli::new();
    let parent = cli.create("parent", &[]);
    let child = cli.create("child", &["--parent", &parent]);
    let solo = cli.create("solo", &[]);
    let b = cli.board();
    let root = b.paths().workspaces.clone();
    for id in [&parent, &solo] {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), "x").unwrap();
        b.set_workspace(id, &dir.to_string_lossy(), None).unwrap();
    }
    cli.run(&["complete", &parent, "--summary", "p"]).ok();
    cli.run(&["complete", &solo, "--summary", "s"]).ok();
    cli.run(&["gc"]).ok();
    assert!(!root.join(&solo).exists(), "done, no children: cleaned up");
    assert!(
        root.join(&parent).exists(),
        "a child may still read the parent's files"
    );
    cli.run(&["complete", &child, "--summary", "c"]).ok();
    cli.run(&["gc"]).ok();
    assert!(
        !root.join(&parent).exists(),
        "children finished: cleaned up"
    );
}
