//! `init`: create or migrate the board's DB and list the profiles that can be assignees.

use super::{CliError, Ctx};
use crate::kernel::{hermes_root, on_disk_profiles};

pub(crate) fn run(ctx: &Ctx) -> Result<(), CliError> {
    // `init` is the verb that creates: no "created" note, its output says where.
    let (b, _) = ctx
        .home
        .open_board(ctx.board.as_deref(), crate::kernel::OpenMode::Create)?;
    println!("Kanban DB initialized at {}", b.location());
    let mut profiles = on_disk_profiles(&hermes_root(&ctx.env));
    // `default` first, then the others by name (directory order is arbitrary).
    profiles[1..].sort();
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
