//! The respawn guard (REF §8.9): whether a ready task may get a new worker now — not while a
//! rate-limit cool-down runs, not when the last failure reads like a quota or credentials
//! problem, not right after an unreopened success, not while a comment links a pull request —
//! and the once-per-reason events that say why a task was held back or skipped.

use regex_lite::Regex;
use serde_json::Value;

use super::{GUARD_ACTIVE_PR, GUARD_BLOCKER_AUTH, GUARD_RATE_LIMIT, GUARD_RECENT_SUCCESS};
use crate::kernel::board::{Board, add_event, load_task};
use crate::kernel::error::Result;
use crate::kernel::store::Tx;
use crate::kernel::types::Task;
use crate::{args, obj};

fn blocker_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"(?i)(quota|rate[ _-]?limit|\b429\b|\b403\b|authenticat|authori[sz]|unauthori[sz]ed|",
            r"forbidden|billing|subscription|access denied|permission denied|invalid api key)",
        ))
        .expect("static regex")
    })
}

fn pr_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"https://github\.com/[^/\s]+/[^/\s]+/pull/\d+").expect("static regex")
    })
}

/// The respawn guard (REF §8.9) for one ready task, inside a read or write transaction.
pub(crate) fn respawn_guard_tx(
    c: &Tx,
    t: &Task,
    now: i64,
    rate_limit_cooldown: i64,
) -> Result<Option<&'static str>> {
    let latest = c.row::<(Option<String>, i64)>(
        "SELECT outcome, ended_at FROM task_runs WHERE task_id=?1 AND ended_at IS NOT NULL
         ORDER BY ended_at DESC, id DESC LIMIT 1",
        args![t.id],
    )?;
    let mut cooled_down = false;
    if let Some((Some(outcome), ended)) = &latest
        && outcome == "rate_limited"
    {
        if now - ended < rate_limit_cooldown {
            return Ok(Some(GUARD_RATE_LIMIT));
        }
        cooled_down = true;
    }
    if !cooled_down
        && t.last_failure_error
            .as_deref()
            .is_some_and(|e| blocker_regex().is_match(e))
    {
        return Ok(Some(GUARD_BLOCKER_AUTH));
    }
    let success = c.one::<Option<i64>>(
        "SELECT max(ended_at) FROM task_runs WHERE task_id=?1 AND outcome='completed'
         AND ended_at >= ?2",
        args![t.id, now - 3600],
    )?;
    if let Some(ended) = success {
        let reopened = c.exists(
            "SELECT 1 FROM task_events WHERE task_id=?1 AND created_at >= ?2
             AND kind IN ('status','promoted','promoted_manual','unblocked','reclaimed')",
            args![t.id, ended],
        )?;
        if !reopened {
            return Ok(Some(GUARD_RECENT_SUCCESS));
        }
    }
    // A cheap pre-filter; the regex (lower-case `github.com`, `/pull/`) decides.
    let bodies = c.rows::<String>(
        "SELECT body FROM task_comments WHERE task_id=?1 AND created_at >= ?2
         AND lower(body) LIKE '%github.com/%/pull/%'",
        args![t.id, now - 86_400],
    )?;
    if bodies.iter().any(|b| pr_regex().is_match(b)) {
        return Ok(Some(GUARD_ACTIVE_PR));
    }
    Ok(None)
}

/// Kind and payload of the task's latest event (by `order`), for the once-per-reason notes.
fn latest_event(c: &Tx, task_id: &str, order: &str) -> Result<Option<(String, Option<Value>)>> {
    let last = c.row::<(String, Option<String>)>(
        &format!("SELECT kind, payload FROM task_events WHERE task_id=?1 ORDER BY {order} LIMIT 1"),
        args![task_id],
    )?;
    Ok(last.map(|(k, p)| (k, p.and_then(|p| serde_json::from_str::<Value>(&p).ok()))))
}

impl Board {
    /// The respawn guard for a ready task (REF §8.9): `rate_limit_cooldown` while the last
    /// run's rate-limit cool-down runs, `blocker_auth` when the last failure reads like a quota
    /// or credentials problem, `recent_success` after a completion within the hour that nobody
    /// re-opened, `active_pr` when a comment of the last day links a GitHub pull request.
    pub fn respawn_guard(
        &self,
        task_id: &str,
        rate_limit_cooldown: i64,
    ) -> Result<Option<&'static str>> {
        let now = self.now();
        self.read(|c| {
            let t = load_task(c, task_id)?;
            respawn_guard_tx(c, &t, now, rate_limit_cooldown)
        })
    }

    /// Record that the guard held a task back (`respawn_guarded {reason}`), unless the task's
    /// latest event already says so with the same reason (no event spam every tick).
    pub fn note_respawn_guarded(&self, task_id: &str, reason: &str) -> Result<()> {
        let now = self.now();
        self.write(|c| {
            let same = latest_event(c, task_id, "id DESC")?.is_some_and(|(k, p)| {
                k == "respawn_guarded"
                    && p.as_ref()
                        .and_then(|p| p.get("reason"))
                        .and_then(Value::as_str)
                        == Some(reason)
            });
            if !same {
                add_event(
                    c,
                    task_id,
                    None,
                    "respawn_guarded",
                    obj! {"reason" => reason},
                    now,
                )?;
            }
            Ok(())
        })
    }

    /// Record that the dispatcher skipped a task because its assignee is not spawnable here
    /// (`skipped_nonspawnable {assignee}`, UP §7), unless the task's latest event already says
    /// exactly that — once, not once per tick (nor per home on a shared board).
    pub fn note_skipped_nonspawnable(&self, task_id: &str, assignee: &str) -> Result<()> {
        let now = self.now();
        let payload = obj! {"assignee" => assignee};
        let want = Value::Object(payload.clone());
        self.write(|c| {
            let same = latest_event(c, task_id, "created_at DESC, id DESC")?
                .is_some_and(|(k, p)| k == "skipped_nonspawnable" && p.as_ref() == Some(&want));
            if !same {
                add_event(
                    c,
                    task_id,
                    None,
                    "skipped_nonspawnable",
                    payload.clone(),
                    now,
                )?;
            }
            Ok(())
        })
    }
}
