//! Shared helpers for integration tests: temp boards, a controllable clock, and the invariant
//! check every scenario ends with.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use hermes_kanban::kernel::{Board, Env, NewTask};
use tempfile::TempDir;

/// A board on a fresh temp HERMES_HOME, with a clock the test controls.
pub struct TestBoard {
    pub dir: TempDir,
    pub env: Env,
    pub board: Board,
    pub clock: Arc<AtomicI64>,
}

impl TestBoard {
    pub fn new() -> TestBoard {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Env::empty()
            .with("HOME", dir.path().to_string_lossy())
            .with("HERMES_HOME", dir.path().join("hermes").to_string_lossy());
        let mut board = Board::open(&env, None).expect("open board");
        let clock = Arc::new(AtomicI64::new(1_800_000_000));
        let c = clock.clone();
        board.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        board.set_claimer("testhost:4242");
        TestBoard {
            dir,
            env,
            board,
            clock,
        }
    }

    /// Advance the clock by `secs`.
    pub fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Create a task with a title and assignee, panicking on error.
    pub fn task(&self, title: &str) -> String {
        self.board
            .create_task(NewTask {
                title: title.into(),
                assignee: Some("worker".into()),
                ..Default::default()
            })
            .expect("create")
            .task
            .id
    }

    /// Create a child of `parents`.
    pub fn child(&self, title: &str, parents: &[&str]) -> String {
        self.board
            .create_task(NewTask {
                title: title.into(),
                assignee: Some("worker".into()),
                parents: parents.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .expect("create child")
            .task
            .id
    }
}

impl Drop for TestBoard {
    /// Every scenario ends with the invariant check (SPEC §3.3 fix 5).
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let v = self.board.check_invariants().expect("check invariants");
        assert!(v.is_empty(), "invariants violated: {v:#?}");
    }
}

/// Assert the board's invariants hold.
pub fn assert_invariants(board: &Board) {
    let v = board.check_invariants().expect("check invariants");
    assert!(v.is_empty(), "invariants violated: {v:#?}");
}
