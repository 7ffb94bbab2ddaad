//! CLI integration tests for the task and board verbs: init, boards …, create, swarm, list,
//! show, assign, reassign, link, unlink, comment, archive — plus `--help` and the tutorial's
//! Story 1 end to end. Each verb is checked for (a) its happy-path output, text and JSON with
//! the exact key names of Hermes' `--json` (REF §15.3), (b) a refusal (exit 1, a message that
//! names the task or field), (c) a usage error (exit 2), and (d) an empty stdout on failure.

use std::fs;

use crate::helpers::{Cli, Run};
use hermes_kanban::kernel::ListFilter;
use serde_json::{Value, json};

/// `create --json`, `list --json` and `show --json`.task, in Hermes' order (REF §15.3).
const TASK_KEYS: [&str; 21] = [
    "id",
    "title",
    "body",
    "assignee",
    "status",
    "priority",
    "tenant",
    "workspace_kind",
    "workspace_path",
    "branch_name",
    "project_id",
    "created_by",
    "created_at",
    "started_at",
    "completed_at",
    "result",
    "skills",
    "max_retries",
    "session_id",
    "workflow_template_id",
    "current_step_key",
];
const SHOW_KEYS: [&str; 7] = [
    "task",
    "latest_summary",
    "parents",
    "children",
    "comments",
    "events",
    "runs",
];
const COMMENT_KEYS: [&str; 3] = ["author", "body", "created_at"];
const EVENT_KEYS: [&str; 4] = ["kind", "payload", "created_at", "run_id"];
const RUN_KEYS: [&str; 11] = [
    "id",
    "profile",
    "step_key",
    "status",
    "outcome",
    "summary",
    "error",
    "metadata",
    "worker_pid",
    "started_at",
    "ended_at",
];
/// `boards list --json` entries: board metadata + `db_path` + listing extras (REF §2.2, §15.2).
const BOARD_LIST_KEYS: [&str; 12] = [
    "slug",
    "name",
    "description",
    "icon",
    "color",
    "default_workdir",
    "created_at",
    "archived",
    "db_path",
    "is_current",
    "counts",
    "total",
];
const SWARM_KEYS: [&str; 4] = ["root_id", "worker_ids", "verifier_id", "synthesizer_id"];

/// Every verb `mod.rs` declares.
const VERBS: [&str; 39] = [
    "init",
    "boards",
    "create",
    "swarm",
    "list",
    "show",
    "assign",
    "reassign",
    "reclaim",
    "link",
    "unlink",
    "claim",
    "comment",
    "complete",
    "edit",
    "block",
    "schedule",
    "unblock",
    "promote",
    "archive",
    "tail",
    "watch",
    "stats",
    "runs",
    "log",
    "heartbeat",
    "assignees",
    "context",
    "gc",
    "notify",
    "notify-subscribe",
    "notify-list",
    "notify-unsubscribe",
    "attach",
    "attachments",
    "attach-rm",
    "diagnostics",
    "skills",
    "completions",
];

// ------------------------------------------------------------------------------------------
// helpers

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[track_caller]
fn assert_keys(v: &Value, expected: &[&str]) {
    assert_eq!(keys(v), expected, "key set/order differs in {v:#}");
}

#[track_caller]
fn assert_task_dict(v: &Value) {
    assert_keys(v, &TASK_KEYS);
    assert!(is_task_id(v["id"].as_str().unwrap()), "id {}", v["id"]);
    assert!(v["skills"].is_array(), "skills is always a list: {v}");
}

fn is_task_id(s: &str) -> bool {
    s.len() == 10 && s.starts_with("t_") && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Assert a failure: exit `code`, nothing on stdout, every needle on stderr.
#[track_caller]
fn fails(r: &Run, code: i32, needles: &[&str]) {
    r.code(code);
    assert!(
        r.stdout.is_empty(),
        "stdout must be empty on failure, got: {:?}",
        r.stdout
    );
    assert!(
        !r.stderr.trim().is_empty(),
        "a failure must explain itself on stderr"
    );
    for n in needles {
        assert!(r.stderr.contains(n), "stderr lacks {n:?}:\n{}", r.stderr);
    }
}

#[track_caller]
fn refused(r: &Run, needles: &[&str]) {
    fails(r, 1, needles);
}

#[track_caller]
fn usage(r: &Run, needles: &[&str]) {
    fails(r, 2, needles);
}

/// `list --json <extra…>` → task dicts.
fn list_json(cli: &Cli, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(extra);
    let v = cli.run(&args).json();
    v.as_array()
        .unwrap_or_else(|| panic!("list --json is an array: {v}"))
        .clone()
}

fn list_ids(cli: &Cli, extra: &[&str]) -> Vec<String> {
    list_json(cli, extra)
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

fn show_json(cli: &Cli, id: &str) -> Value {
    let v = cli.run(&["show", id, "--json"]).json();
    assert_keys(&v, &SHOW_KEYS);
    assert_task_dict(&v["task"]);
    v
}

fn task_json(cli: &Cli, id: &str) -> Value {
    show_json(cli, id)["task"].clone()
}

/// Every task on the default board, archived included (for "nothing changed" checks).
fn all_tasks(cli: &Cli) -> Vec<hermes_kanban::kernel::Task> {
    cli.board()
        .list_tasks(&ListFilter {
            include_archived: true,
            ..Default::default()
        })
        .expect("list")
}

fn event_kinds(show: &Value) -> Vec<String> {
    show["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// Claim a task through the CLI (as this test's process).
fn claim(cli: &Cli, id: &str) {
    assert!(
        cli.run(&["claim", id])
            .ok()
            .contains(&format!("Claimed {id}"))
    );
}

// ------------------------------------------------------------------------------------------
// help

#[test]
fn help_lists_every_verb_and_every_tested_verb_has_an_example() {
    let cli = Cli::new();
    let top = cli.run(&["--help"]).ok().to_string();
    for verb in VERBS {
        assert!(
            top.lines()
                .any(|l| l.split_whitespace().next() == Some(verb)),
            "`--help` does not list {verb}:\n{top}"
        );
    }
    assert!(top.contains("Exit codes: 0 success, 1 refused or failed, 2 usage error"));
    let per_verb: &[&[&str]] = &[
        &["init"],
        &["boards"],
        &["boards", "list"],
        &["boards", "ls"],
        &["boards", "create"],
        &["boards", "new"],
        &["boards", "rm"],
        &["boards", "remove"],
        &["boards", "delete"],
        &["boards", "switch"],
        &["boards", "use"],
        &["boards", "show"],
        &["boards", "current"],
        &["boards", "rename"],
        &["boards", "set-default-workdir"],
        &["create"],
        &["swarm"],
        &["list"],
        &["ls"],
        &["show"],
        &["assign"],
        &["reassign"],
        &["link"],
        &["unlink"],
        &["comment"],
        &["archive"],
        &["context"],
        &["notify", "test"],
    ];
    for v in per_verb {
        let mut args = v.to_vec();
        args.push("--help");
        let out = cli.run(&args).ok().to_string();
        assert!(
            out.contains("Example"),
            "`{}` has no example:\n{out}",
            args.join(" ")
        );
        assert!(
            out.contains("Usage: hermes-kanban"),
            "`{}`:\n{out}",
            args.join(" ")
        );
    }
    // Every verb of the table has an example, not only the ones tested here.
    for verb in VERBS {
        let out = cli.run(&[verb, "--help"]).ok().to_string();
        assert!(
            out.contains("Example"),
            "`{verb} --help` has no example:\n{out}"
        );
    }
    // `boards --help` names every board verb and alias.
    let boards = cli.run(&["boards", "--help"]).ok().to_string();
    for w in [
        "list",
        "ls",
        "create",
        "new",
        "rm",
        "remove",
        "delete",
        "switch",
        "use",
        "show",
        "current",
        "rename",
        "set-default-workdir",
    ] {
        assert!(boards.contains(w), "`boards --help` lacks {w}:\n{boards}");
    }
    usage(&cli.run(&["no-such-verb"]), &["no-such-verb"]);
    usage(&cli.run(&[]), &["Usage"]);
}

// ------------------------------------------------------------------------------------------
// init

#[test]
fn init_creates_the_db_and_lists_profiles_with_config() {
    let cli = Cli::new();
    assert!(!cli.has_board("default"));
    let out = cli.run(&["init"]).ok().to_string();
    assert!(cli.has_board("default"), "init creates the default board");
    let l = lines(&out);
    assert_eq!(
        l[0],
        format!("Kanban DB initialized at {}", cli.board().location())
    );
    assert_eq!(
        l[1],
        "Discovered 1 profile(s) on disk; any of these can be an --assignee:"
    );
    assert_eq!(l[2], "  default");
    assert!(l[3].starts_with("Next step:"), "{out}");

    // Profiles on disk are listed, `default` first and the others sorted.
    for p in ["zeta", "coder"] {
        let d = cli.home().join("profiles").join(p);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("config.yaml"), "model: x\n").unwrap();
    }
    let out = cli.run(&["init"]).ok().to_string(); // idempotent
    let l = lines(&out);
    assert_eq!(
        l[1],
        "Discovered 3 profile(s) on disk; any of these can be an --assignee:"
    );
    assert_eq!(&l[2..5], &["  default", "  coder", "  zeta"]);
    let b = cli.board();
    if b.is_postgres() {
        assert!(b.schema_version().unwrap() >= 1, "migrations recorded");
    } else {
        assert_eq!(
            b.schema_version().unwrap(),
            hermes_kanban::kernel::SCHEMA_VERSION
        );
    }
    drop(b);

    // init on another board needs that board; a bad slug is named.
    refused(
        &cli.run(&["--board", "nope", "init"]),
        &["board 'nope' does not exist", "boards create nope"],
    );
    refused(
        &cli.run(&["--board", "../x", "init"]),
        &["invalid board slug", "../x"],
    );
    assert!(!cli.home().join("kanban/boards/nope").exists());
    usage(&cli.run(&["init", "extra"]), &["extra"]);
    usage(&cli.run(&["init", "--bogus"]), &["--bogus"]);
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// boards

#[test]
fn boards_list_create_switch_show() {
    sqlite_only!("asserts the file layout of SQLite boards (DB paths, board.json, kanban/current)");
    let cli = Cli::new();
    // Fresh home: only `default`, current.
    let out = cli.run(&["boards", "list"]).ok().to_string();
    let l = lines(&out);
    assert!(
        l[0].contains("SLUG") && l[0].contains("NAME") && l[0].contains("COUNTS"),
        "{out}"
    );
    assert!(l[1].starts_with("● default"), "{out}");
    assert_eq!(*l.last().unwrap(), "Current board: default");
    assert_eq!(cli.run(&["boards", "ls"]).ok(), out, "ls is list");

    // create with every flag
    let out = cli
        .run(&[
            "boards",
            "create",
            "research",
            "--name",
            "Market Research",
            "--description",
            "competitor notes",
            "--icon",
            "🔬",
            "--color",
            "#8b5cf6",
            "--default-workdir",
            "/srv/repo",
        ])
        .ok()
        .to_string();
    let db = cli.home().join("kanban/boards/research/kanban.db");
    assert_eq!(
        lines(&out),
        vec![
            "Created board research (Market Research)".to_string(),
            format!("DB: {}", db.display())
        ]
    );
    assert!(db.exists());
    assert!(
        !cli.home().join("kanban/current").exists(),
        "create without --switch does not switch"
    );
    // idempotent
    let again = cli.run(&["boards", "create", "research"]).ok().to_string();
    assert!(
        again.starts_with("Board research already exists (Market Research)"),
        "{again}"
    );

    // `new` alias + --switch writes the current pointer.
    let out = cli
        .run(&["boards", "new", "lab", "--switch"])
        .ok()
        .to_string();
    assert!(
        out.contains("Created board lab (Lab)"),
        "default name is the capitalised slug: {out}"
    );
    assert!(out.contains("Switched to lab"), "{out}");
    assert_eq!(
        fs::read_to_string(cli.home().join("kanban/current")).unwrap(),
        "lab\n"
    );

    // list --json: exact keys, is_current, counts, total.
    cli.create("on default", &["--board", "default"]);
    cli.create("on research 1", &["--board", "research"]);
    let r2 = cli.create("on research 2", &["--board", "research"]);
    cli.run(&["--board", "research", "archive", &r2]).ok();
    let v = cli.run(&["boards", "list", "--json"]).json();
    let arr = v.as_array().unwrap();
    let slugs: Vec<&str> = arr.iter().map(|b| b["slug"].as_str().unwrap()).collect();
    assert_eq!(
        slugs,
        ["default", "lab", "research"],
        "default first, then sorted"
    );
    for b in arr {
        assert_keys(b, &BOARD_LIST_KEYS);
    }
    assert_eq!(arr[1]["is_current"], json!(true));
    assert_eq!(arr[0]["is_current"], json!(false));
    assert_eq!(arr[0]["db_path"], json!(cli.db().to_string_lossy()));
    assert_eq!(arr[0]["counts"], json!({"ready": 1}));
    assert_eq!(arr[0]["total"], json!(1));
    let research = &arr[2];
    assert_eq!(research["name"], "Market Research");
    assert_eq!(research["description"], "competitor notes");
    assert_eq!(research["icon"], "🔬");
    assert_eq!(research["color"], "#8b5cf6");
    assert_eq!(research["default_workdir"], "/srv/repo");
    assert_eq!(research["archived"], json!(false));
    assert!(research["created_at"].is_i64());
    assert_eq!(research["counts"], json!({"archived": 1, "ready": 1}));
    assert_eq!(research["total"], json!(2));
    let text = cli.run(&["boards", "list"]).ok().to_string();
    assert!(text.lines().any(|l| l.starts_with("● lab")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("  research")
            && l.contains("Market Research")
            && l.contains("2 (archived=1, ready=1)")),
        "{text}"
    );
    assert!(text.ends_with("Current board: lab\n"), "{text}");

    // show / current (+ --json)
    let out = cli.run(&["boards", "show"]).ok().to_string();
    assert_eq!(
        lines(&out),
        vec![
            "Board: lab (Lab)".to_string(),
            format!(
                "DB: {}",
                cli.home().join("kanban/boards/lab/kanban.db").display()
            ),
            "Tasks: 0".to_string()
        ]
    );
    cli.run(&["boards", "switch", "research"]).ok();
    let out = cli.run(&["boards", "current"]).ok().to_string();
    assert!(
        out.contains("Board: research (Market Research)")
            && out.contains("Description: competitor notes"),
        "{out}"
    );
    assert!(out.contains("Tasks: 2 (archived=1, ready=1)"), "{out}");
    let v = cli.run(&["boards", "current", "--json"]).json();
    assert_keys(
        &v,
        &[
            "slug",
            "name",
            "description",
            "icon",
            "color",
            "default_workdir",
            "created_at",
            "archived",
            "db_path",
            "counts",
            "total",
        ],
    );
    assert_eq!(v["slug"], "research");
    assert_eq!(v["db_path"], json!(db.to_string_lossy()));
    assert_eq!(v["total"], json!(2));

    // switch / use
    assert_eq!(
        cli.run(&["boards", "use", "default"]).ok(),
        "Current board: default\n"
    );
    assert_eq!(
        fs::read_to_string(cli.home().join("kanban/current")).unwrap(),
        "default\n"
    );
    assert_eq!(
        cli.run(&["boards", "switch", "LAB"]).ok(),
        "Current board: lab\n",
        "slugs are case-folded"
    );

    // boards verbs ignore --board, even an unknown one.
    assert!(
        cli.run(&["--board", "nope", "boards", "list"])
            .ok()
            .contains("Current board: lab")
    );

    // refusals
    refused(
        &cli.run(&["boards", "switch", "nope"]),
        &["board 'nope' does not exist", "boards create nope"],
    );
    refused(
        &cli.run(&["boards", "create", "../x"]),
        &["invalid board slug", "\"../x\""],
    );
    refused(
        &cli.run(&["boards", "create", "Bad Slug!"]),
        &["invalid board slug"],
    );
    refused(
        &cli.run(&["boards", "switch", "../etc"]),
        &["invalid board slug"],
    );
    refused(
        &cli.run(&[
            "boards",
            "create",
            "rel",
            "--default-workdir",
            "relative/dir",
        ]),
        &["default_workdir", "relative/dir", "absolute"],
    );
    assert!(
        !cli.home().join("kanban/boards/rel").exists(),
        "a refused create leaves no board behind"
    );
    assert!(!cli.home().join("kanban/boards/x").exists());
    assert_eq!(
        fs::read_to_string(cli.home().join("kanban/current")).unwrap(),
        "lab\n",
        "refusals do not switch"
    );

    // usage
    usage(&cli.run(&["boards", "create"]), &["<SLUG>"]);
    usage(&cli.run(&["boards", "switch"]), &["<SLUG>"]);
    usage(&cli.run(&["boards", "bogus"]), &["bogus"]);
    usage(&cli.run(&["boards", "show", "extra"]), &["extra"]);
    usage(
        &cli.run(&["boards", "create", "x", "--bogus"]),
        &["--bogus"],
    );
    cli.assert_invariants();
}

#[test]
fn boards_rm_archives_and_delete_removes() {
    sqlite_only!("asserts the file layout of SQLite boards (DB paths, board.json, kanban/current)");
    let cli = Cli::new();
    let boards = cli.home().join("kanban/boards");
    for s in ["a1", "a2", "d1", "d2", "cur"] {
        cli.run(&["boards", "create", s]).ok();
    }
    cli.create("keep me", &["--board", "a1"]);

    // rm → archived under boards/_archived/<slug>-<ts>
    let out = cli.run(&["boards", "rm", "a1"]).ok().to_string();
    assert!(out.starts_with("Archived board a1 to "), "{out}");
    let dest = out
        .trim()
        .strip_prefix("Archived board a1 to ")
        .unwrap()
        .to_string();
    assert!(dest.contains("/kanban/boards/_archived/a1-"), "{dest}");
    assert!(
        std::path::Path::new(&dest).join("kanban.db").exists(),
        "the archive keeps the DB"
    );
    assert!(!boards.join("a1").exists());
    // `remove` alias archives too.
    assert!(
        cli.run(&["boards", "remove", "a2"])
            .ok()
            .starts_with("Archived board a2 to ")
    );
    assert!(!boards.join("a2").exists());

    // --delete and the `delete` alias delete outright.
    assert_eq!(
        cli.run(&["boards", "rm", "d1", "--delete"]).ok(),
        "Deleted board d1\n"
    );
    assert_eq!(
        cli.run(&["boards", "delete", "d2"]).ok(),
        "Deleted board d2\n",
        "the delete alias implies --delete"
    );
    assert_eq!(
        cli.run(&["boards", "delete", "cur", "--delete"]).ok(),
        "Deleted board cur\n"
    );
    let archived: Vec<String> = fs::read_dir(boards.join("_archived"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        archived.len(),
        2,
        "only the two archived boards: {archived:?}"
    );
    assert!(
        archived
            .iter()
            .all(|n| n.starts_with("a1-") || n.starts_with("a2-")),
        "{archived:?}"
    );
    for s in ["d1", "d2", "cur"] {
        assert!(!boards.join(s).exists(), "{s} deleted");
    }
    let slugs: Vec<String> = cli
        .run(&["boards", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(slugs, ["default"]);

    // Removing the current board drops the `current` pointer.
    cli.run(&["boards", "create", "cur2", "--switch"]).ok();
    assert!(cli.home().join("kanban/current").exists());
    cli.run(&["boards", "rm", "cur2"]).ok();
    assert!(
        !cli.home().join("kanban/current").exists(),
        "the pointer to a removed board is deleted"
    );
    assert!(
        cli.run(&["boards", "show"])
            .ok()
            .starts_with("Board: default")
    );

    // refusals
    refused(
        &cli.run(&["boards", "rm", "default"]),
        &["default board cannot be removed"],
    );
    refused(
        &cli.run(&["boards", "delete", "default"]),
        &["default board cannot be removed"],
    );
    refused(
        &cli.run(&["boards", "rm", "nope"]),
        &["board 'nope' does not exist"],
    );
    refused(
        &cli.run(&["boards", "rm", "../kanban"]),
        &["invalid board slug"],
    );
    assert!(cli.home().join("kanban/boards/_archived").exists());
    // usage
    usage(&cli.run(&["boards", "rm"]), &["<SLUG>"]);
    usage(&cli.run(&["boards", "delete"]), &["<SLUG>"]);
    usage(&cli.run(&["boards", "rm", "x", "--hard"]), &["--hard"]);
    cli.assert_invariants();
}

#[test]
fn boards_rename_and_set_default_workdir() {
    sqlite_only!("asserts the file layout of SQLite boards (DB paths, board.json, kanban/current)");
    let cli = Cli::new();
    cli.run(&["boards", "create", "research"]).ok();
    let meta = |cli: &Cli| -> Value {
        cli.run(&["boards", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["slug"] == "research")
            .unwrap()
            .clone()
    };
    assert_eq!(
        cli.run(&["boards", "rename", "research", "Deep Research"])
            .ok(),
        "Renamed research to Deep Research\n"
    );
    assert_eq!(meta(&cli)["name"], "Deep Research");
    assert_eq!(meta(&cli)["slug"], "research", "the slug never changes");

    assert_eq!(
        cli.run(&["boards", "set-default-workdir", "research", "/srv/repo"])
            .ok(),
        "Default workdir of research is /srv/repo\n"
    );
    assert_eq!(meta(&cli)["default_workdir"], "/srv/repo");
    // A worktree task created without a path anchors on the board's default workdir.
    let t = cli
        .run(&[
            "--board",
            "research",
            "create",
            "wt",
            "--workspace",
            "worktree",
            "--json",
        ])
        .json();
    assert_eq!(t["workspace_kind"], "worktree");
    assert_eq!(t["workspace_path"], "/srv/repo");
    assert_eq!(
        cli.run(&["boards", "set-default-workdir", "research"]).ok(),
        "Cleared the default workdir of research\n"
    );
    assert_eq!(meta(&cli)["default_workdir"], Value::Null);

    // refusals
    refused(
        &cli.run(&["boards", "rename", "nope", "X"]),
        &["board 'nope' does not exist"],
    );
    refused(&cli.run(&["boards", "rename", "research", "  "]), &["name"]);
    refused(
        &cli.run(&["boards", "rename", "../x", "X"]),
        &["invalid board slug"],
    );
    refused(
        &cli.run(&["boards", "set-default-workdir", "research", "rel/path"]),
        &["default_workdir", "rel/path"],
    );
    refused(
        &cli.run(&["boards", "set-default-workdir", "nope", "/x"]),
        &["board 'nope' does not exist"],
    );
    assert_eq!(
        meta(&cli)["name"],
        "Deep Research",
        "refusals change nothing"
    );
    assert_eq!(meta(&cli)["default_workdir"], Value::Null);
    // usage
    usage(&cli.run(&["boards", "rename", "research"]), &["<NAME>"]);
    usage(&cli.run(&["boards", "set-default-workdir"]), &["<SLUG>"]);
    cli.assert_invariants();
}

#[test]
fn global_board_flag_scopes_task_verbs() {
    let cli = Cli::new();
    cli.run(&["boards", "create", "lab"]).ok();
    cli.create("on default", &[]);
    let lab_task = cli
        .run(&["--board", "lab", "create", "lab only", "--json"])
        .json();
    let lab_id = lab_task["id"].as_str().unwrap();
    assert!(
        !list_ids(&cli, &[]).contains(&lab_id.to_string()),
        "--board keeps tasks apart"
    );
    assert_eq!(
        list_ids(&cli, &["--board", "lab"]),
        vec![lab_id.to_string()]
    );
    // HERMES_KANBAN_BOARD selects the board too; --board wins over it.
    let r = cli.run_env(&["list", "--json"], &[("HERMES_KANBAN_BOARD", "lab")]);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = cli.run_env(
        &["--board", "default", "list", "--json"],
        &[("HERMES_KANBAN_BOARD", "lab")],
    );
    assert_eq!(r.json().as_array().unwrap()[0]["title"], "on default");
    // Unknown task on the other board is unknown here.
    refused(
        &cli.run(&["show", lab_id]),
        &[&format!("no such task: {lab_id}")],
    );

    refused(
        &cli.run(&["--board", "nope", "list"]),
        &["board 'nope' does not exist", "boards create nope"],
    );
    refused(
        &cli.run(&["--board", "nope", "create", "x"]),
        &["board 'nope' does not exist"],
    );
    refused(
        &cli.run(&["--board", "../x", "list"]),
        &["invalid board slug", "../x"],
    );
    refused(
        &cli.run(&["--board", "../x", "create", "x"]),
        &["invalid board slug"],
    );
    refused(
        &cli.run(&["--board", "a/b", "show", lab_id]),
        &["invalid board slug"],
    );
    assert!(
        !cli.home().join("kanban/boards/nope").exists(),
        "an unknown board is not created"
    );
    usage(&cli.run(&["--board"]), &["--board"]);
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// create

#[test]
fn create_json_is_the_hermes_task_dict() {
    let cli = Cli::new();
    let v = cli
        .run(&["create", "Research A", "--assignee", "worker", "--json"])
        .json();
    assert_task_dict(&v);
    let id = v["id"].as_str().unwrap();
    assert_eq!(
        v,
        json!({
            "id": id, "title": "Research A", "body": null, "assignee": "worker", "status": "ready",
            "priority": 0, "tenant": null, "workspace_kind": "scratch", "workspace_path": null,
            "branch_name": null, "project_id": null, "created_by": "user",
            "created_at": v["created_at"], "started_at": null, "completed_at": null,
            "result": null, "skills": [], "max_retries": null,
            "session_id": null, "workflow_template_id": null, "current_step_key": null
        })
    );
    let now = chrono_now();
    assert!(
        (v["created_at"].as_i64().unwrap() - now).abs() < 60,
        "created_at is epoch seconds"
    );
    // --json is the only thing on stdout (no warning mixed in).
    let r = cli.run(&["create", "Research B", "--assignee", "worker", "--json"]);
    serde_json::from_str::<Value>(&r.stdout).expect("pure JSON");
    cli.assert_invariants();
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn create_text_lines() {
    let cli = Cli::new();
    let out = cli
        .run(&["create", "Research A", "--assignee", "worker"])
        .ok()
        .to_string();
    let id = out
        .strip_prefix("Created ")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(is_task_id(&id), "{out}");
    assert_eq!(out, format!("Created {id}  (ready, assignee=worker)\n"));
    let out = cli.run(&["create", "nobody's"]).ok().to_string();
    assert!(out.ends_with("  (ready, assignee=-)\n"), "{out}");
    let out = cli
        .run(&["create", "Triage idea", "--triage"])
        .ok()
        .to_string();
    assert!(out.ends_with("  (triage, assignee=-)\n"), "{out}");
    let out = cli
        .run(&["create", "child", "--assignee", "reviewer", "--parent", &id])
        .ok()
        .to_string();
    assert!(out.ends_with("  (todo, assignee=reviewer)\n"), "{out}");
    let out = cli
        .run(&[
            "create",
            "needs ops",
            "--assignee",
            "worker",
            "--initial-status",
            "blocked",
        ])
        .ok()
        .to_string();
    assert!(out.ends_with("  (blocked, assignee=worker)\n"), "{out}");
    let out = cli
        .run(&[
            "create",
            "normal",
            "--assignee",
            "worker",
            "--initial-status",
            "running",
        ])
        .ok()
        .to_string();
    assert!(
        out.ends_with("  (ready, assignee=worker)\n"),
        "--initial-status running = normal routing: {out}"
    );
    // Idempotent hit prints the existing id the same way.
    let first = cli
        .run(&[
            "create",
            "Synthesize",
            "--assignee",
            "reviewer",
            "--idempotency-key",
            "synth-1",
        ])
        .ok()
        .to_string();
    let again = cli
        .run(&[
            "create",
            "Synthesize again",
            "--assignee",
            "reviewer",
            "--idempotency-key",
            "synth-1",
        ])
        .ok()
        .to_string();
    assert_eq!(first, again);
    assert_eq!(all_tasks(&cli).len(), 7);
    cli.assert_invariants();
}

#[test]
fn create_every_flag_is_stored() {
    let cli = Cli::new();
    let p1 = cli.create("parent one", &["--assignee", "worker"]);
    let p2 = cli.create("parent two", &["--assignee", "worker"]);
    let v = cli
        .run_env(
            &[
                "create",
                "Synthesize",
                "--body",
                "Combine A and B",
                "--assignee",
                "Reviewer",
                "--parent",
                &p1,
                "--parent",
                &p2,
                "--workspace",
                "worktree:/srv/repo/.worktrees/x",
                "--branch",
                "wt/synth",
                "--project",
                "proj-7",
                "--tenant",
                "acme",
                "--priority",
                "-5",
                "--idempotency-key",
                "synth-1",
                "--max-runtime",
                "2h",
                "--created-by",
                "orchestrator",
                "--skill",
                "github-code-review",
                "--skill",
                "humanizer",
                "--max-retries",
                "3",
                "--goal",
                "--goal-max-turns",
                "7",
                "--json",
            ],
            &[("HERMES_SESSION_ID", "sess-42")],
        )
        .json();
    assert_task_dict(&v);
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["title"], "Synthesize");
    assert_eq!(v["body"], "Combine A and B");
    assert_eq!(v["assignee"], "reviewer", "profile names are case-folded");
    assert_eq!(v["status"], "todo", "parents are not done");
    assert_eq!(v["priority"], -5);
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["workspace_kind"], "worktree");
    assert_eq!(v["workspace_path"], "/srv/repo/.worktrees/x");
    assert_eq!(v["branch_name"], "wt/synth");
    assert_eq!(v["project_id"], "proj-7");
    assert_eq!(v["created_by"], "orchestrator");
    assert_eq!(v["skills"], json!(["github-code-review", "humanizer"]));
    assert_eq!(v["max_retries"], 3);
    assert_eq!(v["session_id"], "sess-42");
    let mut parents = vec![p1.clone(), p2.clone()];
    parents.sort();
    let d = show_json(&cli, &id);
    assert_eq!(d["parents"], json!(parents));
    let t = cli.board().get_task(&id).unwrap();
    assert_eq!(t.max_runtime_seconds, Some(7200));
    assert!(t.goal_mode);
    assert_eq!(t.goal_max_turns, Some(7));
    assert_eq!(t.idempotency_key.as_deref(), Some("synth-1"));
    // The idempotency key returns the same task, text and JSON.
    let again = cli
        .run(&[
            "create",
            "other title",
            "--idempotency-key",
            "synth-1",
            "--json",
        ])
        .json();
    assert_eq!(again["id"], json!(id));
    assert_eq!(
        again["title"], "Synthesize",
        "the existing task, title ignored"
    );

    // --max-runtime accepts seconds and 30s / 5m / 2h / 1d.
    for (arg, secs) in [
        ("90", 90),
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86_400),
    ] {
        let id = cli.create(&format!("rt {arg}"), &["--max-runtime", arg]);
        assert_eq!(
            cli.board().get_task(&id).unwrap().max_runtime_seconds,
            Some(secs),
            "--max-runtime {arg}"
        );
    }
    // --workspace scratch (default) and dir:<abs>, `~` expanded.
    let v = cli
        .run(&["create", "s", "--workspace", "scratch", "--json"])
        .json();
    assert_eq!(
        (v["workspace_kind"].as_str(), v["workspace_path"].as_str()),
        (Some("scratch"), None)
    );
    let v = cli
        .run(&["create", "d", "--workspace", "dir:/srv/data", "--json"])
        .json();
    assert_eq!(
        (v["workspace_kind"].as_str(), v["workspace_path"].as_str()),
        (Some("dir"), Some("/srv/data"))
    );
    let v = cli
        .run(&["create", "home", "--workspace", "dir:~/proj", "--json"])
        .json();
    assert_eq!(
        v["workspace_path"],
        json!(cli.dir.path().join("proj").to_string_lossy()),
        "~ is $HOME"
    );
    let v = cli
        .run(&["create", "wt", "--workspace", "worktree", "--json"])
        .json();
    assert_eq!(
        (v["workspace_kind"].as_str(), v["workspace_path"].as_str()),
        (Some("worktree"), None)
    );
    // --initial-status blocked stays blocked (list does not promote it).
    let b = cli.create(
        "needs ops",
        &["--assignee", "worker", "--initial-status", "blocked"],
    );
    assert_eq!(list_json(&cli, &["--status", "blocked"]).len(), 1);
    assert_eq!(task_json(&cli, &b)["status"], "blocked");
    // --triage
    let tr = cli.create("rough idea", &["--triage", "--assignee", "worker"]);
    assert_eq!(task_json(&cli, &tr)["status"], "triage");
    // The created event carries the routing fields.
    let ev = &show_json(&cli, &id)["events"][0];
    assert_keys(ev, &EVENT_KEYS);
    assert_eq!(ev["kind"], "created");
    assert_eq!(ev["payload"]["status"], "todo");
    assert_eq!(ev["payload"]["assignee"], "reviewer");
    let mut got: Vec<&str> = ev["payload"]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, parents);
    cli.assert_invariants();
}

#[test]
fn create_refusals_name_the_field_and_change_nothing() {
    let cli = Cli::new();
    let p = cli.create("parent", &[]);
    let before = all_tasks(&cli);
    refused(
        &cli.run(&["create", "x", "--parent", "t_nope0000"]),
        &["parents", "t_nope0000"],
    );
    refused(
        &cli.run(&["create", "x", "--parent", &p, "--parent", "t_deadbeef"]),
        &["t_deadbeef"],
    );
    refused(&cli.run(&["create", "   "]), &["title", "blank"]);
    refused(
        &cli.run(&["create", "x", "--workspace", "dir:relative/path"]),
        &["workspace_path", "relative/path", "absolute"],
    );
    refused(
        &cli.run(&["create", "x", "--skill", "web", "--skill", "terminal"]),
        &["skills", "'web'", "'terminal'", "toolset"],
    );
    refused(
        &cli.run(&["create", "x", "--assignee", "bad name!"]),
        &["assignee", "bad name!"],
    );
    refused(
        &cli.run(&["create", "x", "--json", "--parent", "t_nope0000"]),
        &["t_nope0000"],
    );
    assert_eq!(
        all_tasks(&cli),
        before,
        "refused creates leave the board as it was"
    );
    cli.assert_invariants();
}

#[test]
fn create_usage_errors_exit_2() {
    let cli = Cli::new();
    cli.run(&["init"]).ok();
    usage(&cli.run(&["create"]), &["<TITLE>"]);
    usage(&cli.run(&["create", "--json"]), &["<TITLE>"]);
    for ws in ["bogus", "dir", "scratch:/x", "DIR:/x", "git:/x", ""] {
        usage(
            &cli.run(&["create", "x", "--workspace", ws]),
            &[
                "--workspace",
                "scratch, worktree, worktree:<path> or dir:<path>",
            ],
        );
    }
    for ws in ["dir:", "worktree:", "dir:  "] {
        usage(
            &cli.run(&["create", "x", "--workspace", ws]),
            &["--workspace", "needs a path after the colon"],
        );
    }
    usage(
        &cli.run(&["create", "x", "--branch", "feat"]),
        &["--branch", "worktree"],
    );
    usage(
        &cli.run(&["create", "x", "--workspace", "worktree", "--branch", "a b"]),
        &["--branch", "whitespace"],
    );
    usage(
        &cli.run(&["create", "x", "--workspace", "worktree", "--branch", " "]),
        &["--branch"],
    );
    usage(
        &cli.run(&["create", "x", "--workspace", "worktree", "--branch", "-x"]),
        &["-x"],
    );
    for rt in ["garbage", "0", "-5", "5w", "1.5.h", ""] {
        usage(
            &cli.run(&["create", "x", "--max-runtime", rt]),
            &["--max-runtime"],
        );
    }
    for mr in ["0", "-1", "x"] {
        usage(
            &cli.run(&["create", "x", "--max-retries", mr]),
            &["--max-retries"],
        );
    }
    usage(
        &cli.run(&["create", "x", "--priority", "high"]),
        &["--priority"],
    );
    usage(&cli.run(&["create", "x", "--priority"]), &["--priority"]);
    usage(
        &cli.run(&["create", "x", "--initial-status", "ready"]),
        &["--initial-status", "running", "blocked"],
    );
    usage(
        &cli.run(&["create", "x", "--goal-max-turns", "0"]),
        &["--goal-max-turns"],
    );
    usage(
        &cli.run(&["create", "x", "--goal-max-turns", "-3"]),
        &["--goal-max-turns"],
    );
    usage(&cli.run(&["create", "x", "--bogus"]), &["--bogus"]);
    assert!(all_tasks(&cli).is_empty(), "no usage error creates a task");
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// swarm

#[test]
fn swarm_builds_the_graph() {
    let cli = Cli::new();
    let v = cli
        .run(&[
            "swarm",
            "Plan failover",
            "--worker",
            "worker:Research-NA",
            "--worker",
            "worker:Research-EU:github-code-review,humanizer",
            "--verifier",
            "reviewer",
            "--synthesizer",
            "writer",
            "--tenant",
            "acme",
            "--priority",
            "-2",
            "--idempotency-key",
            "sw-1",
            "--json",
        ])
        .json();
    assert_keys(&v, &SWARM_KEYS);
    let root = v["root_id"].as_str().unwrap().to_string();
    let workers: Vec<String> = v["worker_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let verifier = v["verifier_id"].as_str().unwrap().to_string();
    let synth = v["synthesizer_id"].as_str().unwrap().to_string();
    assert_eq!(workers.len(), 2);

    let r = show_json(&cli, &root);
    assert_eq!(r["task"]["status"], "done");
    assert_eq!(
        r["task"]["assignee"], "default",
        "the root belongs to the author identity (the active profile, as Hermes)"
    );
    assert_eq!(r["task"]["created_by"], "default");
    assert_eq!(r["task"]["tenant"], "acme");
    assert_eq!(
        r["runs"][0]["metadata"],
        json!({"kind": "kanban_swarm_v1", "goal": "Plan failover", "worker_count": 2})
    );
    let bb = r["comments"][0]["body"].as_str().unwrap();
    let topo: Value = serde_json::from_str(
        bb.strip_prefix("[swarm:blackboard] ")
            .expect("blackboard prefix"),
    )
    .unwrap();
    assert_eq!(topo["key"], "topology");
    assert_eq!(topo["value"]["worker_ids"], v["worker_ids"]);

    let w0 = task_json(&cli, &workers[0]);
    let w1 = task_json(&cli, &workers[1]);
    assert_eq!(
        (
            w0["title"].as_str(),
            w0["assignee"].as_str(),
            w0["status"].as_str()
        ),
        (Some("Research-NA"), Some("worker"), Some("ready"))
    );
    assert_eq!(w0["priority"], -2);
    assert_eq!(w0["tenant"], "acme");
    assert_eq!(w1["skills"], json!(["github-code-review", "humanizer"]));
    assert!(
        w0["body"].as_str().unwrap().contains("Swarm protocol")
            && w0["body"].as_str().unwrap().contains(&root)
    );
    assert_eq!(
        show_json(&cli, &workers[0])["parents"],
        json!([root.clone()])
    );
    let ver = show_json(&cli, &verifier);
    assert_eq!(ver["task"]["assignee"], "reviewer");
    assert_eq!(ver["task"]["status"], "todo");
    assert_eq!(ver["task"]["skills"], json!(["requesting-code-review"]));
    let mut vp: Vec<String> = ver["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    vp.sort();
    let mut ws = workers.clone();
    ws.sort();
    assert_eq!(vp, ws, "the verifier waits on every worker");
    let sy = show_json(&cli, &synth);
    assert_eq!(sy["task"]["assignee"], "writer");
    assert_eq!(sy["task"]["skills"], json!(["humanizer"]));
    assert_eq!(sy["parents"], json!([verifier.clone()]));

    // Same idempotency key → the same topology, nothing new; text output lists it.
    let n = all_tasks(&cli).len();
    let again = cli
        .run(&[
            "swarm",
            "Plan failover",
            "--worker",
            "x:y",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
            "--idempotency-key",
            "sw-1",
            "--json",
        ])
        .json();
    assert_eq!(again, v);
    let text = cli
        .run(&[
            "swarm",
            "Plan failover",
            "--worker",
            "x:y",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
            "--idempotency-key",
            "sw-1",
        ])
        .ok()
        .to_string();
    assert_eq!(
        lines(&text),
        vec![
            format!("Existing swarm {root} (blackboard)"),
            format!("  worker       {}", workers[0]),
            format!("  worker       {}", workers[1]),
            format!("  verifier     {verifier}"),
            format!("  synthesizer  {synth}"),
        ]
    );
    assert_eq!(all_tasks(&cli).len(), n);
    // A new swarm in text mode; the author comes from $HERMES_PROFILE.
    let text = cli
        .run_env(
            &[
                "swarm",
                "Second",
                "--worker",
                "a:b",
                "--verifier",
                "r",
                "--synthesizer",
                "s",
            ],
            &[("HERMES_PROFILE", "boss")],
        )
        .ok()
        .to_string();
    assert!(text.starts_with("Created swarm t_"), "{text}");
    let root2 = text.split_whitespace().nth(2).unwrap();
    assert_eq!(task_json(&cli, root2)["created_by"], "boss");
    assert_eq!(all_tasks(&cli).len(), n + 4);
    cli.assert_invariants();
}

#[test]
fn swarm_refusals_and_usage_errors() {
    let cli = Cli::new();
    cli.run(&["init"]).ok();
    refused(
        &cli.run(&[
            "swarm",
            "g",
            "--worker",
            "a:b:web",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
        ]),
        &["skills", "'web'"],
    );
    refused(
        &cli.run(&[
            "swarm",
            "  ",
            "--worker",
            "a:b",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
        ]),
        &["goal"],
    );
    refused(
        &cli.run(&[
            "swarm",
            "g",
            "--worker",
            "Bad Name:b",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
        ]),
        &["assignee", "bad name"],
    );
    refused(
        &cli.run(&[
            "--board",
            "nope",
            "swarm",
            "g",
            "--worker",
            "a:b",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
        ]),
        &["board 'nope'"],
    );
    assert!(
        all_tasks(&cli).is_empty(),
        "a refused swarm creates nothing (one transaction)"
    );
    usage(
        &cli.run(&["swarm", "g", "--verifier", "r", "--synthesizer", "s"]),
        &["--worker"],
    );
    usage(
        &cli.run(&["swarm", "g", "--worker", "a:b", "--synthesizer", "s"]),
        &["--verifier"],
    );
    usage(
        &cli.run(&["swarm", "g", "--worker", "a:b", "--verifier", "r"]),
        &["--synthesizer"],
    );
    usage(
        &cli.run(&[
            "swarm",
            "--worker",
            "a:b",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
        ]),
        &["<GOAL>"],
    );
    for w in ["bad", ":title", "profile:", " : "] {
        usage(
            &cli.run(&[
                "swarm",
                "g",
                "--worker",
                w,
                "--verifier",
                "r",
                "--synthesizer",
                "s",
            ]),
            &["--worker", "PROFILE:TITLE"],
        );
    }
    usage(
        &cli.run(&[
            "swarm",
            "g",
            "--worker",
            "a:b",
            "--verifier",
            " ",
            "--synthesizer",
            "s",
        ]),
        &["--verifier"],
    );
    usage(
        &cli.run(&[
            "swarm",
            "g",
            "--worker",
            "a:b",
            "--verifier",
            "r",
            "--synthesizer",
            "s",
            "--priority",
            "x",
        ]),
        &["--priority"],
    );
    assert!(all_tasks(&cli).is_empty());
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// list

#[test]
fn list_text_lines_match_hermes_format() {
    let cli = Cli::new();
    let b = cli.create(
        "Research B",
        &[
            "--assignee",
            "worker",
            "--tenant",
            "acme",
            "--priority",
            "5",
        ],
    );
    let a = cli.create("Research A", &["--assignee", "worker"]);
    let s = cli.create("Synthesize", &["--assignee", "reviewer", "--parent", &a]);
    let t = cli.create("Triage idea", &["--triage"]);
    let out = cli.run(&["list"]).ok().to_string();
    assert_eq!(
        lines(&out),
        vec![
            format!("▶ {b}  ready     worker               [acme]  Research B"),
            format!("▶ {a}  ready     worker                Research A"),
            format!("◻ {s}  todo      reviewer              Synthesize"),
            format!("? {t}  triage    (unassigned)          Triage idea"),
        ],
        "REF §15.1 line format"
    );
    assert_eq!(cli.run(&["ls"]).ok(), out, "ls is list");

    // Every other icon: running ●, done ✓, blocked ⊘, scheduled ⏱, archived —.
    let r = cli.create("runs", &["--assignee", "worker", "--priority", "-1"]);
    let d = cli.create("done", &["--assignee", "worker", "--priority", "-2"]);
    let bl = cli.create(
        "blocked",
        &[
            "--assignee",
            "worker",
            "--priority",
            "-3",
            "--initial-status",
            "blocked",
        ],
    );
    let sc = cli.create("scheduled", &["--assignee", "worker", "--priority", "-4"]);
    let ar = cli.create("archived", &["--assignee", "worker", "--priority", "-5"]);
    claim(&cli, &r);
    claim(&cli, &d);
    cli.run(&["complete", &d, "--summary", "ok"]).ok();
    cli.run(&["schedule", &sc, "later"]).ok();
    cli.run(&["archive", &ar]).ok();
    let out = cli.run(&["list", "--archived"]).ok().to_string();
    for expected in [
        format!("● {r}  running   worker                runs"),
        format!("✓ {d}  done      worker                done"),
        format!("⊘ {bl}  blocked   worker                blocked"),
        format!("⏱ {sc}  scheduled  worker                scheduled"),
        format!("— {ar}  archived  worker                archived"),
    ] {
        assert!(
            out.lines().any(|l| l == expected),
            "missing line {expected:?} in:\n{out}"
        );
    }
    assert!(
        !cli.run(&["list"]).ok().contains(&ar),
        "archived tasks are hidden by default"
    );
    // One board → no header.
    assert!(!out.contains("Board:"));
    cli.assert_invariants();
}

#[test]
fn list_board_header_when_several_boards_exist() {
    let cli = Cli::new();
    let id = cli.create("only", &[]);
    assert!(!cli.run(&["list"]).ok().contains("Board:"));
    cli.run(&["boards", "create", "lab"]).ok();
    let out = cli.run(&["list"]).ok().to_string();
    let l = lines(&out);
    assert!(
        l[0].starts_with("Board: default (1 other board — "),
        "{out}"
    );
    assert!(l.iter().any(|x| x.contains(&id)));
    cli.run(&["boards", "create", "ops"]).ok();
    let out = cli.run(&["list"]).ok().to_string();
    assert!(
        out.starts_with("Board: default (2 other boards — "),
        "{out}"
    );
    let out = cli.run(&["--board", "lab", "list"]).ok().to_string();
    assert!(out.starts_with("Board: lab (2 other boards — "), "{out}");
    cli.run(&["boards", "switch", "ops"]).ok();
    assert!(cli.run(&["list"]).ok().starts_with("Board: ops "));
    // --json never carries the header.
    assert!(cli.run(&["list", "--json"]).json().is_array());
    // An empty board prints nothing on stdout besides the header.
    let r = cli.run(&["--board", "lab", "list"]);
    assert_eq!(lines(r.ok()).len(), 1);
    cli.assert_invariants();
}

#[test]
fn list_filters_and_json() {
    let cli = Cli::new();
    let a = cli
        .run_env(
            &[
                "create",
                "a",
                "--assignee",
                "worker",
                "--tenant",
                "acme",
                "--json",
            ],
            &[("HERMES_SESSION_ID", "s1")],
        )
        .json();
    let a = a["id"].as_str().unwrap().to_string();
    let b = cli.create("b", &["--assignee", "reviewer", "--tenant", "beta"]);
    let c = cli.create("c", &["--assignee", "default", "--parent", &b]);
    let d = cli.create("d", &[]);
    cli.run(&["archive", &d]).ok();

    let all = list_json(&cli, &[]);
    for t in &all {
        assert_task_dict(t);
    }
    assert_eq!(all.len(), 3);
    // `list --json` is written through typed rows: each element is the same dict, in the
    // same key order, as `show --json`'s task (still built as a JSON value), and the text is
    // the same pretty-printed form as before.
    for t in &all {
        let shown = task_json(&cli, t["id"].as_str().unwrap());
        assert_eq!(t.to_string(), shown.to_string(), "list row vs show task");
    }
    let raw = cli.run(&["list", "--json"]).ok().to_string();
    let parsed: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw, serde_json::to_string_pretty(&parsed).unwrap() + "\n");
    assert_eq!(list_ids(&cli, &["--assignee", "worker"]), vec![a.clone()]);
    assert_eq!(
        list_ids(&cli, &["--assignee", "WORKER"]),
        vec![a.clone()],
        "assignee is case-folded"
    );
    assert_eq!(list_ids(&cli, &["--status", "todo"]), vec![c.clone()]);
    assert_eq!(list_ids(&cli, &["--status", "archived"]), vec![d.clone()]);
    // c was created under b without a tenant: it takes b's (upstream's rule).
    let mut beta = list_ids(&cli, &["--tenant", "beta"]);
    beta.sort();
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(beta, want);
    assert_eq!(list_ids(&cli, &["--session", "s1"]), vec![a.clone()]);
    assert!(list_ids(&cli, &["--session", "nope"]).is_empty());
    assert_eq!(list_ids(&cli, &["--archived"]).len(), 4);
    // --mine = the author identity: $HERMES_PROFILE_NAME, $HERMES_PROFILE, else the active
    // profile (`default` for the shared root), as Hermes.
    assert_eq!(list_ids(&cli, &["--mine"]), vec![c.clone()]);
    let mine = cli
        .run_env(
            &["list", "--mine", "--json"],
            &[("HERMES_PROFILE", "reviewer")],
        )
        .json();
    assert_eq!(mine[0]["id"], json!(b));
    let mine = cli
        .run_env(
            &["list", "--mine", "--json"],
            &[
                ("HERMES_PROFILE", "reviewer"),
                ("HERMES_PROFILE_NAME", "worker"),
            ],
        )
        .json();
    assert_eq!(mine[0]["id"], json!(a));
    // Combined filters.
    assert_eq!(
        list_ids(&cli, &["--assignee", "worker", "--tenant", "beta"]),
        Vec::<String>::new()
    );
    // Text filter output uses the same lines.
    let out = cli.run(&["list", "--tenant", "acme"]).ok().to_string();
    assert_eq!(
        out,
        format!("▶ {a}  ready     worker               [acme]  a\n")
    );
    // Nothing matches: stdout empty, a note on stderr, exit 0.
    let r = cli.run(&["list", "--assignee", "ghost"]);
    assert_eq!(r.ok(), "");
    assert!(r.stderr.contains("no tasks"));
    assert_eq!(
        cli.run(&["list", "--assignee", "ghost", "--json"]).json(),
        json!([])
    );

    // Refusal and usage errors.
    refused(
        &cli.run(&["--board", "nope", "list", "--json"]),
        &["board 'nope' does not exist"],
    );
    usage(
        &cli.run(&["list", "--status", "bogus"]),
        &["--status", "bogus", "triage, todo"],
    );
    usage(&cli.run(&["list", "--status"]), &["--status"]);
    usage(
        &cli.run(&["list", "--sort", "bogus"]),
        &["--sort", "bogus", "priority-desc"],
    );
    usage(&cli.run(&["list", "--bogus"]), &["--bogus"]);
    usage(&cli.run(&["list", "extra"]), &["extra"]);
    cli.assert_invariants();
}

#[test]
fn list_sort_orders() {
    let cli = Cli::new();
    // Created in this order (same second → rowid breaks ties).
    let mid = cli.create("charlie", &["--assignee", "bob", "--priority", "5"]);
    let low = cli.create("Alpha", &["--assignee", "carol", "--priority", "-3"]);
    let high = cli.create("beta", &["--priority", "9"]);
    let tri = cli.create(
        "delta",
        &["--assignee", "alice", "--priority", "0", "--triage"],
    );
    claim(&cli, &mid);
    let ids = |sort: &str| list_ids(&cli, &["--sort", sort]);
    let created = vec![mid.clone(), low.clone(), high.clone(), tri.clone()];
    assert_eq!(ids("created"), created);
    assert_eq!(
        ids("created-desc"),
        created.iter().rev().cloned().collect::<Vec<_>>()
    );
    let by_prio = vec![high.clone(), mid.clone(), tri.clone(), low.clone()];
    assert_eq!(
        list_ids(&cli, &[]),
        by_prio,
        "default: priority DESC, created ASC"
    );
    assert_eq!(ids("priority"), by_prio);
    assert_eq!(
        ids("priority-desc"),
        by_prio,
        "deliberate: priority-desc is highest first (Hermes inverted it)"
    );
    assert_eq!(
        ids("priority-asc"),
        by_prio.iter().rev().cloned().collect::<Vec<_>>()
    );
    assert_eq!(
        ids("title"),
        vec![low.clone(), high.clone(), mid.clone(), tri.clone()],
        "case-insensitive title"
    );
    assert_eq!(
        ids("assignee"),
        vec![tri.clone(), mid.clone(), low.clone(), high.clone()],
        "unassigned last"
    );
    assert_eq!(
        ids("status"),
        vec![tri.clone(), high.clone(), low.clone(), mid.clone()],
        "triage, …, ready, running"
    );
    assert_eq!(
        ids("updated")[0],
        mid,
        "started most recently first, never-started last"
    );
    // Text output follows the same order.
    let out = cli
        .run(&["list", "--sort", "created-desc"])
        .ok()
        .to_string();
    let text_ids: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        text_ids,
        created.iter().rev().map(String::as_str).collect::<Vec<_>>()
    );
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// show

#[test]
fn show_json_shape_and_text() {
    let cli = Cli::new();
    let p = cli.create(
        "Design schema",
        &[
            "--assignee",
            "architect",
            "--tenant",
            "acme",
            "--skill",
            "humanizer",
            "--body",
            "Four tables.",
        ],
    );
    let c = cli.create("Build API", &["--assignee", "coder", "--parent", &p]);
    cli.run(&[
        "comment",
        &p,
        "found",
        "3",
        "sources",
        "--author",
        "architect",
    ])
    .ok();
    claim(&cli, &p);
    cli.run(&[
        "complete",
        &p,
        "--summary",
        "schema done",
        "--metadata",
        r#"{"tables": 4}"#,
    ])
    .ok();

    let v = show_json(&cli, &p);
    assert_eq!(v["task"]["status"], "done");
    assert_eq!(v["latest_summary"], "schema done");
    assert_eq!(v["parents"], json!([]));
    assert_eq!(v["children"], json!([c.clone()]));
    assert_eq!(v["comments"].as_array().unwrap().len(), 1);
    assert_keys(&v["comments"][0], &COMMENT_KEYS);
    assert_eq!(v["comments"][0]["author"], "architect");
    assert_eq!(v["comments"][0]["body"], "found 3 sources");
    for e in v["events"].as_array().unwrap() {
        assert_keys(e, &EVENT_KEYS);
    }
    let kinds = event_kinds(&v);
    for k in ["created", "commented", "claimed", "completed"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_keys(&runs[0], &RUN_KEYS);
    assert_eq!(runs[0]["profile"], "architect");
    assert_eq!(runs[0]["status"], "done");
    assert_eq!(runs[0]["outcome"], "completed");
    assert_eq!(runs[0]["summary"], "schema done");
    assert_eq!(runs[0]["metadata"], json!({"tables": 4}));
    let cj = show_json(&cli, &c);
    assert_eq!(cj["parents"], json!([p.clone()]));
    assert_eq!(
        cj["task"]["status"], "ready",
        "promoted when its parent completed"
    );
    assert_eq!(cj["latest_summary"], Value::Null);
    assert_eq!(cj["runs"], json!([]));

    // Text: header fields, parents/children, body, latest summary, comments, events, runs.
    let out = cli.run(&["show", &p]).ok().to_string();
    for needle in [
        format!("✓ {p}  Design schema"),
        "status:     done".to_string(),
        "assignee:   architect".to_string(),
        "priority:   0".to_string(),
        "tenant:     acme".to_string(),
        "skills:     humanizer".to_string(),
        "created:    ".to_string(),
        "by user".to_string(),
        "max retries: 2 (default)".to_string(),
        format!("children:   {c}"),
        "Four tables.".to_string(),
        "Latest summary: schema done".to_string(),
        "Comments:".to_string(),
        "architect: found 3 sources".to_string(),
        "Events:".to_string(),
        "completed".to_string(),
        "Runs:".to_string(),
        "#1 completed".to_string(),
        "→ schema done".to_string(),
    ] {
        assert!(out.contains(&needle), "show text lacks {needle:?}:\n{out}");
    }
    let out = cli.run(&["show", &c]).ok().to_string();
    assert!(out.contains(&format!("parents:    {p}")), "{out}");
    assert!(out.contains("status:     ready"), "{out}");
    cli.assert_invariants();
}

#[test]
fn show_state_filter_refusals_and_usage() {
    let cli = Cli::new();
    let t = cli.create("flaky", &["--assignee", "worker"]);
    claim(&cli, &t);
    cli.run(&["reclaim", &t, "--reason", "hung"]).ok();
    claim(&cli, &t);
    cli.run(&["complete", &t, "--summary", "second time lucky"])
        .ok();
    let outcomes = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["show", t.as_str(), "--json"];
        a.extend_from_slice(args);
        let v = cli.run(&a).json();
        assert_keys(&v, &SHOW_KEYS);
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(outcomes(&[]), ["reclaimed", "completed"]);
    assert_eq!(
        outcomes(&["--state-type", "outcome", "--state-name", "completed"]),
        ["completed"]
    );
    assert_eq!(
        outcomes(&["--state-type", "outcome", "--state-name", "reclaimed"]),
        ["reclaimed"]
    );
    assert_eq!(
        outcomes(&["--state-type", "status", "--state-name", "done"]),
        ["completed"]
    );
    assert!(outcomes(&["--state-type", "status", "--state-name", "nope"]).is_empty());
    let text = cli
        .run(&[
            "show",
            &t,
            "--state-type",
            "outcome",
            "--state-name",
            "completed",
        ])
        .ok()
        .to_string();
    assert!(
        text.contains("#1 completed") && !text.contains("#2 "),
        "{text}"
    );
    // The filter applies to runs only; events are all there.
    let v = cli
        .run(&[
            "show",
            &t,
            "--json",
            "--state-type",
            "outcome",
            "--state-name",
            "completed",
        ])
        .json();
    assert!(event_kinds(&v).iter().any(|k| k == "reclaimed"));

    refused(
        &cli.run(&["show", "t_nope0000"]),
        &["no such task: t_nope0000"],
    );
    refused(
        &cli.run(&["show", "t_nope0000", "--json"]),
        &["no such task: t_nope0000"],
    );
    refused(&cli.run(&["show", "nonexist"]), &["no such task: nonexist"]);
    refused(
        &cli.run(&["--board", "nope", "show", &t]),
        &["board 'nope'"],
    );
    usage(&cli.run(&["show"]), &["<ID>"]);
    usage(
        &cli.run(&["show", &t, "--state-type", "outcome"]),
        &["--state-name"],
    );
    usage(
        &cli.run(&["show", &t, "--state-name", "completed"]),
        &["--state-type"],
    );
    usage(
        &cli.run(&["show", &t, "--state-type", "bogus", "--state-name", "x"]),
        &["--state-type", "status", "outcome"],
    );
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// assign / reassign

#[test]
fn assign_and_unassign() {
    let cli = Cli::new();
    let t = cli.create("task", &["--assignee", "worker"]);
    assert_eq!(
        cli.run(&["assign", &t, "reviewer"]).ok(),
        format!("Assigned {t} to reviewer\n")
    );
    assert_eq!(task_json(&cli, &t)["assignee"], "reviewer");
    let v = show_json(&cli, &t);
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), &last["payload"]["assignee"]),
        (Some("assigned"), &json!("reviewer"))
    );
    for none in ["none", "NONE", "-", "null"] {
        cli.run(&["assign", &t, "reviewer"]).ok();
        assert_eq!(
            cli.run(&["assign", &t, none]).ok(),
            format!("Assigned {t} to (unassigned)\n"),
            "assign {none}"
        );
        assert_eq!(task_json(&cli, &t)["assignee"], Value::Null);
    }
    assert!(cli.run(&["list"]).ok().contains("(unassigned)"));

    // Refused while running, with what to do instead.
    let r = cli.create("running", &["--assignee", "worker"]);
    claim(&cli, &r);
    refused(
        &cli.run(&["assign", &r, "reviewer"]),
        &[
            &format!("cannot assign {r}"),
            "running",
            "reassign --reclaim",
        ],
    );
    assert_eq!(task_json(&cli, &r)["assignee"], "worker");
    refused(
        &cli.run(&["assign", "t_nope0000", "x"]),
        &["no such task: t_nope0000"],
    );
    refused(
        &cli.run(&["assign", &t, "bad name!"]),
        &["assignee", "bad name!"],
    );
    refused(
        &cli.run(&["assign", &t, ".hidden"]),
        &["assignee", ".hidden"],
    );
    usage(&cli.run(&["assign", &t]), &["<PROFILE>"]);
    usage(&cli.run(&["assign"]), &["<ID>"]);
    cli.assert_invariants();
}

#[test]
fn reassign_with_and_without_reclaim() {
    let cli = Cli::new();
    let idle = cli.create("idle", &["--assignee", "worker"]);
    assert_eq!(
        cli.run(&["reassign", &idle, "reviewer"]).ok(),
        format!("Reassigned {idle} to reviewer\n")
    );
    assert_eq!(
        cli.run(&["reassign", &idle, "none"]).ok(),
        format!("Reassigned {idle} to (unassigned)\n")
    );

    let t = cli.create("busy", &["--assignee", "worker"]);
    claim(&cli, &t);
    refused(
        &cli.run(&["reassign", &t, "reviewer"]),
        &[
            &format!("cannot reassign {t}"),
            "still running",
            "--reclaim",
        ],
    );
    assert_eq!(
        task_json(&cli, &t)["status"],
        "running",
        "refusal changes nothing"
    );
    let out = cli
        .run(&[
            "reassign",
            &t,
            "reviewer",
            "--reclaim",
            "--reason",
            "switch model",
        ])
        .ok()
        .to_string();
    assert_eq!(
        out,
        format!("Reassigned {t} to reviewer (claim reclaimed)\n")
    );
    let v = show_json(&cli, &t);
    assert_eq!(v["task"]["status"], "ready");
    assert_eq!(v["task"]["assignee"], "reviewer");
    let evs = v["events"].as_array().unwrap();
    let reclaimed = evs
        .iter()
        .find(|e| e["kind"] == "reclaimed")
        .expect("reclaimed event");
    assert_eq!(reclaimed["payload"]["manual"], json!(true));
    assert_eq!(reclaimed["payload"]["reason"], "switch model");
    assert_eq!(evs.last().unwrap()["kind"], "assigned");
    assert_eq!(v["runs"][0]["outcome"], "reclaimed");

    refused(
        &cli.run(&["reassign", "t_nope0000", "x"]),
        &["no such task: t_nope0000"],
    );
    refused(&cli.run(&["reassign", &t, "Bad Name"]), &["assignee"]);
    usage(&cli.run(&["reassign", &t]), &["<PROFILE>"]);
    usage(&cli.run(&["reassign", &t, "x", "--reason"]), &["--reason"]);
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// link / unlink

#[test]
fn link_and_unlink() {
    let cli = Cli::new();
    let p = cli.create("parent", &["--assignee", "worker"]);
    let c = cli.create("child", &["--assignee", "worker"]);
    let g = cli.create("grandchild", &["--assignee", "worker"]);
    assert_eq!(task_json(&cli, &c)["status"], "ready");
    assert_eq!(
        cli.run(&["link", &p, &c]).ok(),
        format!("Linked {p} -> {c}\n")
    );
    assert_eq!(show_json(&cli, &c)["parents"], json!([p.clone()]));
    assert_eq!(show_json(&cli, &p)["children"], json!([c.clone()]));
    assert_eq!(
        task_json(&cli, &c)["status"],
        "todo",
        "a ready child waits for its new parent"
    );
    cli.run(&["link", &c, &g]).ok();

    // Refusals: cycle (direct and transitive), self, unknown ids.
    refused(
        &cli.run(&["link", &c, &p]),
        &[&format!("linking {c} -> {p} would create a cycle")],
    );
    refused(&cli.run(&["link", &g, &p]), &["cycle", &g, &p]);
    refused(
        &cli.run(&["link", &p, &p]),
        &["cannot depend on itself", &p],
    );
    refused(
        &cli.run(&["link", "t_nope0000", &c]),
        &["no such task: t_nope0000"],
    );
    refused(
        &cli.run(&["link", &p, "t_nope0000"]),
        &["no such task: t_nope0000"],
    );
    assert_eq!(
        show_json(&cli, &p)["parents"],
        json!([]),
        "refused links add nothing"
    );

    assert_eq!(
        cli.run(&["unlink", &p, &c]).ok(),
        format!("Unlinked {p} -> {c}\n")
    );
    assert_eq!(show_json(&cli, &c)["parents"], json!([]));
    assert_eq!(
        list_json(&cli, &[])
            .iter()
            .find(|t| t["id"] == json!(c))
            .unwrap()["status"],
        "ready",
        "list recomputes readiness"
    );
    refused(
        &cli.run(&["unlink", &p, &c]),
        &[&format!("no link {p} -> {c}")],
    );
    refused(&cli.run(&["unlink", "t_nope0000", &c]), &["t_nope0000"]);

    usage(&cli.run(&["link", &p]), &["<CHILD>"]);
    usage(&cli.run(&["unlink"]), &["<PARENT>"]);
    usage(&cli.run(&["link", &p, &c, &g]), &[&g]);
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// comment

#[test]
fn comment_author_max_len_and_refusals() {
    let cli = Cli::new();
    let t = cli.create("task", &[]);
    assert_eq!(
        cli.run(&["comment", &t, "found 3 sources", "--author", "worker"])
            .ok(),
        format!("Comment added to {t}\n")
    );
    cli.run(&["comment", &t, "several", "words", "joined"]).ok();
    cli.run_env(
        &["comment", &t, "from env"],
        &[("HERMES_PROFILE", "researcher")],
    )
    .ok();
    cli.run(&["comment", &t, "--", "-5 degrees outside"]).ok();
    let long = "x".repeat(200);
    cli.run(&["comment", &t, &long, "--max-len", "60"]).ok();
    cli.run(&["comment", &t, "short", "--max-len", "60"]).ok();
    let v = show_json(&cli, &t);
    let cs: Vec<(String, String)> = v["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_keys(c, &COMMENT_KEYS);
            (
                c["author"].as_str().unwrap().to_string(),
                c["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        cs[0],
        ("worker".into(), "found 3 sources".into()),
        "--author after the text is a flag (REF §21.3)"
    );
    assert_eq!(cs[1], ("default".into(), "several words joined".into()));
    assert_eq!(cs[2], ("researcher".into(), "from env".into()));
    assert_eq!(cs[3].1, "-5 degrees outside");
    let suffix = "\n\n[trimmed to 60 chars by --max-len]";
    assert!(cs[4].1.ends_with(suffix), "{:?}", cs[4].1);
    assert_eq!(
        cs[4].1.chars().count(),
        60,
        "the trimmed comment, suffix included, fits in --max-len"
    );
    assert!(cs[4].1.starts_with("xxxxxxxxxx"));
    assert_eq!(cs[5].1, "short", "no suffix when it fits");
    assert!(
        cli.run(&["show", &t])
            .ok()
            .contains("worker: found 3 sources")
    );

    refused(
        &cli.run(&["comment", "t_nope0000", "hi"]),
        &["no such task: t_nope0000"],
    );
    refused(&cli.run(&["comment", &t, "   "]), &["body"]);
    let n = show_json(&cli, &t)["comments"].as_array().unwrap().len();
    usage(&cli.run(&["comment", &t]), &["<TEXT>"]);
    usage(&cli.run(&["comment"]), &["<ID>"]);
    usage(
        &cli.run(&["comment", &t, "x", "--max-len", "0"]),
        &["--max-len"],
    );
    usage(
        &cli.run(&["comment", &t, "x", "--max-len", "ten"]),
        &["--max-len"],
    );
    usage(&cli.run(&["comment", &t, "x", "--author"]), &["--author"]);
    assert_eq!(
        show_json(&cli, &t)["comments"].as_array().unwrap().len(),
        n,
        "failures add no comment"
    );
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// archive

#[test]
fn archive_and_rm() {
    let cli = Cli::new();
    let a = cli.create("a", &[]);
    let b = cli.create("b", &[]);
    let c = cli.create("c", &[]);
    assert_eq!(
        cli.run(&["archive", &a, &b]).ok(),
        format!("Archived {a}\nArchived {b}\n")
    );
    assert_eq!(list_ids(&cli, &[]), vec![c.clone()]);
    assert_eq!(
        list_ids(&cli, &["--archived", "--status", "archived"]).len(),
        2
    );
    assert_eq!(task_json(&cli, &a)["status"], "archived");
    assert!(event_kinds(&show_json(&cli, &a)).contains(&"archived".to_string()));

    // --rm is refused for a task that is not archived, and says what to do.
    refused(
        &cli.run(&["archive", "--rm", &c]),
        &[&format!("cannot delete {c}"), "archive it first"],
    );
    assert_eq!(task_json(&cli, &c)["status"], "ready");
    assert_eq!(
        cli.run(&["archive", "--rm", &a]).ok(),
        format!("Deleted {a}\n")
    );
    refused(&cli.run(&["show", &a]), &[&format!("no such task: {a}")]);
    // Archiving twice / unknown ids.
    refused(
        &cli.run(&["archive", &b]),
        &[&format!("cannot archive {b}"), "already archived"],
    );
    refused(
        &cli.run(&["archive", "t_nope0000"]),
        &["no such task: t_nope0000"],
    );
    refused(
        &cli.run(&["archive", "--rm", "t_nope0000"]),
        &["no such task: t_nope0000"],
    );
    // Bulk with one bad id: the good one is archived and reported, exit 1.
    let r = cli.run(&["archive", &c, "t_nope0000"]);
    r.code(1);
    assert_eq!(r.stdout, format!("Archived {c}\n"));
    assert!(r.stderr.contains("no such task: t_nope0000"));
    // A parent that is archived satisfies its children (deliberate).
    let p = cli.create("parent", &["--assignee", "worker"]);
    let k = cli.create("kid", &["--assignee", "worker", "--parent", &p]);
    assert_eq!(task_json(&cli, &k)["status"], "todo");
    cli.run(&["archive", &p]).ok();
    cli.run(&["list"]).ok();
    assert_eq!(task_json(&cli, &k)["status"], "ready");

    usage(&cli.run(&["archive"]), &["--rm"]);
    usage(&cli.run(&["archive", &k, "--rm", &b]), &["--rm"]);
    usage(&cli.run(&["archive", "--rm"]), &["--rm"]);
    assert_eq!(task_json(&cli, &k)["status"], "ready");
    cli.assert_invariants();
}

// ------------------------------------------------------------------------------------------
// Story 1 end to end

#[test]
fn story_1_schema_api_tests_pipeline() {
    let cli = Cli::new();
    cli.run(&["init"]).ok();
    let schema = cli.create("Design the schema", &["--assignee", "architect"]);
    let api = cli.create(
        "Build the API",
        &["--assignee", "coder", "--parent", &schema],
    );
    let tests = cli.create(
        "Write the tests",
        &["--assignee", "tester", "--parent", &api],
    );
    let status = |cli: &Cli| -> Vec<(String, String)> {
        list_json(cli, &[])
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let st = status(&cli);
    assert!(st.contains(&(schema.clone(), "ready".into())));
    assert!(st.contains(&(api.clone(), "todo".into())));
    assert!(st.contains(&(tests.clone(), "todo".into())));

    claim(&cli, &schema);
    let out = cli
        .run(&[
            "complete",
            &schema,
            "--summary",
            "4 tables: users, orders, items, payments",
            "--metadata",
            r#"{"tables": 4}"#,
        ])
        .ok()
        .to_string();
    assert!(out.contains(&format!("Completed {schema}")), "{out}");

    let listed = list_json(&cli, &[]);
    let get = |id: &str| {
        listed
            .iter()
            .find(|t| t["id"] == json!(id))
            .unwrap()
            .clone()
    };
    assert_eq!(get(&schema)["status"], "done");
    assert_eq!(
        get(&api)["status"],
        "ready",
        "API promoted once the schema is done"
    );
    assert_eq!(
        get(&tests)["status"],
        "todo",
        "tests still wait for the API"
    );

    let ctx = cli.run(&["context", &api]).ok().to_string();
    assert!(
        ctx.starts_with(&format!("# Kanban task {api}: Build the API")),
        "{ctx}"
    );
    assert!(ctx.contains(&schema), "{ctx}");
    assert!(
        ctx.contains("4 tables: users, orders, items, payments"),
        "{ctx}"
    );
    assert!(ctx.contains(r#"_metadata_: `{"tables": 4}`"#), "{ctx}");

    claim(&cli, &api);
    cli.run(&["complete", &api, "--summary", "API live on :8080"])
        .ok();
    let st = status(&cli);
    assert!(st.contains(&(api.clone(), "done".into())));
    assert!(
        st.contains(&(tests.clone(), "ready".into())),
        "tests promoted: {st:?}"
    );
    let ctx = cli.run(&["context", &tests]).ok().to_string();
    assert!(ctx.contains("API live on :8080"), "{ctx}");
    refused(
        &cli.run(&["context", "t_nope0000"]),
        &["no such task: t_nope0000"],
    );
    usage(&cli.run(&["context"]), &["<ID>"]);
    cli.assert_invariants();
}

#[test]
fn a_delegated_child_context_cannot_mutate_its_board() {
    // UP §9: a worker's subprocess carries HERMES_DELEGATED_CHILD_CONTEXT=<kanban root>.
    let cli = Cli::new();
    let t = cli.create("owned by a worker", &["--assignee", "worker"]);
    cli.run(&["boards", "create", "side"]).ok();
    let before = cli.board().snapshot().unwrap();
    let home = cli.home().to_string_lossy().into_owned();
    let fenced = [("HERMES_DELEGATED_CHILD_CONTEXT", home.as_str())];
    for args in [
        vec!["create", "sneaky"],
        vec!["comment", t.as_str(), "hi"],
        vec!["complete", t.as_str(), "--summary", "done by a child"],
        vec!["block", t.as_str(), "why"],
        vec!["archive", t.as_str()],
        vec!["boards", "switch", "side"],
        vec!["boards", "create", "another"],
        vec!["boards", "rm", "side"],
    ] {
        let r = cli.run_env(&args, &fenced);
        fails(
            &r,
            1,
            &["delegated child", "HERMES_DELEGATED_CHILD_CONTEXT"],
        );
    }
    assert_eq!(cli.board().snapshot().unwrap(), before, "nothing changed");
    assert!(!cli.has_board("another"));
    assert!(cli.has_board("side"));
    // Reading still works.
    let r = cli.run_env(&["show", &t, "--json"], &fenced);
    assert_eq!(r.json()["task"]["status"], "ready");
    cli.run_env(&["list"], &fenced).ok();
    // The legacy marker `1` fences every board; a marker naming another root fences nothing
    // here (a child running a repro against its own scratch home).
    fails(
        &cli.run_env(&["create", "x"], &[("HERMES_DELEGATED_CHILD_CONTEXT", "1")]),
        1,
        &["delegated child"],
    );
    let elsewhere = cli
        .dir
        .path()
        .join("elsewhere")
        .to_string_lossy()
        .into_owned();
    cli.run_env(
        &["create", "mine", "--json"],
        &[("HERMES_DELEGATED_CHILD_CONTEXT", elsewhere.as_str())],
    )
    .json();
}

/// Damage `idx_tasks_status` the way a torn write can: its entries no longer match the table
/// (built while the index was declared on another column, then the declaration restored).
fn damage_status_index(db: &std::path::Path) {
    let swap = |from: &str, to: &str, reindex: bool| {
        let c = rusqlite::Connection::open(db).unwrap();
        c.execute_batch("PRAGMA writable_schema=ON").unwrap();
        c.execute(
            "UPDATE sqlite_master SET sql=replace(sql, ?1, ?2) WHERE name='idx_tasks_status'",
            [from, to],
        )
        .unwrap();
        c.execute_batch("PRAGMA writable_schema=OFF").unwrap();
        drop(c);
        if reindex {
            let c = rusqlite::Connection::open(db).unwrap();
            c.execute_batch("REINDEX idx_tasks_status").unwrap();
        }
    };
    swap("tasks(status)", "tasks(title)", true);
    swap("tasks(title)", "tasks(status)", false);
}

#[test]
fn repair_rebuilds_a_damaged_index_after_a_backup_and_reports_a_healthy_board() {
    sqlite_only!("damages and repairs a SQLite file");
    let mut cli = Cli::new();
    // No DB yet: nothing to repair.
    let v = cli.run(&["repair", "--json"]).json();
    assert_eq!(v["status"], "missing");
    for t in ["b", "a", "c"] {
        cli.create(t, &["--assignee", "worker"]);
    }
    let v = cli.run(&["repair", "--json"]).json();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["messages"], serde_json::json!(["ok"]));
    assert_eq!(v["quick_check"], serde_json::json!(["ok"]));
    assert_eq!(v["backup_path"], serde_json::Value::Null);
    assert!(cli.run(&["repair"]).ok().contains("no repair needed"));

    damage_status_index(&cli.db());
    let v = cli.run(&["repair", "--json"]).json();
    assert_eq!(v["status"], "repaired", "{v}");
    assert_eq!(v["reindexed"], serde_json::json!(["idx_tasks_status"]));
    assert!(
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("idx_tasks_status")),
        "{v}"
    );
    assert_eq!(v["post_repair_messages"], serde_json::json!(["ok"]));
    let backup = std::path::PathBuf::from(v["backup_path"].as_str().unwrap());
    assert!(
        backup.is_file() && backup.parent() == cli.db().parent(),
        "{v}"
    );
    assert!(
        backup
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kanban.db.corrupt.")
    );
    // The board works and is healthy again; the tasks are all there.
    assert_eq!(cli.run(&["repair", "--json"]).json()["status"], "ok");
    let n = cli.run(&["list", "--status", "ready", "--json"]).json();
    assert_eq!(n.as_array().unwrap().len(), 3);

    // Damage that is not index-scoped is reported, not "repaired" (exit 1); the board stays
    // corrupt, so the teardown cannot open it for the invariant check.
    cli.skip_invariant_check();
    let c = rusqlite::Connection::open(cli.db()).unwrap();
    c.execute_batch(
        "PRAGMA writable_schema=ON; UPDATE sqlite_master SET rootpage=rootpage+1000 \
         WHERE name='task_comments'; PRAGMA writable_schema=OFF;",
    )
    .unwrap();
    drop(c);
    let r = cli.run(&["repair", "--json"]);
    r.code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "corrupt", "{v}");
    assert!(v["backup_path"].is_string(), "{v}");
}

/// Read one file of a `.tar.gz` into memory.
fn archive_file(archive: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let f = std::fs::File::open(archive).unwrap();
    let mut t = tar::Archive::new(flate2::read::GzDecoder::new(f));
    for e in t.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return Some(v);
        }
    }
    None
}

#[test]
fn boards_export_and_import_move_a_board_without_its_live_state() {
    sqlite_only!("the archive is Hermes' SQLite board format, inspected with rusqlite");
    let cli = Cli::new();
    cli.run(&[
        "boards", "create", "research", "--name", "Research", "--icon", "R",
    ])
    .ok();
    let on = |args: &[&str]| {
        let mut a = vec!["--board", "research"];
        a.extend_from_slice(args);
        cli.run(&a)
    };
    let done = on(&["create", "finished", "--assignee", "worker", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    on(&["claim", &done]).ok();
    on(&["complete", &done, "--summary", "shipped"]).ok();
    let live = on(&["create", "in flight", "--assignee", "worker", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir_task = on(&[
        "create",
        "local dir",
        "--assignee",
        "worker",
        "--workspace",
        &format!("dir:{}", cli.dir.path().display()),
        "--json",
    ])
    .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    on(&["comment", &done, "a note"]).ok();
    let file = cli.dir.path().join("evidence.txt");
    std::fs::write(&file, "proof").unwrap();
    on(&["attach", &done, file.to_str().unwrap()]).ok();
    on(&[
        "notify-subscribe",
        &live,
        "--platform",
        "telegram",
        "--chat-id",
        "42",
    ])
    .ok();
    // A live worker: claim, supervisor row, run token.
    let env = cli.env();
    let b = hermes_kanban::kernel::Board::open(&env, Some("research")).unwrap();
    let claim = b.claim_task_as(&live, Some(600), "otherhost:77").unwrap();
    b.mint_run_token(&live, claim.run_id).unwrap();
    b.register_supervisor(&live, claim.run_id, 4242, Some(1))
        .unwrap();
    let before = b.snapshot().unwrap();
    drop(b);

    let out = cli.dir.path().join("out/research-backup");
    let v = cli
        .run(&[
            "boards",
            "export",
            "research",
            "-o",
            out.to_str().unwrap(),
            "--include-logs",
            "--json",
        ])
        .json();
    let archive = std::path::PathBuf::from(v["archive"].as_str().unwrap());
    assert!(
        archive
            .to_string_lossy()
            .ends_with("research-backup.tar.gz"),
        "{v}"
    );
    assert_eq!(v["counts"]["tasks"], 3, "{v}");
    assert_eq!(v["counts"]["attachment_files"], 1, "{v}");
    assert_eq!(
        v["size"].as_u64().unwrap(),
        std::fs::metadata(&archive).unwrap().len()
    );
    // Exporting changed nothing on the board.
    let b = hermes_kanban::kernel::Board::open(&env, Some("research")).unwrap();
    assert_eq!(
        b.snapshot().unwrap(),
        before,
        "export wrote to the live board"
    );
    drop(b);
    // The archive: Hermes' layout, and a snapshot with no live claim state.
    let manifest: serde_json::Value =
        serde_json::from_slice(&archive_file(&archive, "research/manifest.json").unwrap()).unwrap();
    assert_eq!(manifest["format"], "hermes-kanban-board");
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["board"], "research");
    assert_eq!(manifest["board_name"], "Research");
    assert!(archive_file(&archive, "research/board.json").is_some());
    let db_bytes = archive_file(&archive, "research/kanban.db").unwrap();
    let snap = cli.dir.path().join("snap.db");
    std::fs::write(&snap, db_bytes).unwrap();
    let c = rusqlite::Connection::open(&snap).unwrap();
    let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        q(
            "SELECT count(*) FROM tasks WHERE claim_lock IS NOT NULL OR worker_pid IS NOT NULL OR \
             current_run_id IS NOT NULL OR status='running'"
        ),
        0
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM task_runs WHERE ended_at IS NULL OR claim_lock IS NOT NULL OR \
             worker_pid IS NOT NULL"
        ),
        0
    );
    assert_eq!(q("SELECT count(*) FROM kanban_worker_procs"), 0);
    assert_eq!(q("SELECT count(*) FROM kanban_run_tokens"), 0);
    assert_eq!(q("SELECT count(*) FROM kanban_notify_subs"), 0);
    let ic: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ic, "ok");
    drop(c);

    // Import twice: the second lands as research-2; --switch makes it current.
    let r = cli
        .run(&["boards", "import", archive.to_str().unwrap(), "--json"])
        .json();
    assert_eq!(
        (r["board"].clone(), r["renamed"].clone()),
        (json!("research-2"), json!(true)),
        "{r}"
    );
    assert_eq!(r["requested_board"], "research");
    assert_eq!(r["name"], "Research");
    assert_eq!(r["attachments_restored"], 1);
    assert_eq!(r["tasks_parked"], 1, "the dir: task is parked in triage");
    assert_eq!(r["counts"]["tasks"], 3);
    let r2 = cli
        .run(&[
            "boards",
            "import",
            archive.to_str().unwrap(),
            "--as",
            "copy",
            "--switch",
            "--json",
        ])
        .json();
    assert_eq!(
        (r2["board"].clone(), r2["activated"].clone()),
        (json!("copy"), json!(true))
    );
    assert_eq!(
        cli.run(&["boards", "show", "--json"]).json()["slug"],
        "copy"
    );
    let b = hermes_kanban::kernel::Board::open(&env, Some("research-2")).unwrap();
    let t = b.get_task(&live).unwrap();
    assert_eq!(
        t.status,
        hermes_kanban::kernel::Status::Ready,
        "no phantom claim"
    );
    assert!(t.claim_lock.is_none() && t.worker_pid.is_none() && t.current_run_id.is_none());
    assert!(b.list_notify_subs(None).unwrap().is_empty());
    assert_eq!(
        b.get_task(&dir_task).unwrap().status,
        hermes_kanban::kernel::Status::Triage
    );
    assert_eq!(
        b.get_task(&done).unwrap().status,
        hermes_kanban::kernel::Status::Done
    );
    let atts = b.list_attachments(&done).unwrap();
    assert_eq!(atts.len(), 1);
    assert!(
        atts[0]
            .stored_path
            .contains("boards/research-2/attachments"),
        "{:?}",
        atts[0]
    );
    assert_eq!(
        std::fs::read_to_string(&atts[0].stored_path).unwrap(),
        "proof"
    );
    assert!(
        b.list_events(&done, None)
            .unwrap()
            .iter()
            .any(|e| e.kind == "imported")
    );
    let problems = b.check_invariants().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    // A file that is not an archive is refused with a clear message and creates no board.
    std::fs::write(cli.dir.path().join("junk.tar.gz"), "junk").unwrap();
    fails(
        &cli.run(&[
            "boards",
            "import",
            cli.dir.path().join("junk.tar.gz").to_str().unwrap(),
        ]),
        1,
        &["not a readable .tar.gz board archive"],
    );
    fails(&cli.run(&["boards", "export", "nope"]), 1, &["nope"]);
}

/// `create --model/--provider/--reasoning` and `set-model` (upstream 0.19.1/0.20.0): the values
/// land on the task, each change is one `model_override_set` / `reasoning_effort_set` event,
/// `default` clears, a provider without a model and an unknown level are refused unchanged.
#[test]
fn create_and_set_model_record_model_provider_and_reasoning() {
    let cli = Cli::new();
    let id = cli.create(
        "pinned",
        &[
            "--assignee",
            "worker",
            "--model",
            "gpt-5.5",
            "--provider",
            "openrouter",
            "--reasoning",
            "High",
        ],
    );
    let t = cli.board().get_task(&id).unwrap();
    assert_eq!(t.model_override.as_deref(), Some("gpt-5.5"));
    assert_eq!(t.provider_override.as_deref(), Some("openrouter"));
    assert_eq!(t.reasoning_effort.as_deref(), Some("high"));
    let show = cli.run(&["show", &id]);
    assert!(
        show.ok()
            .contains("model:      gpt-5.5 (provider openrouter)")
    );
    assert!(show.ok().contains("reasoning:  high"));

    let j = cli
        .run(&[
            "set-model",
            &id,
            "claude-opus-4.5",
            "--provider",
            "anthropic",
            "--json",
        ])
        .json();
    assert_eq!(
        j,
        json!({"id": id, "model_override": "claude-opus-4.5", "provider_override": "anthropic",
            "reasoning_effort": "high"})
    );
    cli.run(&["set-model", &id, "default", "--reasoning", "default"])
        .ok();
    let t = cli.board().get_task(&id).unwrap();
    assert_eq!(
        (t.model_override, t.provider_override, t.reasoning_effort),
        (None, None, None)
    );
    let d = cli.run(&["show", &id, "--json"]).json();
    let evs: Vec<(String, Value)> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .filter(|(k, _)| k != "created")
        .collect();
    assert_eq!(
        evs,
        vec![
            (
                "model_override_set".to_string(),
                json!({"model": "claude-opus-4.5", "provider": "anthropic"})
            ),
            (
                "model_override_set".to_string(),
                json!({"model": null, "provider": null})
            ),
            (
                "reasoning_effort_set".to_string(),
                json!({"reasoning_effort": null})
            ),
        ]
    );
    // Refusals change nothing.
    let r = cli.run(&["set-model", &id, "default", "--provider", "x"]);
    r.code(2);
    assert!(
        r.stderr.contains("--provider needs a model"),
        "{}",
        r.stderr
    );
    let r = cli.run(&["create", "bad", "--reasoning", "loud"]);
    r.code(1);
    assert!(r.stderr.contains("reasoning_effort"), "{}", r.stderr);
    let r = cli.run(&["set-model", &id, "-weird"]);
    assert_ne!(r.code, 0);
    let after = cli.run(&["show", &id, "--json"]).json();
    assert_eq!(after["events"], d["events"]);
}

// ------------------------------------------------------------------------------------------
// Nothing creates a board silently

/// Every file and directory under `root` (sorted), to prove a verb created nothing.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.display().to_string());
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Reading verbs on a board that has no database create no file or directory, say so on
/// stderr (the path, and how to point at the right board), and still print an empty result
/// with exit 0 where scripts expect one; `init` creates; a writing verb auto-creates (as
/// Hermes does) and says which file it created, once.
#[test]
fn reading_verbs_on_a_missing_board_create_nothing_and_say_so() {
    sqlite_only!("the refusal names the SQLite file and the HERMES_HOME / HERMES_KANBAN_DB fixes");
    let cli = Cli::new();
    fs::create_dir_all(cli.home()).unwrap();
    let before = tree(cli.dir.path());
    let db = cli.db().display().to_string();
    let says = |r: &Run, what: &str| {
        for needle in [
            db.as_str(),
            "nothing was created",
            "HERMES_HOME",
            "--board",
            "HERMES_KANBAN_DB",
            "hermes-kanban init",
        ] {
            assert!(
                r.stderr.contains(needle),
                "`{what}` stderr lacks {needle:?}:\n{}",
                r.stderr
            );
        }
    };
    // Empty results, exit 0.
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["stats"],
        &["stats", "--json"],
        &["diagnostics"],
        &["diagnostics", "--json"],
        &["assignees"],
        &["notify-list"],
        &["notify-list", "--json"],
        &["dispatch", "--dry-run"],
        &["gc"],
    ] {
        let r = cli.run(args);
        r.ok();
        says(&r, &args.join(" "));
        assert_eq!(
            tree(cli.dir.path()),
            before,
            "`{}` created files",
            args.join(" ")
        );
    }
    assert_eq!(cli.run(&["list", "--json"]).json(), json!([]));
    assert_eq!(cli.run(&["stats", "--json"]).json()["by_status"], json!({}));
    // Task readers: "no such task" (exit 1), after the same note.
    for args in [
        &["show", "t_deadbeef"][..],
        &["runs", "t_deadbeef"],
        &["context", "t_deadbeef"],
        &["attachments", "t_deadbeef"],
        &["log", "t_deadbeef"],
    ] {
        let r = cli.run(args);
        assert_eq!(r.code, 1, "`{}`: {}", args.join(" "), r.stderr);
        says(&r, &args.join(" "));
        assert!(r.stdout.is_empty());
        assert_eq!(
            tree(cli.dir.path()),
            before,
            "`{}` created files",
            args.join(" ")
        );
    }
    // The followers (`tail`, `watch`) run until stopped: they say so too, and create nothing.
    for args in [&["tail", "t_deadbeef"][..], &["watch"]] {
        let mut child = cli
            .cmd(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(err), &mut line);
            line
        });
        let first = reader.join().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            first.contains(&db) && first.contains("nothing was created"),
            "`{}` stderr: {first}",
            args.join(" ")
        );
        assert_eq!(
            tree(cli.dir.path()),
            before,
            "`{}` created files",
            args.join(" ")
        );
    }
    // `boards list` reads too.
    let r = cli.run(&["boards", "list"]);
    r.ok();
    assert!(
        r.stderr.contains(&db) && r.stderr.contains("hermes-kanban init"),
        "{}",
        r.stderr
    );
    assert_eq!(tree(cli.dir.path()), before, "`boards list` created files");

    // A writing verb creates the board, and says which file, once.
    let r = cli.run(&["create", "first", "--assignee", "worker"]);
    r.ok();
    assert!(
        r.stderr
            .contains(&format!("created a new board database at {db}")),
        "{}",
        r.stderr
    );
    assert!(cli.db().is_file());
    let r = cli.run(&["create", "second", "--assignee", "worker"]);
    r.ok();
    assert!(!r.stderr.contains("created a new board"), "{}", r.stderr);
    let r = cli.run(&["list"]);
    r.ok();
    assert!(
        r.stderr.is_empty(),
        "an existing board reads silently: {}",
        r.stderr
    );
}

/// `init` is the verb that creates, without the warning.
#[test]
fn init_creates_without_a_warning() {
    let cli = Cli::new();
    let r = cli.run(&["init"]);
    r.ok();
    assert!(cli.has_board("default"));
    assert!(!r.stderr.contains("created a new board"), "{}", r.stderr);
}

/// A worker whose own task is not on the board this process resolved is told which board and
/// DB it looked at (it is pointed at the wrong HERMES_HOME / HERMES_KANBAN_DB).
#[test]
fn a_workers_task_missing_from_the_board_names_the_board_and_db() {
    let cli = Cli::new();
    cli.run(&["init"]).ok();
    let db = cli.db().display().to_string();
    for args in [&["show", "t_0000dead"][..], &["heartbeat", "t_0000dead"]] {
        let r = cli.run_env(args, &[("HERMES_KANBAN_TASK", "t_0000dead")]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("your task t_0000dead is not on board 'default'")
                && r.stderr.contains(&db)
                && r.stderr.contains("HERMES_KANBAN_DB"),
            "`{}`: {}",
            args.join(" "),
            r.stderr
        );
    }
    // Someone else's unknown task keeps the plain message.
    let r = cli.run(&["show", "t_0000dead"]);
    assert!(
        r.stderr.contains("no such task: t_0000dead"),
        "{}",
        r.stderr
    );
}
