//! The rules of [`super::diagnose`], one function per finding kind, each reading the task,
//! its events and its runs ([`Facts`]) and returning at most one [`Diagnostic`].

use serde_json::{Value, json};

use super::{Action, Diagnostic, DiagnosticsConfig, Severity};
use crate::kernel::types::{Event, Run, Status, Task};

fn hint(label: &str, cmd: String, suggested: bool) -> Action {
    Action {
        kind: "cli_hint",
        label: label.into(),
        payload: json!({"command": cmd}),
        suggested,
    }
}

/// "Read the worker log" only when a worker was started (else `log` has nothing to show and
/// fails): otherwise the runs, whose errors say why nothing started.
fn log_hint(id: &str, events: &[Event], runs: &[Run]) -> Action {
    if runs.iter().any(|r| r.worker_pid.is_some()) || events.iter().any(|e| e.kind == "spawned") {
        hint(
            "Read the worker log",
            format!("hermes-kanban log {id}"),
            true,
        )
    } else {
        hint(
            "See why each attempt failed (no worker was started, so there is no log)",
            format!("hermes-kanban runs {id}"),
            true,
        )
    }
}

/// Whether an error text says the worker could not be started for want of a profile or a
/// worker command (the dispatcher's spawn refusals).
fn spawn_setup_error(err: &str) -> bool {
    err.contains("unknown profile")
        || err.contains("worker_command")
        || err.contains("executable not found")
}

fn unresolved_after<'a>(events: &'a [Event], kind: &str) -> Option<&'a Event> {
    let last = events.iter().rposition(|e| e.kind == kind)?;
    let cleared = events[last + 1..]
        .iter()
        .any(|e| e.kind == "completed" || e.kind == "edited");
    (!cleared).then(|| &events[last])
}

/// What every rule reads: the task, its events (id order) and runs (start order).
#[derive(Clone, Copy)]
pub(super) struct Facts<'a> {
    pub(super) t: &'a Task,
    pub(super) events: &'a [Event],
    pub(super) runs: &'a [Run],
    pub(super) cfg: &'a DiagnosticsConfig,
    pub(super) now: i64,
    pub(super) id: &'a str,
    pub(super) terminal: bool,
}

/// Failure and crash rules stay quiet while a worker runs and once the task is finished.
fn active_exempt(t: &Task) -> bool {
    matches!(t.status, Status::Done | Status::Archived | Status::Running)
}

/// A refused completion that named cards this task did not create, not since cleared.
pub(super) fn hallucinated_cards(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts { events, id, .. } = *f;
    if let Some(e) = unresolved_after(events, "completion_blocked_hallucination") {
        let phantom = e
            .payload
            .as_ref()
            .and_then(|p| p.get("phantom_cards"))
            .cloned()
            .unwrap_or(Value::Null);
        return Some(Diagnostic {
            kind: "hallucinated_cards",
            severity: Severity::Error,
            title: "Completion named cards that do not exist".into(),
            detail: format!(
                "kanban_complete was refused: created_cards {phantom} were not created by this task"
            ),
            actions: vec![hint(
                "Inspect the task",
                format!("hermes-kanban show {id}"),
                true,
            )],
            first_seen_at: Some(e.created_at),
            last_seen_at: Some(e.created_at),
            count: 1,
            run_id: e.run_id,
            data: json!({"phantom_cards": phantom}),
        });
    }
    None
}

/// A hand-off that mentions task ids not on this board, not since cleared.
pub(super) fn phantom_refs(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts { events, id, .. } = *f;
    if let Some(e) = unresolved_after(events, "suspected_hallucinated_references") {
        let refs = e
            .payload
            .as_ref()
            .and_then(|p| p.get("phantom_refs"))
            .cloned()
            .unwrap_or(Value::Null);
        return Some(Diagnostic {
            kind: "prose_phantom_refs",
            severity: Severity::Warning,
            title: "Hand-off mentions tasks that do not exist".into(),
            detail: format!(
                "the completion summary references {refs}, which are not on this board"
            ),
            actions: vec![hint(
                "Fix the hand-off",
                format!("hermes-kanban edit {id} --result '…'"),
                true,
            )],
            first_seen_at: Some(e.created_at),
            last_seen_at: Some(e.created_at),
            count: 1,
            run_id: e.run_id,
            data: json!({"phantom_refs": refs}),
        });
    }
    None
}

/// The failure counter at or past the threshold (not while running or finished).
pub(super) fn repeated_failures(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts {
        t,
        events,
        runs,
        cfg,
        id,
        ..
    } = *f;
    if !active_exempt(t) && t.consecutive_failures >= cfg.failure_threshold.max(1) {
        let sev = if t.consecutive_failures >= 2 * cfg.failure_threshold.max(1) {
            Severity::Critical
        } else {
            Severity::Error
        };
        let last_err = t
            .last_failure_error
            .as_deref()
            .map(|e| crate::kernel::validate::truncate(e, 300))
            .unwrap_or_default();
        return Some(Diagnostic {
            kind: "repeated_failures",
            severity: sev,
            title: format!("Failed {} times in a row", t.consecutive_failures),
            detail: if last_err.is_empty() {
                "no error text recorded".into()
            } else {
                format!("last error: {last_err}")
            },
            actions: {
                let setup = last_err.is_empty()
                    || spawn_setup_error(&last_err)
                    || runs.last().and_then(|r| r.outcome.as_deref()) == Some("spawn_failed");
                let mut a = vec![log_hint(id, events, runs)];
                if t.status == Status::Blocked {
                    // The breaker tripped: say the way out (it stays blocked until a human acts).
                    let label = if setup {
                        format!(
                            "Fix what kept the worker from starting (the error above: create \
                            profile '{p}', point HERMES_BIN at hermes, or add \
                            kanban.worker_command.{p} to config.yaml), then unblock to retry",
                            p = t.assignee.as_deref().unwrap_or("?")
                        )
                    } else {
                        "Fix what made the worker fail (see the error above), then unblock to retry"
                            .to_string()
                    };
                    a.push(hint(&label, format!("hermes-kanban unblock {id}"), true));
                }
                a.push(Action {
                    kind: "reassign",
                    label: "Reassign to another profile".into(),
                    payload: json!({"task_id": id}),
                    suggested: false,
                });
                a.push(Action {
                    kind: "unblock",
                    label: "Unblock and retry".into(),
                    payload: json!({"task_id": id}),
                    suggested: false,
                });
                a
            },
            first_seen_at: None,
            last_seen_at: runs.last().and_then(|r| r.ended_at),
            count: t.consecutive_failures,
            run_id: runs.last().map(|r| r.id),
            data: json!({"consecutive_failures": t.consecutive_failures,
                "threshold": cfg.failure_threshold}),
        });
    }
    None
}

/// A streak of crashed runs since the last completed or reclaimed one.
pub(super) fn repeated_crashes(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts {
        t,
        events,
        runs,
        cfg,
        id,
        ..
    } = *f;
    if !active_exempt(t) {
        let streak: Vec<&Run> = runs
            .iter()
            .rev()
            .filter(|r| r.ended_at.is_some())
            .take_while(|r| !matches!(r.outcome.as_deref(), Some("completed") | Some("reclaimed")))
            .filter(|r| r.outcome.as_deref() == Some("crashed"))
            .collect();
        let n = streak.len() as i64;
        if n >= cfg.crash_threshold.max(1) {
            let sev = if n >= 2 * cfg.crash_threshold.max(1) {
                Severity::Critical
            } else {
                Severity::Error
            };
            let err = streak
                .first()
                .and_then(|r| r.error.clone())
                .unwrap_or_default();
            return Some(Diagnostic {
                kind: "repeated_crashes",
                severity: sev,
                title: format!(
                    "Agent crash x{n}: {}",
                    crate::kernel::validate::truncate(&err, 120)
                ),
                detail: format!(
                    "the last {n} attempts crashed; newest error: {}",
                    crate::kernel::validate::truncate(&err, 300)
                ),
                actions: vec![log_hint(id, events, runs)],
                first_seen_at: streak.last().and_then(|r| r.ended_at),
                last_seen_at: streak.first().and_then(|r| r.ended_at),
                count: n,
                run_id: streak.first().map(|r| r.id),
                data: json!({"crashes": n}),
            });
        }
    }
    None
}

/// Blocked for longer than `blocked_stale_hours` with no comment or unblock since.
pub(super) fn stuck_in_blocked(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts {
        t,
        events,
        cfg,
        now,
        id,
        ..
    } = *f;
    if t.status == Status::Blocked
        && let Some(pos) = events
            .iter()
            .rposition(|e| e.kind == "blocked" || e.kind == "gave_up")
    {
        let e = &events[pos];
        let answered = events[pos + 1..]
            .iter()
            .any(|x| x.kind == "commented" || x.kind == "unblocked");
        let age = now - e.created_at;
        if !answered && age >= cfg.blocked_stale_hours * 3600 {
            return Some(Diagnostic {
                kind: "stuck_in_blocked",
                severity: Severity::Warning,
                title: format!("Blocked for {}h with no reply", age / 3600),
                detail: e
                    .payload
                    .as_ref()
                    .and_then(|p| p.get("reason").or_else(|| p.get("error")))
                    .and_then(Value::as_str)
                    .map(|r| format!("reason: {r}"))
                    .unwrap_or_else(|| "no reason recorded".into()),
                actions: vec![
                    Action {
                        kind: "comment",
                        label: "Answer in a comment".into(),
                        payload: json!({"task_id": id}),
                        suggested: true,
                    },
                    Action {
                        kind: "unblock",
                        label: "Unblock".into(),
                        payload: json!({"task_id": id}),
                        suggested: false,
                    },
                ],
                first_seen_at: Some(e.created_at),
                last_seen_at: Some(e.created_at),
                count: 1,
                run_id: e.run_id,
                data: json!({"age_seconds": age}),
            });
        }
    }
    None
}

/// Blocked again after an unblock, `block_cycle_threshold` times within the window.
pub(super) fn block_cycling(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts {
        events,
        cfg,
        now,
        id,
        terminal,
        ..
    } = *f;
    {
        let window_start = now - cfg.block_cycle_window_seconds;
        let mut cycles = 0i64;
        let mut seen_unblock = false;
        let mut first = None;
        let mut last = None;
        for e in events.iter().filter(|e| e.created_at >= window_start) {
            match e.kind.as_str() {
                "unblocked" => seen_unblock = true,
                "blocked" | "block_loop_detected" if seen_unblock => {
                    cycles += 1;
                    seen_unblock = false;
                    first.get_or_insert(e.created_at);
                    last = Some(e.created_at);
                }
                _ => {}
            }
        }
        if !terminal && cycles >= cfg.block_cycle_threshold.max(1) {
            return Some(Diagnostic {
                kind: "block_unblock_cycling",
                severity: Severity::Warning,
                title: format!("Blocked again after unblock {cycles} times"),
                detail:
                    "the task keeps getting blocked for the same reason after being unblocked; \
                    fix the cause or rewrite the task"
                        .into(),
                actions: vec![hint(
                    "Read the thread",
                    format!("hermes-kanban show {id}"),
                    true,
                )],
                first_seen_at: first,
                last_seen_at: last,
                count: cycles,
                run_id: None,
                data: json!({"cycles": cycles}),
            });
        }
    }
    None
}

/// Assigned, ready and unclaimed for longer than `stranded_threshold_seconds`.
pub(super) fn stranded_in_ready(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts {
        t,
        events,
        cfg,
        now,
        id,
        ..
    } = *f;
    if t.status == Status::Ready && t.claim_lock.is_none() && t.assignee.is_some() {
        let since = events
            .iter()
            .rev()
            .find(|e| {
                matches!(
                    e.kind.as_str(),
                    "created" | "promoted" | "promoted_manual" | "reclaimed" | "unblocked"
                )
            })
            .map(|e| e.created_at)
            .unwrap_or(t.created_at);
        let age = now - since;
        let th = cfg.stranded_threshold_seconds.max(1);
        if age >= th {
            let sev = if age >= 6 * th {
                Severity::Critical
            } else if age >= 2 * th {
                Severity::Error
            } else {
                Severity::Warning
            };
            return Some(Diagnostic {
                kind: "stranded_in_ready",
                severity: sev,
                title: format!("Ready for {}m and never picked up", age / 60),
                detail: format!(
                    "assigned to {} but not claimed; is a dispatcher running, and does the profile \
                    exist?",
                    t.assignee.as_deref().unwrap_or("?")
                ),
                actions: vec![
                    hint(
                        "Run one dispatcher tick",
                        "hermes-kanban dispatch".into(),
                        true,
                    ),
                    Action {
                        kind: "reassign",
                        label: "Reassign".into(),
                        payload: json!({"task_id": id}),
                        suggested: false,
                    },
                ],
                first_seen_at: Some(since),
                last_seen_at: Some(now),
                count: 1,
                run_id: None,
                data: json!({"age_seconds": age}),
            });
        }
    }
    None
}

/// Skills the task's worker would ask for that its profile lacks.
pub(super) fn missing_skill(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts {
        t, cfg, now, id, ..
    } = *f;
    if let (Some(sc), Some(who)) = (&cfg.skills, t.assignee.as_deref())
        && matches!(
            t.status,
            Status::Todo | Status::Ready | Status::Running | Status::Blocked
        )
        && !sc.all_templated
        && !sc.templated.iter().any(|a| a == who)
    {
        let ws = crate::kernel::skills::worker_skills(&sc.hermes_root, who, &t.skills);
        if let Some(w) = ws.warning(id, who, &sc.hermes_root) {
            return Some(Diagnostic {
                kind: "missing_skill",
                severity: if ws.fatal() {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                title: format!(
                    "Skill(s) {} missing for profile {who}",
                    ws.missing.join(", ")
                ),
                detail: w,
                actions: vec![hint(
                    "Install the kanban skills into the profile",
                    format!("hermes-kanban skills install --profile {who}"),
                    ws.missing.iter().any(|m| m.starts_with("kanban-")),
                )],
                first_seen_at: None,
                last_seen_at: Some(now),
                count: ws.missing.len() as i64,
                run_id: None,
                data: json!({"missing": ws.missing, "passed": ws.pass, "fatal": ws.fatal()}),
            });
        }
    }
    None
}

/// A ready or waiting task whose assignee no profile or worker command can run.
pub(super) fn unspawnable_assignee(f: &Facts<'_>) -> Option<Diagnostic> {
    let Facts {
        t, cfg, now, id, ..
    } = *f;
    if let (Some(spawnable), Some(a)) = (&cfg.spawnable, t.assignee.as_deref())
        && matches!(t.status, Status::Ready | Status::Todo)
        && !spawnable.contains(a)
    {
        return Some(Diagnostic {
            kind: "unspawnable_assignee",
            severity: Severity::Warning,
            title: format!("No profile or worker_command for '{a}'"),
            detail: format!(
                "the dispatcher cannot start a worker for '{a}': there is no profile of that name \
                and no kanban.worker_command.{a} in config.yaml, so the task will wait here; \
                create the profile, configure a worker command, or reassign it to one of the \
                profiles `hermes-kanban assignees` lists"
            ),
            actions: vec![
                hint(
                    "List the profiles that can run tasks",
                    "hermes-kanban assignees".into(),
                    true,
                ),
                Action {
                    kind: "reassign",
                    label: "Reassign".into(),
                    payload: json!({"task_id": id}),
                    suggested: false,
                },
            ],
            first_seen_at: None,
            last_seen_at: Some(now),
            count: 1,
            run_id: None,
            data: json!({"assignee": a}),
        });
    }
    None
}
