//! Text and JSON output helpers shared by the verbs: status icons, colour (only on a terminal,
//! never with `NO_COLOR`), local timestamps, durations, JSON printing, and [`Choices`] (flag
//! values that shell completion can offer).

use std::io::IsTerminal;

use serde::Serialize;

use crate::kernel::{Status, TaskDict, TaskLine};

pub(crate) use crate::kernel::local_ts;

/// Whether to colour stdout (asked once per process: `list` prints an icon per line).
pub(crate) fn color() -> bool {
    static COLOR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *COLOR.get_or_init(|| {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
    })
}

fn paint(code: &str, s: &str) -> String {
    if color() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// The glyph and ANSI colour of a status icon (REF §15.1).
fn icon_parts(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Todo => ("◻", "37"),
        Status::Ready => ("▶", "36"),
        Status::Running => ("●", "33"),
        Status::Scheduled => ("⏱", "35"),
        Status::Blocked => ("⊘", "31"),
        Status::Done => ("✓", "32"),
        Status::Archived => ("—", "90"),
        Status::Triage | Status::Review => ("?", "34"),
    }
}

/// The list icon of a status (REF §15.1).
pub(crate) fn icon(s: Status) -> String {
    let (i, code) = icon_parts(s);
    paint(code, i)
}

/// Dim text (ids, timestamps) when colouring.
pub(crate) fn dim(s: &str) -> String {
    paint("2", s)
}

/// Write one `list` line, `<icon> <id>  <status:8>  <assignee:20>[ [tenant]]  <title>` and a
/// newline, to `w`, colouring the icon when `color` says so: `list` decides colour once and
/// writes every line into one buffer.
pub(crate) fn write_task_line(
    w: &mut impl std::io::Write,
    t: &TaskLine,
    color: bool,
) -> std::io::Result<()> {
    let (i, code) = icon_parts(t.status);
    if color {
        write!(w, "\x1b[{code}m{i}\x1b[0m")?;
    } else {
        w.write_all(i.as_bytes())?;
    }
    write!(
        w,
        " {}  {:<8}  {:<20}",
        t.id,
        t.status.as_str(),
        t.assignee.as_deref().unwrap_or("(unassigned)")
    )?;
    if let Some(x) = t.tenant.as_deref() {
        write!(w, " [{x}]")?;
    }
    writeln!(w, "  {}", t.title)
}

/// Write `tasks` as the pretty JSON array of task dicts `list --json` prints (byte for byte
/// what pretty-printing their [`Task::to_hermes_json`](crate::kernel::Task::to_hermes_json)
/// gives), newline included.
pub(crate) fn write_tasks_json(
    w: &mut impl std::io::Write,
    tasks: &[TaskDict],
) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, tasks)?;
    w.write_all(b"\n")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Board, ListFilter, NewTask};

    /// A real board with a minimal task and one with every printed field set.
    fn board() -> (tempfile::TempDir, Board) {
        let dir = tempfile::tempdir().unwrap();
        let b = Board::open_file(&dir.path().join("kanban.db")).unwrap();
        b.create_task(NewTask {
            title: "A \"quoted\" title ✓".into(),
            ..Default::default()
        })
        .unwrap();
        let full = b
            .create_task(NewTask {
                title: "Full".into(),
                body: Some("line 1\nline 2".into()),
                assignee: Some("coder".into()),
                tenant: Some("acme".into()),
                project_id: Some("p1".into()),
                skills: vec!["rust".into(), "sql".into()],
                max_retries: Some(3),
                session_id: Some("s".into()),
                created_by: Some("user".into()),
                ..Default::default()
            })
            .unwrap()
            .task;
        b.write(|c| {
            c.exec(
                "UPDATE tasks SET started_at=5, completed_at=9, result='done — ok', \
                workspace_path='/tmp/w', branch_name='feat/x', workflow_template_id='wf', \
                current_step_key='step' WHERE id=?1",
                crate::args![full.id],
            )
        })
        .unwrap();
        (dir, b)
    }

    /// `list --json` through the narrow typed rows prints exactly what pretty-printing the
    /// full tasks' `to_hermes_json` values printed (same keys, same order, same text), unset
    /// fields too.
    #[test]
    fn typed_list_json_matches_the_value_form() {
        let (_dir, b) = board();
        let f = ListFilter::default();
        let mut typed = Vec::new();
        write_tasks_json(&mut typed, &b.list_task_dicts(&f).unwrap()).unwrap();
        let tasks = b.list_tasks(&f).unwrap();
        assert_eq!(tasks.len(), 2);
        let values: Vec<serde_json::Value> = tasks.iter().map(|t| t.to_hermes_json()).collect();
        let expected = serde_json::to_string_pretty(&values).unwrap() + "\n";
        assert_eq!(String::from_utf8(typed).unwrap(), expected);
        let mut empty = Vec::new();
        write_tasks_json(&mut empty, &[]).unwrap();
        assert_eq!(empty, b"[]\n");
    }

    /// The buffered list line, from the narrow rows, is the documented layout of the full
    /// task's fields, coloured only when asked.
    #[test]
    fn buffered_line_matches_task_line() {
        let (_dir, b) = board();
        let f = ListFilter::default();
        let lines = b.list_task_lines(&f).unwrap();
        let tasks = b.list_tasks(&f).unwrap();
        assert_eq!(lines.len(), tasks.len());
        for (line, t) in lines.iter().zip(&tasks) {
            let mut plain = Vec::new();
            write_task_line(&mut plain, line, false).unwrap();
            let tenant = t
                .tenant
                .as_deref()
                .map(|x| format!(" [{x}]"))
                .unwrap_or_default();
            let expected = format!(
                "{} {}  {:<8}  {:<20}{}  {}\n",
                icon_parts(t.status).0,
                t.id,
                t.status.as_str(),
                t.assignee.as_deref().unwrap_or("(unassigned)"),
                tenant,
                t.title
            );
            assert_eq!(String::from_utf8(plain).unwrap(), expected);
            let mut col = Vec::new();
            write_task_line(&mut col, line, true).unwrap();
            let col = String::from_utf8(col).unwrap();
            assert!(col.starts_with("\x1b["), "{col:?}");
            assert!(col.ends_with(&format!(" {}\n", t.title)));
        }
    }
}
