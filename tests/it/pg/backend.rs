//! The PostgreSQL backend through the real binary (issue 15's interface): `init` creates and
//! migrates idempotently with the migrations recorded in the database; the `--json` of the
//! task verbs has the same shape on PostgreSQL as on SQLite; a password in the URL reaches no
//! argv, event, log or error; two boards in one database are isolated. PostgreSQL-only: each
//! test returns early without `HK_TEST_DATABASE_URL` (scripts/test sets it).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::helpers::Cli;
use hermes_kanban::kernel::{Board, Status};
use serde_json::Value;

const HK: &str = env!("CARGO_BIN_EXE_hermes-kanban");

/// The fixture's database URL.
fn url(cli: &Cli) -> String {
    cli.env()
        .get("HERMES_KANBAN_DATABASE_URL")
        .expect("a PostgreSQL fixture")
        .to_string()
}

#[test]
fn init_twice_is_idempotent_and_records_its_migrations_in_the_database() {
    postgres_only!("init on a PostgreSQL database");
    let cli = Cli::new();
    let first = cli.run(&["init"]);
    first.code(0);
    assert!(
        first.stdout.contains("(schema board_default)") && !first.stdout.contains("kanban.db"),
        "{}",
        first.stdout
    );
    let b = cli.board();
    let version = b.schema_version().unwrap();
    assert!(version >= 1, "schema_migrations records the applied files");
    let tables = b.table_names().unwrap();
    for t in [
        "tasks",
        "task_runs",
        "task_events",
        "task_links",
        "schema_migrations",
    ] {
        assert!(tables.iter().any(|n| n == t), "{t} missing from {tables:?}");
    }
    let id = cli.create("survives a second init", &[]);
    let second = cli.run(&["init"]);
    second.code(0);
    assert_eq!(first.stdout.lines().next(), second.stdout.lines().next());
    assert_eq!(cli.board().schema_version().unwrap(), version);
    assert_eq!(
        cli.board().get_task(&id).unwrap().title,
        "survives a second init"
    );
    assert!(!cli.db().exists(), "nothing is written to a SQLite file");
}

/// The shape of a JSON value: object keys with the shapes of their values, the shape of an
/// array's first element, the kind of a scalar.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
    }
}

/// The `--json` of one scripted session (create, comment, claim, complete, show, list, stats,
/// runs), as shapes.
fn session_shapes(cli: &Cli, env: &[(&str, &str)]) -> Vec<(String, Value)> {
    let json = |args: &[&str]| -> Value {
        let r = cli.run_env(args, env);
        r.code(0);
        r.json()
    };
    let parent = json(&["create", "parent", "--json"]);
    let pid = parent["id"].as_str().unwrap().to_string();
    let child = json(&["create", "child", "--parent", &pid, "--json"]);
    let cid = child["id"].as_str().unwrap().to_string();
    cli.run_env(&["comment", &pid, "a note"], env).code(0);
    cli.run_env(&["claim", &pid], env).code(0);
    cli.run_env(&["complete", &pid, "--summary", "done"], env)
        .code(0);
    vec![
        ("create".into(), shape(&parent)),
        ("create --parent".into(), shape(&child)),
        ("show done".into(), shape(&json(&["show", &pid, "--json"]))),
        (
            "show promoted".into(),
            shape(&json(&["show", &cid, "--json"])),
        ),
        ("list".into(), shape(&json(&["list", "--json"]))),
        ("stats".into(), shape(&json(&["stats", "--json"]))),
        ("runs".into(), shape(&json(&["runs", &pid, "--json"]))),
    ]
}

#[test]
fn the_json_of_the_task_verbs_has_the_same_shape_on_postgresql_and_sqlite() {
    postgres_only!("compares the two backends");
    let pg = Cli::new();
    let sqlite = Cli::new();
    let on_pg = session_shapes(&pg, &[]);
    // A blank URL is no URL: the SQLite board under this Cli's HERMES_HOME.
    let on_sqlite = session_shapes(&sqlite, &[("HERMES_KANBAN_DATABASE_URL", "")]);
    assert!(sqlite.db().exists() && !pg.db().exists());
    for ((verb, a), (_, b)) in on_pg.iter().zip(&on_sqlite) {
        assert_eq!(
            a, b,
            "`{verb} --json` differs between PostgreSQL and SQLite"
        );
    }
    // The child was promoted by the parent's completion on both.
    let b = pg.board();
    let ready: Vec<_> = b
        .list_tasks(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|t| t.status == Status::Ready)
        .collect();
    assert_eq!(ready.len(), 1, "{ready:?}");
}

/// `url` with `password` added to its user.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').expect("the test URL names a user");
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn a_password_in_the_url_reaches_no_argv_event_log_or_error_and_workers_reach_the_board() {
    postgres_only!("the password of a PostgreSQL URL");
    const SECRET: &str = "s3cret-pw-42";
    let mut cli = Cli::new();
    // Trust authentication accepts any password: the URL works, with a secret in it.
    let url = with_password(&url(&cli), SECRET);
    cli.extra_env
        .push(("HERMES_KANBAN_DATABASE_URL".into(), url.clone()));
    std::fs::create_dir_all(cli.home().join("profiles/worker")).unwrap();
    std::fs::write(cli.home().join("profiles/worker/config.yaml"), "{}\n").unwrap();
    let lab = cli.dir.path().to_path_buf();
    // A fake `hermes`: records its own argv, its supervisor's argv and whether it got the URL,
    // then completes its task through our CLI on the same board.
    let worker = lab.join("fake-hermes");
    std::fs::write(
        &worker,
        format!(
            "#!/bin/bash\nif [ \"$1\" = --help ]; then echo 'usage: hermes [-h] [-m MODEL]'; \
             exit 0; fi\nT=\"$HERMES_KANBAN_TASK\"\n\
             tr '\\0' ' ' < /proc/$$/cmdline > {lab}/$T.argv\n\
             tr '\\0' ' ' < /proc/$PPID/cmdline > {lab}/$T.parent\n\
             [ -n \"$HERMES_KANBAN_DATABASE_URL\" ] && echo yes > {lab}/$T.url\n\
             {HK} complete \"$T\" --summary \"worker reached the board\" > {lab}/$T.out 2>&1\n",
            lab = lab.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = cli.create("dispatched on PostgreSQL", &["--assignee", "worker"]);
    let bin = worker.to_string_lossy().into_owned();
    let r = cli.run_env(&["dispatch", "--json"], &[("HERMES_BIN", bin.as_str())]);
    r.code(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let b: Board = cli.board();
    while b.get_task(&t).unwrap().status != Status::Done {
        assert!(
            Instant::now() < deadline,
            "the worker never completed: {:?}",
            std::fs::read_to_string(lab.join(format!("{t}.out")))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = |ext: &str| std::fs::read_to_string(lab.join(format!("{t}.{ext}"))).unwrap();
    assert_eq!(
        read("url").trim(),
        "yes",
        "the worker got the URL in its environment"
    );
    assert!(read("parent").contains("supervise"), "{}", read("parent"));
    let mut seen = vec![
        ("dispatch stdout", r.stdout.clone()),
        ("dispatch stderr", r.stderr.clone()),
        ("worker argv", read("argv")),
        ("supervisor argv", read("parent")),
        ("worker's complete", read("out")),
    ];
    // Every event and run the board recorded.
    let show = cli.run(&["show", &t, "--json"]);
    seen.push(("show --json", show.stdout.clone()));
    let tail = cli.run(&["runs", &t, "--json"]);
    seen.push(("runs --json", tail.stdout.clone()));
    // Worker logs on this host.
    for e in walk(&cli.home()) {
        if e.extension().is_some_and(|x| x == "log") {
            seen.push((
                "a log file",
                std::fs::read_to_string(&e).unwrap_or_default(),
            ));
        }
    }
    // Errors: a verb refused by the kernel, and an unreachable database of the same server.
    let refused = cli.run(&["show", "t_nope"]);
    refused.code(1);
    seen.push(("a refusal", refused.stderr.clone()));
    let plain = url.replace(&format!(":{SECRET}@"), "@");
    let server = plain.rsplit_once('/').unwrap().0;
    let gone = with_password(server, SECRET) + "/no_such_database_here";
    let unreachable = cli.run_env(&["list"], &[("HERMES_KANBAN_DATABASE_URL", gone.as_str())]);
    unreachable.code(1);
    assert_eq!(
        unreachable.stderr.trim().lines().count(),
        1,
        "{}",
        unreachable.stderr
    );
    assert!(
        unreachable.stderr.contains("***@"),
        "{}",
        unreachable.stderr
    );
    seen.push(("an unreachable database", unreachable.stderr.clone()));
    for (what, text) in &seen {
        assert!(
            !text.contains(SECRET),
            "the password appears in {what}: {text}"
        );
    }
    assert!(
        show.stdout.contains("worker reached the board"),
        "{}",
        show.stdout
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn two_boards_in_one_database_keep_their_tasks_apart() {
    postgres_only!("boards as PostgreSQL schemas");
    let cli = Cli::new();
    cli.run(&["init"]).code(0);
    cli.run(&["boards", "create", "ops", "--name", "Ops"])
        .code(0);
    let on_default = cli.create("on default", &[]);
    let r = cli.run(&["--board", "ops", "create", "on ops", "--json"]);
    r.code(0);
    let on_ops = r.json()["id"].as_str().unwrap().to_string();
    let ids = |board: &str| -> Vec<String> {
        let r = cli.run(&["--board", board, "list", "--json"]);
        r.code(0);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("default"), vec![on_default.clone()]);
    assert_eq!(ids("ops"), vec![on_ops.clone()]);
    cli.run(&["--board", "default", "show", &on_ops]).code(1);
    let boards = cli.run(&["boards", "list", "--json"]);
    boards.code(0);
    let listed: Vec<(String, i64)> = boards
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["slug"].as_str().unwrap().to_string(),
                b["total"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, vec![("default".into(), 1), ("ops".into(), 1)]);
    cli.run(&["boards", "switch", "ops"]).code(0);
    assert_eq!(ids_current(&cli), vec![on_ops.clone()]);
    let rm = cli.run(&["boards", "rm", "ops"]);
    rm.code(0);
    assert!(rm.stdout.contains("archived_ops_"), "{}", rm.stdout);
    cli.run(&["--board", "ops", "list"]).code(1);
    assert_eq!(
        ids_current(&cli),
        vec![on_default],
        "rm clears the current pointer"
    );
}

fn ids_current(cli: &Cli) -> Vec<String> {
    let r = cli.run(&["list", "--json"]);
    r.code(0);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}
