//! The WAL a board keeps between our processes (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`) stays
//! bounded: many short-lived CLI writes on one board never grow `kanban.db-wal` past about one
//! auto-checkpoint's worth of pages, and nothing written is lost when it is truncated.

use crate::helpers::Cli;

/// The auto-checkpoint size in frames (`PRAGMA wal_autocheckpoint=1000`).
const CHECKPOINT_FRAMES: u64 = 1000;

/// Hundreds of CLI writes, each logging a dozen or more pages (a 6 KB body and its indexes):
/// several auto-checkpoints' worth of WAL traffic, one process per write and no other process
/// holding the board open. The WAL ends no bigger than twice the auto-checkpoint size (it used
/// to grow by every write: each new process rebuilt the WAL index, lost the checkpoint
/// progress, re-checkpointed everything and never restarted the WAL, ~20 MB here), every task
/// is there, and a plain SQLite reader (as Hermes is) sees them all.
#[test]
fn many_cli_writes_keep_the_wal_bounded() {
    sqlite_only!("measures the board file's -wal sibling");
    let cli = Cli::new();
    cli.run(&["init"]).ok();
    let body = "x".repeat(6000);
    let n = 300;
    let wal = cli.db().with_file_name("kanban.db-wal");
    let mut peak = 0;
    for i in 0..n {
        cli.run(&["create", &format!("task {i}"), "--body", &body])
            .ok();
        peak = peak.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let page: u64 = {
        let c = rusqlite::Connection::open(cli.db()).unwrap();
        let page = c
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .unwrap();
        let count: i64 = c
            .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, n, "a plain SQLite reader sees every task");
        page as u64
    };
    let bound = 32 + 2 * CHECKPOINT_FRAMES * (page + 24);
    assert!(
        peak <= bound,
        "the WAL grew to {peak} bytes over {n} CLI writes (bound {bound})"
    );
    let listed = cli.run(&["list", "--json"]).json();
    let listed = listed
        .as_array()
        .or_else(|| listed["tasks"].as_array())
        .map_or(0, |a| a.len());
    assert_eq!(listed, n as usize, "our list shows every task");
    cli.assert_invariants();
}
