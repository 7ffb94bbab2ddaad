//! hermes-kanban: a durable multi-agent task board in one binary — a SQLite kernel compatible
//! with Hermes Agent 0.19.0's `kanban.db`, and the front doors built on it: the CLI, the
//! dispatcher, the MCP server, the dashboard, webhook notifications, and the URL fetcher behind
//! `kanban_attach_url`.

pub mod alloc;
pub mod cli;
pub mod dispatch;
pub mod fetch;
pub mod kernel;
pub mod mcp;
pub mod notify;
pub mod process;
pub mod web;
