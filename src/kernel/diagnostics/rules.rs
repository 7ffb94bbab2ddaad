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

/// The newest `kind` event not since cleared (by a completion or an edit), with its
/// payload's `key` (`null` when absent).
fn unresolved_payload<'a>(
    events: &'a [Event],
    kind: &str,
    key: &str,
) -> Option<(&'a Event, Value)> {
    let last = events.iter().rposition(|e| e.kind == kind)?;
    let cleared = events[last + 1..]
        .iter()
        .any(|e| e.kind == "completed" || e.kind == "edited");
    let e = (!cleared).then(|| &events[last])?;
    let value = e.payload.as_ref().and_then(|p| p.get(key)).cloned();
    Some((e, value.unwrap_or(Value::Null)))
}

/// A dashboard button acting on the task (`reassign`, `unblock`, `comment`).
fn on_task(kind: &'static str, label: &str, id: &str, suggested: bool) -> Action {
    Action {
        kind,
        label: label.into(),
        payload: json!({"task_id": id}),
        suggested,
    }
}

/// `Error` from `threshold` (at least 1) on, `Critical` from twice it.
fn escalating(n: i64, threshold: i64) -> Severity {
    if n >= 2 * threshold.max(1) {
        Severity::Critical
    } else {
        Severity::Error
    }
}

/// Building a finding: [`Diagnostic::new`] gives one seen once with no actions, times, run
/// or data; the rest is added by what each rule knows.
impl Diagnostic {
    fn new(kind: &'static str, severity: Severity, title: String, detail: String) -> Diagnostic {
        Diagnostic {
            kind,
            severity,
            title,
            detail,
            actions: Vec::new(),
            first_seen_at: None,
            last_seen_at: None,
            count: 1,
            run_id: None,
            data: Value::Null,
        }
    }

    fn actions(mut self, actions: Vec<Action>) -> Diagnostic {
        self.actions = actions;
        self
    }

    fn seen(mut self, first: Option<i64>, last: Option<i64>) -> Diagnostic {
        self.first_seen_at = first;
        self.last_seen_at = last;
        self
    }

    /// Seen once, at event `e` (its time and run).
    fn at(self, e: &Event) -> Diagnostic {
        self.seen(Some(e.created_at), Some(e.created_at))
            .run(e.run_id)
    }

    fn count(mut self, n: i64) -> Diagnostic {
        self.count = n;
        self
    }

    fn run(mut self, run_id: Option<i64>) -> Diagnostic {
        self.run_id = run_id;
        self
    }

    fn data(mut self, data: Value) -> Diagnostic {
        self.data = data;
        self
    }
}

/// Failure and crash rules stay quiet while a worker runs and once the task is finished.
fn active_exempt(t: &Task) -> bool {
    matches!(t.status, Status::Done | Status::Archived | Status::Running)
}

/// A finding raised by the newest `event` not since cleared, naming its payload's `key`
/// (also the finding's `data`); `make` words it from that value.
fn event_finding(
    f: &Facts<'_>,
    event: &str,
    key: &str,
    make: impl FnOnce(&Value) -> Diagnostic,
) -> Option<Diagnostic> {
    let (e, value) = unresolved_payload(f.events, event, key)?;
    let mut data = serde_json::Map::new();
    data.insert(key.to_string(), value.clone());
    Some(make(&value).at(e).data(Value::Object(data)))
}

/// A refused completion that named cards this task did not create, not since cleared.
pub(super) fn hallucinated_cards(f: &Facts<'_>) -> Option<Diagnostic> {
    let show = hint(
        "Inspect the task",
        format!("hermes-kanban show {}", f.id),
        true,
    );
    event_finding(
        f,
        "completion_blocked_hallucination",
        "phantom_cards",
        |cards| {
            let title = "Completion named cards that do not exist".to_string();
            let detail = format!(
                "kanban_complete was refused: created_cards {cards} were not created by this task"
            );
            Diagnostic::new("hallucinated_cards", Severity::Error, title, detail)
                .actions(vec![show])
        },
    )
}

/// A hand-off that mentions task ids not on this board, not since cleared.
pub(super) fn phantom_refs(f: &Facts<'_>) -> Option<Diagnostic> {
    let cmd = format!("hermes-kanban edit {} --result '…'", f.id);
    let fix = hint("Fix the hand-off", cmd, true);
    event_finding(
        f,
        "suspected_hallucinated_references",
        "phantom_refs",
        |refs| {
            let title = "Hand-off mentions tasks that do not exist".to_string();
            let detail =
                format!("the completion summary references {refs}, which are not on this board");
            Diagnostic::new("prose_phantom_refs", Severity::Warning, title, detail)
                .actions(vec![fix])
        },
    )
}

/// The failure counter at or past the threshold (not while running or finished).
pub(super) fn repeated_failures(f: &Facts<'_>) -> Option<Diagnostic> {
    let (t, runs, cfg) = (f.t, f.runs, f.cfg);
    let n = t.consecutive_failures;
    if active_exempt(t) || n < cfg.failure_threshold.max(1) {
        return None;
    }
    let last_err = t
        .last_failure_error
        .as_deref()
        .map(|e| crate::kernel::validate::truncate(e, 300))
        .unwrap_or_default();
    let detail = if last_err.is_empty() {
        "no error text recorded".into()
    } else {
        format!("last error: {last_err}")
    };
    let title = format!("Failed {n} times in a row");
    Some(
        Diagnostic::new(
            "repeated_failures",
            escalating(n, cfg.failure_threshold),
            title,
            detail,
        )
        .actions(failure_actions(f, &last_err))
        .seen(None, runs.last().and_then(|r| r.ended_at))
        .count(n)
        .run(runs.last().map(|r| r.id))
        .data(json!({"consecutive_failures": n, "threshold": cfg.failure_threshold})),
    )
}

/// What [`repeated_failures`] suggests: the log (or the runs), the way out of a tripped
/// breaker (fix the setup or the failure, then unblock), reassign, unblock.
fn failure_actions(f: &Facts<'_>, last_err: &str) -> Vec<Action> {
    let (t, events, runs, id) = (f.t, f.events, f.runs, f.id);
    let setup = last_err.is_empty()
        || spawn_setup_error(last_err)
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
            "Fix what made the worker fail (see the error above), then unblock to retry".to_string()
        };
        a.push(hint(&label, format!("hermes-kanban unblock {id}"), true));
    }
    a.push(on_task(
        "reassign",
        "Reassign to another profile",
        id,
        false,
    ));
    a.push(on_task("unblock", "Unblock and retry", id, false));
    a
}

/// A streak of crashed runs since the last completed or reclaimed one.
pub(super) fn repeated_crashes(f: &Facts<'_>) -> Option<Diagnostic> {
    let (t, events, runs, cfg, id) = (f.t, f.events, f.runs, f.cfg, f.id);
    if active_exempt(t) {
        return None;
    }
    let streak: Vec<&Run> = runs
        .iter()
        .rev()
        .filter(|r| r.ended_at.is_some())
        .take_while(|r| !matches!(r.outcome.as_deref(), Some("completed") | Some("reclaimed")))
        .filter(|r| r.outcome.as_deref() == Some("crashed"))
        .collect();
    let n = streak.len() as i64;
    if n < cfg.crash_threshold.max(1) {
        return None;
    }
    let err = streak
        .first()
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    let truncate = crate::kernel::validate::truncate;
    let title = format!("Agent crash x{n}: {}", truncate(&err, 120));
    let detail = format!(
        "the last {n} attempts crashed; newest error: {}",
        truncate(&err, 300)
    );
    Some(
        Diagnostic::new(
            "repeated_crashes",
            escalating(n, cfg.crash_threshold),
            title,
            detail,
        )
        .actions(vec![log_hint(id, events, runs)])
        .seen(
            streak.last().and_then(|r| r.ended_at),
            streak.first().and_then(|r| r.ended_at),
        )
        .count(n)
        .run(streak.first().map(|r| r.id))
        .data(json!({"crashes": n})),
    )
}

/// Blocked for longer than `blocked_stale_hours` with no comment or unblock since.
pub(super) fn stuck_in_blocked(f: &Facts<'_>) -> Option<Diagnostic> {
    let (t, events, cfg, now, id) = (f.t, f.events, f.cfg, f.now, f.id);
    if t.status != Status::Blocked {
        return None;
    }
    let pos = events
        .iter()
        .rposition(|e| e.kind == "blocked" || e.kind == "gave_up")?;
    let e = &events[pos];
    let answered = events[pos + 1..]
        .iter()
        .any(|x| x.kind == "commented" || x.kind == "unblocked");
    let age = now - e.created_at;
    if answered || age < cfg.blocked_stale_hours * 3600 {
        return None;
    }
    let detail = e
        .payload
        .as_ref()
        .and_then(|p| p.get("reason").or_else(|| p.get("error")))
        .and_then(Value::as_str)
        .map(|r| format!("reason: {r}"))
        .unwrap_or_else(|| "no reason recorded".into());
    let title = format!("Blocked for {}h with no reply", age / 3600);
    Some(
        Diagnostic::new("stuck_in_blocked", Severity::Warning, title, detail)
            .actions(vec![
                on_task("comment", "Answer in a comment", id, true),
                on_task("unblock", "Unblock", id, false),
            ])
            .at(e)
            .data(json!({"age_seconds": age})),
    )
}

/// Blocked again after an unblock, `block_cycle_threshold` times within the window.
pub(super) fn block_cycling(f: &Facts<'_>) -> Option<Diagnostic> {
    let (events, cfg, now, id) = (f.events, f.cfg, f.now, f.id);
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
    if f.terminal || cycles < cfg.block_cycle_threshold.max(1) {
        return None;
    }
    let title = format!("Blocked again after unblock {cycles} times");
    let detail = "the task keeps getting blocked for the same reason after being unblocked; fix \
        the cause or rewrite the task"
        .to_string();
    let read = hint("Read the thread", format!("hermes-kanban show {id}"), true);
    Some(
        Diagnostic::new("block_unblock_cycling", Severity::Warning, title, detail)
            .actions(vec![read])
            .seen(first, last)
            .count(cycles)
            .data(json!({"cycles": cycles})),
    )
}

/// Assigned, ready and unclaimed for longer than `stranded_threshold_seconds`.
pub(super) fn stranded_in_ready(f: &Facts<'_>) -> Option<Diagnostic> {
    let (t, events, cfg, now, id) = (f.t, f.events, f.cfg, f.now, f.id);
    if t.status != Status::Ready || t.claim_lock.is_some() {
        return None;
    }
    let who = t.assignee.as_deref()?;
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
    if age < th {
        return None;
    }
    let sev = if age >= 6 * th {
        Severity::Critical
    } else if age >= 2 * th {
        Severity::Error
    } else {
        Severity::Warning
    };
    let title = format!("Ready for {}m and never picked up", age / 60);
    let detail = format!(
        "assigned to {who} but not claimed; is a dispatcher running, and does the profile exist?"
    );
    let tick = hint(
        "Run one dispatcher tick",
        "hermes-kanban dispatch".into(),
        true,
    );
    Some(
        Diagnostic::new("stranded_in_ready", sev, title, detail)
            .actions(vec![tick, on_task("reassign", "Reassign", id, false)])
            .seen(Some(since), Some(now))
            .data(json!({"age_seconds": age})),
    )
}

/// Skills the task's worker would ask for that its profile lacks.
pub(super) fn missing_skill(f: &Facts<'_>) -> Option<Diagnostic> {
    let (t, cfg, now, id) = (f.t, f.cfg, f.now, f.id);
    let (Some(sc), Some(who)) = (&cfg.skills, t.assignee.as_deref()) else {
        return None;
    };
    let waiting = matches!(
        t.status,
        Status::Todo | Status::Ready | Status::Running | Status::Blocked
    );
    if !waiting || sc.all_templated || sc.templated.iter().any(|a| a == who) {
        return None;
    }
    let ws = crate::kernel::skills::worker_skills(&sc.hermes_root, who, &t.skills);
    let detail = ws.warning(id, who, &sc.hermes_root)?;
    let sev = if ws.fatal() {
        Severity::Error
    } else {
        Severity::Warning
    };
    let title = format!(
        "Skill(s) {} missing for profile {who}",
        ws.missing.join(", ")
    );
    let install = hint(
        "Install the kanban skills into the profile",
        format!("hermes-kanban skills install --profile {who}"),
        ws.missing.iter().any(|m| m.starts_with("kanban-")),
    );
    Some(
        Diagnostic::new("missing_skill", sev, title, detail)
            .actions(vec![install])
            .seen(None, Some(now))
            .count(ws.missing.len() as i64)
            .data(json!({"missing": ws.missing, "passed": ws.pass, "fatal": ws.fatal()})),
    )
}

/// A ready or waiting task whose assignee no profile or worker command can run.
pub(super) fn unspawnable_assignee(f: &Facts<'_>) -> Option<Diagnostic> {
    let (t, cfg, now, id) = (f.t, f.cfg, f.now, f.id);
    let (Some(spawnable), Some(a)) = (&cfg.spawnable, t.assignee.as_deref()) else {
        return None;
    };
    if !matches!(t.status, Status::Ready | Status::Todo) || spawnable.contains(a) {
        return None;
    }
    let title = format!("No profile or worker_command for '{a}'");
    let detail = format!(
        "the dispatcher cannot start a worker for '{a}': there is no profile of that name and no \
        kanban.worker_command.{a} in config.yaml, so the task will wait here; create the profile, \
        configure a worker command, or reassign it to one of the profiles `hermes-kanban \
        assignees` lists"
    );
    let list = hint(
        "List the profiles that can run tasks",
        "hermes-kanban assignees".into(),
        true,
    );
    Some(
        Diagnostic::new("unspawnable_assignee", Severity::Warning, title, detail)
            .actions(vec![list, on_task("reassign", "Reassign", id, false)])
            .seen(None, Some(now))
            .data(json!({"assignee": a})),
    )
}
