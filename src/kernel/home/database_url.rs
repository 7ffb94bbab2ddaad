//! Which backend a home opens ([`Kanban::open`]): the database URL from `--database-url`,
//! `HERMES_KANBAN_DATABASE_URL` or `kanban.database_url` in config.yaml, the one-line refusal of
//! a URL this build cannot open, and [`redact_url`], which keeps passwords out of every message.

use super::{DATABASE_URL_VAR, Kanban};
use crate::kernel::env::Env;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::paths::hermes_root;
use crate::kernel::store::postgres::{self as pg, PgTarget};

/// The database URL `env` (or the `--database-url` flag) chooses, with where it came from.
pub(crate) fn chosen_url(env: &Env, flag: Option<&str>) -> Option<(&'static str, String)> {
    flag.map(|u| ("--database-url", u.to_string()))
        .filter(|(_, u)| !u.trim().is_empty())
        .or_else(|| {
            env.get(DATABASE_URL_VAR)
                .filter(|u| !u.trim().is_empty() && !super::env::is_placeholder(u))
                .map(|u| (DATABASE_URL_VAR, u.to_string()))
        })
        .or_else(|| config_database_url(env).map(|u| ("kanban.database_url", u)))
}

impl Kanban {
    /// Open the home of `env`: the backend named by `database_url` (the global
    /// `--database-url`), else `$HERMES_KANBAN_DATABASE_URL`, else `kanban.database_url` in
    /// `$HERMES_HOME/config.yaml`, else the SQLite boards under the kanban home. A
    /// `postgres://` URL is refused (this build has no PostgreSQL backend yet); the message
    /// never shows the URL's password.
    pub fn open(env: &Env, database_url: Option<&str>) -> Result<Kanban> {
        match chosen_url(env, database_url) {
            None => Ok(Kanban::sqlite(env.clone())),
            Some((from, url)) if pg::is_postgres_url(&url) => {
                let target = PgTarget::parse(env, url.trim(), from)?;
                // Every process this home starts (workers, supervisors) inherits the URL in
                // its environment — never in argv — whichever source named it.
                let env = env.clone().with(DATABASE_URL_VAR, url.trim());
                Ok(Kanban::postgres(env, target))
            }
            Some((from, url)) => Err(refuse_url(from, url.trim())),
        }
    }
}

/// `kanban.database_url` from `$HERMES_HOME/config.yaml` (absent, blank or unreadable: none).
fn config_database_url(env: &Env) -> Option<String> {
    let text = std::fs::read_to_string(hermes_root(env).join("config.yaml")).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    match doc.get("kanban")?.get("database_url")? {
        serde_yaml::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The refusal for a database URL this build cannot open (one line, password hidden).
fn refuse_url(from: &str, url: &str) -> KernelError {
    let shown = redact_url(url);
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let fix = if from.starts_with("--") {
        format!("leave out {from}")
    } else {
        format!("unset {from}")
    };
    let message = format!(
        "{shown} (from {from}) is not a database URL this build can open{}: only \
        postgres://USER[:PASS]@HOST:PORT/DB (or postgresql://…) is; {fix} to use the SQLite boards \
        under HERMES_HOME",
        scheme
            .map(|s| format!(" (scheme {s:?})"))
            .unwrap_or_default()
    );
    KernelError::Invalid {
        field: "database_url",
        message: message.replace(['\n', '\r'], " "),
    }
}

/// `url` with any password replaced by `***`: the `user:password@` part and
/// `password=` query or key-value parameters.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some((user, _)) = userinfo.split_once(':') {
                out = format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
            }
        }
    }
    // `?password=…&…` or libpq's `password=… host=…`.
    let mut redacted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.to_ascii_lowercase().find("password=") {
        let start = i + "password=".len();
        redacted.push_str(&rest[..start]);
        redacted.push_str("***");
        let tail = &rest[start..];
        let end = tail.find(['&', ' ', '#']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    redacted.push_str(rest);
    redacted
}
