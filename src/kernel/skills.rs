//! Which skills a Hermes profile has on disk — the lookup `hermes --skills NAME` does
//! (`tools/skills_tool.skill_view` in Hermes 0.19.0), approximated without running Hermes: the
//! profile's `skills/` directory (`$HERMES_HOME` for `default`, `$HERMES_HOME/profiles/<name>`
//! otherwise) and its `skills.external_dirs`, by direct path, `<name>.md`, nested directory
//! name or `name:` in a SKILL.md front matter. Used by the dispatcher (pass `kanban-worker` only
//! when the profile has it) and by the warnings of `diagnostics` and `dispatch --dry-run`.

use std::path::{Path, PathBuf};

/// Our worker skill; passed to Hermes only when the assignee's profile has it installed.
pub const KANBAN_WORKER_SKILL: &str = "kanban-worker";

/// The home a profile's Hermes runs with: the root for `default`, else `profiles/<name>`.
pub fn profile_home(root: &Path, profile: &str) -> PathBuf {
    if profile == "default" {
        root.to_path_buf()
    } else {
        root.join("profiles").join(profile)
    }
}

/// The directories Hermes searches for a profile's skills: `<home>/skills` (when it exists)
/// and `skills.external_dirs` from `<home>/config.yaml` (`~` expanded, relative to the home).
pub fn skill_dirs(home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let local = home.join("skills");
    if local.is_dir() {
        out.push(local);
    }
    let Ok(text) = std::fs::read_to_string(home.join("config.yaml")) else {
        return out;
    };
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
        return out;
    };
    let dirs = match doc.get("skills").and_then(|s| s.get("external_dirs")) {
        Some(serde_yaml::Value::String(s)) => vec![s.clone()],
        Some(serde_yaml::Value::Sequence(v)) => v
            .iter()
            .filter_map(|d| d.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    for d in dirs {
        let d = d.trim();
        if d.is_empty() {
            continue;
        }
        let p = match d.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(rest))
                .unwrap_or_else(|| PathBuf::from(d)),
            None => PathBuf::from(d),
        };
        let p = if p.is_absolute() { p } else { home.join(p) };
        if p.is_dir() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Whether the profile `profile` under the Hermes root `root` has the skill `name`. Plugin
/// skills (`plugin:skill`) cannot be checked without Hermes and count as present.
pub fn profile_has_skill(root: &Path, profile: &str, name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    if name.contains(':') {
        return true;
    }
    skill_dirs(&profile_home(root, profile))
        .iter()
        .any(|d| dir_has_skill(d, name))
}

fn dir_has_skill(dir: &Path, name: &str) -> bool {
    if name.contains("..") || Path::new(name).is_absolute() {
        return false;
    }
    let direct = dir.join(name);
    if direct.join("SKILL.md").is_file() || direct.with_extension("md").is_file() {
        return true;
    }
    // Nested (`category/name/SKILL.md`) or named in the front matter.
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let fname = e.file_name().to_string_lossy().into_owned();
            if fname.starts_with('.') || !p.is_dir() {
                continue;
            }
            let md = p.join("SKILL.md");
            if md.is_file() && (fname == name || front_matter_name(&md).as_deref() == Some(name)) {
                return true;
            }
            if depth < 6 {
                stack.push((p, depth + 1));
            }
        }
    }
    false
}

/// `name:` from a SKILL.md's YAML front matter.
fn front_matter_name(md: &Path) -> Option<String> {
    let text = std::fs::read_to_string(md).ok()?;
    let rest = text.strip_prefix("---")?;
    let end = rest.find("\n---")?;
    rest[..end].lines().find_map(|l| {
        l.strip_prefix("name:")
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// The skills the default worker argv would pass for a task (`kanban-worker` first when the
/// profile has it, then the task's own, deduplicated) and those of them the profile lacks.
/// When every passed skill is missing Hermes refuses to start (`Unknown skill(s)`); when some
/// load, it skips the missing ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSkills {
    /// Passed as `--skills NAME`, in order.
    pub pass: Vec<String>,
    /// Passed but not found in the profile.
    pub missing: Vec<String>,
}

impl WorkerSkills {
    /// Hermes would exit with `Unknown skill(s)` before the model is asked anything.
    pub fn fatal(&self) -> bool {
        !self.pass.is_empty() && self.missing.len() == self.pass.len()
    }

    /// A one-line warning for `diagnostics` / `dispatch --dry-run`, or `None` when every skill
    /// is there.
    pub fn warning(&self, task_id: &str, profile: &str, root: &Path) -> Option<String> {
        if self.missing.is_empty() {
            return None;
        }
        let dir = profile_home(root, profile).join("skills");
        let effect = if self.fatal() {
            "hermes will refuse to start the worker (Unknown skill(s))"
        } else {
            "hermes will skip it"
        };
        Some(format!(
            "task {task_id}: skill(s) {} not found for profile {profile} in {}: {effect}; install \
            with `hermes-kanban skills install --profile {profile}` (kanban-worker, \
            kanban-orchestrator) or `hermes -p {profile} skills install …`",
            self.missing.join(", "),
            dir.display(),
        ))
    }
}

/// The skills of the default worker argv for `task_skills` run by `profile`.
pub fn worker_skills(root: &Path, profile: &str, task_skills: &[String]) -> WorkerSkills {
    let mut out = WorkerSkills::default();
    if profile_has_skill(root, profile, KANBAN_WORKER_SKILL) {
        out.pass.push(KANBAN_WORKER_SKILL.to_string());
    }
    for s in task_skills {
        let s = s.trim();
        if s.is_empty() || out.pass.iter().any(|p| p == s) {
            continue;
        }
        if s == KANBAN_WORKER_SKILL {
            // Asked for explicitly but not installed: still passed, so the warning names it.
            out.pass.push(s.to_string());
            out.missing.push(s.to_string());
            continue;
        }
        out.pass.push(s.to_string());
        if !profile_has_skill(root, profile, s) {
            out.missing.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(dir: &Path, rel: &str, front_name: Option<&str>) {
        let d = dir.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        let fm = front_name
            .map(|n| format!("---\nname: {n}\n---\n"))
            .unwrap_or_default();
        std::fs::write(d.join("SKILL.md"), format!("{fm}# skill\n")).unwrap();
    }

    #[test]
    fn lookup_follows_hermes_search_rules() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let w = r.join("profiles/worker");
        skill(&w.join("skills"), "kanban-worker", None);
        skill(&w.join("skills"), "software/github-code-review", None);
        skill(&w.join("skills"), "misc/short", Some("long-name"));
        std::fs::write(w.join("skills/flat.md"), "# flat\n").unwrap();
        let ext = r.join("ext");
        skill(&ext, "from-ext", None);
        std::fs::write(
            w.join("config.yaml"),
            "skills:\n  external_dirs: ../../ext\n",
        )
        .unwrap();
        for s in [
            "kanban-worker",
            "github-code-review",
            "software/github-code-review",
            "long-name",
            "flat",
            "from-ext",
            "plugin:anything",
        ] {
            assert!(profile_has_skill(r, "worker", s), "{s}");
        }
        for s in ["nope", "../kanban-worker", ""] {
            assert!(!profile_has_skill(r, "worker", s), "{s}");
        }
        // The root's skills are not a named profile's.
        skill(&r.join("skills"), "root-only", None);
        assert!(profile_has_skill(r, "default", "root-only"));
        assert!(!profile_has_skill(r, "worker", "root-only"));
        assert!(!profile_has_skill(r, "default", "kanban-worker"));
    }

    #[test]
    fn worker_skills_pass_kanban_worker_only_when_installed() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("profiles/bare")).unwrap();
        skill(&r.join("profiles/full/skills"), "kanban-worker", None);
        let none = worker_skills(r, "bare", &[]);
        assert_eq!(none, WorkerSkills::default());
        assert_eq!(none.warning("t_1", "bare", r), None);
        let full = worker_skills(r, "full", &["review".into()]);
        assert_eq!(full.pass, ["kanban-worker", "review"]);
        assert_eq!(full.missing, ["review"]);
        assert!(!full.fatal());
        let bare = worker_skills(r, "bare", &["review".into()]);
        assert!(bare.fatal());
        let w = bare.warning("t_1", "bare", r).unwrap();
        assert!(
            w.contains("refuse to start") && w.contains("profiles/bare/skills"),
            "{w}"
        );
        let explicit = worker_skills(r, "bare", &["kanban-worker".into()]);
        assert_eq!(explicit.missing, ["kanban-worker"]);
    }
}
