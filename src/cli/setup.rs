//! Verbs that install into other tools: `skills install` (the kanban-worker and
//! kanban-orchestrator skill files into Hermes skills directories) and `completions` (shell
//! completion scripts).

use clap::{Args, CommandFactory, Subcommand};

use super::{Cli, CliError, Ctx};
use crate::kernel::hermes_root;

/// `skills` verbs.
#[derive(Debug, Subcommand)]
pub enum SkillsCmd {
    /// Copy kanban-worker and kanban-orchestrator into a Hermes skills directory:
    /// $HERMES_HOME/skills/
    /// by default, a profile's own with --profile (a profile reads only
    /// $HERMES_HOME/profiles/<name>/skills/), or every profile's with --all-profiles.
    #[command(
        after_help = "The dispatcher passes `--skills kanban-worker` to a Hermes worker only when \
            the assignee's profile has the skill (Hermes also injects its kanban protocol by \
            itself).\n\nExamples:\n  hermes-kanban skills install --profile coder\n  hermes-kanban \
            skills install --all-profiles --force"
    )]
    Install {
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Install into this profile's skills directory (`default` = the Hermes root's).
        #[arg(long, value_name = "NAME", conflicts_with = "all_profiles")]
        profile: Option<String>,
        /// Install into the root's and every profile's skills directory.
        #[arg(long)]
        all_profiles: bool,
    },
}

const SKILLS: &[(&str, &str)] = &[
    (
        "kanban-worker",
        include_str!("../../skills/kanban-worker/SKILL.md"),
    ),
    (
        "kanban-orchestrator",
        include_str!("../../skills/kanban-orchestrator/SKILL.md"),
    ),
];

pub(crate) fn skills(ctx: &Ctx, c: &SkillsCmd) -> Result<(), CliError> {
    let SkillsCmd::Install {
        force,
        profile,
        all_profiles,
    } = c;
    let root = hermes_root(&ctx.env);
    let homes: Vec<std::path::PathBuf> = if *all_profiles {
        crate::kernel::on_disk_profiles(&root)
            .iter()
            .map(|p| crate::kernel::profile_home(&root, p))
            .collect()
    } else if let Some(p) = profile {
        let name = crate::kernel::validate::profile_name("--profile", Some(p))?
            .ok_or_else(|| CliError::Usage("--profile needs a profile name".into()))?;
        if !crate::kernel::profile_exists(&root, &name) {
            return Err(CliError::Failed(format!(
                "no profile {name:?}: {} is not a directory (create it with `hermes profile create \
                {name}`, or list them with `hermes-kanban init`)",
                root.join("profiles").join(&name).display()
            )));
        }
        vec![crate::kernel::profile_home(&root, &name)]
    } else {
        vec![
            ctx.env
                .path("HERMES_HOME")
                .unwrap_or_else(|| hermes_root(&ctx.env)),
        ]
    };
    for home in homes {
        for (name, text) in SKILLS {
            let dir = home.join("skills").join(name);
            let file = dir.join("SKILL.md");
            if file.exists() && !force {
                println!(
                    "Kept existing {} (use --force to overwrite)",
                    file.display()
                );
                continue;
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::Failed(format!("{}: {e}", dir.display())))?;
            std::fs::write(&file, text)
                .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
            println!("Installed {}", file.display());
        }
    }
    Ok(())
}

/// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell.
    pub shell: clap_complete::Shell,
}

pub(crate) fn completions(a: &CompletionsArgs) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "hermes-kanban", &mut std::io::stdout());
    Ok(())
}
