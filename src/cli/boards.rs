//! `boards …`: list, create, remove, switch, show, rename, set-default-workdir, export and
//! import. These verbs ignore `--board`.

use std::collections::BTreeMap;

use clap::Subcommand;
use serde_json::json;

use super::output::print_json;
use super::{CliError, Ctx};
use crate::kernel::{
    Board, ListFilter, NewBoard, export_board, import_board, read_board_meta, remove_board,
    rename_board, set_default_workdir, switch_board,
};

/// Board verbs.
#[derive(Debug, Subcommand)]
pub enum BoardsCmd {
    /// List boards with task counts (● marks the current one).
    #[command(
        visible_alias = "ls",
        after_help = "Example: hermes-kanban boards list --json"
    )]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Include archived boards.
        #[arg(long)]
        all: bool,
    },
    /// Create a board (idempotent).
    #[command(
        visible_alias = "new",
        after_help = "Example: hermes-kanban boards create research --name \"Research\" --switch"
    )]
    Create {
        /// Slug: 1-64 of a-z, 0-9, '-', '_'.
        slug: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Icon (emoji).
        #[arg(long)]
        icon: Option<String>,
        /// Colour.
        #[arg(long)]
        color: Option<String>,
        /// Make it the current board.
        #[arg(long)]
        switch: bool,
        /// Absolute directory used by dir/worktree tasks created without a path.
        #[arg(long, value_name = "PATH")]
        default_workdir: Option<String>,
    },
    /// Archive a board (or delete it with --delete).
    #[command(
        visible_alias = "remove",
        after_help = "Example: hermes-kanban boards rm old-board"
    )]
    Rm {
        /// Board slug.
        slug: String,
        /// Delete the directory instead of archiving it.
        #[arg(long)]
        delete: bool,
    },
    /// Delete a board's directory permanently (same as `rm --delete`).
    #[command(after_help = "Example: hermes-kanban boards delete old-board")]
    Delete {
        /// Board slug.
        slug: String,
        /// Accepted for compatibility (`delete` always deletes).
        #[arg(long, hide = true)]
        delete: bool,
    },
    /// Make a board the current one.
    #[command(
        visible_alias = "use",
        after_help = "Example: hermes-kanban boards switch research"
    )]
    Switch {
        /// Board slug.
        slug: String,
    },
    /// Show the current board.
    #[command(
        visible_alias = "current",
        after_help = "Example: hermes-kanban boards show"
    )]
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a board's display name.
    #[command(after_help = "Example: hermes-kanban boards rename research \"Market research\"")]
    Rename {
        /// Board slug.
        slug: String,
        /// New display name.
        name: String,
    },
    /// Set (or clear, without PATH) a board's default workdir.
    #[command(
        name = "set-default-workdir",
        after_help = "Example: hermes-kanban boards set-default-workdir research /srv/repo"
    )]
    SetDefaultWorkdir {
        /// Board slug.
        slug: String,
        /// Absolute path; omit to clear.
        path: Option<String>,
    },
    /// Export a board to a .tar.gz archive (Hermes' board archive format) to move it elsewhere.
    #[command(
        after_help = "Live state does not travel: claims, pids, heartbeats, notification \
            subscriptions and our worker/run-token rows are cleared in the archive's copy; running \
            tasks go back to ready. The board itself is not changed.\n\nExample: hermes-kanban \
            boards export research -o /tmp/research.tar.gz --include-logs"
    )]
    Export {
        /// Board slug (default: the current board).
        slug: Option<String>,
        /// Archive path (default: ./<slug>.tar.gz; .tar.gz is appended when missing).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Leave attachment files out (their rows are dropped on import).
        #[arg(long)]
        no_attachments: bool,
        /// Include worker logs.
        #[arg(long)]
        include_logs: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a board archive (from `boards export` of either tool) as a new board.
    #[command(
        after_help = "The board always lands as a new board; a taken slug gets a -2, -3… suffix. \
            Live state in the archive is cleared again; dir/worktree tasks that could be \
            dispatched are parked in triage (their paths belonged to the exporting \
            machine).\n\nExample: hermes-kanban boards import research.tar.gz --as research-copy \
            --switch"
    )]
    Import {
        /// The .tar.gz archive.
        archive: std::path::PathBuf,
        /// Slug for the new board (default: the archive's).
        #[arg(long = "as", value_name = "SLUG")]
        as_slug: Option<String>,
        /// Make the imported board the current one.
        #[arg(long)]
        switch: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn counts(ctx: &Ctx, slug: &str) -> Result<BTreeMap<String, i64>, CliError> {
    let paths = ctx.home.paths(slug);
    let mut m = BTreeMap::new();
    if !paths.db.exists() {
        // Listing boards reads: a board without a database yet counts 0 and is not created.
        return Ok(m);
    }
    let b = Board::open_paths(&ctx.env, paths)?;
    for t in b.list_tasks(&ListFilter {
        include_archived: true,
        ..Default::default()
    })? {
        *m.entry(t.status.as_str().to_string()).or_insert(0) += 1;
    }
    Ok(m)
}

/// `3 (done=1, ready=2)`, or `0` for an empty board.
fn count_text(c: &BTreeMap<String, i64>) -> String {
    let total: i64 = c.values().sum();
    if c.is_empty() {
        return total.to_string();
    }
    let counts: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{total} ({})", counts.join(", "))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn run(ctx: &Ctx, cmd: &BoardsCmd) -> Result<(), CliError> {
    let env = &ctx.env;
    match cmd {
        BoardsCmd::List { json, all } => list(ctx, *json, *all)?,
        BoardsCmd::Create {
            slug,
            name,
            description,
            icon,
            color,
            switch,
            default_workdir,
        } => {
            let new = NewBoard {
                name: name.clone(),
                description: description.clone(),
                icon: icon.clone(),
                color: color.clone(),
                default_workdir: default_workdir.clone(),
            };
            create(ctx, slug, new, *switch)?;
        }
        BoardsCmd::Rm { slug, delete } | BoardsCmd::Delete { slug, delete } => match remove_board(
            env,
            slug,
            *delete || matches!(cmd, BoardsCmd::Delete { .. }),
            now(),
        )? {
            Some(dest) => println!("Archived board {slug} to {}", dest.display()),
            None => println!("Deleted board {slug}"),
        },
        BoardsCmd::Switch { slug } => {
            let s = switch_board(env, slug)?;
            println!("Current board: {s}");
        }
        BoardsCmd::Show { json } => show(ctx, *json)?,
        BoardsCmd::Rename { slug, name } => {
            let m = rename_board(env, slug, name, now())?;
            println!("Renamed {} to {}", m.slug, m.name);
        }
        BoardsCmd::Export {
            slug,
            output,
            no_attachments,
            include_logs,
            json,
        } => {
            let slug = match slug {
                Some(s) => s.clone(),
                None => ctx.home.resolve(None)?,
            };
            let out = output
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from(format!("{slug}.tar.gz")));
            export(ctx, &slug, &out, !no_attachments, *include_logs, *json)?;
        }
        BoardsCmd::Import {
            archive,
            as_slug,
            switch,
            json,
        } => import(ctx, archive, as_slug.as_deref(), *switch, *json)?,
        BoardsCmd::SetDefaultWorkdir { slug, path } => {
            let m = set_default_workdir(env, slug, path.as_deref(), now())?;
            match &m.default_workdir {
                Some(p) => println!("Default workdir of {} is {p}", m.slug),
                None => println!("Cleared the default workdir of {}", m.slug),
            }
        }
    }
    Ok(())
}

/// `boards list`: every board with its task counts (a board without a database yet is named on
/// stderr and counts 0; nothing is created).
fn list(ctx: &Ctx, json: bool, all: bool) -> Result<(), CliError> {
    let boards = ctx.home.list(all)?;
    let mut rows = Vec::new();
    for b in &boards {
        if !b.db_path.exists() {
            eprintln!(
                "hermes-kanban: board '{}' has no database at {} yet (nothing was \
                created); create it with `hermes-kanban init`, or set HERMES_HOME / \
                HERMES_KANBAN_DB if your board lives elsewhere",
                b.meta.slug,
                b.db_path.display()
            );
        }
        let c = counts(ctx, &b.meta.slug)?;
        let total: i64 = c.values().sum();
        rows.push((b, c, total));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(b, c, total)| {
                let mut m = serde_json::to_value(b).unwrap_or_default();
                m["counts"] = json!(c);
                m["total"] = json!(total);
                m
            })
            .collect();
        print_json(&v);
    } else {
        println!("  {:<24} {:<28} COUNTS", "SLUG", "NAME");
        for (b, c, _) in &rows {
            let mark = if b.is_current { "●" } else { " " };
            println!(
                "{mark} {:<24} {:<28} {}",
                b.meta.slug,
                b.meta.name,
                count_text(c)
            );
        }
        println!("Current board: {}", ctx.home.resolve(None)?);
    }
    Ok(())
}

/// `boards create`: create the board (idempotent), open its database and optionally switch.
fn create(ctx: &Ctx, slug: &str, new: NewBoard, switch: bool) -> Result<(), CliError> {
    let env = &ctx.env;
    let (meta, created) = ctx.home.create(slug, new, now())?;
    let b = Board::open_paths(env, ctx.home.paths(&meta.slug))?;
    if created {
        println!("Created board {} ({})", meta.slug, meta.name);
    } else {
        println!("Board {} already exists ({})", meta.slug, meta.name);
    }
    println!("DB: {}", b.paths().db.display());
    if switch {
        switch_board(env, &meta.slug)?;
        println!("Switched to {}", meta.slug);
    }
    Ok(())
}

/// `boards show`: the current board's name, description, database and task counts.
fn show(ctx: &Ctx, json: bool) -> Result<(), CliError> {
    let slug = ctx.home.resolve(None)?;
    let meta = read_board_meta(&ctx.env, &slug);
    let c = counts(ctx, &slug)?;
    let db = ctx.home.paths(&slug).db;
    if json {
        let mut m = serde_json::to_value(&meta).unwrap_or_default();
        m["db_path"] = json!(db);
        m["counts"] = json!(c);
        m["total"] = json!(c.values().sum::<i64>());
        print_json(&m);
    } else {
        println!("Board: {} ({})", meta.slug, meta.name);
        if let Some(d) = &meta.description {
            println!("Description: {d}");
        }
        println!("DB: {}", db.display());
        println!("Tasks: {}", count_text(&c));
    }
    Ok(())
}

/// `boards export`: write the archive and report its size and what it holds.
fn export(
    ctx: &Ctx,
    slug: &str,
    out: &std::path::Path,
    attachments: bool,
    include_logs: bool,
    json: bool,
) -> Result<(), CliError> {
    let r = export_board(&ctx.env, slug, out, attachments, include_logs, now())?;
    if json {
        print_json(&r);
    } else {
        let n = |k: &str| r.counts.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
        println!("Exported board {} to {}", r.board, r.archive.display());
        println!("  Size:        {} bytes", r.size);
        println!("  Tasks:       {}", n("tasks"));
        println!("  Comments:    {}", n("task_comments"));
        println!("  Attachments: {}", n("attachment_files"));
        println!("Import it with `hermes-kanban boards import <archive>`.");
    }
    Ok(())
}

/// `boards import`: land the archive as a new board and say where, under which slug, and what
/// was parked.
fn import(
    ctx: &Ctx,
    archive: &std::path::Path,
    as_slug: Option<&str>,
    switch: bool,
    json: bool,
) -> Result<(), CliError> {
    let r = import_board(&ctx.env, archive, as_slug, switch, now())?;
    if json {
        print_json(&r);
        return Ok(());
    }
    println!("Imported board {} ({}).", r.board, r.name);
    if r.renamed {
        println!("  Renamed from {}: that slug was taken.", r.requested_board);
    }
    let tasks = r.counts.get("tasks").and_then(|v| v.as_i64()).unwrap_or(0);
    println!("  Path:  {}\n  Tasks: {tasks}", r.path.display());
    for w in &r.warnings {
        println!("  Note:  {w}");
    }
    if r.activated {
        println!("  Active board is now {}.", r.board);
    } else {
        println!(
            "  Switch to it with `hermes-kanban boards switch {}`.",
            r.board
        );
    }
    Ok(())
}
