//! Input validation shared by every kernel entry point (SPEC §9): caps on sizes, no NUL or
//! control characters where they do not belong, normalised profile names, skills rules, JSON
//! objects for metadata. Each failure names the field.

use serde_json::{Map, Value};

use super::error::{KernelError, Result};

/// Longest title accepted (characters).
pub const TITLE_MAX_CHARS: usize = 1_000;
/// Largest body accepted (bytes).
pub const BODY_MAX_BYTES: usize = 1 << 20;
/// Largest comment accepted (bytes).
pub const COMMENT_MAX_BYTES: usize = 256 << 10;
/// Largest summary / result accepted (bytes).
pub const HANDOFF_MAX_BYTES: usize = 256 << 10;
/// Largest serialized metadata object accepted (bytes).
pub const METADATA_MAX_BYTES: usize = 1 << 20;
/// Largest block/schedule/unblock reason accepted (bytes).
pub const REASON_MAX_BYTES: usize = 16 << 10;
/// Largest heartbeat note accepted (bytes).
pub const NOTE_MAX_BYTES: usize = 4 << 10;
/// Longest identifier-like string (assignee, tenant, key, author) accepted (characters).
pub const NAME_MAX_CHARS: usize = 256;
/// Attachment size cap (25 MiB, REF §20).
pub const ATTACHMENT_MAX_BYTES: usize = 25 << 20;
/// Priority range accepted.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -1_000_000..=1_000_000;
/// Max runtime range accepted (1 s .. 365 d).
pub const MAX_RUNTIME_RANGE: std::ops::RangeInclusive<i64> = 1..=31_536_000;
/// Claim TTL range accepted (1 s .. 30 d).
pub const TTL_RANGE: std::ops::RangeInclusive<i64> = 1..=2_592_000;

/// Toolset names Hermes 0.19.0 ships; a skill may not be named like one (REF §5.1).
pub const KNOWN_TOOLSETS: &[&str] = &[
    "browser",
    "clarify",
    "code_execution",
    "computer_use",
    "cronjob",
    "delegation",
    "file",
    "image_gen",
    "kanban",
    "memory",
    "session_search",
    "skills",
    "terminal",
    "todo",
    "tts",
    "vision",
    "web",
];

fn no_nul(field: &'static str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(KernelError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

/// A required free-text field: trimmed, non-empty, at most `max_bytes`.
pub fn required_text(field: &'static str, s: &str, max_bytes: usize) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(KernelError::invalid(field, "must not be empty"));
    }
    bounded(field, t, max_bytes)?;
    Ok(t.to_string())
}

/// An optional free-text field: trimmed; blank becomes `None`.
pub fn optional_text(
    field: &'static str,
    s: Option<&str>,
    max_bytes: usize,
) -> Result<Option<String>> {
    match s.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => {
            bounded(field, t, max_bytes)?;
            Ok(Some(t.to_string()))
        }
    }
}

fn bounded(field: &'static str, s: &str, max_bytes: usize) -> Result<()> {
    no_nul(field, s)?;
    if s.len() > max_bytes {
        return Err(KernelError::invalid(
            field,
            format!("is {} bytes; the limit is {max_bytes}", s.len()),
        ));
    }
    Ok(())
}

/// A title: trimmed, non-blank, one line of at most [`TITLE_MAX_CHARS`] characters.
pub fn title(s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(KernelError::invalid("title", "must not be blank"));
    }
    no_nul("title", t)?;
    let n = t.chars().count();
    if n > TITLE_MAX_CHARS {
        return Err(KernelError::invalid(
            "title",
            format!("is {n} characters; the limit is {TITLE_MAX_CHARS}"),
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\t') {
        return Err(KernelError::invalid(
            "title",
            "must be a single line (no control characters); put details in the body",
        ));
    }
    Ok(t.to_string())
}

/// A short identifier-like value (tenant, idempotency key, author): trimmed, no control
/// characters, at most [`NAME_MAX_CHARS`]. Blank becomes `None`.
pub fn short_name(field: &'static str, s: Option<&str>) -> Result<Option<String>> {
    let Some(t) = s.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.chars().any(char::is_control) {
        return Err(KernelError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    if t.chars().count() > NAME_MAX_CHARS {
        return Err(KernelError::invalid(
            field,
            format!("is longer than {NAME_MAX_CHARS} characters"),
        ));
    }
    Ok(Some(t.to_string()))
}

/// Reasoning levels Hermes accepts for `--reasoning` (its `VALID_REASONING_EFFORTS`, plus
/// `none`, which turns reasoning off). Upstream stores them in `tasks.reasoning_effort`.
pub const REASONING_LEVELS: &[&str] = &[
    "none", "minimal", "low", "medium", "high", "xhigh", "max", "ultra",
];

/// A reasoning level: trimmed, lowercased, one of [`REASONING_LEVELS`]; blank → `None` (the
/// profile's own setting).
pub fn reasoning_effort(field: &'static str, s: Option<&str>) -> Result<Option<String>> {
    let Some(t) = s.map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if !REASONING_LEVELS.contains(&t.as_str()) {
        return Err(KernelError::invalid(
            field,
            format!(
                "{t:?} is not a reasoning level; use one of {}",
                REASONING_LEVELS.join(", ")
            ),
        ));
    }
    Ok(Some(t))
}

/// A model or provider name passed to Hermes as one argv word (`-m`, `--provider`): trimmed,
/// blank → `None`, no whitespace or control characters, not starting with `-` (it would read
/// as a flag), at most [`NAME_MAX_CHARS`].
pub fn model_word(field: &'static str, s: Option<&str>) -> Result<Option<String>> {
    let Some(t) = short_name(field, s)? else {
        return Ok(None);
    };
    if t.starts_with('-') || t.chars().any(char::is_whitespace) {
        return Err(KernelError::invalid(
            field,
            format!("{t:?}: must be one word that does not start with '-'"),
        ));
    }
    Ok(Some(t))
}

/// Normalise a profile (assignee) name: trimmed, lowercased; blank or `none` → `None`.
/// Allowed: 1-64 of `a-z 0-9 _ - . @`, not starting with `.` or `-` (it becomes a directory
/// name under `profiles/`, so no path separators or traversal).
pub fn profile_name(field: &'static str, s: Option<&str>) -> Result<Option<String>> {
    let Some(t) = s.map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t == "none" {
        return Ok(None);
    }
    let ok = t.len() <= 64
        && !t.starts_with('.')
        && !t.starts_with('-')
        && t.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | '@')
        });
    if !ok {
        return Err(KernelError::invalid(
            field,
            format!(
                "{t:?} is not a profile name: use 1-64 of a-z, 0-9, '_', '-', '.', '@', not \
                starting with '.' or '-'"
            ),
        ));
    }
    Ok(Some(t))
}

/// Skills: stripped, empties dropped, deduplicated in order; names with `,` or equal to a
/// toolset name are rejected, all offenders listed at once.
pub fn skills(raw: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in raw {
        let t = s.trim();
        if t.is_empty() || out.iter().any(|o| o == t) {
            continue;
        }
        no_nul("skills", t)?;
        out.push(t.to_string());
    }
    let commas: Vec<&String> = out.iter().filter(|s| s.contains(',')).collect();
    if !commas.is_empty() {
        return Err(KernelError::invalid(
            "skills",
            format!("skill names cannot contain ',': {commas:?} (pass each skill separately)"),
        ));
    }
    let toolsets: Vec<String> = out
        .iter()
        .filter(|s| KNOWN_TOOLSETS.contains(&s.to_lowercase().as_str()))
        .map(|s| format!("'{s}'"))
        .collect();
    if !toolsets.is_empty() {
        return Err(KernelError::invalid(
            "skills",
            format!(
                "{} are toolset names, not skill names; workers get toolsets from their profile",
                toolsets.join(", ")
            ),
        ));
    }
    if out.len() > 64 {
        return Err(KernelError::invalid("skills", "at most 64 skills per task"));
    }
    Ok(out)
}

/// An integer within `range`.
pub fn in_range(field: &'static str, v: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64> {
    if !range.contains(&v) {
        return Err(KernelError::invalid(
            field,
            format!("{v} is out of range {}..={}", range.start(), range.end()),
        ));
    }
    Ok(v)
}

/// Metadata must be a JSON object no larger than [`METADATA_MAX_BYTES`] serialized. A JSON
/// *string* holding an object (`"{\"tests\": 12}"`, the usual double-encoding mistake) is
/// accepted as that object, by every front door alike (CLI, MCP, REST all come through here).
pub fn metadata(v: Option<&Value>) -> Result<Option<Map<String, Value>>> {
    let decoded;
    let v = match v {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => {
                decoded = Value::Object(m);
                Some(&decoded)
            }
            _ => {
                return Err(KernelError::invalid(
                    "metadata",
                    "is a string that does not hold a JSON object; send an object like \
                    {\"changed_files\": [...]} (a string is accepted only when it holds a JSON \
                    object)",
                ));
            }
        },
        other => other,
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let n = serde_json::to_string(m)?.len();
            if n > METADATA_MAX_BYTES {
                return Err(KernelError::invalid(
                    "metadata",
                    format!("is {n} bytes serialized; the limit is {METADATA_MAX_BYTES}"),
                ));
            }
            Ok(Some(m.clone()))
        }
        Some(other) => Err(KernelError::invalid(
            "metadata",
            format!(
                "must be a JSON object like {{\"changed_files\": [...]}}, not {}",
                json_type(other)
            ),
        )),
    }
}

/// A task id: `t_` + hex (Hermes uses 8 hex digits); anything path-like or huge is refused.
pub fn task_id(field: &'static str, s: &str) -> Result<String> {
    let t = s.trim();
    let ok = t.len() <= 64
        && !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(KernelError::invalid(
            field,
            format!(
                "{:?} is not a task id (expected t_ followed by hex digits)",
                truncate(t, 80)
            ),
        ));
    }
    Ok(t.to_string())
}

/// The JSON type name of a value, for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Cut `s` to at most `max` characters.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max).collect()
    }
}

/// The first line of `s`, cut to `max` characters.
pub fn first_line(s: &str, max: usize) -> String {
    // Hermes: `text.strip().splitlines()[0][:max]` (the whole text is stripped first, so a
    // leading blank line does not make the preview empty).
    truncate(s.trim().lines().next().unwrap_or(""), max)
}

/// A completion contract (UP §5): `local-only`, `OWNER/REPO`, or a GitHub pull-request URL
/// (`https://github.com/OWNER/REPO/pull/N`). `None`/blank → `None`.
pub fn completion_contract(raw: Option<&str>) -> Result<Option<String>> {
    let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let repo = |s: &str| matches!(s.split_once('/'), Some((o, r)) if part(o) && part(r));
    let ok = s == "local-only"
        || repo(s)
        || s.strip_prefix("https://github.com/").is_some_and(|rest| {
            let bits: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
            bits.len() == 4
                && part(bits[0])
                && part(bits[1])
                && bits[2] == "pull"
                && bits[3].parse::<u64>().is_ok()
        });
    if !ok {
        return Err(KernelError::invalid(
            "completion_contract",
            format!(
                "{s:?} is not local-only, OWNER/REPO or a pull-request URL like \
                 https://github.com/OWNER/REPO/pull/12"
            ),
        ));
    }
    Ok(Some(s.to_string()))
}
