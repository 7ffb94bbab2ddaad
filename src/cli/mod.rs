//! The operator CLI: `hermes-kanban [--board <slug>] <verb>`. Parsing lives here; each verb
//! group has its own module and calls the kernel. Exit codes: 0 success, 1 refused or failed,
//! 2 usage error (clap). Data goes to stdout, messages to stderr.

mod init;

use clap::{Parser, Subcommand};

use crate::kernel::{Env, KernelError};

/// A durable multi-agent task board, compatible with Hermes Agent's `kanban.db`.
#[derive(Debug, Parser)]
#[command(name = "hermes-kanban", version, about, long_about = None)]
pub struct Cli {
    /// Board to act on (default: $HERMES_KANBAN_BOARD, then the `current` pointer, then
    /// `default`).
    #[arg(long, global = true, value_name = "SLUG")]
    pub board: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// Verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or migrate the board's database and show where it lives.
    ///
    /// Example: `hermes-kanban init`
    Init,
}

/// A CLI failure: a kernel error or another message, both exit 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the kernel.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Parse argv and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let env = Env::from_process();
    let res = match &cli.command {
        Command::Init => init::run(&env, cli.board.as_deref()),
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hermes-kanban: {e}");
            1
        }
    }
}
