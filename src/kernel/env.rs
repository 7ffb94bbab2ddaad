//! A snapshot of the environment variables the kernel reads. Passing an [`Env`] instead of
//! reading `std::env` inside kernel functions keeps path resolution and knobs testable without
//! mutating the process environment. Empty values and unexpanded placeholders (`${VAR}`,
//! `$VAR`, as MCP clients pass them when a variable is unset) count as unset.

use std::collections::HashMap;
use std::path::PathBuf;

/// Environment variables relevant to the kernel, captured once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Capture the current process environment.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    /// An empty environment (tests build on this with [`Env::with`]).
    pub fn empty() -> Self {
        Env::default()
    }

    /// Return a copy with `key` set to `value`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.insert(key.to_string(), value.into());
        self
    }

    /// Return a copy without `key`.
    pub fn without(mut self, key: &str) -> Self {
        self.vars.remove(key);
        self
    }

    /// Every variable, as captured (what a spawned worker inherits).
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`, trimmed; empty values count as unset (as in Hermes), and so do
    /// unexpanded placeholders such as `${HERMES_KANBAN_TASK}` or `$HERMES_HOME` (MCP clients
    /// pass them literally when the variable is unset; see [`Env::ignored`]).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && !is_placeholder(v))
    }

    /// Variables among `keys` that are set but count as unset (empty, or an unexpanded
    /// placeholder), with their raw values, for a server to report on stderr.
    pub fn ignored<'a>(&'a self, keys: &[&'a str]) -> Vec<(&'a str, &'a str)> {
        keys.iter()
            .filter_map(|k| {
                let raw = self.vars.get(*k)?;
                self.get(k).is_none().then_some((*k, raw.as_str()))
            })
            .collect()
    }

    /// `key` as a path, with a leading `~` expanded against `HOME`.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(|v| self.expand_tilde(v))
    }

    /// `key` as a strictly positive integer; anything else (absent, garbage, ≤ 0) is `None`.
    pub fn positive_i64(&self, key: &str) -> Option<i64> {
        self.get(key)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
    }

    /// `key` as a non-negative integer (0 allowed); garbage is `None`.
    pub fn non_negative_i64(&self, key: &str) -> Option<i64> {
        self.get(key)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v >= 0)
    }

    /// The user's home directory (`HOME`, else `/`).
    pub fn home_dir(&self) -> PathBuf {
        self.get("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Expand a leading `~` or `~/` against `HOME`.
    pub fn expand_tilde(&self, v: &str) -> PathBuf {
        if v == "~" {
            self.home_dir()
        } else if let Some(rest) = v.strip_prefix("~/") {
            self.home_dir().join(rest)
        } else {
            PathBuf::from(v)
        }
    }
}

/// Whether `v` is an unexpanded shell/client placeholder: `${…}` or `$NAME` as a whole value
/// (what Claude Code, Codex or Hermes configs pass on when the variable is unset).
pub fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    if let Some(inner) = v.strip_prefix("${") {
        return inner.ends_with('}');
    }
    v.strip_prefix('$').is_some_and(|name| {
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_empty_values_count_as_unset() {
        let env = Env::empty()
            .with("A", "${HERMES_KANBAN_TASK}")
            .with("B", "$HERMES_HOME")
            .with("C", "  ")
            .with("D", "t_1234")
            .with("E", "$5 off")
            .with("F", "${X:-y}");
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), None);
        assert_eq!(env.get("C"), None);
        assert_eq!(env.get("D"), Some("t_1234"));
        assert_eq!(env.get("E"), Some("$5 off"));
        assert_eq!(env.get("F"), None);
        let ignored = env.ignored(&["A", "B", "C", "D", "Z"]);
        assert_eq!(
            ignored,
            vec![
                ("A", "${HERMES_KANBAN_TASK}"),
                ("B", "$HERMES_HOME"),
                ("C", "  ")
            ]
        );
    }
}
