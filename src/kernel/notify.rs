//! Notification subscriptions (REF §16.1): insert-or-ignore with owner back-fill, list,
//! remove, and the per-subscription cursor — claimed atomically (CAS on the old value) so two
//! notifiers never deliver the same event, and rewound only if still at the claimed value.

use super::store::{Arg, FromRow, Row, Tx, arg_refs};
use serde::Serialize;

use super::board::{Board, load_task};
use super::error::{KernelError, Result};
use super::types::{EVENT_COLUMNS, Event, NotifySub};
use super::validate as v;
use crate::args;

/// Identifies one subscription row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubKey {
    pub task_id: String,
    pub platform: String,
    pub chat_id: String,
    /// Empty string when there is no thread.
    pub thread_id: String,
}

/// Events claimed for delivery: deliver them, or rewind `from` on failure.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimedEvents {
    /// Cursor before the claim.
    pub from: i64,
    /// Cursor after the claim (the last event id claimed).
    pub to: i64,
    pub events: Vec<Event>,
}

impl FromRow for NotifySub {
    fn from_row(r: &Row<'_>) -> Result<NotifySub> {
        sub_from_row(r)
    }
}

fn sub_from_row(r: &Row<'_>) -> Result<NotifySub> {
    use super::types::{lenient_i64, lenient_text};
    Ok(NotifySub {
        task_id: r.get(0)?,
        platform: r.get(1)?,
        chat_id: r.get(2)?,
        thread_id: lenient_text(r, 3).unwrap_or_default(),
        user_id: lenient_text(r, 4),
        notifier_profile: lenient_text(r, 5),
        created_at: lenient_i64(r, 6).unwrap_or(0),
        last_event_id: lenient_i64(r, 7).unwrap_or(0),
    })
}

const SUB_COLUMNS: &str =
    "task_id, platform, chat_id, thread_id, user_id, notifier_profile, created_at, last_event_id";

fn validate_key(k: &SubKey) -> Result<SubKey> {
    Ok(SubKey {
        task_id: v::task_id("task_id", &k.task_id)?,
        platform: v::short_name("platform", Some(&k.platform))?
            .ok_or_else(|| KernelError::invalid("platform", "must not be empty"))?,
        chat_id: v::short_name("chat_id", Some(&k.chat_id))?
            .ok_or_else(|| KernelError::invalid("chat_id", "must not be empty"))?,
        thread_id: v::short_name("thread_id", Some(&k.thread_id))?.unwrap_or_default(),
    })
}

fn cursor(c: &Tx, k: &SubKey) -> Result<i64> {
    c.row::<i64>(
        "SELECT last_event_id FROM kanban_notify_subs WHERE task_id=?1 AND platform=?2 AND \
        chat_id=?3 AND thread_id=?4",
        args![k.task_id, k.platform, k.chat_id, k.thread_id],
    )?
    .ok_or_else(|| {
        KernelError::invalid(
            "subscription",
            format!(
                "no subscription {}:{}:{} on {}",
                k.platform, k.chat_id, k.thread_id, k.task_id
            ),
        )
    })
}

impl Board {
    /// Subscribe (insert-or-ignore). An existing row without an owner gets `notifier_profile`
    /// back-filled. Returns the row.
    pub fn add_notify_sub(
        &self,
        key: &SubKey,
        user_id: Option<&str>,
        notifier_profile: Option<&str>,
    ) -> Result<NotifySub> {
        let k = validate_key(key)?;
        let user_id = v::short_name("user_id", user_id)?;
        let owner = v::short_name("notifier_profile", notifier_profile)?;
        let now = self.now();
        self.write(|c| {
            load_task(c, &k.task_id)?;
            c.exec(
                // A new subscription starts at the task's latest event (UP §10, as Hermes 0.19.1+):
                // a notifier must not replay history to a chat that just subscribed.
                "INSERT INTO kanban_notify_subs (task_id, platform, chat_id, thread_id, user_id, \
                notifier_profile, created_at, last_event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                         COALESCE((SELECT max(id) FROM task_events WHERE task_id=?1), 0))
                 ON CONFLICT DO NOTHING",
                args![
                    k.task_id,
                    k.platform,
                    k.chat_id,
                    k.thread_id,
                    user_id,
                    owner,
                    now
                ],
            )?;
            if owner.is_some() {
                c.exec(
                    "UPDATE kanban_notify_subs SET notifier_profile=?5
                     WHERE task_id=?1 AND platform=?2 AND chat_id=?3 AND thread_id=?4 AND \
                     (notifier_profile IS NULL OR notifier_profile='')",
                    args![k.task_id, k.platform, k.chat_id, k.thread_id, owner],
                )?;
            }
            c.one::<NotifySub>(
                &format!(
                    "SELECT {SUB_COLUMNS} FROM kanban_notify_subs WHERE task_id=?1 AND platform=?2 \
                    AND chat_id=?3 AND thread_id=?4"
                ),
                args![k.task_id, k.platform, k.chat_id, k.thread_id],
            )
        })
    }

    /// Subscriptions, of one task or all.
    pub fn list_notify_subs(&self, task_id: Option<&str>) -> Result<Vec<NotifySub>> {
        self.read(|c| match task_id {
            Some(t) => c.rows::<NotifySub>(
                &format!(
                    "SELECT {SUB_COLUMNS} FROM kanban_notify_subs WHERE task_id=?1 ORDER BY \
                    created_at, _seq_"
                ),
                args![t],
            ),
            None => c.rows::<NotifySub>(
                &format!("SELECT {SUB_COLUMNS} FROM kanban_notify_subs ORDER BY created_at, _seq_"),
                args![],
            ),
        })
    }

    /// Remove a subscription. Returns whether a row was deleted.
    pub fn remove_notify_sub(&self, key: &SubKey) -> Result<bool> {
        let k = validate_key(key)?;
        self.write(|c| {
            let n = c.exec(
                "DELETE FROM kanban_notify_subs WHERE task_id=?1 AND platform=?2 AND chat_id=?3 \
                AND thread_id=?4",
                args![k.task_id, k.platform, k.chat_id, k.thread_id],
            )?;
            Ok(n > 0)
        })
    }

    /// Claim the task's events after the subscription's cursor (optionally only `kinds`) and
    /// advance the cursor past them, in one transaction with a CAS on the old cursor. `None`
    /// when there is nothing new (or another notifier won the race).
    pub fn claim_unseen_events(
        &self,
        key: &SubKey,
        kinds: &[&str],
    ) -> Result<Option<ClaimedEvents>> {
        let k = validate_key(key)?;
        self.write(|c| {
            let from = cursor(c, &k)?;
            let mut sql =
                format!("SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id=?1 AND id>?2");
            // Kinds are bound as parameters, never spliced into the SQL text.
            let mut args: Vec<Arg> = vec![Arg::Text(k.task_id.clone()), Arg::Int(from)];
            if !kinds.is_empty() {
                let marks: Vec<String> = (0..kinds.len()).map(|i| format!("?{}", i + 3)).collect();
                sql.push_str(&format!(" AND kind IN ({})", marks.join(",")));
                args.extend(kinds.iter().map(|s| Arg::Text(s.to_string())));
            }
            sql.push_str(" ORDER BY id");
            let events = c.rows::<Event>(&sql, &arg_refs(&args))?;
            let Some(last) = events.last().map(|e| e.id) else {
                return Ok(None);
            };
            let n = c.exec(
                "UPDATE kanban_notify_subs SET last_event_id=?5
                 WHERE task_id=?1 AND platform=?2 AND chat_id=?3 AND thread_id=?4 AND \
                 last_event_id=?6",
                args![k.task_id, k.platform, k.chat_id, k.thread_id, last, from],
            )?;
            if n != 1 {
                return Ok(None);
            }
            Ok(Some(ClaimedEvents {
                from,
                to: last,
                events,
            }))
        })
    }

    /// Undo a claim after a failed delivery: restores `claimed.from` only if the cursor is
    /// still at `claimed.to`. Returns whether it was rewound.
    pub fn rewind_notify_cursor(&self, key: &SubKey, claimed: &ClaimedEvents) -> Result<bool> {
        let k = validate_key(key)?;
        self.write(|c| {
            let n = c.exec(
                "UPDATE kanban_notify_subs SET last_event_id=?5
                 WHERE task_id=?1 AND platform=?2 AND chat_id=?3 AND thread_id=?4 AND \
                 last_event_id=?6",
                args![
                    k.task_id,
                    k.platform,
                    k.chat_id,
                    k.thread_id,
                    claimed.from,
                    claimed.to
                ],
            )?;
            Ok(n == 1)
        })
    }
}

/// Copy the subscriptions of `sources` (parents, or the creating task) to `child`, every
/// routing column included, with the cursor at the child's latest event so nothing old is
/// replayed — upstream's `_inherit_notify_subs` (UP §10: children inherit their parent's
/// subscriptions). An existing subscription of the child is left as it is.
pub(crate) fn inherit_subs_tx(c: &Tx, child: &str, sources: &[String], now: i64) -> Result<()> {
    if sources.is_empty() {
        return Ok(());
    }
    let cursor: i64 = c.one(
        "SELECT COALESCE(MAX(id), 0) FROM task_events WHERE task_id=?1",
        args![child],
    )?;
    for src in sources {
        c.exec(
            "INSERT INTO kanban_notify_subs
                 (task_id, platform, chat_id, thread_id, user_id, user_id_alt, chat_type,
                  notifier_profile, delivery_mode, delivery_metadata, created_at, last_event_id)
             SELECT ?1, platform, chat_id, thread_id, user_id, user_id_alt,
                    COALESCE(chat_type, 'dm'), notifier_profile,
                    COALESCE(delivery_mode, 'notify'), delivery_metadata, ?2, ?3
               FROM kanban_notify_subs WHERE task_id = ?4
             ON CONFLICT DO NOTHING",
            args![child, now, cursor, src],
        )?;
    }
    Ok(())
}
