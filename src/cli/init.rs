//! `init`: create or migrate the board's DB and list the profiles that can be assignees.

use super::CliError;
use crate::kernel::{Board, Env, hermes_root, on_disk_profiles};

pub(crate) fn run(env: &Env, board: Option<&str>) -> Result<(), CliError> {
    let b = Board::open(env, board)?;
    println!("Kanban DB initialized at {}", b.paths().db.display());
    let profiles = on_disk_profiles(&hermes_root(env));
    println!(
        "Discovered {} profile(s) on disk; any of these can be an --assignee:",
        profiles.len()
    );
    for p in profiles {
        println!("  {p}");
    }
    println!(
        "Next step: start the dispatcher with `hermes-kanban serve` (or `hermes-kanban daemon`)."
    );
    Ok(())
}
