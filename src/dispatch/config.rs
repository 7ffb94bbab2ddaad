//! The dispatcher's settings: the `kanban:` section of `$HERMES_HOME/config.yaml` (same keys and
//! defaults as Hermes 0.19.0, REF §9.3, plus our `worker_command`), and the environment knobs
//! (`HERMES_KANBAN_CRASH_GRACE_SECONDS`, `HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS`,
//! `HERMES_KANBAN_KILL_GRACE_SECONDS`). A missing file means defaults; a bad value is ignored
//! with a warning, never an error that stops the dispatcher.
//!
//! `worker_command` — what to spawn instead of `hermes` — is an argv list, or a map from assignee
//! to argv list where the key `"*"` applies to every assignee that has a profile:
//!
//! ```yaml
//! kanban:
//!   max_in_progress: 4
//!   worker_command:
//!     coder: ["codex", "exec", "--cd", "{workspace}", "{prompt}"]
//!     "*":   ["my-agent", "--task", "{task_id}", "--board", "{board}"]
//! ```
//!
//! Placeholders, replaced inside every argument: `{task_id}`, `{assignee}`, `{board}`,
//! `{workspace}`, `{run_id}`, `{prompt}` (= `work kanban task <id>`). The program (first element)
//! is an absolute path or a name looked up on `PATH`. The worker gets the same environment as a
//! `hermes` worker (`HERMES_KANBAN_TASK`, `HERMES_KANBAN_TOKEN`, …), so any agent CLI that can
//! reach the MCP server (`hermes-kanban mcp`) can serve a profile. An assignee named explicitly
//! in the map is spawnable even without a `profiles/<name>/` directory.
//!
//! `max_in_progress` caps the running tasks of the whole board, across every host that
//! dispatches it; `max_in_progress_per_host` (ours) caps those this host claimed.
//!
//! `dispatch_profiles` (Hermes ~0.22) is this home's claim allowlist on a board shared by
//! several homes: a list or a comma-separated string; absent = any spawnable assignee; present
//! but empty (or naming nothing valid) = claim nothing (fails closed).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_yaml::Value as Yaml;

use crate::kernel::Env;

/// Default rotation threshold of a worker log (REF §10.3).
pub const DEFAULT_LOG_ROTATE_BYTES: u64 = 2 * 1024 * 1024;

/// Worker command templates from `kanban.worker_command`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerCommands {
    /// Applies to any assignee (a bare list, or the `"*"` key).
    pub any: Option<Vec<String>>,
    /// Per assignee.
    pub by_assignee: BTreeMap<String, Vec<String>>,
}

impl WorkerCommands {
    /// The template for `assignee`, if one is configured.
    pub fn for_assignee(&self, assignee: &str) -> Option<&[String]> {
        self.by_assignee
            .get(assignee)
            .or(self.any.as_ref())
            .map(Vec::as_slice)
    }
}

/// The `kanban:` settings the dispatcher reads (REF §9.3 defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct KanbanConfig {
    /// `dispatch_interval_seconds` (60, floor 1).
    pub dispatch_interval_seconds: f64,
    /// `failure_limit` (2).
    pub failure_limit: i64,
    /// `dispatch_stale_timeout_seconds` (14400; 0 disables) — long-lived hosts only.
    pub dispatch_stale_timeout_seconds: i64,
    /// `max_spawn` (unset).
    pub max_spawn: Option<usize>,
    /// `max_in_progress` (unset).
    pub max_in_progress: Option<usize>,
    /// `max_in_progress_per_profile` (unset).
    pub max_in_progress_per_profile: Option<usize>,
    /// `max_in_progress_per_host` (unset): running tasks claimed by this host
    /// (`HERMES_KANBAN_HOST_ID`, else the hostname), on top of the board-wide cap.
    pub max_in_progress_per_host: Option<usize>,
    /// `default_assignee` (unset).
    pub default_assignee: Option<String>,
    /// `worker_log_rotate_bytes` (2 MiB).
    pub worker_log_rotate_bytes: u64,
    /// `worker_log_backup_count` (1; 0 deletes instead of rotating).
    pub worker_log_backup_count: u32,
    /// Our `worker_command`.
    pub worker_command: WorkerCommands,
    /// `dispatch_profiles` (UP §10): the per-home claim allowlist. `None` when the key is
    /// absent (any spawnable assignee); a present key fails closed — `null`, empty, or no valid
    /// name claims nothing.
    pub dispatch_profiles: Option<Vec<String>>,
    /// `review_dispatch` (true; upstream ~0.22): the dispatcher claims `review` tasks for
    /// their assignee (the reviewer), holding one budget slot back while review work waits.
    pub review_dispatch: bool,
}

impl Default for KanbanConfig {
    fn default() -> Self {
        KanbanConfig {
            dispatch_interval_seconds: 60.0,
            failure_limit: crate::kernel::DEFAULT_FAILURE_LIMIT,
            dispatch_stale_timeout_seconds: 14_400,
            max_spawn: None,
            max_in_progress: None,
            max_in_progress_per_profile: None,
            max_in_progress_per_host: None,
            default_assignee: None,
            worker_log_rotate_bytes: DEFAULT_LOG_ROTATE_BYTES,
            worker_log_backup_count: 1,
            worker_command: WorkerCommands::default(),
            dispatch_profiles: None,
            review_dispatch: true,
        }
    }
}

/// `$HERMES_HOME/config.yaml` (`~/.hermes/config.yaml` when `HERMES_HOME` is unset).
pub fn config_path(env: &Env) -> PathBuf {
    env.path("HERMES_HOME")
        .unwrap_or_else(|| env.home_dir().join(".hermes"))
        .join("config.yaml")
}

fn as_i64(v: &Yaml) -> Option<i64> {
    match v {
        Yaml::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Yaml::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(v: &Yaml) -> Option<f64> {
    match v {
        Yaml::Number(n) => n.as_f64(),
        Yaml::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn argv(v: &Yaml) -> Option<Vec<String>> {
    let seq = v.as_sequence()?;
    let out: Option<Vec<String>> = seq
        .iter()
        .map(|x| match x {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Number(n) => Some(n.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect();
    out.filter(|a| !a.is_empty() && !a[0].trim().is_empty())
}

impl KanbanConfig {
    /// Read the settings of `env`'s Hermes home. Returns the settings and a warning per value
    /// that was ignored.
    pub fn load(env: &Env) -> (KanbanConfig, Vec<String>) {
        let path = config_path(env);
        match std::fs::read_to_string(&path) {
            Ok(text) => KanbanConfig::parse(&text, &path.display().to_string()),
            Err(_) => (KanbanConfig::default(), vec![]),
        }
    }

    /// Parse a config file's text (`origin` names it in warnings).
    pub fn parse(text: &str, origin: &str) -> (KanbanConfig, Vec<String>) {
        let mut cfg = KanbanConfig::default();
        let mut warn = Vec::new();
        let doc: Yaml = match serde_yaml::from_str(text) {
            Ok(d) => d,
            Err(e) => {
                warn.push(format!("{origin}: not valid YAML ({e}); using defaults"));
                return (cfg, warn);
            }
        };
        let Some(k) = doc.get("kanban").filter(|k| k.is_mapping()) else {
            return (cfg, warn);
        };
        let mut bad = |key: &str, v: &Yaml| {
            warn.push(format!(
                "{origin}: kanban.{key} = {} is not valid; using the default",
                serde_yaml::to_string(v).unwrap_or_default().trim()
            ))
        };
        read_scalars(k, &mut cfg, &mut bad);
        read_caps(k, &mut cfg, &mut bad);
        read_defaults(k, &mut cfg, &mut bad);
        read_worker_command(k, &mut cfg, &mut bad);
        if let Some(v) = k.get("dispatch_profiles") {
            let (names, ok) = dispatch_profiles(v);
            if !ok {
                warn.push(format!(
                    "{origin}: kanban.dispatch_profiles = {} names no valid profile; this home \
                    claims no cards (omit the key to allow any profile)",
                    serde_yaml::to_string(v).unwrap_or_default().trim()
                ));
            }
            cfg.dispatch_profiles = Some(names);
        }
        (cfg, warn)
    }
}

/// The dispatcher's scalar `kanban.*` settings (interval, failure limit, review dispatch, stale
/// timeout); a value out of range goes to `bad` and keeps its default.
fn read_scalars(k: &Yaml, cfg: &mut KanbanConfig, bad: &mut dyn FnMut(&str, &Yaml)) {
    if let Some(v) = k.get("dispatch_interval_seconds") {
        match as_f64(v).filter(|f| f.is_finite() && *f > 0.0) {
            Some(f) => cfg.dispatch_interval_seconds = f.max(1.0),
            None => bad("dispatch_interval_seconds", v),
        }
    }
    if let Some(v) = k.get("failure_limit") {
        match as_i64(v).filter(|n| (1..=1000).contains(n)) {
            Some(n) => cfg.failure_limit = n,
            None => bad("failure_limit", v),
        }
    }
    if let Some(v) = k.get("review_dispatch") {
        match v {
            Yaml::Bool(b) => cfg.review_dispatch = *b,
            Yaml::Null => {}
            _ => bad("review_dispatch", v),
        }
    }
    if let Some(v) = k.get("dispatch_stale_timeout_seconds") {
        match as_i64(v).filter(|n| *n >= 0) {
            Some(n) => cfg.dispatch_stale_timeout_seconds = n,
            None => bad("dispatch_stale_timeout_seconds", v),
        }
    }
}

/// The `kanban.max_*` concurrency caps (each a positive integer; absent or null is no cap).
fn read_caps(k: &Yaml, cfg: &mut KanbanConfig, bad: &mut dyn FnMut(&str, &Yaml)) {
    for (key, slot) in [
        ("max_spawn", &mut cfg.max_spawn),
        ("max_in_progress", &mut cfg.max_in_progress),
        (
            "max_in_progress_per_profile",
            &mut cfg.max_in_progress_per_profile,
        ),
        (
            "max_in_progress_per_host",
            &mut cfg.max_in_progress_per_host,
        ),
    ] {
        match k.get(key) {
            None | Some(Yaml::Null) => {}
            Some(v) => match as_i64(v).filter(|n| *n >= 1) {
                Some(n) => *slot = Some(n as usize),
                None => bad(key, v),
            },
        }
    }
}

/// `kanban.default_assignee` and the worker-log rotation settings (read after the caps, as
/// they always were, so warnings keep their order).
fn read_defaults(k: &Yaml, cfg: &mut KanbanConfig, bad: &mut dyn FnMut(&str, &Yaml)) {
    match k.get("default_assignee") {
        None | Some(Yaml::Null) => {}
        Some(Yaml::String(s)) if s.trim().is_empty() => {}
        Some(Yaml::String(s)) => cfg.default_assignee = Some(s.trim().to_string()),
        Some(v) => bad("default_assignee", v),
    }
    if let Some(v) = k.get("worker_log_rotate_bytes") {
        match as_i64(v).filter(|n| *n > 0) {
            Some(n) => cfg.worker_log_rotate_bytes = n as u64,
            None => bad("worker_log_rotate_bytes", v),
        }
    }
    if let Some(v) = k.get("worker_log_backup_count") {
        match as_i64(v).filter(|n| (0..=100).contains(n)) {
            Some(n) => cfg.worker_log_backup_count = n as u32,
            None => bad("worker_log_backup_count", v),
        }
    }
}

/// `kanban.worker_command`: one argv for every assignee, or a map of assignee (`*` for any)
/// to argv.
fn read_worker_command(k: &Yaml, cfg: &mut KanbanConfig, bad: &mut dyn FnMut(&str, &Yaml)) {
    match k.get("worker_command") {
        None | Some(Yaml::Null) => {}
        Some(v @ Yaml::Sequence(_)) => match argv(v) {
            Some(a) => cfg.worker_command.any = Some(a),
            None => bad("worker_command", v),
        },
        Some(Yaml::Mapping(m)) => {
            for (name, v) in m {
                let Some(name) = name.as_str() else {
                    bad("worker_command", v);
                    continue;
                };
                match argv(v) {
                    Some(a) if name == "*" => cfg.worker_command.any = Some(a),
                    Some(a) => {
                        cfg.worker_command.by_assignee.insert(name.to_string(), a);
                    }
                    None => bad(&format!("worker_command.{name}"), v),
                }
            }
        }
        Some(v) => bad("worker_command", v),
    }
}

/// `kanban.dispatch_profiles` as Hermes reads it: a list, or one comma-separated string; each
/// name trimmed and lower-cased, invalid names dropped. The flag is false when nothing valid
/// remains (the home then claims nothing — fail closed).
fn dispatch_profiles(v: &Yaml) -> (Vec<String>, bool) {
    let raw: Vec<String> = match v {
        Yaml::Sequence(seq) => seq
            .iter()
            .filter_map(|x| match x {
                Yaml::String(s) => Some(s.clone()),
                Yaml::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Yaml::String(s) => s.split(',').map(str::to_string).collect(),
        _ => vec![],
    };
    let mut out: Vec<String> = Vec::new();
    for n in raw {
        let n = n.trim();
        let canon = if n.eq_ignore_ascii_case("default") {
            Some("default".to_string())
        } else {
            crate::kernel::validate::profile_name("dispatch_profiles", Some(n))
                .ok()
                .flatten()
        };
        if let Some(c) = canon
            && !out.contains(&c)
        {
            out.push(c);
        }
    }
    let ok = !out.is_empty();
    (out, ok)
}

/// `HERMES_KANBAN_CRASH_GRACE_SECONDS` (default 30): how long after a task's first start a dead
/// worker pid is not yet treated as a crash.
pub fn crash_grace_seconds(env: &Env) -> i64 {
    env.non_negative_i64("HERMES_KANBAN_CRASH_GRACE_SECONDS")
        .unwrap_or(30)
}

/// `HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS` (default 300; 0 = respawn at once).
pub fn rate_limit_cooldown_seconds(env: &Env) -> i64 {
    env.non_negative_i64("HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS")
        .unwrap_or(300)
}

/// `HERMES_KANBAN_KILL_GRACE_SECONDS` (default 5): SIGTERM → SIGKILL grace when a worker is
/// stopped (max runtime, reclaim).
pub fn kill_grace_seconds(env: &Env) -> f64 {
    env.get("HERMES_KANBAN_KILL_GRACE_SECONDS")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 0.0)
        .map(|f| f.min(600.0))
        .unwrap_or(5.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_kanban_section() {
        let (c, w) = KanbanConfig::parse("model: x\n", "cfg");
        assert_eq!(c, KanbanConfig::default());
        assert!(w.is_empty());
    }

    #[test]
    fn reads_every_key_and_warns_on_bad_values() {
        let text = r#"
kanban:
  dispatch_interval_seconds: 0.5
  failure_limit: 3
  dispatch_stale_timeout_seconds: 0
  max_spawn: 4
  max_in_progress: "6"
  max_in_progress_per_profile: 0
  default_assignee: " coder "
  worker_log_rotate_bytes: 1024
  worker_log_backup_count: 0
  worker_command:
    "*": ["agent", "{task_id}"]
    reviewer: ["rev", "--board", "{board}", 7]
    broken: "not a list"
"#;
        let (c, w) = KanbanConfig::parse(text, "cfg");
        assert_eq!(c.dispatch_interval_seconds, 1.0, "floored to 1 s");
        assert_eq!(c.failure_limit, 3);
        assert_eq!(c.dispatch_stale_timeout_seconds, 0);
        assert_eq!(c.max_spawn, Some(4));
        assert_eq!(c.max_in_progress, Some(6));
        assert_eq!(c.max_in_progress_per_profile, None);
        assert_eq!(c.default_assignee.as_deref(), Some("coder"));
        assert_eq!(c.worker_log_rotate_bytes, 1024);
        assert_eq!(c.worker_log_backup_count, 0);
        assert_eq!(
            c.worker_command.for_assignee("coder"),
            Some(&["agent".to_string(), "{task_id}".to_string()][..])
        );
        assert_eq!(
            c.worker_command.for_assignee("reviewer").map(|a| a.len()),
            Some(4)
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|m| m.contains("max_in_progress_per_profile")));
        assert!(w.iter().any(|m| m.contains("worker_command.broken")));
    }

    #[test]
    fn dispatch_profiles_is_an_allowlist_that_fails_closed() {
        let (c, w) = KanbanConfig::parse("kanban: {}\n", "cfg");
        assert_eq!(c.dispatch_profiles, None, "absent key: any profile");
        assert!(w.is_empty());
        let (c, w) = KanbanConfig::parse(
            "kanban:\n  dispatch_profiles: [Sage, ' coder ', 'a/b']\n",
            "cfg",
        );
        assert_eq!(
            c.dispatch_profiles,
            Some(vec!["sage".into(), "coder".into()])
        );
        assert!(w.is_empty(), "{w:?}");
        let (c, _) = KanbanConfig::parse("kanban:\n  dispatch_profiles: 'sage, Default'\n", "cfg");
        assert_eq!(
            c.dispatch_profiles,
            Some(vec!["sage".into(), "default".into()])
        );
        for bare in [
            "kanban:\n  dispatch_profiles:\n",
            "kanban:\n  dispatch_profiles: []\n",
            "kanban:\n  dispatch_profiles: ''\n",
            "kanban:\n  dispatch_profiles: ['../x']\n",
        ] {
            let (c, w) = KanbanConfig::parse(bare, "cfg");
            assert_eq!(c.dispatch_profiles, Some(vec![]), "{bare:?} claims nothing");
            assert_eq!(w.len(), 1, "{bare:?}: {w:?}");
            assert!(w[0].contains("claims no cards"), "{w:?}");
        }
    }

    #[test]
    fn bad_yaml_is_a_warning() {
        let (c, w) = KanbanConfig::parse("kanban: [unclosed", "cfg");
        assert_eq!(c, KanbanConfig::default());
        assert_eq!(w.len(), 1);
    }
}
