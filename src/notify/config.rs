//! `kanban.notify` in `$HERMES_HOME/config.yaml`: the webhooks `serve` and `daemon` post to,
//! and the delivery knobs. Unlike the dispatcher's settings, a mistake here is an error that
//! names the key (`kanban.notify.webhooks[1].format`) — a hook that silently never fires is
//! worse than a host that refuses to start.
//!
//! ```yaml
//! kanban:
//!   notify:
//!     max_attempts: 5        # tries per event (1-20)
//!     backoff_seconds: 1     # wait before the 2nd try; doubles each try, at most 60 s
//!     poll_seconds: 2        # how often each hook looks for new events
//!     timeout_seconds: 10    # per HTTP request
//!     webhooks:
//!       - name: team-slack
//!         url: https://hooks.slack.com/services/T000/B000/XXXX
//!         format: slack               # slack | discord | json (default json)
//!         events: [completed, blocked, gave_up]   # default: the watched set
//!         tenant: acme                # only tasks of this tenant
//!         assignee: coder             # only tasks assigned to this profile
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use serde_yaml::Value as Yaml;

use crate::kernel::Env;

/// The events users watch: a hook without `events` gets these.
pub const WATCHED_EVENTS: &[&str] = &[
    "completed",
    "blocked",
    "gave_up",
    "crashed",
    "timed_out",
    "review_requested",
    "changes_requested",
];

/// Every event kind a hook may ask for (Hermes 0.19.0's, upstream's review events, ours).
pub const KNOWN_EVENTS: &[&str] = &[
    "created",
    "promoted",
    "claimed",
    "completed",
    "blocked",
    "unblocked",
    "archived",
    "assigned",
    "linked",
    "unlinked",
    "commented",
    "heartbeat",
    "spawned",
    "reclaimed",
    "crashed",
    "timed_out",
    "spawn_failed",
    "gave_up",
    "status",
    "edited",
    "reprioritized",
    "dependency_wait",
    "scheduled",
    "attached",
    "rate_limited",
    "protocol_violation",
    "stale",
    "review_requested",
    "changes_requested",
    "review_reopened",
    "completion_blocked_hallucination",
    "suspected_hallucinated_references",
];

/// How a hook's body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Slack incoming webhook: `{"text": …}`.
    Slack,
    /// Discord webhook: `{"content": …, "username": …, "allowed_mentions": {"parse": []}}`.
    Discord,
    /// The event, its task and the text, for your own receiver.
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Json => "json",
        }
    }
}

/// One configured webhook.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Webhook {
    /// `name`, else [`default_name`] of the URL: the key of its delivery cursor on each board.
    pub name: String,
    pub url: String,
    pub format: Format,
    pub events: Vec<String>,
    pub tenant: Option<String>,
    pub assignee: Option<String>,
}

/// `kanban.notify`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub webhooks: Vec<Webhook>,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub poll: Duration,
    pub timeout: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhooks: vec![],
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            poll: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
        }
    }
}

const HOOK_KEYS: &[&str] = &["name", "url", "format", "events", "tenant", "assignee"];
const NOTIFY_KEYS: &[&str] = &[
    "webhooks",
    "max_attempts",
    "backoff_seconds",
    "poll_seconds",
    "timeout_seconds",
];

fn seconds(v: &Yaml, key: &str, min: f64, max: f64) -> Result<Duration, String> {
    let f = match v {
        Yaml::Number(n) => n.as_f64(),
        Yaml::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match f.filter(|f| f.is_finite() && *f >= min && *f <= max) {
        Some(f) => Ok(Duration::from_secs_f64(f)),
        None => Err(format!(
            "kanban.notify.{key}: {} is not a number of seconds between {min} and {max}",
            show(v)
        )),
    }
}

fn show(v: &Yaml) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn text(v: &Yaml, key: &str) -> Result<String, String> {
    match v {
        Yaml::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(format!("{key}: give a non-empty string (got {})", show(v))),
    }
}

impl NotifyConfig {
    /// Read `kanban.notify` from `env`'s `config.yaml`. A missing file or section means no
    /// hooks. Every mistake is reported, each naming its key and the file.
    pub fn load(env: &Env) -> Result<NotifyConfig, String> {
        NotifyConfig::load_lenient(env).and_then(|(cfg, yaml_error)| match yaml_error {
            Some(e) => Err(e),
            None => Ok(cfg),
        })
    }

    /// As [`NotifyConfig::load`], but a file that is not YAML at all yields no hooks and the
    /// message (second value) instead of an error: the dispatcher already runs on defaults with
    /// a warning then, and a host must not stop over a file it could not read as a whole.
    pub fn load_lenient(env: &Env) -> Result<(NotifyConfig, Option<String>), String> {
        let path = crate::dispatch::config::config_path(env);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((NotifyConfig::default(), None));
            }
            Err(e) => return Err(format!("{}: cannot read ({e})", path.display())),
        };
        if let Err(e) = serde_yaml::from_str::<Yaml>(&text) {
            return Ok((
                NotifyConfig::default(),
                Some(format!(
                    "{}: not valid YAML ({e}); no webhooks are delivered",
                    path.display()
                )),
            ));
        }
        NotifyConfig::parse(&text)
            .map(|c| (c, None))
            .map_err(|errs| format!("{}: {}", path.display(), errs.join("; ")))
    }

    /// Parse a config file's text; `Err` lists every mistake.
    pub fn parse(text: &str) -> Result<NotifyConfig, Vec<String>> {
        let mut cfg = NotifyConfig::default();
        let doc: Yaml =
            serde_yaml::from_str(text).map_err(|e| vec![format!("not valid YAML ({e})")])?;
        let Some(n) = doc.get("kanban").and_then(|k| k.get("notify")) else {
            return Ok(cfg);
        };
        if n.is_null() {
            return Ok(cfg);
        }
        let Some(map) = n.as_mapping() else {
            return Err(vec![format!(
                "kanban.notify: expected a mapping with `webhooks:` (got {})",
                show(n)
            )]);
        };
        let mut errs = Vec::new();
        for k in map.keys() {
            let k = k.as_str().unwrap_or("");
            if !NOTIFY_KEYS.contains(&k) {
                errs.push(format!(
                    "kanban.notify.{k}: unknown key; known keys: {}",
                    NOTIFY_KEYS.join(", ")
                ));
            }
        }
        if let Some(v) = n.get("max_attempts") {
            match v.as_u64().filter(|n| (1..=20).contains(n)) {
                Some(a) => cfg.max_attempts = a as u32,
                None => errs.push(format!(
                    "kanban.notify.max_attempts: {} is not a whole number from 1 to 20",
                    show(v)
                )),
            }
        }
        for (key, slot, min, max) in [
            ("backoff_seconds", &mut cfg.backoff, 0.0, 600.0),
            ("poll_seconds", &mut cfg.poll, 0.05, 3600.0),
            ("timeout_seconds", &mut cfg.timeout, 0.1, 600.0),
        ] {
            if let Some(v) = n.get(key) {
                match seconds(v, key, min, max) {
                    Ok(d) => *slot = d,
                    Err(e) => errs.push(e),
                }
            }
        }
        match n.get("webhooks") {
            None | Some(Yaml::Null) => {}
            Some(Yaml::Sequence(hooks)) => {
                let mut names = BTreeSet::new();
                for (i, h) in hooks.iter().enumerate() {
                    match parse_hook(h, i) {
                        Ok(hook) => {
                            if !names.insert(hook.name.clone()) {
                                errs.push(format!(
                                    "kanban.notify.webhooks[{i}].name: {:?} is used by an earlier \
                                    hook; names must be unique (each has its own delivery cursor)",
                                    hook.name
                                ));
                            }
                            cfg.webhooks.push(hook);
                        }
                        Err(mut e) => errs.append(&mut e),
                    }
                }
            }
            Some(v) => errs.push(format!(
                "kanban.notify.webhooks: expected a list of hooks (`- url: …`), got {}",
                show(v)
            )),
        }
        if errs.is_empty() { Ok(cfg) } else { Err(errs) }
    }
}

/// The name of a hook without `name:`: its host and a short hash of the whole URL — stable
/// (it keys the delivery cursor) without printing the URL's secret path (Slack and Discord
/// webhook URLs are credentials) in logs and `notify test`.
pub fn default_name(url: &str) -> String {
    use sha2::{Digest, Sha256};
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{hex}")
}

fn parse_hook(h: &Yaml, i: usize) -> Result<Webhook, Vec<String>> {
    let at = |k: &str| format!("kanban.notify.webhooks[{i}].{k}");
    let Some(map) = h.as_mapping() else {
        return Err(vec![format!(
            "kanban.notify.webhooks[{i}]: expected a mapping with at least `url:` (got {})",
            show(h)
        )]);
    };
    let mut errs = Vec::new();
    for k in map.keys() {
        let k = k.as_str().unwrap_or("");
        if !HOOK_KEYS.contains(&k) {
            errs.push(format!(
                "{}: unknown key; known keys: {}",
                at(k),
                HOOK_KEYS.join(", ")
            ));
        }
    }
    let url = hook_url(h, &at, &mut errs);
    let format = hook_format(h, &at, &mut errs);
    let events = hook_events(h, &at, &mut errs);
    let mut opt = |k: &str| match h.get(k) {
        None | Some(Yaml::Null) => None,
        Some(v) => match text(v, &at(k)) {
            Ok(s) => Some(s),
            Err(e) => {
                errs.push(e);
                None
            }
        },
    };
    let name = opt("name");
    let tenant = opt("tenant");
    let assignee = opt("assignee").map(|a| a.to_ascii_lowercase());
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Webhook {
        name: name.unwrap_or_else(|| default_name(&url)),
        url,
        format,
        events,
        tenant,
        assignee,
    })
}

/// A hook's `url:` (http or https); a problem goes to `errs`.
fn hook_url(h: &Yaml, at: &dyn Fn(&str) -> String, errs: &mut Vec<String>) -> String {
    match h.get("url") {
        None => {
            errs.push(format!("{}: missing; give the URL to POST to", at("url")));
            String::new()
        }
        Some(v) => match text(v, &at("url")) {
            Ok(u) if u.starts_with("http://") || u.starts_with("https://") => u,
            Ok(u) => {
                errs.push(format!(
                    "{}: {u:?} must start with http:// or https://",
                    at("url")
                ));
                u
            }
            Err(e) => {
                errs.push(e);
                String::new()
            }
        },
    }
}

/// A hook's `format:` (slack, discord or json, the default); a problem goes to `errs`.
fn hook_format(h: &Yaml, at: &dyn Fn(&str) -> String, errs: &mut Vec<String>) -> Format {
    match h.get("format") {
        None | Some(Yaml::Null) => Format::Json,
        Some(v) => match v.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("slack") => Format::Slack,
            Some("discord") => Format::Discord,
            Some("json") => Format::Json,
            _ => {
                errs.push(format!(
                    "{}: {} is not a format; use slack, discord or json",
                    at("format"),
                    show(v)
                ));
                Format::Json
            }
        },
    }
}

/// A hook's `events:` (known kinds, deduplicated; absent is the watched set); a problem goes to
/// `errs`.
fn hook_events(h: &Yaml, at: &dyn Fn(&str) -> String, errs: &mut Vec<String>) -> Vec<String> {
    match h.get("events") {
        None | Some(Yaml::Null) => WATCHED_EVENTS.iter().map(|s| s.to_string()).collect(),
        Some(Yaml::Sequence(list)) => {
            let mut out = Vec::new();
            for (j, e) in list.iter().enumerate() {
                match e.as_str().map(str::trim) {
                    Some(k) if KNOWN_EVENTS.contains(&k) => {
                        if !out.iter().any(|x| x == k) {
                            out.push(k.to_string());
                        }
                    }
                    _ => errs.push(format!(
                        "{}[{j}]: {} is not an event kind; known kinds: {}",
                        at("events"),
                        show(e),
                        KNOWN_EVENTS.join(", ")
                    )),
                }
            }
            if list.is_empty() {
                errs.push(format!(
                    "{}: empty; leave it out for the watched set ({})",
                    at("events"),
                    WATCHED_EVENTS.join(", ")
                ));
            }
            out
        }
        Some(v) => {
            errs.push(format!(
                "{}: expected a list of event kinds, e.g. [completed, blocked] (got {})",
                at("events"),
                show(v)
            ));
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_filters() {
        let c = NotifyConfig::parse(
            "kanban:\n  notify:\n    backoff_seconds: 0.1\n    webhooks:\n      - url: \
            http://127.0.0.1:9/x\n      - name: s\n        url: https://hooks.slack.com/x\n        \
            format: Slack\n        events: [completed]\n        tenant: acme\n        assignee: \
            Coder\n",
        )
        .unwrap();
        assert_eq!(c.webhooks.len(), 2);
        assert!(
            c.webhooks[0].name.starts_with("127.0.0.1:9-"),
            "{}",
            c.webhooks[0].name
        );
        assert_eq!(
            c.webhooks[0].name,
            default_name("http://127.0.0.1:9/x"),
            "stable"
        );
        assert_ne!(
            default_name("https://hooks.slack.com/services/A"),
            default_name("https://hooks.slack.com/services/B")
        );
        assert!(!default_name("https://hooks.slack.com/services/T0/B0/SECRET").contains("SECRET"));
        assert_eq!(c.webhooks[0].format, Format::Json);
        assert_eq!(c.webhooks[0].events, WATCHED_EVENTS);
        assert_eq!(c.webhooks[1].format, Format::Slack);
        assert_eq!(c.webhooks[1].events, ["completed"]);
        assert_eq!(c.webhooks[1].assignee.as_deref(), Some("coder"));
        assert_eq!(c.backoff, Duration::from_millis(100));
        assert!(
            NotifyConfig::parse("kanban:\n  max_spawn: 2\n")
                .unwrap()
                .webhooks
                .is_empty()
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        let errs = NotifyConfig::parse(
            "kanban:\n  notify:\n    retries: 3\n    webhooks:\n      - url: ftp://x\n        \
            format: slak\n        events: [complted]\n        evnets: []\n      - format: json\n",
        )
        .unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "kanban.notify.retries: unknown key",
            "kanban.notify.webhooks[0].url: \"ftp://x\" must start with http:// or https://",
            "kanban.notify.webhooks[0].format: slak is not a format; use slack, discord or json",
            "kanban.notify.webhooks[0].events[0]: complted is not an event kind",
            "kanban.notify.webhooks[0].evnets: unknown key",
            "kanban.notify.webhooks[1].url: missing",
        ] {
            assert!(all.contains(needle), "{needle:?} not in:\n{all}");
        }
        let dup = NotifyConfig::parse(
            "kanban:\n  notify:\n    webhooks:\n      - {name: a, url: 'http://x'}\n      - {name: \
            a, url: 'http://y'}\n",
        )
        .unwrap_err();
        assert!(
            dup[0].contains("webhooks[1].name: \"a\" is used by an earlier hook"),
            "{dup:?}"
        );
    }
}
