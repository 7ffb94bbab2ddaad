//! Text and JSON output helpers shared by the verbs: status icons, colour (only on a terminal,
//! never with `NO_COLOR`), local timestamps, durations, JSON printing, and [`Choices`] (flag
//! values that shell completion can offer).

use std::io::IsTerminal;

use serde::Serialize;

use crate::kernel::{Status, Task};

pub(crate) use crate::kernel::local_ts;

/// Whether to colour stdout.
pub(crate) fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(code: &str, s: &str) -> String {
    if color() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// The list icon of a status (REF §15.1).
pub(crate) fn icon(s: Status) -> String {
    let (i, code) = match s {
        Status::Todo => ("◻", "37"),
        Status::Ready => ("▶", "36"),
        Status::Running => ("●", "33"),
        Status::Scheduled => ("⏱", "35"),
        Status::Blocked => ("⊘", "31"),
        Status::Done => ("✓", "32"),
        Status::Archived => ("—", "90"),
        Status::Triage | Status::Review => ("?", "34"),
    };
    paint(code, i)
}

/// Dim text (ids, timestamps) when colouring.
pub(crate) fn dim(s: &str) -> String {
    paint("2", s)
}

/// One `list` line: `<icon> <id>  <status:8>  <assignee:20>[ [tenant]]  <title>`.
pub(crate) fn task_line(t: &Task) -> String {
    let tenant = t
        .tenant
        .as_deref()
        .map(|x| format!(" [{x}]"))
        .unwrap_or_default();
    format!(
        "{} {}  {:<8}  {:<20}{}  {}",
        icon(t.status),
        t.id,
        t.status.as_str(),
        t.assignee.as_deref().unwrap_or("(unassigned)"),
        tenant,
        t.title
    )
}

/// Print a value as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize + ?Sized>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("hermes-kanban: cannot encode JSON: {e}"),
    }
}

/// Parse `90`, `30s`, `5m`, `2h`, `1d` into seconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('s') => (&t[..t.len() - 1], 1),
        Some('m') => (&t[..t.len() - 1], 60),
        Some('h') => (&t[..t.len() - 1], 3600),
        Some('d') => (&t[..t.len() - 1], 86_400),
        _ => (t, 1),
    };
    let n: i64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use seconds or 30s, 5m, 2h, 1d"))?;
    if n <= 0 {
        return Err(format!("{s:?}: a duration must be positive"));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Human elapsed time: `42s`, `3m12s`, `2h05m`, `3d04h`.
pub(crate) fn elapsed(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// A flag value parsed by `parse` whose known values `values` are offered to shell completion
/// (`list --status <TAB>` completes statuses, not file names). Parsing stays `parse`'s: with
/// [`any_string`] a value outside the list is accepted and checked later.
#[derive(Clone)]
pub(crate) struct Choices<T: Clone + Send + Sync + 'static> {
    pub parse: fn(&str) -> Result<T, String>,
    pub values: &'static [&'static str],
}

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Choices<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let s = clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)?;
        (self.parse)(&s).map_err(|msg| {
            let flag = arg.map(|a| a.to_string()).unwrap_or_default();
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value {s:?} for {flag}: {msg}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.values
                .iter()
                .map(|v| clap::builder::PossibleValue::new(*v)),
        ))
    }
}

/// Every task status, for completion.
pub(crate) const STATUS_VALUES: &[&str] = &[
    "triage",
    "todo",
    "scheduled",
    "ready",
    "running",
    "blocked",
    "review",
    "done",
    "archived",
];

/// Accept any string (the value is checked after parsing).
pub(crate) fn any_string(s: &str) -> Result<String, String> {
    Ok(s.to_string())
}
