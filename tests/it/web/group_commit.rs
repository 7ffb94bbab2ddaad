//! Group commit in `serve` through the real binary: concurrent REST writers share commits, a
//! refused call changes nothing while its neighbours' writes all land, and `kill -9` right after
//! acknowledged writes (with a commit delay, so groups stay open) loses none of them.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::cli::Cli;
use crate::helpers::wait::wait_until;
use hermes_kanban::kernel::Board;

/// `serve --no-dispatch` on a free loopback port; its port, read from its stderr (which then
/// keeps draining on a thread).
fn serve(cli: &Cli, env: &[(&str, &str)]) -> (Child, u16) {
    let mut child = cli
        .cmd(&["serve", "--no-dispatch", "--bind", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let port = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve ended early: {seen}"
        );
        seen.push_str(&line);
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, port)
}

/// One HTTP/1.1 request; the status code and body, or `None` when the server is gone.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    c.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn comment(port: u16, task: &str, body: &str) -> Option<u16> {
    let json = serde_json::json!({"author": "writer", "body": body}).to_string();
    http(port, "POST", &format!("/api/tasks/{task}/comments"), &json).map(|(s, _)| s)
}

fn bodies(board: &Board, task: &str) -> Vec<String> {
    let comments = board.list_comments(task).unwrap();
    comments.into_iter().map(|c| c.body).collect()
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

#[test]
fn concurrent_rest_writers_share_commits_and_a_refusal_changes_only_itself() {
    let cli = Cli::new();
    let ids: Vec<String> = (0..8).map(|i| cli.create(&format!("w{i}"), &[])).collect();
    let (child, port) = serve(&cli, &[]);
    let writers: Vec<_> = ids
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, id)| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..30 {
                    let body = format!("w{w}-{i}");
                    match i % 6 {
                        // Refused inside the transaction: no such task.
                        2 => assert_eq!(comment(port, "t_missing", &body), Some(404)),
                        // Refused by its guard: a ready task holds no claim to reclaim.
                        5 => {
                            let (s, b) =
                                http(port, "POST", &format!("/api/tasks/{id}/reclaim"), "")
                                    .expect("serve answers");
                            assert_eq!(s, 409, "{b}");
                        }
                        _ => {
                            assert_eq!(comment(port, &id, &body), Some(200), "{body}");
                            kept.push(body);
                        }
                    }
                }
                kept
            })
        })
        .collect();
    let kept: Vec<Vec<String>> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    let (status, stats) = http(port, "GET", "/api/stats", "").expect("stats");
    assert_eq!(status, 200, "{stats}");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    stop(child);
    let board = cli.board();
    for (id, kept) in ids.iter().zip(&kept) {
        assert_eq!(
            &bodies(&board, id),
            kept,
            "{id}: every accepted comment, only those"
        );
        let task = board.get_task(id).unwrap();
        assert_eq!(
            task.status.as_str(),
            "ready",
            "a refused reclaim moved nothing"
        );
    }
    assert!(
        bodies(&board, "t_missing").is_empty(),
        "nothing was written for the refused comments"
    );
    // Group commit is SQLite's (each PostgreSQL write commits on its own): no counters there.
    sqlite_only!("group commit counters");
    let g = &stats["group_commit"];
    let (writes, commits) = (
        g["writes"].as_u64().unwrap(),
        g["commits"].as_u64().unwrap(),
    );
    assert!(writes >= 8 * 20, "every accepted write is counted: {g}");
    assert!(g["failed"] == 0, "{g}");
    // 8 writers queue behind each other's commits: they share them.
    assert!(commits < writes, "fewer commits than durable writes: {g}");
    eprintln!("group commit through serve: {g}");
}

#[test]
fn kill_9_right_after_acknowledged_writes_loses_none_of_them() {
    let cli = Cli::new();
    let ids: Vec<String> = (0..4).map(|i| cli.create(&format!("k{i}"), &[])).collect();
    // Each group stays open 50 ms: an acknowledgement sent before its commit would be lost.
    let (mut child, port) = serve(&cli, &[("HERMES_KANBAN_GROUP_COMMIT_DELAY_MS", "50")]);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, killed, id) = (acked.clone(), killed.clone(), ids[w % 4].clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let body = format!("w{w}-{i}");
                    match comment(port, &id, &body) {
                        Some(200) => {
                            let mut a = acked.lock().unwrap();
                            a.push((id.clone(), body));
                            // The 150th acknowledgement: SIGKILL at once, while the other
                            // writers' calls are in flight (no shutdown path runs).
                            if a.len() == 150 {
                                killed.store(true, Ordering::SeqCst);
                                let _ =
                                    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                            }
                        }
                        Some(s) if !killed.load(Ordering::SeqCst) => panic!("HTTP {s}"),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    wait_until("serve to be killed", Duration::from_secs(120), || {
        child.try_wait().unwrap().map(|_| ())
    });
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let board = cli.board();
    let on_disk: BTreeSet<(String, String)> = ids
        .iter()
        .flat_map(|id| bodies(&board, id).into_iter().map(|b| (id.clone(), b)))
        .collect();
    let lost: Vec<_> = acked.iter().filter(|a| !on_disk.contains(a)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}
