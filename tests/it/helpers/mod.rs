//! Shared helpers of the integration tests: the temp-home fixtures ([`TestBoard`] for the
//! kernel API, [`Cli`] for the binary, [`Server`] for the REST router), their factories and
//! asserts, polling waits, and the backend switch (`backend`: SQLite files, or a fresh
//! PostgreSQL database per fixture when `HK_TEST_DATABASE_URL` is set). Every fixture that
//! owns a temp home runs the kernel's invariant checker on every board of that home when it
//! is dropped ([`check_home`]).
#![allow(dead_code, unused_imports)]

#[macro_use]
pub mod backend;
pub mod board;
pub mod cli;
pub mod server;
pub mod wait;

pub use backend::{TestDb, on_postgres};
pub use board::{TestBoard, assert_invariants, check_home};
pub use cli::{Cli, Run};
pub use server::Server;
pub use wait::{wait_until, wait_until_async};
