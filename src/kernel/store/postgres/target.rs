//! Where a PostgreSQL home points: the parsed URL ([`PgTarget`]), its password (from the
//! URL, `PGPASSWORD`, or a `.pgpass` file — `$PGPASSFILE`, else `~/.pgpass` — which
//! `tokio-postgres` does not read itself), the shown (password-free) form every message
//! uses, and the session settings each connection starts with.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

use crate::kernel::env::Env;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::home::redact_url;

/// A parsed PostgreSQL database URL with its password resolved.
pub struct PgTarget {
    pub(crate) config: tokio_postgres::Config,
    /// The URL without its password: the only form that appears in messages.
    pub(crate) shown: String,
    /// The URL as given (it may hold a password): passed to our own child processes in the
    /// environment, never in argv.
    pub(crate) url: String,
    /// `lock_timeout` in ms (`HERMES_KANBAN_BUSY_TIMEOUT_MS`, default 120 s): a lock wait past
    /// it is [`KernelError::Busy`], as on SQLite.
    pub(crate) lock_timeout_ms: i64,
    /// `statement_timeout` in ms (`HERMES_KANBAN_STATEMENT_TIMEOUT_MS`, default 300 s).
    pub(crate) statement_timeout_ms: i64,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PartialEq for PgTarget {
    fn eq(&self, o: &PgTarget) -> bool {
        self.shown == o.shown
    }
}
impl Eq for PgTarget {}

/// Whether `url` names PostgreSQL (`postgres://`, `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let l = url.trim().to_ascii_lowercase();
    l.starts_with("postgres://") || l.starts_with("postgresql://")
}

impl PgTarget {
    /// Parse `url` (from `from`, for messages) and resolve its password.
    pub fn parse(env: &Env, url: &str, from: &str) -> Result<PgTarget> {
        let shown = redact_url(url);
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            KernelError::invalid(
                "database_url",
                format!("{shown} (from {from}) is not a valid PostgreSQL URL: {e}")
                    .replace(['\n', '\r'], " "),
            )
        })?;
        if config.get_user().is_none()
            && let Some(u) = env.get("PGUSER").or_else(|| env.get("USER"))
        {
            config.user(u);
        }
        if config.get_password().is_none() {
            if let Some(p) = env.get("PGPASSWORD").filter(|p| !p.is_empty()) {
                config.password(p);
            } else if let Some(p) = pgpass_password(env, &config) {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("hermes-kanban");
        }
        let ms = |key: &str, default: i64| env.positive_i64(key).unwrap_or(default);
        Ok(PgTarget {
            config,
            shown,
            url: url.to_string(),
            lock_timeout_ms: ms(
                "HERMES_KANBAN_BUSY_TIMEOUT_MS",
                crate::kernel::store::sqlite::DEFAULT_BUSY_TIMEOUT_MS,
            ),
            statement_timeout_ms: ms("HERMES_KANBAN_STATEMENT_TIMEOUT_MS", 300_000),
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The URL as given, for the environment of our own child processes.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The first host and port of `config`, as `.pgpass` matches them.
fn host_port(config: &tokio_postgres::Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.to_string_lossy().into_owned(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host, port)
}

/// The password `.pgpass` holds for this host, port, database and user (libpq's rules: the
/// first matching line wins, `*` matches anything, `\` escapes `:` and `\`; a file readable by
/// group or others is ignored, as libpq does).
fn pgpass_password(env: &Env, config: &tokio_postgres::Config) -> Option<String> {
    let path = env
        .path("PGPASSFILE")
        .or_else(|| env.path("HOME").map(|h| h.join(".pgpass")))?;
    let text = read_private(&path)?;
    let (host, port) = host_port(config);
    let db = config
        .get_dbname()
        .map(str::to_string)
        .or_else(|| config.get_user().map(str::to_string))?;
    let user = config.get_user()?.to_string();
    let want = [host, port.to_string(), db, user];
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            continue;
        }
        let hit = fields[..4].iter().zip(&want).all(|(f, w)| {
            f == "*"
                || f == w
                || (w == "localhost" && f == "127.0.0.1")
                || (f == "localhost" && w == "127.0.0.1")
        });
        if hit {
            return Some(fields[4].clone());
        }
    }
    None
}

fn read_private(path: &PathBuf) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "{}: ignored (readable by group or others; chmod 600 it)",
            path.display()
        );
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("one field").push(n);
                }
            }
            ':' => out.push(String::new()),
            _ => out.last_mut().expect("one field").push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_comes_from_the_url_then_pgpassword_then_pgpass() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pgpass");
        std::fs::write(
            &pass,
            "# comment\nother:5432:*:kb:nope\n127.0.0.1:5499:kanban:kb:fr\\:om-file\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = Env::empty().with("PGPASSFILE", pass.to_string_lossy());
        let url = "postgres://kb@127.0.0.1:5499/kanban";
        let t = PgTarget::parse(&env, url, "test").unwrap();
        assert_eq!(t.config.get_password(), Some(&b"fr:om-file"[..]));
        let t = PgTarget::parse(&env.clone().with("PGPASSWORD", "env"), url, "test").unwrap();
        assert_eq!(t.config.get_password(), Some(&b"env"[..]));
        let t = PgTarget::parse(&env, "postgres://kb:inurl@127.0.0.1:5499/kanban", "t").unwrap();
        assert_eq!(t.config.get_password(), Some(&b"inurl"[..]));
        assert_eq!(t.shown(), "postgres://kb:***@127.0.0.1:5499/kanban");
        assert!(!format!("{t:?}").contains("inurl"));
        // No match: no password.
        let t = PgTarget::parse(&env, "postgres://kb@127.0.0.1:5499/other", "t").unwrap();
        assert_eq!(t.config.get_password(), None);
        // A world-readable file is ignored.
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let t = PgTarget::parse(&env, url, "test").unwrap();
        assert_eq!(t.config.get_password(), None);
    }

    #[test]
    fn a_malformed_url_is_invalid_without_its_password() {
        let e = PgTarget::parse(
            &Env::empty(),
            "postgres://u:s3cret@h:notaport/d",
            "--database-url",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("not a valid PostgreSQL URL") && !e.contains("s3cret"),
            "{e}"
        );
    }
}
