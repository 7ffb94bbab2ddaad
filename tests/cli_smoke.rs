mod cli_support;
use cli_support::Cli;

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
fn a_postgres_database_url_is_refused_in_one_line_and_creates_nothing() {
    let cli = Cli::new();
    let url = "postgres://kanban:hunter2@db.example:5432/kanban";
    for r in [
        cli.run(&["--database-url", url, "create", "x"]),
        cli.run_env(&["list"], &[("HERMES_KANBAN_DATABASE_URL", url)]),
        cli.run_env(&["serve"], &[("HERMES_KANBAN_DATABASE_URL", url)]),
    ] {
        r.code(1);
        assert!(
            r.stderr.contains("not built with PostgreSQL support yet"),
            "{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("hunter2"),
            "password printed: {}",
            r.stderr
        );
        assert!(r.stderr.contains("kanban:***@db.example"), "{}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
    assert!(!cli.db().exists(), "nothing may be created");
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
