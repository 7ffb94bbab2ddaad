//! Attachments kept in the database (`kanban.attachments: database`, what a server database
//! always does), through the REST API: upload, list, download and delete round-trip with no
//! file under the board's attachment root, so any host sharing the board can serve them.

use reqwest::Method;
use serde_json::json;

use crate::helpers::server::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_in_the_database_round_trip_through_rest() {
    // It switches `kanban.attachments` from files to the database; PostgreSQL boards always
    // keep attachments in the database (the REST round trip there is in mcp:: and web::api).
    sqlite_only!("starts from attachments kept as files");
    let s = start().await;
    let t = s.task("t");
    // Before the setting: a file under the attachment root, as today.
    let r = s
        .http
        .post(s.url(&format!("/api/tasks/{t}/attachments?filename=old.txt")))
        .body("on disk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let old: serde_json::Value = r.json().await.unwrap();
    let old_id = old["attachment"]["id"].as_i64().unwrap();
    assert!(!s.board().attachments_in_db());
    std::fs::write(
        s.dir.path().join("hermes").join("config.yaml"),
        "kanban:\n  attachments: database\n",
    )
    .unwrap();
    assert!(s.board().attachments_in_db());
    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let upload = |name: &'static str, body: Vec<u8>| {
        let rq = s
            .http
            .post(s.url(&format!("/api/tasks/{t}/attachments?filename={name}")))
            .header("content-type", "application/octet-stream")
            .body(body);
        async move {
            let r = rq.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()["attachment"].clone()
        }
    };
    let a = upload("data.bin", content.clone()).await;
    let aid = a["id"].as_i64().unwrap();
    assert_eq!(a["size"], json!(content.len()));
    assert_eq!(a["stored_path"], json!(format!("db:{aid}")));
    // The same name on the task gets the collision suffix, as a file would.
    let twin = upload("data.bin", b"twin".to_vec()).await;
    assert_eq!(twin["filename"], "data (1).bin");
    let dir = s.board().paths().attachments.join(&t);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        vec!["old.txt".to_string()],
        "a blob was written as a file"
    );
    let v = s
        .ok(Method::GET, &format!("/api/tasks/{t}/attachments"), None)
        .await;
    assert_eq!(v["attachments"].as_array().unwrap().len(), 3);
    let download = |id: i64| {
        let rq = s.http.get(s.url(&format!("/api/attachments/{id}")));
        async move {
            let r = rq.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        }
    };
    assert_eq!(download(aid).await, content, "the bytes came back changed");
    assert_eq!(
        download(old_id).await,
        b"on disk",
        "a file attachment after the switch"
    );
    // Delete: the row and its blob go in one transaction; the twin stays.
    let v = s
        .ok(Method::DELETE, &format!("/api/attachments/{aid}"), None)
        .await;
    assert_eq!(v, json!({"ok": true, "id": aid}));
    s.expect(Method::GET, &format!("/api/attachments/{aid}"), None, 404)
        .await;
    let b = s.board();
    let left: Vec<String> = b
        .list_attachments(&t)
        .unwrap()
        .into_iter()
        .map(|a| a.filename)
        .collect();
    assert_eq!(left, ["old.txt", "data (1).bin"]);
    let blobs = || -> i64 {
        let c = rusqlite::Connection::open(b.paths().db.clone()).unwrap();
        c.query_row("SELECT count(*) FROM kanban_attachment_blobs", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(blobs(), 1, "the deleted attachment's blob is still stored");
    // Deleting the task takes its remaining blob along.
    b.delete_task(&t).unwrap();
    assert_eq!(blobs(), 0);
    // Over the cap is refused in the database too.
    let t2 = s.task("t2");
    let r = s
        .http
        .post(s.url(&format!("/api/tasks/{t2}/attachments?filename=big.bin")))
        .body(vec![b'a'; (25 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
