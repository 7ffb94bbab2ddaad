//! The dashboard's live events on PostgreSQL (issue 15): `serve` on a PostgreSQL board streams
//! `/api/events` (Server-Sent Events) to a client, and writes made by another process — a
//! separate CLI, as on another host — reach that stream: the stream reads the shared event
//! table (`task_events`, ordered by id), not an in-process signal. PostgreSQL only.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{Cli, wait_until};

/// A child process killed (and reaped) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Open `GET /api/events` on `addr` and collect the stream's lines in the background.
fn subscribe(addr: &str) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut s = TcpStream::connect(addr).expect("connect to serve");
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(s).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => return,
            }
        }
    });
    lines
}

/// Whether a `data:` line of the stream is the event `kind` of task `id`.
fn seen(lines: &Mutex<Vec<String>>, id: &str, kind: &str) -> bool {
    let task = format!("\"task_id\":\"{id}\"");
    let kind = format!("\"kind\":\"{kind}\"");
    lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("data:") && l.contains(&task) && l.contains(&kind))
}

#[test]
fn events_written_by_another_process_reach_the_dashboard_stream() {
    postgres_only!("serve's event stream over a shared PostgreSQL board");
    let cli = Cli::new();
    cli.run(&["init"]).code(0);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::create_dir_all(cli.home()).unwrap();
    let log = cli.home().join("serve.log");
    let serve = cli
        .cmd(&["serve", "--bind", &addr, "--no-dispatch"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _serve = Proc(serve);
    wait_until("serve to listen", Duration::from_secs(60), || {
        TcpStream::connect(&addr).ok()
    });
    let lines = subscribe(&addr);
    wait_until("the stream's hello", Duration::from_secs(60), || {
        let got = lines.lock().unwrap();
        got.iter().any(|l| l == "event: hello").then_some(())
    });

    // Another process writes: the CLI, with its own connection to the database.
    let id = cli.create("made by another process", &[]);
    cli.run(&["comment", &id, "said by another process"])
        .code(0);

    wait_until(
        "the CLI's created and commented events on the stream",
        Duration::from_secs(60),
        || (seen(&lines, &id, "created") && seen(&lines, &id, "commented")).then_some(()),
    );
    let got = lines.lock().unwrap();
    let ours: Vec<&String> = got
        .iter()
        .filter(|l| l.starts_with("data:") && l.contains(&id))
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "each event is sent once: {ours:#?}\nserve.log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
