//! Connection loss (issue 15): PostgreSQL is restarted (every connection cut) under a running
//! `daemon` with workers in flight and a running `serve`. Both recover without being
//! restarted — the daemon keeps dispatching, the supervisors settle their runs, `serve`
//! answers REST again — and no claim is lost or doubled: every task ends `done` with exactly
//! one run. PostgreSQL only; it restarts the cluster `scripts/pg` runs (`HK_PG_DIR`, default
//! `target/pg`).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hermes_kanban::kernel::{ListFilter, Status};
use serde_json::Value;

use crate::helpers::{Cli, wait_until};

const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");

/// `scripts/pg` of this checkout.
fn pg_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg")
}

/// Run `scripts/pg <verb>` against the cluster the tests use; its exit status and output.
fn pg(verb: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg(pg_script())
        .arg(verb)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/pg");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A child that is killed when the test ends.
struct Proc(Child);

impl Proc {
    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request to `addr` without a client library; (status, body), or `None` when
/// the server did not answer.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    // A chunked body (streamed JSON) is de-chunked well enough for a JSON parse.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn daemon_and_serve_survive_a_postgres_restart_without_losing_or_doubling_a_claim() {
    postgres_only!("restarts the PostgreSQL server");
    let (up, why) = pg("status");
    assert!(
        up,
        "the connection-loss test restarts the cluster of scripts/pg (HK_PG_DIR); {why}"
    );
    let mut cli = Cli::new();
    let home = cli.home();
    std::fs::create_dir_all(home.join("profiles/worker")).unwrap();
    std::fs::write(home.join("profiles/worker/config.yaml"), "{}\n").unwrap();
    cli.extra_env
        .push(("HERMES_KANBAN_CRASH_GRACE_SECONDS".into(), "0".into()));
    cli.extra_env
        .push(("HERMES_KANBAN_SUPERVISOR_POLL_SECONDS".into(), "1".into()));
    let lab = cli.dir.path().join("lab");
    std::fs::create_dir_all(&lab).unwrap();
    // Workers wait for a release file, so they are mid-run while the server restarts.
    let hermes = lab.join("hermes");
    std::fs::write(
        &hermes,
        format!(
            "#!/bin/bash\nif [ \"$1\" = --help ]; then echo 'usage: hermes [-h] [-m MODEL] \
             [--provider PROVIDER] [--accept-hooks] [--skills SKILLS] [--cli]'; exit 0; fi\n\
             T=\"$HERMES_KANBAN_TASK\"\ntouch \"{lab}/$T.started\"\n\
             while [ ! -f \"{lab}/release\" ]; do sleep 0.1; done\n\
             {HK} complete \"$T\" --summary \"after the restart\" 2> \"{lab}/$T.err\" && \
             touch \"{lab}/$T.done\"\n",
            lab = lab.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hermes, std::fs::Permissions::from_mode(0o755)).unwrap();

    cli.run(&["init"]).ok();
    let before: Vec<String> = (0..3)
        .map(|i| cli.create(&format!("in flight {i}"), &["--assignee", "worker"]))
        .collect();
    let daemon = cli
        .cmd(&["daemon", "--interval", "0.5"])
        .env("HERMES_BIN", &hermes)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(lab.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Proc(daemon);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let serve = cli
        .cmd(&["serve", "--bind", &addr, "--no-dispatch"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(lab.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut serve = Proc(serve);
    wait_until("serve to answer", Duration::from_secs(60), || {
        http(&addr, "GET", "/api/board", None).filter(|(s, _)| *s == 200)
    });
    wait_until("the workers to start", Duration::from_secs(60), || {
        before
            .iter()
            .all(|t| lab.join(format!("{t}.started")).exists())
            .then_some(())
    });

    let (ok, out) = pg("restart");
    assert!(ok, "scripts/pg restart: {out}");

    // serve answers again (the first request after the cut may fail; then it reconnects).
    wait_until(
        "serve to answer after the restart",
        Duration::from_secs(60),
        || http(&addr, "GET", "/api/board", None).filter(|(s, _)| *s == 200),
    );
    let (status, body) = http(
        &addr,
        "POST",
        "/api/tasks",
        Some(&serde_json::json!({"title": "created after the restart", "assignee": "worker"})),
    )
    .expect("serve answers");
    assert_eq!(status, 200, "POST /api/tasks after the restart: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let after = v["task"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task id in {v}"))
        .to_string();
    std::fs::write(lab.join("release"), "").unwrap();

    let board = cli.board();
    let mut all = before.clone();
    all.push(after.clone());
    // Done in the database, and its worker finished: the worker marks success after its
    // `complete` returned (so only after the commit we see), or left an error.
    let finished = |t: &String| {
        lab.join(format!("{t}.done")).exists()
            || std::fs::metadata(lab.join(format!("{t}.err"))).is_ok_and(|m| m.len() > 0)
    };
    wait_until(
        "every task done after the restart, its worker finished",
        Duration::from_secs(120),
        || {
            all.iter()
                .all(|t| board.get_task(t).unwrap().status == Status::Done && finished(t))
                .then_some(())
        },
    );
    assert!(daemon.alive(), "the daemon exited after the restart");
    assert!(serve.alive(), "serve exited after the restart");
    for t in &all {
        let runs = board.list_runs(t, None).unwrap();
        assert_eq!(
            runs.len(),
            1,
            "{t}: a claim was lost or doubled across the restart: {runs:#?}"
        );
        assert_eq!(runs[0].outcome.as_deref(), Some("completed"), "{t}");
        assert!(
            lab.join(format!("{t}.done")).exists(),
            "{t}: the worker's complete failed: {}",
            std::fs::read_to_string(lab.join(format!("{t}.err"))).unwrap_or_default()
        );
    }
    // serve still reads the board it recovered to.
    let (status, body) = http(&addr, "GET", &format!("/api/tasks/{after}"), None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"done\""), "{body}");
    let running = board
        .list_tasks(&ListFilter {
            status: Some(Status::Running),
            ..Default::default()
        })
        .unwrap();
    assert!(running.is_empty(), "{running:?}");
    drop(board);
    drop(daemon);
    drop(serve);
}
