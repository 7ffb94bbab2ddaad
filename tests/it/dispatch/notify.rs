//! Webhook notifications (`kanban.notify.webhooks`), end to end: the real binary's `daemon` and
//! `serve` post to a tiny HTTP receiver on 127.0.0.1 run by the test — retries through 500s with
//! each event arriving once, delivery cursors that survive a restart (nothing replayed),
//! Slack/Discord/JSON bodies, tenant/assignee/kind filters, `notify test`, config errors that
//! name the key, and `notify-subscribe` saying who delivers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{Cli, wait_until};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    content_type: String,
    body: Value,
    status: u16,
}

/// A minimal HTTP/1.1 receiver: answers 500 to the first `fail_first` requests (and always to
/// paths starting with `/down`), then 200.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let failing = Arc::new(AtomicUsize::new(fail_first));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (mut len, mut ctype) = (0usize, String::new());
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                    let lower = l.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("content-type:") {
                        ctype = v.trim().to_string();
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let status = if path.starts_with("/down")
                    || failing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    500
                } else {
                    200
                };
                h.lock().unwrap().push(Hit {
                    path,
                    content_type: ctype,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    status,
                });
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 4\r\nConnection: \
                     close\r\n\r\nnope"
                );
            }
        });
        Receiver { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Successful deliveries to `path`.
    fn delivered(&self, path: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == path && h.status == 200)
            .collect()
    }

    /// Wait (up to 60 s: the machine is shared) until `path` has `n` successful deliveries.
    fn wait_for(&self, path: &str, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = self.delivered(path);
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} deliveries after 60 s; hits: {:#?}",
                d.len(),
                self.hits()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn write_config(cli: &Cli, notify: &str) {
    std::fs::create_dir_all(cli.home()).unwrap();
    std::fs::write(
        cli.home().join("config.yaml"),
        format!("kanban:\n  notify:\n    backoff_seconds: 0.05\n    poll_seconds: 0.1\n{notify}"),
    )
    .unwrap();
}

fn spawn_daemon(cli: &Cli) -> Child {
    cli.cmd(&["daemon", "--interval", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut d: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = d.try_wait().unwrap() {
            assert!(s.success(), "host exit status {s:?}");
            return;
        }
        assert!(Instant::now() < deadline, "host did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the host has created the hook's cursor (it exists once delivery runs).
fn wait_for_cursor(cli: &Cli, hook: &str) {
    wait_until(
        &format!("the cursor of {hook}"),
        Duration::from_secs(30),
        || {
            let cursors = cli.board().webhook_cursors().unwrap();
            cursors.iter().any(|c| c.hook == hook).then_some(())
        },
    );
}

#[test]
fn an_event_arrives_once_through_500s_and_a_restart_replays_nothing() {
    let cli = Cli::new();
    let rx = Receiver::start(3);
    write_config(
        &cli,
        &format!(
            "    webhooks:\n      - name: ops\n        url: {}\n        format: json\n",
            rx.url("/hook")
        ),
    );
    let early = cli.create("Before the daemon", &[]);
    cli.run(&["complete", &early, "--summary", "old news"]).ok();
    let a = cli.create("Write the API", &["--tenant", "acme"]);

    let d = spawn_daemon(&cli);
    wait_for_cursor(&cli, "ops");
    cli.run(&[
        "complete",
        &a,
        "--summary",
        "API done",
        "--metadata",
        r#"{"tests": 12}"#,
    ])
    .ok();
    let got = rx.wait_for("/hook", 1);
    // Three 500s, then the 200: four requests for one event, one delivery.
    let hits = rx.hits();
    assert_eq!(hits.len(), 4, "{hits:#?}");
    assert_eq!(hits.iter().filter(|h| h.status == 500).count(), 3);
    let body = &got[0].body;
    assert_eq!(got[0].content_type, "application/json");
    assert_eq!(body["source"], "hermes-kanban");
    assert_eq!(body["board"], "default");
    assert_eq!(body["hook"], "ops");
    assert_eq!(body["event"]["kind"], "completed");
    assert_eq!(body["event"]["task_id"], a.as_str());
    assert_eq!(body["event"]["payload"]["summary"], "API done");
    assert_eq!(body["task"]["title"], "Write the API");
    assert_eq!(body["task"]["status"], "done");
    assert_eq!(body["task"]["tenant"], "acme");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(&a) && text.contains("completed") && text.contains("API done"),
        "{text}"
    );
    // `created` is not a watched kind; the completion before the hook started is not replayed.
    assert!(
        hits.iter()
            .all(|h| h.body["event"]["task_id"] == a.as_str()),
        "{hits:#?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.hits().len(), 4, "nothing more after the delivery");
    let cur = cli.board().webhook_cursors().unwrap();
    assert_eq!(cur[0].delivered, 1);
    assert_eq!(cur[0].failed, 0);
    stop(d);

    // A restart: the cursor survived, nothing is posted again; a new event arrives once.
    let d = spawn_daemon(&cli);
    let b = cli.create("Fix the bug", &[]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        rx.hits().len(),
        4,
        "replayed after a restart: {:#?}",
        rx.hits()
    );
    cli.run(&["block", &b, "--kind", "needs_input", "which", "branch?"])
        .ok();
    let got = rx.wait_for("/hook", 2);
    assert_eq!(got[1].body["event"]["kind"], "blocked");
    assert_eq!(got[1].body["event"]["task_id"], b.as_str());
    assert_eq!(got[1].body["event"]["payload"]["kind"], "needs_input");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.delivered("/hook").len(), 2);
    stop(d);
    cli.assert_invariants();
}

#[test]
fn slack_discord_json_shapes_and_filters() {
    let cli = Cli::new();
    let rx = Receiver::start(0);
    write_config(
        &cli,
        &format!(
            "    webhooks:
      - {{name: slack, url: '{}', format: slack}}
      - {{name: discord, url: '{}', format: discord}}
      - {{name: acme, url: '{}', tenant: acme}}
      - {{name: coder, url: '{}', assignee: coder, events: [blocked]}}
",
            rx.url("/slack"),
            rx.url("/discord"),
            rx.url("/acme"),
            rx.url("/coder")
        ),
    );
    let a = cli.create("Acme task @everyone", &["--tenant", "acme"]);
    let b = cli.create(
        "Other tenant",
        &["--tenant", "globex", "--assignee", "coder"],
    );
    let d = spawn_daemon(&cli);
    for h in ["slack", "discord", "acme", "coder"] {
        wait_for_cursor(&cli, h);
    }
    cli.run(&["complete", &a, "--summary", "shipped"]).ok();
    cli.run(&["block", &b, "waiting", "for", "keys"]).ok();
    cli.run(&["unblock", &b]).ok();

    let slack = rx.wait_for("/slack", 2);
    let keys: Vec<&String> = slack[0].body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["text"], "slack body is {{text}}: {}", slack[0].body);
    let t0 = slack[0].body["text"].as_str().unwrap();
    assert!(
        t0.contains(&a)
            && t0.contains("completed")
            && t0.contains("shipped")
            && t0.contains("[default]"),
        "{t0}"
    );
    let t1 = slack[1].body["text"].as_str().unwrap();
    assert!(
        t1.contains(&b)
            && t1.contains("blocked")
            && t1.contains("waiting for keys")
            && t1.contains("(coder)"),
        "{t1}"
    );

    let discord = rx.wait_for("/discord", 2);
    let body = &discord[0].body;
    assert!(
        body["content"]
            .as_str()
            .unwrap()
            .contains("Acme task @everyone")
    );
    assert_eq!(body["username"], "hermes-kanban");
    assert_eq!(
        body["allowed_mentions"]["parse"],
        serde_json::json!([]),
        "no pings from task text"
    );

    // Tenant filter: only acme's completion. Assignee + kind filter: only coder's block.
    let acme = rx.wait_for("/acme", 1);
    assert_eq!(acme[0].body["event"]["task_id"], a.as_str());
    let coder = rx.wait_for("/coder", 1);
    assert_eq!(coder[0].body["event"]["task_id"], b.as_str());
    assert_eq!(coder[0].body["event"]["kind"], "blocked");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        rx.delivered("/acme").len(),
        1,
        "{:#?}",
        rx.delivered("/acme")
    );
    assert_eq!(
        rx.delivered("/coder").len(),
        1,
        "{:#?}",
        rx.delivered("/coder")
    );
    assert_eq!(
        rx.delivered("/slack").len(),
        2,
        "unblocked is not a watched kind"
    );
    stop(d);
}

#[test]
fn a_hook_that_stays_down_is_given_up_on_after_bounded_retries() {
    let cli = Cli::new();
    let rx = Receiver::start(0);
    write_config(
        &cli,
        &format!(
            "    max_attempts: 3\n    webhooks:\n      - {{name: down, url: '{}'}}\n      - \
             {{name: up, url: '{}'}}\n",
            rx.url("/down"),
            rx.url("/up")
        ),
    );
    let a = cli.create("Doomed", &[]);
    let d = spawn_daemon(&cli);
    wait_for_cursor(&cli, "down");
    wait_for_cursor(&cli, "up");
    cli.run(&["complete", &a, "--summary", "done"]).ok();
    // The healthy hook is not held up by the dead one.
    rx.wait_for("/up", 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = cli.board().webhook_cursors().unwrap();
        let down = c.iter().find(|c| c.hook == "down").unwrap();
        if down.failed == 1 {
            assert_eq!(down.delivered, 0);
            let e = down.last_error.as_deref().unwrap();
            assert!(
                e.contains("not delivered after 3 attempt(s)") && e.contains("HTTP 500"),
                "{e}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never gave up: {c:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let tries = rx.hits().iter().filter(|h| h.path == "/down").count();
    assert_eq!(tries, 3, "exactly max_attempts tries");

    // `notify test` reports per hook and exits 1 because one failed.
    let r = cli.run(&["notify", "test", "--json"]);
    r.code(1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let hooks = v["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0]["hook"], "down");
    assert_eq!(hooks[0]["ok"], false);
    assert_eq!(hooks[0]["status"], 500);
    assert!(hooks[0]["error"].as_str().unwrap().contains("HTTP 500"));
    assert_eq!(hooks[0]["cursor"]["failed"], 1);
    assert_eq!(hooks[1]["ok"], true);
    assert_eq!(hooks[1]["status"], 200);
    let last = rx.delivered("/up").pop().unwrap();
    assert_eq!(last.body["event"]["kind"], "test");
    // One hook by name: exit 0; text output names it.
    let out = cli
        .run(&["notify", "test", "--hook", "up"])
        .ok()
        .to_string();
    assert!(out.starts_with("ok      up  HTTP 200"), "{out}");
    let r = cli.run(&["notify", "test", "--hook", "nope"]);
    r.code(2);
    assert!(
        r.stderr.contains("--hook \"nope\": no such hook") && r.stderr.contains("down, up"),
        "{}",
        r.stderr
    );
    stop(d);
}

#[test]
fn serve_delivers_too() {
    let cli = Cli::new();
    let rx = Receiver::start(1);
    write_config(
        &cli,
        &format!(
            "    webhooks:\n      - {{name: s, url: '{}', format: slack}}\n",
            rx.url("/s")
        ),
    );
    let a = cli.create("Served", &[]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let s = cli
        .cmd(&["serve", "--bind", &bind, "--no-dispatch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_cursor(&cli, "s");
    cli.run(&["complete", &a, "--summary", "via serve"]).ok();
    let got = rx.wait_for("/s", 1);
    assert!(got[0].body["text"].as_str().unwrap().contains("via serve"));
    stop(s);
}

#[test]
fn bad_config_names_the_key_and_stops_start_up() {
    let cli = Cli::new();
    write_config(
        &cli,
        "    webhooks:\n      - url: 'http://127.0.0.1:9/x'\n        format: slak\n        events: \
         [complted]\n",
    );
    for args in [
        &["daemon", "--interval", "30"][..],
        &["serve", "--bind", "127.0.0.1:0"][..],
        &["notify", "test"][..],
    ] {
        let r = cli.run(args);
        r.code(1);
        assert!(
            r.stderr.contains(
                "kanban.notify.webhooks[0].format: slak is not a format; use slack, discord or json"
            ) && r
                .stderr
                .contains("kanban.notify.webhooks[0].events[0]: complted is not an event kind")
                && r.stderr.contains("config.yaml"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // A file that is not YAML at all: the host still starts (the dispatcher runs on defaults
    // and says so), warning that no webhooks are delivered; `notify test` refuses.
    std::fs::write(cli.home().join("config.yaml"), "kanban: [unclosed\n").unwrap();
    let mut d = cli
        .cmd(&["daemon", "--interval", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = d.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.try_wait().unwrap().is_none(), "daemon keeps running");
    stop(d);
    let stderr = reader.join().unwrap();
    assert!(
        stderr.contains("not valid YAML") && stderr.contains("no webhooks are delivered"),
        "{stderr}"
    );
    let r = cli.run(&["notify", "test"]);
    r.code(1);
    assert!(r.stderr.contains("not valid YAML"), "{}", r.stderr);

    std::fs::write(cli.home().join("config.yaml"), "kanban:\n  max_spawn: 1\n").unwrap();
    let r = cli.run(&["notify", "test"]);
    r.code(1);
    assert!(
        r.stderr.contains("no webhooks configured") && r.stderr.contains("kanban.notify.webhooks"),
        "{}",
        r.stderr
    );
}

#[test]
fn notify_subscribe_says_hermes_gateway_delivers() {
    let cli = Cli::new();
    let a = cli.create("A", &[]);
    let r = cli.run(&[
        "notify-subscribe",
        &a,
        "--platform",
        "telegram",
        "--chat-id",
        "1",
    ]);
    assert_eq!(r.ok(), format!("Subscribed telegram:1 to {a}\n"));
    assert!(
        r.stderr.contains("delivered by Hermes' gateway")
            && r.stderr.contains("not by hermes-kanban")
            && r.stderr.contains("kanban.notify.webhooks"),
        "{}",
        r.stderr
    );
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`): status line, headers, body.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: \
            close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// How many descriptors of process `pid` are open on the board file itself (one per SQLite
/// connection; `-wal`/`-shm` are not counted).
fn db_connections(pid: u32, db: &std::path::Path) -> usize {
    let db = db.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| *p == db)
        .count()
}

#[test]
fn serve_holds_one_connection_per_board_for_mcp_rest_dispatcher_and_webhooks() {
    let cli = Cli::new();
    let rx = Receiver::start(0);
    write_config(
        &cli,
        &format!(
            "    webhooks:\n      - {{name: one, url: '{}', format: json}}\n",
            rx.url("/one")
        ),
    );
    let a = cli.create("Shared", &[]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let s = cli
        .cmd(&["serve", "--bind", &bind, "--interval", "0.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen on {bind}");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_cursor(&cli, "one");
    // The REST API reads the board.
    let board = http(port, "GET", "/api/board", &[], "");
    assert!(
        board.starts_with("HTTP/1.1 200") && board.contains(&a),
        "{board}"
    );
    // MCP (streamable HTTP) reads it too.
    let mcp_headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let init = http(
        port,
        "POST",
        "/mcp",
        &mcp_headers,
        concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":"#,
            r#"{"protocolVersion":"2025-06-18","capabilities":{},"#,
            r#""clientInfo":{"name":"t","version":"0"}}}"#
        ),
    );
    let session = init
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("mcp-session-id:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no session id: {init}"));
    let mut with_session = mcp_headers.to_vec();
    with_session.push(("Mcp-Session-Id", &session));
    http(
        port,
        "POST",
        "/mcp",
        &with_session,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    let shown = http(
        port,
        "POST",
        "/mcp",
        &with_session,
        &format!(
            concat!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","#,
                r#""params":{{"name":"kanban_show","arguments":{{"task_id":"{a}"}}}}}}"#
            ),
            a = a
        ),
    );
    assert!(
        shown.contains("Shared") && !shown.contains("\"isError\":true"),
        "{shown}"
    );
    // The webhook thread delivers an event (it reads the board too).
    cli.run(&["complete", &a, "--summary", "shared"]).ok();
    rx.wait_for("/one", 1);
    // The dispatcher has ticked several times by now (every 0.2 s).
    std::thread::sleep(Duration::from_millis(600));
    let db = cli.home().join("kanban.db");
    // On PostgreSQL the connections are the database's sessions (serve is its only client now;
    // psql's own session is not counted): the dispatcher's tick lock, the board registry and
    // every request use the board's one session.
    let held = || match &cli.pg {
        Some(pg) => pg.sessions(),
        None => db_connections(s.id(), &db),
    };
    // Many REST and MCP calls (some naming the board, some listing boards: registry work),
    // counted after each round and across the dispatcher's ticks: none opens a connection.
    let mut counts = vec![held()];
    for round in 3..15 {
        let path = ["/api/board", "/api/board?board=default", "/api/boards"][round % 3];
        let got = http(port, "GET", path, &[], "");
        assert!(got.starts_with("HTTP/1.1 200"), "{path}: {got}");
        let shown = http(
            port,
            "POST",
            "/mcp",
            &with_session,
            &format!(
                concat!(
                    r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"#,
                    r#""kanban_show","arguments":{{"task_id":"{a}","board":"default"}}}}}}"#
                ),
                n = round,
                a = a
            ),
        );
        assert!(shown.contains("Shared"), "{shown}");
        counts.push(held());
        std::thread::sleep(Duration::from_millis(70));
    }
    assert_eq!(
        counts,
        vec![1; counts.len()],
        "serve must hold one connection to {} shared by MCP, REST, the dispatcher and the \
            webhook thread, through every call and tick",
        db.display()
    );
    stop(s);
}
