//! `serve` on PostgreSQL when its database goes away: the REST API answers 503 with the
//! one-line JSON error (the URL without its password) and `Retry-After`, and answers again
//! once the database is back — `serve` itself is not restarted. The database is made
//! unreachable by refusing new connections to it and cutting the open ones (only this
//! fixture's database; the cluster other tests share keeps running).

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::helpers::backend::{DATABASE_URL_VAR, admin_sql};
use crate::helpers::{Cli, wait_until};

/// serve, killed when the test ends.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET: (status, head, body), `None` when nothing answered.
fn get(addr: &str, path: &str) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head.to_ascii_lowercase(), body.to_string()))
}

#[test]
fn serve_answers_503_while_its_database_is_unreachable_and_recovers_after() {
    postgres_only!("makes the PostgreSQL database unreachable under serve");
    let cli = Cli::new();
    let id = cli.create("survives the outage", &[]);
    let db = cli.pg.as_ref().expect("a PostgreSQL fixture").name.clone();
    // Trust authentication ignores the password: it is only there to be kept out of errors.
    let url = cli
        .pg
        .as_ref()
        .unwrap()
        .url
        .replacen("://postgres@", "://postgres:s3cret@", 1);
    assert!(url.contains("s3cret"), "{url}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = cli
        .cmd(&["serve", "--bind", &addr, "--no-dispatch"])
        .env(DATABASE_URL_VAR, &url)
        .env("HERMES_KANBAN_PG_RECONNECT_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Serve(child);
    let path = format!("/api/tasks/{id}");
    wait_until("serve to answer", Duration::from_secs(60), || {
        get(&addr, &path).filter(|(s, ..)| *s == 200)
    });

    admin_sql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"));
    admin_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ));
    let (status, head, body) = wait_until("a 503", Duration::from_secs(60), || {
        get(&addr, &path).filter(|(s, ..)| *s != 200)
    });
    admin_sql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"));
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(head.contains("retry-after:"), "{head}");
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let detail = v["detail"].as_str().unwrap_or_else(|| panic!("{v}"));
    let shown = url.replacen(":s3cret@", ":***@", 1);
    assert!(
        detail.contains("cannot reach the PostgreSQL database") && detail.contains(&shown),
        "{detail}"
    );
    assert!(!body.contains("s3cret") && !detail.contains('\n'), "{body}");

    // Back: the same serve answers with the task, nothing lost.
    let (_, _, body) = wait_until("serve to answer again", Duration::from_secs(60), || {
        get(&addr, &path).filter(|(s, ..)| *s == 200)
    });
    assert!(body.contains("survives the outage"), "{body}");
}
