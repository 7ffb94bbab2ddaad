//! The integration tests of hermes-kanban, in one test binary (one link instead of one per
//! file). Each area is a module; the shared fixtures, factories, asserts and waits live in
//! [`helpers`]. Every fixture that owns a temp home checks the kernel's invariants on every
//! board of that home when it is dropped (unless the test panicked).
//!
//! Run one area or test with a filter: `cargo test --test it kernel::transitions`,
//! `cargo test --test it compat::interop -- --nocapture`.

#[macro_use]
mod helpers;

/// The kernel through its Rust API (`hermes_kanban::kernel::Board`), on temp boards.
mod kernel {
    mod bad_input;
    mod board_view;
    mod claim_race;
    mod features;
    mod liveness;
    mod smoke;
    mod spec_fixes;
    mod transitions;
}

/// The `hermes-kanban` binary's verbs on temp homes.
mod cli {
    mod lifecycle;
    mod smoke;
    mod tasks;
}

/// The MCP server: in process over rmcp, the binary over stdio/HTTP, the Python SDK, schemas.
mod mcp {
    mod inprocess;
    mod python;
    mod schemas;
}

/// The REST API and dashboard server on 127.0.0.1.
mod web {
    mod api;
    mod attachments_db;
    mod group_commit;
    mod unavailable;
    mod worker_rule;
}

/// The dispatcher and daemon against real (fake-script) workers; webhook notifications.
mod dispatch {
    mod dispatcher;
    mod hosts;
    mod notify;
}

/// Hermes Agent's on-disk board: its schema and DBs (`hermes_compat`), and the real Hermes
/// 0.19.0 / ~0.22 on one shared board (`interop`).
mod compat {
    mod hermes_compat;
    mod interop;
    mod wal;
}

/// One board on PostgreSQL and across hosts (issue 15): PostgreSQL-only scenarios (they
/// return early without `HK_TEST_DATABASE_URL`) and the three-host drain (both backends).
mod pg {
    mod backend;
    mod connection_loss;
    mod events;
    mod multihost;
}

/// Issue 12's defects across the front doors.
mod defects;

/// Real agents (Hermes, Codex) as dispatched workers against a scripted model.
mod agents_e2e;
