//! A snapshot of the environment variables the kernel reads. Passing an [`Env`] instead of
//! reading `std::env` inside kernel functions keeps path resolution and knobs testable without
//! mutating the process environment.

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

    /// The value of `key`, trimmed; empty values count as unset (as in Hermes).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
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
