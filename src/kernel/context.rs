//! `build_worker_context`: the markdown a worker reads first (REF §12) — header, body,
//! attachments, prior attempts, parent hand-offs, recent work by the same profile and the
//! comment thread, each section capped — plus the `show` bundle and time formatting helpers.

use super::store::Tx;
use std::fmt::Write as _;

use crate::args;
use chrono::{Local, TimeZone};
use serde::Serialize;
use serde_json::{Value, json};

use super::board::{Board, load_task};
use super::comments::list_comments_tx;
use super::error::Result;
use super::graph::{children_of, parents_of};
use super::types::{Attachment, Comment, Event, RUN_COLUMNS, Run, Status, Task};

const BODY_CAP: usize = 8 * 1024;
const FIELD_CAP: usize = 4 * 1024;
const COMMENT_CAP: usize = 2 * 1024;
const ATTEMPTS_SHOWN: usize = 10;
const COMMENTS_SHOWN: usize = 30;
const RECENT_WORK: usize = 5;

/// `YYYY-MM-DD HH:MM` in local time.
pub fn local_ts(epoch: i64) -> String {
    match Local.timestamp_opt(epoch, 0).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        None => "?".to_string(),
    }
}

/// `just now` (< 60 s or in the future), `Nm ago`, `Nh ago`, `Nd ago`.
pub fn relative_age(epoch: i64, now: i64) -> String {
    let d = now - epoch;
    if d < 60 {
        "just now".into()
    } else if d < 3600 {
        format!("{}m ago", d / 60)
    } else if d < 86_400 {
        format!("{}h ago", d / 3600)
    } else {
        format!("{}d ago", d / 86_400)
    }
}

/// JSON with sorted keys and Python's `", "`/`": "` separators (as Hermes prints metadata).
pub fn sorted_json(v: &Value) -> String {
    let mut s = String::new();
    write_sorted(v, &mut s);
    s
}

fn write_sorted(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(": ");
                write_sorted(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_sorted(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn cap(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let kept: String = s.chars().take(max).collect();
        format!("{kept}… [truncated, {} chars omitted]", n - max)
    }
}

/// Everything `show` prints (REF §15.3).
#[derive(Debug, Clone, Serialize)]
pub struct TaskDetail {
    pub task: Task,
    pub latest_summary: Option<String>,
    pub parents: Vec<String>,
    pub children: Vec<String>,
    pub comments: Vec<Comment>,
    pub events: Vec<Event>,
    pub runs: Vec<Run>,
}

impl TaskDetail {
    /// The `show --json` object of Hermes (same keys and nesting).
    pub fn to_hermes_json(&self) -> Value {
        json!({
            "task": self.task.to_hermes_json(),
            "latest_summary": self.latest_summary,
            "parents": self.parents,
            "children": self.children,
            "comments": self.comments.iter().map(|c| json!({
                "author": c.author, "body": c.body, "created_at": c.created_at,
            })).collect::<Vec<_>>(),
            "events": self.events.iter().map(|e| json!({
                "kind": e.kind, "payload": e.payload, "created_at": e.created_at,
                "run_id": e.run_id,
            })).collect::<Vec<_>>(),
            "runs": self.runs.iter().map(|r| json!({
                "id": r.id, "profile": r.profile, "step_key": r.step_key, "status": r.status,
                "outcome": r.outcome, "summary": r.summary, "error": r.error,
                "metadata": r.metadata, "worker_pid": r.worker_pid, "started_at": r.started_at,
                "ended_at": r.ended_at,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Board {
    /// The `show` bundle: task, latest summary, parents, children, comments, all events, runs.
    pub fn task_detail(&self, task_id: &str) -> Result<TaskDetail> {
        self.read(|c| {
            let task = load_task(c, task_id)?;
            Ok(TaskDetail {
                latest_summary: self.latest_summary(task_id)?,
                parents: parents_of(c, task_id)?,
                children: children_of(c, task_id)?,
                comments: list_comments_tx(c, task_id)?,
                events: self.list_events(task_id, None)?,
                runs: self.list_runs(task_id, None)?,
                task,
            })
        })
    }

    /// The worker's orientation markdown for a task (REF §12), ending in one newline: the
    /// header, then each non-empty section with a blank line before it.
    pub fn build_worker_context(&self, task_id: &str) -> Result<String> {
        let now = self.now();
        self.read(|c| {
            let t = load_task(c, task_id)?;
            let mut out = context_header(&t);
            let sections = [
                body_section(&t),
                attachments_section(&self.list_attachments(task_id)?),
                attempts_section(&self.list_runs(task_id, None)?, now),
                parents_section(&parent_handoffs_tx(c, task_id)?, now),
                recent_work_section(c, &t, now)?,
                comments_section(&list_comments_tx(c, task_id)?, now),
            ];
            for s in sections.into_iter().flatten() {
                out.push('\n');
                out.push_str(&s);
                out.push('\n');
            }
            Ok(out)
        })
    }
}

/// The context's title and the task's fields (tenant, max runtime and branch only when set).
fn context_header(t: &Task) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Kanban task {}: {}\n", t.id, t.title);
    let _ = writeln!(
        out,
        "Assignee: {}",
        t.assignee.as_deref().unwrap_or("(unassigned)")
    );
    let _ = writeln!(out, "Status:   {}", t.status);
    if let Some(tn) = &t.tenant {
        let _ = writeln!(out, "Tenant:   {tn}");
    }
    let _ = writeln!(
        out,
        "Workspace: {} @ {}",
        t.workspace_kind,
        t.workspace_path.as_deref().unwrap_or("(unresolved)")
    );
    if let Some(m) = t.max_runtime_seconds {
        let _ = writeln!(out, "Max runtime: {m}s");
        let _ = writeln!(out, "Terminal timeout: {}s", (m - 30).max(1));
    }
    if let Some(b) = &t.branch_name {
        let _ = writeln!(out, "Branch:   {b}");
    }
    out
}

/// `## Body`: the task's body, capped, when it has one.
fn body_section(t: &Task) -> Option<String> {
    let body = t.body.as_deref().filter(|b| !b.trim().is_empty())?;
    Some(format!("## Body\n{}", cap(body.trim_end(), BODY_CAP)))
}

/// `## Attachments`: one line per file with its type, size and stored path.
fn attachments_section(atts: &[Attachment]) -> Option<String> {
    if atts.is_empty() {
        return None;
    }
    let mut s = String::from(
        "## Attachments\nFiles attached to this task; read them from the paths below.\n",
    );
    for a in atts {
        // Hermes' line: "- `name`[, type][, N KB] → `path`" (size rounded up).
        let ctype = a
            .content_type
            .as_deref()
            .map(|t| format!(", {t}"))
            .unwrap_or_default();
        let size = if a.size > 0 {
            format!(", {} KB", ((a.size + 1023) / 1024).max(1))
        } else {
            String::new()
        };
        let _ = writeln!(s, "- `{}`{ctype}{size} → `{}`", a.filename, a.stored_path);
    }
    Some(s.trim_end().to_string())
}

/// `## Prior attempts on this task`: the newest closed runs with their summary, error and
/// metadata.
fn attempts_section(runs: &[Run], now: i64) -> Option<String> {
    let closed: Vec<&Run> = runs.iter().filter(|r| r.ended_at.is_some()).collect();
    if closed.is_empty() {
        return None;
    }
    let mut s = String::from("## Prior attempts on this task\n");
    let skip = closed.len().saturating_sub(ATTEMPTS_SHOWN);
    if skip > 0 {
        let _ = writeln!(
            s,
            "({skip} earlier attempts omitted; the newest {ATTEMPTS_SHOWN} follow)"
        );
    }
    for (i, r) in closed.iter().enumerate().skip(skip) {
        // As Hermes: stamped with the attempt's start, a blank line after each.
        let when = r.started_at;
        let _ = writeln!(
            s,
            "{}### Attempt {} — {} ({}, {}, {})",
            if i > skip { "\n" } else { "" },
            i + 1,
            r.outcome.as_deref().unwrap_or(&r.status),
            r.profile.as_deref().unwrap_or("(unknown)"),
            local_ts(when),
            relative_age(when, now)
        );
        if let Some(sm) = r.summary.as_deref().filter(|x| !x.trim().is_empty()) {
            let _ = writeln!(s, "{}", cap(sm.trim(), FIELD_CAP));
        }
        if let Some(e) = r.error.as_deref().filter(|x| !x.trim().is_empty()) {
            let _ = writeln!(s, "_error_: {}", cap(e.trim(), FIELD_CAP));
        }
        if let Some(m) = r.metadata.as_ref().filter(|m| !m.is_null()) {
            let _ = writeln!(s, "_metadata_: `{}`", cap(&sorted_json(m), FIELD_CAP));
        }
    }
    Some(s.trim_end().to_string())
}

/// `## Parent task results`: each shown parent's hand-off with its age.
fn parents_section(handoffs: &[ParentHandoff], now: i64) -> Option<String> {
    if handoffs.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for p in handoffs {
        let mut s = match p.completed_at {
            Some(w) => format!("### {} (completed {})\n", p.id, relative_age(w, now)),
            None => format!("### {}\n", p.id),
        };
        let summary = p.summary.as_deref().unwrap_or("(no result recorded)");
        let _ = writeln!(s, "{}", cap(summary.trim(), FIELD_CAP));
        if let Some(m) = &p.metadata {
            let _ = writeln!(s, "_metadata_: `{}`", cap(&sorted_json(m), FIELD_CAP));
        }
        parts.push(s.trim_end().to_string());
    }
    Some(format!(
        "## Parent task results\n_Hand-offs recorded when each parent finished (age in \
        brackets); they are snapshots — re-check anything that may have changed since._\n{}",
        parts.join("\n\n")
    ))
}

/// `## Recent work by @assignee`: the assignee's latest completed runs on other tasks.
fn recent_work_section(c: &Tx, t: &Task, now: i64) -> Result<Option<String>> {
    let Some(a) = &t.assignee else {
        return Ok(None);
    };
    let rows: Vec<(String, String, i64, Option<String>)> = c.rows(
        "SELECT r.task_id, t.title, COALESCE(r.ended_at, r.started_at), r.summary
         FROM task_runs r JOIN tasks t ON t.id = r.task_id
         WHERE r.profile=?1 AND r.outcome='completed' AND r.task_id != ?2
         ORDER BY COALESCE(r.ended_at, r.started_at) DESC, r.id DESC LIMIT ?3",
        args![a, &t.id, RECENT_WORK as i64],
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut s = format!("## Recent work by @{a}\n");
    for (id, title, when, summary) in rows {
        let line = summary
            .as_deref()
            .map(|x| super::validate::first_line(x, 200))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "(no summary)".into());
        let _ = writeln!(
            s,
            "- {id} — {title} ({}, {}): {line}",
            local_ts(when),
            relative_age(when, now)
        );
    }
    Ok(Some(s.trim_end().to_string()))
}

/// `## Comment thread`: the newest comments, each capped, authors without backticks.
fn comments_section(comments: &[Comment], now: i64) -> Option<String> {
    if comments.is_empty() {
        return None;
    }
    let mut s = String::from("## Comment thread\n");
    let skip = comments.len().saturating_sub(COMMENTS_SHOWN);
    if skip > 0 {
        let _ = writeln!(s, "({skip} older comments omitted)");
    }
    for cm in comments.iter().skip(skip) {
        let _ = writeln!(
            s,
            "comment from worker `{}` at {}, {}:\n{}\n",
            cm.author.replace('`', ""),
            local_ts(cm.created_at),
            relative_age(cm.created_at, now),
            cap(cm.body.trim(), COMMENT_CAP)
        );
    }
    Some(s.trim_end().to_string())
}

/// A parent's hand-off as its child's worker sees it (the "Parent task results" of the worker
/// context): the parent's latest completed run's summary (else its result) and metadata.
#[derive(Debug, Clone, Serialize)]
pub struct ParentHandoff {
    pub id: String,
    pub title: String,
    pub status: Status,
    /// When the hand-off was recorded (the run's end, else the task's completion).
    pub completed_at: Option<i64>,
    /// `None` when the parent recorded no summary or result.
    pub summary: Option<String>,
    pub metadata: Option<Value>,
}

/// Hand-offs of `task_id`'s parents that a worker is shown: done parents, and archived ones
/// with a completed run or a result; in link order.
fn parent_handoffs_tx(c: &Tx, task_id: &str) -> Result<Vec<ParentHandoff>> {
    let mut out = Vec::new();
    for pid in parents_of(c, task_id)? {
        let Ok(p) = load_task(c, &pid) else { continue };
        let run = latest_completed_run(c, &pid)?;
        let show = p.status == Status::Done
            || (p.status == Status::Archived && (run.is_some() || p.result.is_some()));
        if !show {
            continue;
        }
        let summary = run
            .as_ref()
            .and_then(|r| r.summary.clone())
            .filter(|x| !x.trim().is_empty())
            .or_else(|| p.result.clone().filter(|x| !x.trim().is_empty()));
        out.push(ParentHandoff {
            completed_at: run.as_ref().and_then(|r| r.ended_at).or(p.completed_at),
            metadata: run
                .as_ref()
                .and_then(|r| r.metadata.clone())
                .filter(|m| !m.is_null()),
            summary,
            id: p.id,
            title: p.title,
            status: p.status,
        });
    }
    Ok(out)
}

impl Board {
    /// The hand-offs `task_id`'s worker sees from its parents (summary + metadata), as in the
    /// worker context's "Parent task results".
    pub fn parent_handoffs(&self, task_id: &str) -> Result<Vec<ParentHandoff>> {
        self.read(|c| {
            load_task(c, task_id)?;
            parent_handoffs_tx(c, task_id)
        })
    }
}

fn latest_completed_run(c: &Tx, task_id: &str) -> Result<Option<Run>> {
    c.row(
        &format!(
            "SELECT {RUN_COLUMNS} FROM task_runs WHERE task_id=?1 AND outcome='completed'
             ORDER BY COALESCE(ended_at, started_at) DESC, id DESC LIMIT 1"
        ),
        args![task_id],
    )
}
