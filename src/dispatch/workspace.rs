//! Where a worker runs (REF §10.4) and the clean-up after it finished (REF §10.5). `scratch` is a
//! managed directory `<workspaces root>/<task_id>` (created; removed once the task is done and
//! its children are finished — only ever strictly inside a managed workspaces root); `dir:<path>`
//! is the user's absolute directory (created, never removed); `worktree[:<path>]` is a git
//! worktree on branch `branch_name` or `wt/<task_id>`, anchored on the board's `default_workdir`
//! when no path was given (never removed). The caller persists the resolved path with
//! `Board::set_workspace` so reruns reuse it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::kernel::{Board, BoardPaths, Status, Task, WorkspaceKind, strictly_inside};

/// A resolved workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub kind: WorkspaceKind,
    /// Absolute directory the worker starts in.
    pub path: PathBuf,
    /// The worktree's branch.
    pub branch: Option<String>,
}

/// Resolve (and create) the workspace of `task`. The error text becomes the `spawn_failed`
/// error (prefixed `workspace: `).
/// Needs no board handle (only its paths and its `default_workdir`, read beforehand), so a tick
/// resolves workspaces — git worktree commands included — with the board released.
pub fn resolve(
    paths: &BoardPaths,
    default_workdir: Option<&str>,
    task: &Task,
) -> Result<Workspace, String> {
    let kind: WorkspaceKind = task
        .workspace_kind
        .parse()
        .map_err(|_| format!("unknown workspace kind {:?}", task.workspace_kind))?;
    let given = task
        .workspace_path
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if let Some(p) = given
        && !Path::new(p).is_absolute()
    {
        return Err(format!(
            "{p:?} is a relative path; {kind} workspaces need an absolute path"
        ));
    }
    match kind {
        WorkspaceKind::Scratch => {
            let path = given
                .map(PathBuf::from)
                .unwrap_or_else(|| paths.workspaces.join(&task.id));
            mkdir(&path)?;
            Ok(Workspace {
                kind,
                path,
                branch: None,
            })
        }
        WorkspaceKind::Dir => {
            let path = PathBuf::from(
                given.ok_or("dir workspace without a path; use --workspace dir:<absolute path>")?,
            );
            mkdir(&path)?;
            Ok(Workspace {
                kind,
                path,
                branch: None,
            })
        }
        WorkspaceKind::Worktree => worktree(default_workdir, task, given),
    }
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

/// Run git with a deadline; stdout trimmed on success, stderr in the error.
fn git(dir: &Path, args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "git {} timed out after {timeout:?}",
                    args.join(" ")
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("git: {e}")),
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

const GIT_QUICK: Duration = Duration::from_secs(30);
const GIT_SLOW: Duration = Duration::from_secs(60);

fn toplevel(dir: &Path) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--show-toplevel"], GIT_QUICK)
        .ok()
        .map(PathBuf::from)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The repository path a worktree workspace starts from: the given path, else the board's
/// absolute `default_workdir`.
fn worktree_anchor(default_workdir: Option<&str>, given: Option<&str>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(PathBuf::from(p));
    }
    let w = default_workdir
        .filter(|w| Path::new(w).is_absolute())
        .ok_or(
            "worktree workspace without a path and the board has no default_workdir; \
            use --workspace worktree:<repo path> or `boards set-default-workdir`",
        )?;
    Ok(PathBuf::from(w))
}

/// Where the worktree of `task` goes, and in which repository: `<repo>/.worktrees/<id>` when
/// the anchor is the repository's top level, else the anchor itself (a path inside the repo).
fn worktree_place(anchor: &Path, task: &Task) -> Result<(PathBuf, PathBuf), String> {
    if let Some(root) = toplevel(anchor).filter(|t| same_dir(t, anchor)) {
        let target = root.join(".worktrees").join(&task.id);
        return Ok((root, target));
    }
    let outside = || format!("{} is not inside a git repository", anchor.display());
    let parent = anchor.parent().filter(|p| p.is_dir()).ok_or_else(outside)?;
    let root = toplevel(parent).ok_or_else(outside)?;
    Ok((root, anchor.to_path_buf()))
}

/// `git worktree add` at `target` on `branch` (created from HEAD when it does not exist).
fn add_worktree(repo: &Path, target: &Path, branch: &str) -> Result<(), String> {
    if let Some(parent) = target.parent() {
        mkdir(parent)?;
    }
    let target_s = target.to_string_lossy().into_owned();
    let head_ref = format!("refs/heads/{branch}");
    let exists = git(
        repo,
        &["rev-parse", "--verify", "--quiet", &head_ref],
        GIT_QUICK,
    )
    .is_ok();
    if exists {
        git(repo, &["worktree", "add", &target_s, branch], GIT_SLOW)?;
    } else {
        git(
            repo,
            &["worktree", "add", "-b", branch, &target_s, "HEAD"],
            GIT_SLOW,
        )?;
    }
    Ok(())
}

fn worktree(
    default_workdir: Option<&str>,
    task: &Task,
    given: Option<&str>,
) -> Result<Workspace, String> {
    let anchor = worktree_anchor(default_workdir, given)?;
    let mut branch = task
        .branch_name
        .clone()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| format!("wt/{}", task.id));
    let done = |path: PathBuf, branch: String| Workspace {
        kind: WorkspaceKind::Worktree,
        path,
        branch: Some(branch),
    };
    // An existing linked worktree (its `.git` is a file): reuse it on its current branch.
    if anchor.join(".git").is_file() {
        if let Ok(b) = git(&anchor, &["rev-parse", "--abbrev-ref", "HEAD"], GIT_QUICK)
            && b != "HEAD"
        {
            branch = b;
        }
        return Ok(done(anchor, branch));
    }
    let (repo, target) = worktree_place(&anchor, task)?;
    if !target.join(".git").is_file() {
        add_worktree(&repo, &target, &branch)?;
    }
    Ok(done(target, branch))
}

/// The managed scratch roots of a board: its workspaces root, plus the default locations under
/// the kanban home (REF §10.5). Nothing outside these is ever removed.
fn managed_roots(board: &Board) -> Vec<PathBuf> {
    let home = &board.paths().home;
    vec![
        board.paths().workspaces.clone(),
        home.join("kanban").join("workspaces"),
        home.join("kanban")
            .join("boards")
            .join(board.slug())
            .join("workspaces"),
    ]
}

/// Remove `task`'s scratch workspace if it is done and every child is done or archived.
/// Returns the removed path.
fn clean_one(board: &Board, task: &Task) -> Option<PathBuf> {
    if task.workspace_kind != WorkspaceKind::Scratch.as_str() || task.status != Status::Done {
        return None;
    }
    let children = board.children(&task.id).ok()?;
    let kids = board.get_tasks(&children).ok()?;
    if kids.iter().any(|k| !k.status.satisfies_children()) {
        return None; // deferred: a child may still read the parent's files
    }
    let path = task
        .workspace_path
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| board.paths().workspaces.join(&task.id));
    if !path.is_dir()
        || !managed_roots(board)
            .iter()
            .any(|r| strictly_inside(r, &path))
    {
        return None;
    }
    match std::fs::remove_dir_all(&path) {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!("workspace cleanup of {}: {e}", path.display());
            None
        }
    }
}

/// Best-effort clean-up after `task_id` finished (REF §10.5): its own scratch workspace, then
/// every scratch parent that is done and whose children are now all finished. Returns the
/// removed paths.
pub fn cleanup_after_completion(board: &Board, task_id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(task) = board.get_task(task_id) else {
        return out;
    };
    if task.status != Status::Done {
        return out;
    }
    out.extend(clean_one(board, &task));
    if let Ok(parents) = board.parents(task_id)
        && let Ok(ps) = board.get_tasks(&parents)
    {
        for p in ps {
            out.extend(clean_one(board, &p));
        }
    }
    out
}
