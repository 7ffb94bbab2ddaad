//! REST API integration tests: the real router (`hermes_kanban::web::router`) served on
//! 127.0.0.1:0 over a temp HERMES_HOME, driven by an HTTP client — every endpoint, the 400 /
//! 404 / 409 cases of REF §21.8, the SSE stream and its resumption, Host/Origin rejection and
//! the admin token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hermes_kanban::kernel::{Completion, NewTask, Status};
use hermes_kanban::web::{DispatchHook, DispatchRequest};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::server::{config, start, start_with};

fn detail_has(d: &str, needle: &str) {
    assert!(d.contains(needle), "{d:?} should contain {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_shape_columns_cards_and_filters() {
    let s = start().await;
    let p = s.task("parent");
    let c = s.child("child", &p);
    let b = s.board();
    b.add_comment(&p, "me", "hi").unwrap();
    b.claim_task(&p, None).unwrap();
    b.complete_task(Completion {
        task_id: p.clone(),
        summary: Some("x".repeat(500)),
        ..Default::default()
    })
    .unwrap();
    let t = b
        .create_task(NewTask {
            title: "tenant task".into(),
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    let gone = s.task("gone");
    b.archive_task(&gone).unwrap();

    let v = s.ok(Method::GET, "/api/board", None).await;
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["columns", "tenants", "assignees", "latest_event_id", "now"]
    );
    let names: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "triage",
            "todo",
            "scheduled",
            "ready",
            "running",
            "blocked",
            "review",
            "done"
        ]
    );
    assert_eq!(v["tenants"], json!(["acme"]));
    assert_eq!(v["assignees"], json!(["worker"]));
    assert_eq!(v["latest_event_id"], json!(b.max_event_id().unwrap()));
    let find = |v: &Value, id: &str| -> Value {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["tasks"].as_array().unwrap().iter())
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let pc = find(&v, &p);
    assert_eq!(pc["status"], "done");
    assert_eq!(pc["comment_count"], 1);
    assert_eq!(pc["progress"], json!({"done": 0, "total": 1}));
    assert_eq!(pc["link_counts"], json!({"parents": 0, "children": 1}));
    assert_eq!(pc["latest_summary"].as_str().unwrap().chars().count(), 200);
    assert!(pc["age"]["time_to_complete_seconds"].is_i64());
    assert!(pc["skills"].is_array() && pc["goal_mode"].is_boolean());
    let cc = find(&v, &c);
    assert_eq!(cc["status"], "ready");
    assert_eq!(cc["progress"], Value::Null);
    assert_eq!(cc["link_counts"]["parents"], 1);
    assert!(find(&v, &gone).is_null(), "archived hidden by default");

    let v = s
        .ok(Method::GET, "/api/board?include_archived=true", None)
        .await;
    assert_eq!(v["columns"].as_array().unwrap().len(), 9);
    assert_eq!(v["columns"][8]["name"], "archived");
    assert_eq!(find(&v, &gone)["status"], "archived");

    let v = s.ok(Method::GET, "/api/board?tenant=acme", None).await;
    let n: usize = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tasks"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 1);
    assert_eq!(find(&v, &t)["tenant"], "acme");

    // Incremental refresh: only named ids, plus their parents; unknown ids are "missing".
    let v = s
        .ok(
            Method::GET,
            &format!("/api/board?ids={c},t_00000000&compact=1"),
            None,
        )
        .await;
    let ids: Vec<&str> = v["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&c.as_str()) && ids.contains(&p.as_str()));
    assert_eq!(v["missing"], json!(["t_00000000"]));
    s.expect(Method::GET, "/api/board?ids=../etc", None, 400)
        .await;

    // Board selection: malformed → 400, unknown → 404; Hermes' prefix also works.
    s.expect(Method::GET, "/api/board?board=../x", None, 400)
        .await;
    s.expect(Method::GET, "/api/board?board=nope", None, 404)
        .await;
    s.expect(Method::GET, "/api/board?include_archived=maybe", None, 400)
        .await;
    let v = s.ok(Method::GET, "/api/plugins/kanban/board", None).await;
    assert!(v["columns"].is_array());
    s.expect(Method::GET, "/api/nope", None, 404).await;
    let v = s.ok(Method::GET, "/api/config", None).await;
    assert_eq!(
        v,
        json!({"default_tenant": "", "lane_by_profile": true, "include_archived_by_default": false,
            "render_markdown": true})
    );
}

/// A board answer larger than one streamed piece (64 KiB) holds every card once, in its
/// column, in the kernel's list order, with its text intact across piece boundaries — full
/// and compact, capped and not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_streamed_in_many_pieces_holds_every_card_once_in_order() {
    let s = start().await;
    let b = s.board();
    let long = "é".repeat(280) + "end";
    let mut created = Vec::new();
    for i in 0..360 {
        let t = b
            .create_task(NewTask {
                title: format!("card {i} \"quoted\""),
                body: Some(format!("{i}: {long}")),
                priority: (i % 4) as i64,
                triage: i % 9 == 0,
                ..Default::default()
            })
            .unwrap()
            .task;
        created.push(t.id);
    }
    // Every fifth card done (triage cards cannot be claimed).
    let to_finish = created
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 == 0 && i % 9 != 0);
    for (_, id) in to_finish {
        b.claim_task(id, None).unwrap();
        b.complete_task(Completion {
            task_id: id.clone(),
            summary: Some("ok".into()),
            ..Default::default()
        })
        .unwrap();
    }
    let view = b
        .board_view(&Default::default(), &Default::default())
        .unwrap();
    let expected = |status: Status| -> Vec<String> {
        view.cards
            .iter()
            .filter(|c| c.task.status == status)
            .map(|c| c.task.id.clone())
            .collect()
    };
    for path in [
        "/api/board",
        "/api/board?compact=1&done_limit=0",
        "/api/board?compact=1",
    ] {
        let v = s.ok(Method::GET, path, None).await;
        assert!(
            v.to_string().len() > 3 * 64 * 1024,
            "{path}: several pieces"
        );
        let mut seen = std::collections::HashSet::new();
        for col in v["columns"].as_array().unwrap() {
            let name = col["name"].as_str().unwrap();
            let status: Status = name.parse().unwrap();
            let tasks = col["tasks"].as_array().unwrap();
            let ids: Vec<String> = tasks
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            for t in tasks {
                assert!(
                    seen.insert(t["id"].as_str().unwrap().to_string()),
                    "{path}: twice"
                );
                let title = t["title"].as_str().unwrap();
                let i = title.split(' ').nth(1).unwrap();
                assert_eq!(title, format!("card {i} \"quoted\""));
                let body = format!("{i}: {long}");
                let body: String = match path.contains("compact") {
                    true => body.chars().take(300).collect(),
                    false => body,
                };
                assert_eq!(t["body"], json!(body), "{path}");
            }
            if status == Status::Done && path == "/api/board?compact=1" {
                assert_eq!(col["total"], json!(64), "{path}");
                assert_eq!(ids.len(), 64, "{path}: under the cap, the whole column");
                continue;
            }
            assert_eq!(ids, expected(status), "{path}: column {name}");
        }
        assert_eq!(seen.len(), 360, "{path}");
        assert_eq!(v["latest_event_id"], json!(view.latest_event_id), "{path}");
    }
}

/// The dashboard's compact board caps Done and Archived at their newest 200 cards with a
/// total and a cursor; following the cursor reaches every done card exactly once, newest
/// first; the full board (Hermes' endpoint) stays complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_board_caps_done_with_a_count_and_a_cursor() {
    use hermes_kanban::kernel::SeedTask;
    let s = start().await;
    let mut b = s.board();
    let seed = |status: Status, n: usize| -> Vec<SeedTask> {
        (0..n)
            .map(|i| SeedTask {
                title: format!("{status} {i}"),
                assignee: Some("worker".into()),
                status,
                priority: (i % 3) as i64,
                parents: vec![],
                claim_lock: None,
            })
            .collect()
    };
    let mut done: Vec<String> = b.seed_tasks(&seed(Status::Done, 450)).unwrap();
    let archived = b.seed_tasks(&seed(Status::Archived, 30)).unwrap();
    b.seed_tasks(&seed(Status::Ready, 5)).unwrap();
    // The oldest task, completed last: newest by completion, so first in Done.
    let old = b.seed_tasks(&seed(Status::Ready, 1)).unwrap().remove(0);
    let later = chrono::Utc::now().timestamp() + 100;
    b.set_clock(Arc::new(move || later));
    b.claim_task(&old, None).unwrap();
    b.complete_task(Completion {
        task_id: old.clone(),
        summary: Some("late".into()),
        ..Default::default()
    })
    .unwrap();
    done.push(old.clone());

    let column = |v: &Value, name: &str| -> Value {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no column {name} in {v}"))
    };
    let ids = |col: &Value| -> Vec<String> {
        col["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    // Sort key of a card: completion (else creation), then creation.
    let key = |t: &Value| -> (i64, i64) {
        let c = t["created_at"].as_i64().unwrap();
        (t["completed_at"].as_i64().unwrap_or(c), c)
    };

    let v = s.ok(Method::GET, "/api/board?compact=1", None).await;
    let d = column(&v, "done");
    assert_eq!(d["total"], json!(451), "{}", d["total"]);
    let first = ids(&d);
    assert_eq!(first.len(), 200);
    assert_eq!(first[0], old, "the latest completion comes first");
    assert!(d["next_cursor"].is_string());
    assert_eq!(
        ids(&column(&v, "ready")).len(),
        5,
        "other columns are complete"
    );
    assert!(column(&v, "ready").get("total").is_none());

    // Follow the cursor to the end: every done card exactly once, newest first.
    let mut all: Vec<Value> = d["tasks"].as_array().unwrap().clone();
    let mut cursor = d["next_cursor"].as_str().unwrap().to_string();
    let mut pages = 1;
    loop {
        let p = s
            .ok(
                Method::GET,
                &format!("/api/board?compact=1&column=done&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(p["name"], "done");
        assert_eq!(p["total"], json!(451));
        all.extend(p["tasks"].as_array().unwrap().iter().cloned());
        pages += 1;
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let got: Vec<String> = all
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = got.iter().collect();
    assert_eq!(got.len(), 451);
    assert_eq!(unique.len(), 451, "no card twice");
    let mut want = done.clone();
    want.sort();
    let mut have = got.clone();
    have.sort();
    assert_eq!(have, want, "every done card reached");
    for w in all.windows(2) {
        assert!(
            key(&w[0]) >= key(&w[1]),
            "newest first: {} then {}",
            w[0],
            w[1]
        );
    }
    assert!(all.iter().all(|t| t["status"] == "done"));

    // A smaller page, no cap, and the archived column.
    let v = s
        .ok(Method::GET, "/api/board?compact=1&done_limit=50", None)
        .await;
    assert_eq!(ids(&column(&v, "done")).len(), 50);
    assert_eq!(ids(&column(&v, "done"))[..], got[..50]);
    let v = s
        .ok(Method::GET, "/api/board?compact=1&done_limit=0", None)
        .await;
    assert_eq!(ids(&column(&v, "done")).len(), 451);
    let v = s
        .ok(Method::GET, "/api/board?compact=1&include_archived=1", None)
        .await;
    let a = column(&v, "archived");
    assert_eq!(a["total"], json!(30));
    assert!(a["next_cursor"].is_null());
    let mut a_ids = ids(&a);
    a_ids.sort();
    let mut want_a = archived.clone();
    want_a.sort();
    assert_eq!(a_ids, want_a);

    // Hermes' full board stays complete and keeps its shape.
    let v = s.ok(Method::GET, "/api/board", None).await;
    let d = column(&v, "done");
    assert_eq!(ids(&d).len(), 451);
    let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["name", "tasks"]);
    let v = s
        .ok(Method::GET, "/api/board?include_archived=1", None)
        .await;
    assert_eq!(ids(&column(&v, "archived")).len(), 30);

    // A card beyond the first page still refreshes by id (a live update of an old card).
    let deep = &got[400];
    let v = s
        .ok(
            Method::GET,
            &format!("/api/board?compact=1&ids={deep}"),
            None,
        )
        .await;
    assert_eq!(v["cards"][0]["id"], json!(deep));
    assert_eq!(v["column_totals"], json!({"archived": 30, "done": 451}));

    // Refusals name what is wrong.
    let e = s
        .expect(
            Method::GET,
            "/api/board?compact=1&cursor=nonsense",
            None,
            400,
        )
        .await;
    detail_has(&e, "cursor");
    let e = s
        .expect(Method::GET, "/api/board?compact=1&column=ready", None, 400)
        .await;
    detail_has(&e, "column");
    let e = s
        .expect(Method::GET, "/api/board?compact=1&done_limit=-1", None, 400)
        .await;
    detail_has(&e, "done_limit");
    let e = s
        .expect(
            Method::GET,
            &format!("/api/board?compact=1&column=done&ids={deep}"),
            None,
            400,
        )
        .await;
    detail_has(&e, "ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_on_cards_and_endpoint() {
    let s = start().await;
    // A profile on disk: the one finding expected below is `stranded_in_ready`, not also
    // `unspawnable_assignee`.
    std::fs::create_dir_all(s.dir.path().join("hermes").join("profiles").join("worker")).unwrap();
    std::fs::write(
        s.dir.path().join("hermes/profiles/worker/config.yaml"),
        "{}\n",
    )
    .unwrap();
    let t = s.task("stuck");
    // Make it stranded: created long ago (rewrite through the kernel's clock).
    let mut b = s.board();
    b.set_clock(Arc::new(|| chrono::Utc::now().timestamp() - 7 * 3600));
    let old = b
        .create_task(NewTask {
            title: "old".into(),
            assignee: Some("worker".into()),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    let v = s.ok(Method::GET, "/api/board", None).await;
    let ready = &v["columns"][3]["tasks"];
    let card = ready
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == old)
        .unwrap();
    assert_eq!(card["diagnostics"][0]["kind"], "stranded_in_ready");
    assert_eq!(
        card["warnings"],
        json!({"count": 1, "kinds": {"stranded_in_ready": 1},
            "latest_at": card["diagnostics"][0]["last_seen_at"], "highest_severity": "critical"})
    );
    let fresh = ready
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == t)
        .unwrap();
    assert!(fresh.get("diagnostics").is_none() && fresh.get("warnings").is_none());
    let v = s.ok(Method::GET, "/api/diagnostics", None).await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["diagnostics"][0]["task_id"], json!(old));
    assert_eq!(v["diagnostics"][0]["task_title"], "old");
    let v = s
        .ok(Method::GET, "/api/diagnostics?severity=critical", None)
        .await;
    assert_eq!(v["count"], 1);
    let d = s
        .expect(Method::GET, "/api/diagnostics?severity=loud", None, 400)
        .await;
    detail_has(&d, "severity");
    let v = s.ok(Method::GET, &format!("/api/tasks/{old}"), None).await;
    assert_eq!(v["task"]["warnings"]["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_detail_create_delete() {
    let s = start().await;
    let v = s
        .ok(
            Method::POST,
            "/api/tasks",
            Some(
                json!({"title": "API task", "body": "b", "assignee": "coder", "priority": 2,
                "skills": ["rust"], "tenant": "t1"}),
            ),
        )
        .await;
    let id = v["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["task"]["created_by"], "dashboard");
    assert_eq!(v["task"]["status"], "ready");
    assert_eq!(v["task"]["skills"], json!(["rust"]));
    assert!(
        v["warning"].as_str().unwrap().contains("dispatcher"),
        "ready + assigned without a dispatcher warns: {v}"
    );
    let v = s
        .ok(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "child", "parents": [id], "triage": false})),
        )
        .await;
    let child = v["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["task"]["status"], "todo");
    assert!(v.get("warning").is_none());
    // The worker's model, provider and reasoning level (upstream's create fields).
    let v = s
        .ok(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "pinned", "model_override": "gpt-5.5",
                "provider_override": "openrouter", "reasoning_effort": "High"})),
        )
        .await;
    assert_eq!(v["task"]["model_override"], "gpt-5.5");
    assert_eq!(v["task"]["provider_override"], "openrouter");
    assert_eq!(v["task"]["reasoning_effort"], "high");
    detail_has(
        &s.expect(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "x", "provider_override": "openrouter"})),
            400,
        )
        .await,
        "provider_override",
    );
    // Validation → 400 naming the field.
    detail_has(
        &s.expect(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "  "})),
            400,
        )
        .await,
        "title",
    );
    detail_has(
        &s.expect(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "x", "priority": "high"})),
            400,
        )
        .await,
        "priority",
    );
    detail_has(
        &s.expect(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "x", "parents": ["t_00000000"]})),
            400,
        )
        .await,
        "parent",
    );
    detail_has(
        &s.expect(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "x", "workspace_kind": "cloud"})),
            400,
        )
        .await,
        "cloud",
    );
    let r = s
        .http
        .post(s.url("/api/tasks"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(s.url("/api/tasks"))
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let b = s.board();
    b.add_comment(&id, "alice", "**hi**").unwrap();
    b.claim_task(&id, None).unwrap();
    b.complete_task(Completion {
        task_id: id.clone(),
        summary: Some("did it".into()),
        metadata: Some(json!({"k": 1})),
        ..Default::default()
    })
    .unwrap();
    b.add_attachment(&id, "a.txt", b"hello", None, Some("me"))
        .unwrap();
    let v = s.ok(Method::GET, &format!("/api/tasks/{id}"), None).await;
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "task",
            "comments",
            "events",
            "attachments",
            "links",
            "child_results",
            "runs",
            "parent_handoffs"
        ]
    );
    assert_eq!(v["task"]["latest_summary"], "did it");
    assert_eq!(v["comments"][0]["author"], "alice");
    assert_eq!(v["comments"][0]["body"], "**hi**");
    assert_eq!(v["events"][0]["kind"], "created");
    assert_eq!(v["attachments"][0]["filename"], "a.txt");
    assert_eq!(v["links"], json!({"parents": [], "children": [child]}));
    assert_eq!(v["child_results"][0]["id"], json!(child));
    assert_eq!(v["child_results"][0]["status"], "ready");
    let run = &v["runs"][0];
    for k in [
        "id",
        "task_id",
        "profile",
        "step_key",
        "status",
        "claim_lock",
        "claim_expires",
        "worker_pid",
        "max_runtime_seconds",
        "last_heartbeat_at",
        "started_at",
        "ended_at",
        "outcome",
        "summary",
        "metadata",
        "error",
    ] {
        assert!(run.get(k).is_some(), "run has {k}");
    }
    assert_eq!(run["outcome"], "completed");
    assert_eq!(run["metadata"], json!({"k": 1}));
    let v = s
        .ok(
            Method::GET,
            &format!("/api/tasks/{id}?run_state_type=outcome&run_state_name=crashed"),
            None,
        )
        .await;
    assert_eq!(v["runs"], json!([]));
    let v = s
        .ok(Method::GET, &format!("/api/tasks/{id}/runs"), None)
        .await;
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    s.expect(Method::GET, "/api/tasks/t_00000000", None, 404)
        .await;

    // Hard delete (any status), then 404.
    let v = s
        .ok(Method::DELETE, &format!("/api/tasks/{id}"), None)
        .await;
    assert_eq!(v, json!({"deleted": true, "task_id": id}));
    s.expect(Method::GET, &format!("/api/tasks/{id}"), None, 404)
        .await;
    s.expect(Method::DELETE, &format!("/api/tasks/{id}"), None, 404)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_status_moves_and_fields() {
    let s = start().await;
    let t = s.task("t");
    // REF §21.8: running → 400 with Hermes' words, review → unknown, done from todo → 409.
    let d = s
        .expect(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"status": "running"})),
            400,
        )
        .await;
    detail_has(&d, "Cannot set status to 'running' directly; ");
    // review goes through the kernel's request_review (UP §11): a ready task moves there with
    // a review_requested event; back to ready through reopen_review.
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"status": "review", "summary": "please check", "reviewer": "Reviewer"})),
        )
        .await;
    assert_eq!(v["task"]["status"], "review", "{v}");
    assert_eq!(v["task"]["assignee"], "reviewer", "{v}");
    assert!(
        s.board()
            .list_events(&t, None)
            .unwrap()
            .iter()
            .any(|e| e.kind == "review_requested")
    );
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"status": "ready", "reason": "needs a test"})),
        )
        .await;
    assert_eq!(v["task"]["status"], "ready", "{v}");
    assert_eq!(
        v["task"]["assignee"], "worker",
        "back to the implementer: {v}"
    );
    assert!(
        s.board()
            .list_events(&t, None)
            .unwrap()
            .iter()
            .any(|e| e.kind == "review_reopened")
    );
    s.expect(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"status": "bogus"})),
        400,
    )
    .await;
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"status": "todo"})),
        )
        .await;
    assert_eq!(v["task"]["status"], "todo");
    s.expect(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"status": "done", "summary": "x"})),
        409,
    )
    .await;
    s.expect(
        Method::PATCH,
        "/api/tasks/t_00000000",
        Some(json!({"status": "todo"})),
        404,
    )
    .await;
    // Fields.
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(
                json!({"title": "new title", "body": "new body", "priority": 7,
                "assignee": "reviewer"}),
            ),
        )
        .await;
    assert_eq!(v["task"]["title"], "new title");
    assert_eq!(v["task"]["body"], "new body");
    assert_eq!(v["task"]["priority"], 7);
    assert_eq!(v["task"]["assignee"], "reviewer");
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"assignee": ""})),
        )
        .await;
    assert_eq!(v["task"]["assignee"], Value::Null);
    detail_has(
        &s.expect(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"priority": 1.5})),
            400,
        )
        .await,
        "priority",
    );
    // ready (direct) → blocked (with reason) → ready (unblock) → scheduled → ready → done.
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"status": "ready"})),
    )
    .await;
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"status": "blocked", "block_reason": "need input"})),
        )
        .await;
    assert_eq!(v["task"]["status"], "blocked");
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"status": "ready"})),
        )
        .await;
    assert_eq!(v["task"]["status"], "ready");
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"status": "scheduled", "block_reason": "monday"})),
    )
    .await;
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"status": "ready"})),
    )
    .await;
    let b = s.board();
    b.claim_task(&t, None).unwrap();
    // Assigning a running task is refused (409); the claim stays.
    s.expect(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"assignee": "other"})),
        409,
    )
    .await;
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(
                json!({"status": "done", "result": "shipped", "summary": "shipped it",
                "metadata": {"n": 1}}),
            ),
        )
        .await;
    assert_eq!(v["task"]["status"], "done");
    assert_eq!(v["task"]["result"], "shipped");
    let runs = b.list_runs(&t, None).unwrap();
    assert_eq!(runs.last().unwrap().summary.as_deref(), Some("shipped it"));
    // A ready child of a done parent is demoted when the parent is reopened; moving the child
    // to ready names the undone parent (409).
    let c = s.child("child", &t);
    assert_eq!(b.get_task(&c).unwrap().status, Status::Ready);
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"status": "triage"})),
    )
    .await;
    assert_eq!(b.get_task(&c).unwrap().status, Status::Todo);
    let d = s
        .expect(
            Method::PATCH,
            &format!("/api/tasks/{c}"),
            Some(json!({"status": "ready"})),
            409,
        )
        .await;
    detail_has(&d, &t);
    // Archiving the parent satisfies the child (SPEC §3.3 fix 1).
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(json!({"status": "archived"})),
    )
    .await;
    assert_eq!(b.get_task(&c).unwrap().status, Status::Ready);
    assert!(b.check_invariants().unwrap().is_empty());
}

/// A PATCH is one transaction: when its status move is refused, the title, body, priority and
/// assignee it carried are not written either (and no event is added).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_with_a_refused_move_changes_nothing() {
    let s = start().await;
    let t = s.task("original");
    let b = s.board();
    b.set_status_direct(&t, Status::Todo).unwrap();
    let before = b.get_task(&t).unwrap();
    let events = b.list_events(&t, None).unwrap().len();
    // done from todo is refused (409) after the field steps ran inside the transaction.
    s.expect(
        Method::PATCH,
        &format!("/api/tasks/{t}"),
        Some(
            json!({"title": "renamed", "body": "new body", "priority": 9,
                    "assignee": "reviewer", "status": "done", "summary": "x"}),
        ),
        409,
    )
    .await;
    // A ready move of a child whose parent is not done is refused too.
    let c = s.child("child", &t);
    let child_before = b.get_task(&c).unwrap();
    let d = s
        .expect(
            Method::PATCH,
            &format!("/api/tasks/{c}"),
            Some(json!({"title": "child renamed", "status": "ready"})),
            409,
        )
        .await;
    detail_has(&d, &t);
    let after = b.get_task(&t).unwrap();
    assert_eq!(after.title, "original");
    assert_eq!(after.body, before.body);
    assert_eq!(after.priority, before.priority);
    assert_eq!(after.assignee.as_deref(), Some("worker"));
    assert_eq!(after.status, Status::Todo);
    assert_eq!(b.list_events(&t, None).unwrap().len(), events, "no event");
    let child_after = b.get_task(&c).unwrap();
    assert_eq!(child_after.title, "child");
    assert_eq!(child_after.status, child_before.status);
    // The same PATCH with a legal move applies every field at once.
    let v = s
        .ok(
            Method::PATCH,
            &format!("/api/tasks/{t}"),
            Some(json!({"title": "renamed", "priority": 9, "status": "triage"})),
        )
        .await;
    assert_eq!(v["task"]["title"], "renamed");
    assert_eq!(v["task"]["priority"], 9);
    assert_eq!(v["task"]["status"], "triage");
}

/// Bulk moves go through the kernel's one transition rule (`Board::move_task`): `ready` from
/// `blocked` unblocks, from `review` reopens the review, from `todo` with an undone parent is
/// refused naming the parent — and a refused item keeps the priority the bulk also set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_moves_use_the_same_transition_rule() {
    let s = start().await;
    let b = s.board();
    let blocked = s.task("blocked");
    let review = s.task("review");
    let parent = s.task("parent");
    let child = s.child("child", &parent);
    b.set_status_direct(&child, Status::Todo).unwrap();
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{blocked}"),
        Some(json!({"status": "blocked", "block_reason": "need input"})),
    )
    .await;
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{review}"),
        Some(json!({"status": "review", "summary": "check", "reviewer": "reviewer"})),
    )
    .await;
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [blocked, review, child], "status": "ready", "priority": 4})),
        )
        .await;
    let r = &v["results"];
    assert_eq!(r[0]["ok"], true, "{v}");
    assert_eq!(r[1]["ok"], true, "{v}");
    assert_eq!(r[2]["ok"], false, "{v}");
    assert!(
        r[2]["error"].as_str().unwrap_or_default().contains(&parent),
        "the refusal names the undone parent: {v}"
    );
    let kinds = |id: &str| -> Vec<String> {
        b.list_events(id, None)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    };
    assert_eq!(b.get_task(&blocked).unwrap().status, Status::Ready);
    assert!(kinds(&blocked).contains(&"unblocked".to_string()));
    assert_eq!(b.get_task(&review).unwrap().status, Status::Ready);
    assert_eq!(
        b.get_task(&review).unwrap().assignee.as_deref(),
        Some("worker")
    );
    assert!(kinds(&review).contains(&"review_reopened".to_string()));
    assert_eq!(b.get_task(&blocked).unwrap().priority, 4);
    let ch = b.get_task(&child).unwrap();
    assert_eq!(ch.status, Status::Todo);
    assert_eq!(ch.priority, 0, "a refused bulk item changes nothing");
    // The kernel entry point itself refuses `running` and picks the same moves.
    let e = b
        .move_task(&child, Status::Running, &Default::default())
        .unwrap_err();
    assert!(e.to_string().contains("running"), "{e}");
    let t = b
        .move_task(&parent, Status::Triage, &Default::default())
        .unwrap();
    assert_eq!(t.status, Status::Triage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_links_bulk() {
    let s = start().await;
    let a = s.task("a");
    let b_ = s.task("b");
    let v = s
        .ok(
            Method::POST,
            &format!("/api/tasks/{a}/comments"),
            Some(json!({"body": "first"})),
        )
        .await;
    assert_eq!(v["ok"], true);
    s.ok(
        Method::POST,
        &format!("/api/tasks/{a}/comments"),
        Some(json!({"body": "second", "author": "bob"})),
    )
    .await;
    let v = s
        .ok(Method::GET, &format!("/api/tasks/{a}/comments"), None)
        .await;
    assert_eq!(v["comments"][0]["author"], "dashboard");
    assert_eq!(v["comments"][1]["author"], "bob");
    s.expect(
        Method::POST,
        &format!("/api/tasks/{a}/comments"),
        Some(json!({"body": "  "})),
        400,
    )
    .await;
    s.expect(
        Method::POST,
        "/api/tasks/t_00000000/comments",
        Some(json!({"body": "x"})),
        404,
    )
    .await;

    // Links: add, self → 400, cycle → 400, unknown → 404, remove, remove again → 404.
    let v = s
        .ok(
            Method::POST,
            "/api/links",
            Some(json!({"parent_id": a, "child_id": b_})),
        )
        .await;
    assert_eq!(v["ok"], true);
    let board = s.board();
    assert_eq!(board.get_task(&b_).unwrap().status, Status::Todo);
    detail_has(
        &s.expect(
            Method::POST,
            "/api/links",
            Some(json!({"parent_id": b_, "child_id": a})),
            400,
        )
        .await,
        "cycle",
    );
    detail_has(
        &s.expect(
            Method::POST,
            "/api/links",
            Some(json!({"parent_id": a, "child_id": a})),
            400,
        )
        .await,
        "itself",
    );
    s.expect(
        Method::POST,
        "/api/links",
        Some(json!({"parent_id": a, "child_id": "t_00000000"})),
        404,
    )
    .await;
    s.expect(
        Method::POST,
        "/api/links",
        Some(json!({"parent_id": a})),
        400,
    )
    .await;
    let v = s
        .ok(
            Method::DELETE,
            &format!("/api/links?parent_id={a}&child_id={b_}"),
            None,
        )
        .await;
    assert_eq!(v["promoted"], json!([b_]));
    s.expect(
        Method::DELETE,
        &format!("/api/links?parent_id={a}&child_id={b_}"),
        None,
        404,
    )
    .await;

    // Bulk (REF §21.8): independent per id.
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [a, "t_nope"], "priority": 9})),
        )
        .await;
    assert_eq!(
        v,
        json!({"results": [{"id": a, "ok": true}, {"id": "t_nope", "ok": false, "error": "not \
                                                                                          found"}]})
    );
    assert_eq!(board.get_task(&a).unwrap().priority, 9);
    s.expect(
        Method::POST,
        "/api/tasks/bulk",
        Some(json!({"ids": []})),
        400,
    )
    .await;
    s.expect(
        Method::POST,
        "/api/tasks/bulk",
        Some(json!({"ids": [a], "status": "running"})),
        400,
    )
    .await;
    s.expect(
        Method::POST,
        "/api/tasks/bulk",
        Some(json!({"ids": [a]})),
        400,
    )
    .await;
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [a, b_], "status": "blocked"})),
        )
        .await;
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true)
    );
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [a, b_], "status": "done", "summary": "bulk"})),
        )
        .await;
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true),
        "{v}"
    );
    // done → done is refused per id, not for the request.
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [a], "status": "done", "summary": "again"})),
        )
        .await;
    assert_eq!(v["results"][0]["ok"], false);
    assert!(
        v["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("complete")
    );
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [a, b_], "archive": true})),
        )
        .await;
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true)
    );
    assert_eq!(board.get_task(&a).unwrap().status, Status::Archived);
    let c = s.task("c");
    let v = s
        .ok(
            Method::POST,
            "/api/tasks/bulk",
            Some(json!({"ids": [c], "assignee": ""})),
        )
        .await;
    assert_eq!(v["results"][0]["ok"], true);
    assert_eq!(board.get_task(&c).unwrap().assignee, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_runs_reclaim_reassign() {
    let s = start().await;
    let t = s.task("t");
    let b = s.board();
    let v = s.ok(Method::GET, "/api/workers/active", None).await;
    assert_eq!(v["count"], 0);
    assert!(v["checked_at"].is_i64());
    s.expect(Method::POST, &format!("/api/tasks/{t}/reclaim"), None, 409)
        .await;
    let claim = b.claim_task(&t, None).unwrap();
    // A pid that is certainly not ours to signal: the lock is not host-local.
    b.set_worker_pid(&t, claim.run_id, 999_999).unwrap();
    let v = s.ok(Method::GET, "/api/workers/active", None).await;
    assert_eq!(v["count"], 1);
    let w = &v["workers"][0];
    assert_eq!(w["run_id"], claim.run_id);
    assert_eq!(w["task_id"], json!(t));
    assert_eq!(w["task_title"], "t");
    assert_eq!(w["task_status"], "running");
    assert_eq!(w["worker_pid"], 999_999);
    let v = s
        .ok(Method::GET, &format!("/api/runs/{}", claim.run_id), None)
        .await;
    assert_eq!(v["run"]["task_id"], json!(t));
    s.expect(Method::GET, "/api/runs/424242", None, 404).await;
    s.expect(Method::GET, "/api/runs/abc", None, 400).await;

    // reassign while running: 409 without reclaim_first, ok with it.
    s.expect(
        Method::POST,
        &format!("/api/tasks/{t}/reassign"),
        Some(json!({"profile": "reviewer"})),
        409,
    )
    .await;
    let v = s
        .ok(
            Method::POST,
            &format!("/api/tasks/{t}/reassign"),
            Some(json!({"profile": "reviewer", "reclaim_first": true, "reason": "switch"})),
        )
        .await;
    assert_eq!(v, json!({"ok": true, "task_id": t, "assignee": "reviewer"}));
    let task = b.get_task(&t).unwrap();
    assert_eq!(task.status, Status::Ready);
    assert_eq!(
        b.get_run(claim.run_id).unwrap().outcome.as_deref(),
        Some("reclaimed")
    );
    // terminate an ended run → 409; an active one → reclaimed.
    s.expect(
        Method::POST,
        &format!("/api/runs/{}/terminate", claim.run_id),
        None,
        409,
    )
    .await;
    let c2 = b.claim_task(&t, None).unwrap();
    let v = s
        .ok(
            Method::POST,
            &format!("/api/runs/{}/terminate", c2.run_id),
            Some(json!({"reason": "stop"})),
        )
        .await;
    assert_eq!(v["ok"], true);
    assert_eq!(b.get_task(&t).unwrap().status, Status::Ready);
    // reclaim a running task.
    b.claim_task(&t, None).unwrap();
    let v = s
        .ok(
            Method::POST,
            &format!("/api/tasks/{t}/reclaim"),
            Some(json!({"reason": "manual"})),
        )
        .await;
    assert_eq!(v, json!({"ok": true, "task_id": t}));
    assert_eq!(b.get_task(&t).unwrap().status, Status::Ready);
    s.expect(Method::POST, "/api/tasks/t_00000000/reclaim", None, 404)
        .await;
    assert!(b.check_invariants().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_assignees_log() {
    let s = start().await;
    let t = s.task("t");
    let v = s.ok(Method::GET, "/api/stats", None).await;
    assert_eq!(v["by_status"], json!({"ready": 1}));
    assert_eq!(v["by_assignee"], json!({"worker": {"ready": 1}}));
    let v = s.ok(Method::GET, "/api/assignees", None).await;
    let names: Vec<&str> = v["assignees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "worker"]);

    let v = s
        .ok(Method::GET, &format!("/api/tasks/{t}/log"), None)
        .await;
    assert_eq!(v["exists"], false);
    assert_eq!(v["content"], "");
    let path = s.board().paths().log_file(&t);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "line one\nline two\nline three\n").unwrap();
    let v = s
        .ok(Method::GET, &format!("/api/tasks/{t}/log"), None)
        .await;
    assert_eq!(v["exists"], true);
    assert_eq!(v["size_bytes"], 29);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["content"], "line one\nline two\nline three\n");
    let v = s
        .ok(Method::GET, &format!("/api/tasks/{t}/log?tail=11"), None)
        .await;
    assert_eq!(v["truncated"], true);
    assert_eq!(v["content"], "line three\n");
    s.expect(
        Method::GET,
        &format!("/api/tasks/{t}/log?tail=0"),
        None,
        400,
    )
    .await;
    s.expect(Method::GET, "/api/tasks/t_00000000/log", None, 404)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_without_and_with_a_hook() {
    let s = start().await;
    let d = s.expect(Method::POST, "/api/dispatch", None, 503).await;
    detail_has(&d, "no dispatcher");
    drop(s);

    let seen: Arc<Mutex<Vec<DispatchRequest>>> = Arc::default();
    let log = seen.clone();
    let hook: DispatchHook = Arc::new(move |req: DispatchRequest| {
        log.lock().unwrap().push(req.clone());
        if req.max == 13 {
            return Err("breaker says no".into());
        }
        Ok(json!({"spawned": [], "dry_run": req.dry_run, "board": req.board}))
    });
    let s = start_with(config(None, Some(hook))).await;
    let v = s
        .ok(Method::POST, "/api/dispatch?dry_run=true&max=3", None)
        .await;
    assert_eq!(
        v,
        json!({"spawned": [], "dry_run": true, "board": "default"})
    );
    s.ok(Method::POST, "/api/dispatch", None).await;
    let d = s
        .expect(Method::POST, "/api/dispatch?max=13", None, 500)
        .await;
    detail_has(&d, "breaker says no");
    s.expect(Method::POST, "/api/dispatch?max=-1", None, 400)
        .await;
    s.expect(Method::POST, "/api/dispatch?board=nope", None, 404)
        .await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got[..2],
        [
            DispatchRequest {
                board: "default".into(),
                dry_run: true,
                max: 3
            },
            DispatchRequest {
                board: "default".into(),
                dry_run: false,
                max: 8
            }
        ]
    );
    // A ready, assigned task created with a dispatcher attached carries no warning.
    let v = s
        .ok(
            Method::POST,
            "/api/tasks",
            Some(json!({"title": "x", "assignee": "default"})),
        )
        .await;
    assert!(v.get("warning").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boards_crud_and_switch() {
    let s = start().await;
    s.task("on default");
    let v = s.ok(Method::GET, "/api/boards", None).await;
    assert_eq!(v["current"], "default");
    assert_eq!(v["boards"][0]["slug"], "default");
    assert_eq!(v["boards"][0]["is_current"], true);
    assert_eq!(v["boards"][0]["total"], 1);
    assert_eq!(v["boards"][0]["counts"], json!({"ready": 1}));
    assert_eq!(v["boards"][0]["default_workspace_kind"], "scratch");

    let dir = s.dir.path().to_string_lossy().into_owned();
    let v = s
        .ok(
            Method::POST,
            "/api/boards",
            Some(json!({"slug": "lab", "name": "Lab", "icon": "L", "default_workdir": dir})),
        )
        .await;
    assert_eq!(v["board"]["slug"], "lab");
    assert_eq!(v["current"], "default");
    s.expect(
        Method::POST,
        "/api/boards",
        Some(json!({"slug": "lab"})),
        409,
    )
    .await;
    s.expect(
        Method::POST,
        "/api/boards",
        Some(json!({"slug": "../etc"})),
        400,
    )
    .await;
    detail_has(
        &s.expect(
            Method::POST,
            "/api/boards",
            Some(json!({"slug": "lab2", "default_workdir": "/no/such/dir"})),
            400,
        )
        .await,
        "default_workdir",
    );
    // Work on the new board with ?board=.
    let v = s
        .ok(
            Method::POST,
            "/api/tasks?board=lab",
            Some(json!({"title": "on lab"})),
        )
        .await;
    let lab_task = v["task"]["id"].as_str().unwrap().to_string();
    s.ok(
        Method::GET,
        &format!("/api/tasks/{lab_task}?board=lab"),
        None,
    )
    .await;
    s.expect(Method::GET, &format!("/api/tasks/{lab_task}"), None, 404)
        .await;
    let v = s
        .ok(
            Method::PATCH,
            "/api/boards/lab",
            Some(json!({"description": "experiments", "default_workdir": ""})),
        )
        .await;
    assert_eq!(v["board"]["description"], "experiments");
    assert_eq!(v["board"]["default_workdir"], Value::Null);
    s.expect(
        Method::PATCH,
        "/api/boards/nope",
        Some(json!({"name": "x"})),
        404,
    )
    .await;
    let v = s.ok(Method::POST, "/api/boards/lab/switch", None).await;
    assert_eq!(v, json!({"current": "lab"}));
    let v = s.ok(Method::GET, "/api/board", None).await;
    assert_eq!(v["columns"][3]["tasks"][0]["id"], json!(lab_task));
    s.expect(Method::POST, "/api/boards/nope/switch", None, 404)
        .await;
    let v = s.ok(Method::DELETE, "/api/boards/lab", None).await;
    assert_eq!(v["result"]["archived"], true);
    assert_eq!(v["current"], "default");
    s.expect(Method::GET, "/api/board?board=lab", None, 404)
        .await;
    s.expect(Method::DELETE, "/api/boards/default", None, 409)
        .await;
    // Hard delete.
    s.ok(Method::POST, "/api/boards", Some(json!({"slug": "tmp"})))
        .await;
    let v = s
        .ok(Method::DELETE, "/api/boards/tmp?delete=true", None)
        .await;
    assert_eq!(v["result"]["deleted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_upload_download_delete() {
    let s = start().await;
    let t = s.task("t");
    // Raw body.
    let r = s
        .http
        .post(s.url(&format!("/api/tasks/{t}/attachments?filename=notes.txt")))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let aid = v["attachment"]["id"].as_i64().unwrap();
    assert_eq!(v["attachment"]["filename"], "notes.txt");
    assert_eq!(v["attachment"]["uploaded_by"], "dashboard");
    // Multipart, same name → collision suffix; a browser path keeps only its leaf.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"<script>alert(1)</script>".to_vec())
                .file_name("C:\\fakepath\\notes.txt")
                .mime_str("text/html")
                .unwrap(),
        )
        .text("uploaded_by", "alice");
    let r = s
        .http
        .post(s.url(&format!("/api/tasks/{t}/attachments")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let aid2 = v["attachment"]["id"].as_i64().unwrap();
    assert_eq!(v["attachment"]["filename"], "notes (1).txt");
    assert_eq!(v["attachment"]["uploaded_by"], "alice");
    let v = s
        .ok(Method::GET, &format!("/api/tasks/{t}/attachments"), None)
        .await;
    assert_eq!(v["attachments"].as_array().unwrap().len(), 2);
    // Download: always a download, never rendered.
    let r = s
        .http
        .get(s.url(&format!("/api/attachments/{aid2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"notes (1).txt\"")
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), "<script>alert(1)</script>");
    // Bad names, unknown task, missing name, oversize.
    s.expect(
        Method::POST,
        &format!("/api/tasks/{t}/attachments?filename=.hidden"),
        None,
        400,
    )
    .await;
    let r = s
        .http
        .post(s.url("/api/tasks/t_00000000/attachments?filename=a.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .post(s.url(&format!("/api/tasks/{t}/attachments")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = vec![b'a'; (25 << 20) + 1];
    let r = s
        .http
        .post(s.url(&format!("/api/tasks/{t}/attachments?filename=big.bin")))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let huge = vec![b'a'; 27 << 20];
    let r = s
        .http
        .post(s.url(&format!("/api/tasks/{t}/attachments?filename=big.bin")))
        .body(huge)
        .send()
        .await;
    // The server refuses past its body limit (413), possibly before reading everything.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    // A row whose stored path escapes the attachment root is never served.
    let outside = s.dir.path().join("secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    {
        let c = rusqlite::Connection::open(s.board().paths().db.clone()).unwrap();
        c.execute(
            "UPDATE task_attachments SET stored_path=?1 WHERE id=?2",
            rusqlite::params![outside.to_string_lossy(), aid],
        )
        .unwrap();
    }
    let d = s
        .expect(Method::GET, &format!("/api/attachments/{aid}"), None, 404)
        .await;
    detail_has(&d, "outside");
    s.expect(Method::GET, "/api/attachments/9999", None, 404)
        .await;
    s.expect(Method::GET, "/api/attachments/..%2Fx", None, 404)
        .await;
    let v = s
        .ok(Method::DELETE, &format!("/api/attachments/{aid2}"), None)
        .await;
    assert_eq!(v, json!({"ok": true, "id": aid2}));
    s.expect(
        Method::DELETE,
        &format!("/api/attachments/{aid2}"),
        None,
        404,
    )
    .await;
    assert!(outside.exists(), "a file outside the root is never deleted");
}

/// Read SSE frames until `n` messages with an `id:` arrived (or time out).
async fn sse_frames(
    resp: reqwest::Response,
    n: usize,
) -> Vec<(Option<String>, Option<String>, String)> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out
        .iter()
        .filter(|f: &&(Option<String>, Option<String>, String)| f.0.is_some())
        .count()
        < n
    {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("SSE frames in time")
            .expect("stream open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            let (mut id, mut ev, mut data) = (None, None, String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("event:") {
                    ev = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if id.is_some() || ev.is_some() || !data.is_empty() {
                out.push((id, ev, data));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_and_resumes_from_an_event_id() {
    let s = start().await;
    let a = s.task("a");
    let first = s.board().max_event_id().unwrap();
    // Live: starts at the newest event; later events arrive with their ids.
    let live = s.http.get(s.url("/api/events")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let b = s.board();
    b.add_comment(&a, "me", "hello").unwrap();
    let bb = s.task("b");
    let frames = sse_frames(live, 2).await;
    assert_eq!(frames[0].1.as_deref(), Some("hello"));
    let hello: Value = serde_json::from_str(&frames[0].2).unwrap();
    assert_eq!(hello["cursor"], first);
    let evs: Vec<Value> = frames
        .iter()
        .filter(|f| f.0.is_some())
        .map(|f| serde_json::from_str(&f.2).unwrap())
        .collect();
    assert_eq!(evs[0]["kind"], "commented");
    assert_eq!(evs[0]["task_id"], json!(a));
    assert_eq!(evs[1]["kind"], "created");
    assert_eq!(evs[1]["task_id"], json!(bb));
    let ids: Vec<i64> = frames
        .iter()
        .filter_map(|f| f.0.as_ref())
        .map(|i| i.parse().unwrap())
        .collect();
    assert_eq!(ids, vec![first + 1, first + 2]);
    assert_eq!(evs[0]["id"], first + 1);

    // Resume with Last-Event-ID: only what came after it.
    let r = s
        .http
        .get(s.url("/api/events"))
        .header("Last-Event-ID", first.to_string())
        .send()
        .await
        .unwrap();
    let frames = sse_frames(r, 2).await;
    let ids: Vec<&str> = frames.iter().filter_map(|f| f.0.as_deref()).collect();
    assert_eq!(ids, [(first + 1).to_string(), (first + 2).to_string()]);
    // Resume with ?since=0: the whole log in order.
    let r = s
        .http
        .get(s.url("/api/events?since=0"))
        .send()
        .await
        .unwrap();
    let frames = sse_frames(r, 3).await;
    let ids: Vec<i64> = frames
        .iter()
        .filter_map(|f| f.0.as_ref())
        .map(|i| i.parse().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    s.expect(Method::GET, "/api/events?since=abc", None, 400)
        .await;
    s.expect(Method::GET, "/api/events?board=nope", None, 404)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_origin_checks() {
    let s = start().await;
    let t = s.task("t");
    let get = |host: Option<&str>, origin: Option<&str>| {
        let mut rq = s.http.get(s.url("/api/board"));
        if let Some(h) = host {
            rq = rq.header("Host", h);
        }
        if let Some(o) = origin {
            rq = rq.header("Origin", o);
        }
        rq.send()
    };
    assert_eq!(get(None, None).await.unwrap().status(), 200);
    let port = s.addr.port();
    for ok in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "LOCALHOST".to_string(),
    ] {
        assert_eq!(get(Some(&ok), None).await.unwrap().status(), 200, "{ok}");
    }
    // DNS rebinding: a foreign Host is refused on every route, the page included.
    for bad in [
        "evil.example",
        "evil.example:9120",
        "127.0.0.1.evil.example",
    ] {
        let r = get(Some(bad), None).await.unwrap();
        assert_eq!(r.status(), 403, "{bad}");
        let r = s
            .http
            .get(s.url("/"))
            .header("Host", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    // A foreign Origin is refused even for reads.
    assert_eq!(
        get(None, Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(get(None, Some("null")).await.unwrap().status(), 403);
    let same = format!("http://127.0.0.1:{port}");
    assert_eq!(get(None, Some(&same)).await.unwrap().status(), 200);

    // Mutations must be same-origin.
    let patch = |origin: Option<&str>, site: Option<&str>| {
        let mut rq = s
            .http
            .patch(s.url(&format!("/api/tasks/{t}")))
            .json(&json!({"priority": 3}));
        if let Some(o) = origin {
            rq = rq.header("Origin", o);
        }
        if let Some(x) = site {
            rq = rq.header("Sec-Fetch-Site", x);
        }
        rq.send()
    };
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    assert_eq!(
        patch(Some(&other_port), None).await.unwrap().status(),
        403,
        "another local origin (other port) cannot mutate"
    );
    assert_eq!(
        patch(Some("http://localhost:1"), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(patch(None, Some("cross-site")).await.unwrap().status(), 403);
    assert_eq!(patch(None, Some("same-site")).await.unwrap().status(), 403);
    assert_eq!(
        s.board().get_task(&t).unwrap().priority,
        0,
        "nothing changed"
    );
    assert_eq!(
        patch(Some(&same), Some("same-origin"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        patch(None, None).await.unwrap().status(),
        200,
        "curl-like clients"
    );
    // Security headers.
    let r = get(None, None).await.unwrap();
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_required_on_every_route_when_configured() {
    let s = start_with(config(Some("s3cret-token"), None)).await;
    s.task("t");
    let status = |path: &str, auth: Option<&str>| {
        let mut rq = s.http.get(s.url(path));
        if let Some(a) = auth {
            rq = rq.header("Authorization", a);
        }
        rq.send()
    };
    for path in [
        "/api/board",
        "/api/stats",
        "/api/events",
        "/",
        "/assets/app.js",
    ] {
        let r = status(path, None).await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        assert_eq!(
            status(path, Some("Bearer wrong")).await.unwrap().status(),
            401,
            "{path} with a wrong token"
        );
    }
    let r = status("/", None).await.unwrap();
    assert!(r.text().await.unwrap().contains("token"));
    assert_eq!(
        status("/api/board", Some("Bearer s3cret-token"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        status("/api/board?token=s3cret-token", None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(status("/healthz", None).await.unwrap().status(), 200);
    // Browser flow: /?token= sets an HttpOnly SameSite=Strict cookie (holding a digest, not
    // the token) and redirects to a URL without the token.
    let r = status("/?token=s3cret-token&board=default", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?board=default");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("s3cret-token"));
    let pair = cookie.split(';').next().unwrap().to_string();
    for path in ["/", "/api/board", "/assets/app.js"] {
        let r = s
            .http
            .get(s.url(path))
            .header("Cookie", &pair)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with the cookie");
    }
    let r = s
        .http
        .get(s.url("/api/board"))
        .header("Cookie", "hk_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Mutations with the token still need to be same-origin when a browser sends an Origin.
    let r = s
        .http
        .post(s.url("/api/tasks"))
        .header("Cookie", &pair)
        .header("Origin", "http://evil.example")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_page_and_assets_are_served() {
    let s = start().await;
    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("/assets/app.js") && !html.contains("<script>"));
    for (path, ctype) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/md.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ctype)
        );
    }
    let r = s
        .http
        .get(s.url("/assets/..%2Fsrc%2Fmain.rs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // No third-party origins anywhere in the page's code.
    let js = s
        .http
        .get(s.url("/assets/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!js.contains("innerHTML"), "the dashboard never parses HTML");
    assert!(!html.contains("https://") && !js.contains("cdn"));
}

/// What the dashboard's drawer and cards need (issue 12): a child's detail carries its
/// parents' hand-offs; cards carry `status_since`; Complete takes metadata (an object, else a
/// 400 naming it) and Block a kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drawer_handoffs_status_since_complete_metadata_and_block_kind() {
    let s = start().await;
    let p = s.task("Schema");
    s.board()
        .complete_task(Completion {
            task_id: p.clone(),
            summary: Some("4 tables".into()),
            metadata: Some(json!({"tables": 4})),
            ..Default::default()
        })
        .unwrap();
    let c = s.child("API", &p);
    let d = s.ok(Method::GET, &format!("/api/tasks/{c}"), None).await;
    let h = &d["parent_handoffs"];
    assert_eq!(h.as_array().unwrap().len(), 1, "{d}");
    assert_eq!(h[0]["id"], p.as_str());
    assert_eq!(h[0]["summary"], "4 tables");
    assert_eq!(h[0]["metadata"], json!({"tables": 4}));
    let d = s.ok(Method::GET, &format!("/api/tasks/{p}"), None).await;
    assert_eq!(d["parent_handoffs"], json!([]));

    let plain = s.ok(Method::GET, "/api/board?compact=1", None).await;
    assert!(
        plain["columns"][0]["tasks"][0]
            .get("status_since")
            .is_none()
    );
    let board = s
        .ok(Method::GET, "/api/board?compact=1&status_since=1", None)
        .await;
    let cards: Vec<&Value> = board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|col| col["tasks"].as_array().unwrap())
        .collect();
    for card in &cards {
        assert!(card["status_since"].as_i64().unwrap() >= card["created_at"].as_i64().unwrap());
    }

    // Complete: metadata must be an object.
    let d = s
        .expect(
            Method::PATCH,
            &format!("/api/tasks/{c}"),
            Some(json!({"status": "done", "summary": "x", "metadata": [1, 2]})),
            400,
        )
        .await;
    detail_has(&d, "metadata");
    assert_eq!(s.board().get_task(&c).unwrap().status, Status::Ready);
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{c}"),
        Some(json!({"status": "done", "summary": "API up", "metadata": {"endpoints": 7}})),
    )
    .await;
    let runs = s.board().list_runs(&c, None).unwrap();
    let last = runs.last().unwrap();
    assert_eq!(last.summary.as_deref(), Some("API up"));
    assert_eq!(last.metadata, Some(json!({"endpoints": 7})));

    // Block with a kind; an unknown kind is a 400 that lists the kinds.
    let b = s.task("Needs a key");
    let d = s
        .expect(
            Method::PATCH,
            &format!("/api/tasks/{b}"),
            Some(json!({"status": "blocked", "block_reason": "key?", "block_kind": "later"})),
            400,
        )
        .await;
    detail_has(&d, "block_kind");
    detail_has(&d, "needs_input");
    assert_eq!(s.board().get_task(&b).unwrap().status, Status::Ready);
    s.ok(
        Method::PATCH,
        &format!("/api/tasks/{b}"),
        Some(json!({"status": "blocked", "block_reason": "key?", "block_kind": "needs_input"})),
    )
    .await;
    let t = s.board().get_task(&b).unwrap();
    assert_eq!(t.status, Status::Blocked);
    assert_eq!(t.block_kind.as_deref(), Some("needs_input"));
}
