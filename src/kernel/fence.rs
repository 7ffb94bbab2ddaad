//! The delegated-child fence (UP §9, Hermes 0.19.1+): a subprocess of a Kanban worker (its
//! terminal tool, `delegate_task`) carries `HERMES_DELEGATED_CHILD_CONTEXT=<kanban root>` and
//! must not mutate that board. [`check`] decides whether a mutation of a path is fenced; the
//! kernel calls it before every write transaction and board-metadata change. Like Hermes', this
//! is cooperative scoping, not confinement: code with direct file access is not stopped.

use std::path::{Path, PathBuf};

use super::env::Env;
use super::error::{KernelError, Result};

/// The environment variable that marks a delegated child and names the fenced kanban root.
pub const DELEGATED_CHILD_ENV: &str = "HERMES_DELEGATED_CHILD_CONTEXT";

fn resolved(p: &Path) -> PathBuf {
    // The path may not exist yet (a board about to be created): resolve the longest existing
    // ancestor and keep the rest, so a symlinked root still matches.
    let mut tail = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = std::fs::canonicalize(&cur) {
            let mut out = c;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (cur.file_name().map(|f| f.to_os_string()), cur.parent()) {
            (Some(f), Some(parent)) => {
                tail.push(f);
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Whether a mutation of `path` (a board DB, or a kanban root for board metadata) is fenced for
/// a process with `env`: never without the marker; always with the legacy marker `1`; else when
/// `path` is the pinned `HERMES_KANBAN_DB` or lies under the fenced root the marker names.
pub fn is_fenced(env: &Env, path: &Path) -> bool {
    let Some(marker) = env.get(DELEGATED_CHILD_ENV).map(str::trim) else {
        return false;
    };
    if marker.is_empty() {
        return false;
    }
    if marker == "1" {
        return true;
    }
    let target = resolved(path);
    if let Some(pinned) = env.path("HERMES_KANBAN_DB")
        && resolved(&pinned) == target
    {
        return true;
    }
    target.starts_with(resolved(&env.expand_tilde(marker)))
}

/// Refuse a mutation of `path` when [`is_fenced`].
pub fn check(env: &Env, path: &Path) -> Result<()> {
    if is_fenced(env, path) {
        return Err(KernelError::Fenced {
            path: path.to_path_buf(),
            marker: env.get(DELEGATED_CHILD_ENV).unwrap_or_default().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_fences_its_root_and_the_pinned_db_only() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("hermes");
        std::fs::create_dir_all(&root).unwrap();
        let db = root.join("kanban.db");
        let none = Env::empty();
        assert!(!is_fenced(&none, &db));
        assert!(!is_fenced(&none.clone().with(DELEGATED_CHILD_ENV, ""), &db));
        assert!(is_fenced(&none.clone().with(DELEGATED_CHILD_ENV, "1"), &db));
        let e = none
            .clone()
            .with(DELEGATED_CHILD_ENV, root.to_string_lossy());
        assert!(is_fenced(&e, &db));
        assert!(
            is_fenced(&e, &root.join("kanban/boards/x/kanban.db")),
            "not yet created"
        );
        let scratch = d.path().join("scratch/kanban.db");
        assert!(!is_fenced(&e, &scratch), "another root is not fenced");
        let pinned = e
            .clone()
            .with("HERMES_KANBAN_DB", scratch.to_string_lossy());
        assert!(is_fenced(&pinned, &scratch), "the pinned board is");
        let err = check(&e, &db).unwrap_err();
        assert_eq!(err.kind(), "refused");
        assert!(err.to_string().contains("delegated child"), "{err}");
    }
}
