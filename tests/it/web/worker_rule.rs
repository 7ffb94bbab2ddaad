//! One "has a worker" rule (`Task::has_worker`) behind every front door that changes who owns
//! a task: the kernel's `assign_task`/`reassign_task`, the CLI's `assign`/`reassign`, and the
//! REST PATCH, bulk and `/reassign`. For a free task, a task whose worker is alive, one whose
//! claim expired (no dispatcher reclaimed it yet) and one a crashed writer left claimed in
//! `blocked`, every door must refuse a plain assignment exactly when the rule says a worker
//! may be attached, and reassign-with-reclaim must hand the task over.

use std::process::{Command, Stdio};

use hermes_kanban::kernel::{Board, KernelError, Status};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::Run;
use crate::helpers::server::{Server, start};

/// The binary on the server's home (what an operator's shell next to `serve` does).
fn cli(s: &Server, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_hermes-kanban"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", s.dir.path())
        .env("HERMES_HOME", s.dir.path().join("hermes"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run hermes-kanban");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Write a task's claim columns behind the kernel's back (an expired claim; the claim a
/// crashed writer leaves on a task it moved), as another process sharing the DB can.
fn raw(b: &Board, sql: &str, id: &str) {
    let c = rusqlite::Connection::open(&b.paths().db).unwrap();
    assert_eq!(c.execute(sql, [id]).unwrap(), 1, "{sql}");
}

/// What each door does with a plain assignment (no reclaim) of `id` to a new profile:
/// `(door, refused)`.
async fn plain_assignments(s: &Server, b: &Board, id: &str) -> Vec<(&'static str, bool)> {
    let mut out = Vec::new();
    match b.assign_task(id, Some("via-kernel")) {
        Ok(_) => out.push(("kernel assign_task", false)),
        Err(KernelError::Refused { .. }) => out.push(("kernel assign_task", true)),
        Err(e) => panic!("assign_task({id}): {e}"),
    }
    let r = b.reassign_task(id, Some("via-kernel-re"), false, None, Default::default());
    out.push(("kernel reassign_task", r.is_err()));
    let r = cli(s, &["assign", id, "via-cli"]);
    if r.code != 0 {
        assert!(r.stderr.contains("reclaim"), "CLI assign: {}", r.stderr);
    }
    out.push(("CLI assign", r.code != 0));
    out.push((
        "CLI reassign",
        cli(s, &["reassign", id, "via-cli-re"]).code != 0,
    ));
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/tasks/{id}"),
            Some(json!({"assignee": "via-patch"})),
        )
        .await;
    assert!(st.as_u16() == 200 || st.as_u16() == 409, "PATCH: {st} {v}");
    out.push(("REST PATCH", st.as_u16() == 409));
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [id], "assignee": "via-bulk"})),
        )
        .await;
    out.push(("REST bulk", v["results"][0]["ok"] == Value::Bool(false)));
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/api/tasks/{id}/reassign"),
            Some(json!({"profile": "via-reassign"})),
        )
        .await;
    assert!(
        st.as_u16() == 200 || st.as_u16() == 409,
        "reassign: {st} {v}"
    );
    out.push(("REST reassign", st.as_u16() == 409));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_door_refuses_an_assignment_exactly_when_a_worker_may_be_attached() {
    sqlite_only!("writes claim columns behind the kernel's back with rusqlite");
    let s = start().await;
    let b = s.board();
    let free = s.task("free");
    let alive = s.task("worker alive");
    let expired = s.task("claim expired");
    let left = s.task("claim left on a blocked task");
    // A live worker process of this host, in its own group (a reclaim may signal it).
    let mut worker = {
        use std::os::unix::process::CommandExt;
        Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let claim = b.claim_task(&alive, Some(3600)).unwrap();
    b.set_worker_pid(&alive, claim.run_id, worker.id() as i64)
        .unwrap();
    b.claim_task(&expired, Some(3600)).unwrap();
    raw(
        &b,
        "UPDATE tasks SET claim_expires = 1 WHERE id = ?1",
        &expired,
    );
    raw(
        &b,
        "UPDATE tasks SET status = 'blocked', claim_lock = 'gone-host:1', claim_expires = 1 \
         WHERE id = ?1",
        &left,
    );

    for (id, has_worker) in [
        (&free, false),
        (&alive, true),
        (&expired, true),
        (&left, true),
    ] {
        let t = b.get_task(id).unwrap();
        assert_eq!(t.has_worker(), has_worker, "{}: the rule itself", t.title);
        for (door, refused) in plain_assignments(&s, &b, id).await {
            assert_eq!(
                refused, has_worker,
                "{door} on '{}' ({}, claim {:?}): refused={refused}, but has_worker={has_worker}",
                t.title, t.status, t.claim_lock
            );
        }
        let after = b.get_task(id).unwrap();
        if has_worker {
            assert_eq!(after.assignee, t.assignee, "{}: nothing changed", t.title);
            assert_eq!(after.claim_lock, t.claim_lock, "{}: still claimed", t.title);
        } else {
            assert_eq!(after.assignee.as_deref(), Some("via-reassign"));
        }
    }

    // With a reclaim every door hands the task over and leaves no claim behind.
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{alive}"),
            Some(json!({"assignee": "taker", "reclaim_first": true})),
        )
        .await;
    assert_eq!(v["task"]["assignee"], "taker");
    let r = cli(&s, &["reassign", &expired, "taker", "--reclaim"]);
    assert_eq!(
        r.ok(),
        format!("Reassigned {expired} to taker (claim reclaimed)\n")
    );
    s.ok(
        Method::POST,
        &format!("/api/tasks/{left}/reassign"),
        Some(json!({"profile": "taker", "reclaim_first": true})),
    )
    .await;
    let r = cli(&s, &["reassign", &free, "taker", "--reclaim"]);
    assert_eq!(
        r.ok(),
        format!("Reassigned {free} to taker\n"),
        "no claim to reclaim"
    );
    for id in [&free, &alive, &expired, &left] {
        let t = b.get_task(id).unwrap();
        assert!(
            !t.has_worker(),
            "{}: {} claim {:?}",
            t.title,
            t.status,
            t.claim_lock
        );
        assert_eq!(t.assignee.as_deref(), Some("taker"), "{}", t.title);
        assert_eq!(t.status, Status::Ready, "{}", t.title);
    }
    let _ = worker.kill();
    let _ = worker.wait();
}
