//! Unit tests of the home handle: one shared handle per board, nothing created by lookups,
//! replaced files reopened, URL choice and redaction.
use super::*;

fn home() -> (tempfile::TempDir, Env) {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::empty()
        .with("HERMES_HOME", dir.path().to_string_lossy())
        .with("HOME", dir.path().to_string_lossy());
    (dir, env)
}

#[test]
fn board_twice_is_one_handle_and_one_connection() {
    let (_d, env) = home();
    let k = Kanban::open(&env, None).unwrap();
    let (a, created) = k.board_or_create(None).unwrap();
    assert!(created);
    let b = k.board(Some("default")).unwrap();
    assert!(a.same(&b), "the second lookup must reuse the open board");
    let clone = k.clone();
    assert!(
        clone.board(None).unwrap().same(&a),
        "clones share the cache"
    );
    assert_eq!(k.open_boards(), vec!["default".to_string()]);
    // A write through one is visible through the other: the same connection.
    let new = crate::kernel::NewTask {
        title: "x".into(),
        ..Default::default()
    };
    let id = a.lock().create_task(new).unwrap().task.id;
    assert_eq!(b.lock().get_task(&id).unwrap().title, "x");
}

#[test]
fn a_missing_database_is_never_created_by_board() {
    let (d, env) = home();
    let k = Kanban::sqlite(env);
    let e = k.board(None).unwrap_err();
    assert!(matches!(e, KernelError::NoDatabase { .. }), "{e}");
    assert!(!d.path().join("kanban.db").exists());
    assert!(k.open_boards().is_empty());
    let e = k.board(Some("nope")).unwrap_err();
    assert!(matches!(e, KernelError::BoardNotFound(_)), "{e}");
}

#[test]
fn a_replaced_database_file_is_reopened() {
    let (d, env) = home();
    let k = Kanban::sqlite(env);
    let (a, _) = k.board_or_create(None).unwrap();
    let db = d.path().join("kanban.db");
    drop(a);
    std::fs::rename(&db, d.path().join("old.db")).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(d.path().join(format!("kanban.db{ext}")));
    }
    let e = k.board(None).unwrap_err();
    assert!(matches!(e, KernelError::NoDatabase { .. }), "{e}");
    let (b, created) = k.board_or_create(None).unwrap();
    assert!(
        created,
        "the removed file is recreated, not the old handle reused"
    );
    assert!(b.lock().list_tasks(&Default::default()).unwrap().is_empty());
}

#[test]
fn a_postgres_url_picks_postgres_and_other_urls_are_refused_without_passwords() {
    let (d, env) = home();
    for (url, env) in [
        (Some("postgres://kb:s3cret@db.example/kanban"), env.clone()),
        (
            None,
            env.clone().with(
                DATABASE_URL_VAR,
                "postgresql://kb:s3cret@db.example/kanban?sslmode=disable",
            ),
        ),
    ] {
        // Opening connects nothing: the backend is chosen, the URL kept for children.
        let k = Kanban::open(&env, url).unwrap();
        let Backend::Postgres { url: shown } = k.backend() else {
            panic!("{:?}", k.backend())
        };
        assert!(shown.contains("kb:***@db.example") && !shown.contains("s3cret"));
        assert!(k.env().get(DATABASE_URL_VAR).unwrap().contains("s3cret"));
        assert!(!format!("{k:?}").contains("s3cret"));
    }
    std::fs::write(
        d.path().join("config.yaml"),
        "kanban:\n  database_url: 'mysql://u:s3cret@db/k'\n",
    )
    .unwrap();
    let e = Kanban::open(&env, None).unwrap_err().to_string();
    assert!(
        e.contains("kanban.database_url") && e.contains("mysql") && !e.contains("s3cret"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    // Nothing set: the SQLite home.
    std::fs::write(d.path().join("config.yaml"), "kanban:\n  max_spawn: 2\n").unwrap();
    let k = Kanban::open(&env, None).unwrap();
    assert_eq!(
        k.backend(),
        &Backend::Sqlite {
            home: d.path().to_path_buf()
        }
    );
}

#[test]
fn redaction_hides_every_password_form() {
    assert_eq!(
        redact_url("postgres://u:p@h:5432/d"),
        "postgres://u:***@h:5432/d"
    );
    assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
    assert_eq!(
        redact_url("postgres://h/d?user=u&password=p&x=1"),
        "postgres://h/d?user=u&password=***&x=1"
    );
    assert_eq!(
        redact_url("host=h password=p db=d"),
        "host=h password=*** db=d"
    );
}
