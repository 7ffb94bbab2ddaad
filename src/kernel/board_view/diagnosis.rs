//! What the board view's diagnostics read: the few tasks a rule could fire for (by state, a
//! flagging event or a crashed run) and only their events (of the kinds the rules look at,
//! payloads parsed only where a rule reads them) and runs, streamed through a filter.

use std::collections::{HashMap, HashSet};

use super::{BoardViewQuery, CHUNK, chunked, chunked_each, skip_excluded, view_filter};
use crate::kernel::diagnostics::{DIAGNOSTIC_EVENT_KINDS, Diagnostic, DiagnosticsConfig, diagnose};
use crate::kernel::error::Result;
use crate::kernel::store::{FromRow, Row, Tx, arg_refs};
use crate::kernel::types::{
    EVENT_COLUMNS, Event, RUN_COLUMNS, Run, Status, Task, json_column, lenient_i64, lenient_text,
    status_cell, text_key,
};

/// An event row for the diagnostics rules: the payload is parsed only for the kinds whose
/// payload a rule reads (the rest are matched by kind and time alone).
fn diag_event(r: &Row) -> Result<Event> {
    let kind = lenient_text(r, 3).unwrap_or_default();
    let payload = match kind.as_str() {
        "completion_blocked_hallucination"
        | "suspected_hallucinated_references"
        | "blocked"
        | "gave_up" => json_column(lenient_text(r, 4)),
        _ => None,
    };
    Ok(Event {
        id: r.get(0)?,
        task_id: lenient_text(r, 1).unwrap_or_default(),
        run_id: lenient_i64(r, 2),
        kind,
        payload,
        created_at: lenient_i64(r, 5).unwrap_or(0),
    })
}

/// Whether a diagnostics rule could fire for `t` (the engine's rules only look at tasks in
/// these states or with these histories); the others skip loading their events and runs.
fn may_need_diagnosis(t: &Task, flagged: &HashSet<String>, crashed: &HashSet<String>) -> bool {
    matches!(t.status, Status::Blocked | Status::Ready)
        || t.consecutive_failures > 0
        || flagged.contains(&t.id)
        || crashed.contains(&t.id)
}

/// What the diagnostics engine reads for the tasks a rule could fire for.
pub(super) struct DiagnosisInput {
    flagged: HashSet<String>,
    crashed: HashSet<String>,
    events: HashMap<String, Vec<Event>>,
    runs: HashMap<String, Vec<Run>>,
}

impl DiagnosisInput {
    pub(super) fn findings(&self, t: &Task, cfg: &DiagnosticsConfig, now: i64) -> Vec<Diagnostic> {
        match (self.events.get(&t.id), self.runs.get(&t.id)) {
            (None, None) if !may_need_diagnosis(t, &self.flagged, &self.crashed) => vec![],
            (ev, rn) => diagnose(
                t,
                ev.map(Vec::as_slice).unwrap_or(&[]),
                rn.map(Vec::as_slice).unwrap_or(&[]),
                cfg,
                now,
            ),
        }
    }
}

/// The ids of the view's tasks a diagnostics rule could fire for ([`may_need_diagnosis`]):
/// from the tasks in hand, or — for a whole-board view, whose full rows are streamed once
/// afterwards — from a narrow scan of the three columns the test reads.
fn candidates(
    c: &Tx,
    q: &BoardViewQuery,
    tasks: Option<&[Task]>,
    flagged: &HashSet<String>,
    crashed: &HashSet<String>,
) -> Result<Vec<String>> {
    if let Some(tasks) = tasks {
        return Ok(tasks
            .iter()
            .filter(|t| may_need_diagnosis(t, flagged, crashed))
            .map(|t| t.id.clone())
            .collect());
    }
    let (where_sql, args) = view_filter(q);
    let mut out = Vec::new();
    c.each(
        &format!("SELECT id, status, consecutive_failures FROM tasks {where_sql}"),
        &arg_refs(&args),
        |r| {
            let id = text_key(r, 0)?;
            let rule_states = matches!(status_cell(r, 1), Status::Blocked | Status::Ready);
            let failing = lenient_i64(r, 2).unwrap_or(0) > 0;
            if rule_states || failing || flagged.contains(&id) || crashed.contains(&id) {
                out.push(id);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// Read [`DiagnosisInput`]: only tasks a rule could fire for need their events and runs.
/// `tasks` are the view's tasks when it holds them (an `ids` view); `None` for a whole-board
/// view.
pub(super) fn diagnosis_input(
    c: &Tx,
    tasks: Option<&[Task]>,
    scope: Option<&[String]>,
    q: &BoardViewQuery,
) -> Result<DiagnosisInput> {
    let flagged: HashSet<String> = chunked(
        c,
        "SELECT DISTINCT task_id FROM task_events WHERE kind IN
           ('completion_blocked_hallucination', 'suspected_hallucinated_references', 'unblocked')",
        "SELECT DISTINCT task_id FROM task_events WHERE task_id IN ({marks}) AND kind IN
           ('completion_blocked_hallucination', 'suspected_hallucinated_references', 'unblocked')",
        scope,
        |r| r.get::<String>(0),
    )?
    .into_iter()
    .collect();
    let crashed: HashSet<String> = chunked(
        c,
        "SELECT DISTINCT task_id FROM task_runs WHERE outcome = 'crashed'",
        "SELECT DISTINCT task_id FROM task_runs WHERE task_id IN ({marks}) AND outcome = 'crashed'",
        scope,
        |r| r.get::<String>(0),
    )?
    .into_iter()
    .collect();
    let candidates = candidates(c, q, tasks, &flagged, &crashed)?;
    let (events, runs) = match candidates.is_empty() {
        true => Default::default(),
        false => candidate_history(c, &candidates, &skip_excluded(q))?,
    };
    Ok(DiagnosisInput {
        flagged,
        crashed,
        events,
        runs,
    })
}

/// Per task: what the rules read. The events of `candidates` (of the kinds the rules read, in
/// id order) and their runs (in start order); `skip` leaves excluded statuses' rows unread.
type History = (HashMap<String, Vec<Event>>, HashMap<String, Vec<Run>>);

fn candidate_history(c: &Tx, candidates: &[String], skip: &str) -> Result<History> {
    let mut events: HashMap<String, Vec<Event>> = HashMap::new();
    let mut runs: HashMap<String, Vec<Run>> = HashMap::new();
    // Only the kinds the rules read (no heartbeats, claims, spawns…). A large
    // candidate set is cheaper to serve with one scan than with many IN lists.
    let kinds = DIAGNOSTIC_EVENT_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(",");
    let ev_all = format!(
        "SELECT {EVENT_COLUMNS} FROM task_events WHERE kind IN ({kinds}){skip} ORDER BY id"
    );
    let ev_in = format!(
        "SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id IN ({{marks}}) AND kind IN \
            ({kinds}) ORDER BY id"
    );
    let run_all =
        format!("SELECT {RUN_COLUMNS} FROM task_runs WHERE 1 = 1{skip} ORDER BY started_at, id");
    let run_in = format!(
        "SELECT {RUN_COLUMNS} FROM task_runs WHERE task_id IN ({{marks}}) ORDER BY \
            started_at, id"
    );
    let wanted: HashSet<&str> = candidates.iter().map(String::as_str).collect();
    let scan_all = candidates.len() > 2 * CHUNK;
    let scope = (!scan_all).then_some(candidates);
    // Rows stream through a filter: only the candidates' rows are kept.
    chunked_each(c, &ev_all, &ev_in, scope, diag_event, |e| {
        if wanted.contains(e.task_id.as_str()) {
            events.entry(e.task_id.clone()).or_default().push(e);
        }
    })?;
    chunked_each(
        c,
        &run_all,
        &run_in,
        scope,
        <Run as FromRow>::from_row,
        |r| {
            if wanted.contains(r.task_id.as_str()) {
                runs.entry(r.task_id.clone()).or_default().push(r);
            }
        },
    )?;
    Ok((events, runs))
}
