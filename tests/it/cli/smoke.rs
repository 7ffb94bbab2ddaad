use crate::helpers::Cli;

#[test]
fn version_and_help() {
    let cli = Cli::new();
    assert!(
        cli.run(&["--version"])
            .ok()
            .contains(env!("CARGO_PKG_VERSION"))
    );
    cli.run(&["no-such-verb"]).code(2);
}

#[test]
fn an_unreachable_postgres_url_fails_in_one_line_and_never_falls_back_to_sqlite() {
    sqlite_only!("checks which URL setting wins; the fixture's own URL would outrank config.yaml");
    let cli = Cli::new();
    // Port 1 on loopback: nothing listens there, the connect is refused at once.
    let url = "postgres://kanban:hunter2@127.0.0.1:1/kanban";
    for r in [
        cli.run(&["--database-url", url, "create", "x"]),
        cli.run_env(&["list"], &[("HERMES_KANBAN_DATABASE_URL", url)]),
        cli.run_env(&["serve"], &[("HERMES_KANBAN_DATABASE_URL", url)]),
    ] {
        r.code(1);
        assert!(
            r.stderr.contains("cannot reach the PostgreSQL database"),
            "{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("hunter2"),
            "password printed: {}",
            r.stderr
        );
        assert!(r.stderr.contains("kanban:***@127.0.0.1:1"), "{}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
    assert!(
        !cli.db().exists(),
        "nothing may be created (no SQLite fallback)"
    );
    // kanban.database_url in config.yaml is read too; unset, the SQLite home works.
    std::fs::create_dir_all(cli.home()).unwrap();
    std::fs::write(
        cli.home().join("config.yaml"),
        format!("kanban:\n  database_url: '{url}'\n"),
    )
    .unwrap();
    let r = cli.run(&["list"]);
    r.code(1);
    assert!(r.stderr.contains("kanban.database_url"), "{}", r.stderr);
    std::fs::write(cli.home().join("config.yaml"), "kanban: {}\n").unwrap();
    cli.run(&["list"]).code(0);
}

#[test]
fn stdio_mcp_holds_one_connection_to_its_board() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let cli = Cli::new();
    let id = cli.create("Held once", &[]);
    let mut child = cli
        .cmd(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for msg in [
        concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":"#,
            r#"{"protocolVersion":"2025-06-18","capabilities":{},"#,
            r#""clientInfo":{"name":"t","version":"0"}}}"#
        ),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ] {
        writeln!(stdin, "{msg}").unwrap();
    }
    let db = cli.db();
    // On PostgreSQL a connection is a session on the fixture's database (the server is its
    // only client now; psql's own session is not counted); on SQLite a descriptor of the file.
    let held = || match &cli.pg {
        Some(pg) => pg.sessions(),
        None => {
            let db = db.canonicalize().unwrap();
            std::fs::read_dir(format!("/proc/{}/fd", child.id()))
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|p| *p == db)
                .count()
        }
    };
    // Many calls, half of them naming the board (resolved through the PostgreSQL registry),
    // and the count after each round: no call opens a connection of its own.
    let mut counts = Vec::new();
    for call in 2..14 {
        let board = if call % 2 == 0 {
            r#","board":"default""#
        } else {
            ""
        };
        let tool = if call % 3 == 0 {
            format!(r#""name":"kanban_list","arguments":{{"status":"ready"{board}}}"#)
        } else {
            format!(r#""name":"kanban_show","arguments":{{"task_id":"{id}"{board}}}"#)
        };
        writeln!(
            stdin,
            r#"{{"jsonrpc":"2.0","id":{call},"method":"tools/call","params":{{{tool}}}}}"#
        )
        .unwrap();
        let mut shown = String::new();
        while !shown.contains(&format!(r#""id":{call}"#)) {
            shown.clear();
            assert!(out.read_line(&mut shown).unwrap() > 0, "mcp closed stdout");
        }
        assert!(
            shown.contains("Held once") && !shown.contains(r#""isError":true"#),
            "{shown}"
        );
        counts.push(held());
    }
    drop(stdin);
    let _ = child.wait();
    assert_eq!(
        counts,
        vec![1; counts.len()],
        "the stdio server must hold one connection to {} through every call",
        db.display()
    );
}
