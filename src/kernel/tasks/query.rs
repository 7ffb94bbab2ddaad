//! Reading tasks: get one or several, list with filters, sorts and keyset paging, stats, and
//! the assignee roll-up (profiles on disk united with task assignees).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::profiles::{ProfileState, on_disk_profiles, profile_dirs, profile_state};
use super::{AssigneeInfo, ListFilter, PageKey, Stats, TaskSort, query_tasks};
use crate::args;
use crate::kernel::board::{Board, load_task};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::paths::hermes_root;
use crate::kernel::store::Tx;
use crate::kernel::types::Task;

impl Board {
    /// Fetch one task.
    pub fn get_task(&self, task_id: &str) -> Result<Task> {
        load_task(&Tx::sqlite(&self.conn), task_id.trim())
    }

    /// Fetch several tasks by id (missing ids are skipped), in the order given.
    pub fn get_tasks(&self, ids: &[String]) -> Result<Vec<Task>> {
        self.read(|c| {
            let mut out = Vec::new();
            for id in ids {
                if let Ok(t) = load_task(c, id) {
                    out.push(t);
                }
            }
            Ok(out)
        })
    }

    /// The default-order position of a task, to page after it ([`ListFilter::after`]).
    pub fn page_key(&self, task_id: &str) -> Result<PageKey> {
        Tx::sqlite(&self.conn)
            .row::<(i64, i64, i64)>(
                "SELECT priority, created_at, _seq_ FROM tasks WHERE id = ?1",
                args![task_id],
            )?
            .map(|(priority, created_at, rowid)| PageKey {
                priority,
                created_at,
                rowid,
            })
            .ok_or_else(|| KernelError::TaskNotFound(task_id.to_string()))
    }

    /// List tasks with filters. Archived tasks are excluded unless `include_archived` or the
    /// status filter asks for them. Does not run `recompute_ready` (front doors that want
    /// Hermes' "listing promotes" behaviour call it first).
    pub fn list_tasks(&self, f: &ListFilter) -> Result<Vec<Task>> {
        let (tail, args) = list_tail(f)?;
        query_tasks(&Tx::sqlite(&self.conn), &tail, &args)
    }

    /// Counts by status and assignee (archived excluded) and the age of the oldest ready task.
    pub fn stats(&self) -> Result<Stats> {
        let now = self.now();
        self.read(|c| {
            let mut by_status = BTreeMap::new();
            let mut by_assignee: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
            c.each(
                "SELECT assignee, status, count(*) FROM tasks WHERE status!='archived'
                 GROUP BY assignee, status",
                args![],
                |r| {
                    let (a, s, n) = (
                        r.get::<Option<String>>(0)?,
                        r.get::<String>(1)?,
                        r.get::<i64>(2)?,
                    );
                    *by_status.entry(s.clone()).or_insert(0) += n;
                    if let Some(a) = a {
                        *by_assignee.entry(a).or_default().entry(s).or_insert(0) += n;
                    }
                    Ok(())
                },
            )?;
            let oldest: Option<i64> = c.one(
                "SELECT min(created_at) FROM tasks WHERE status='ready'",
                args![],
            )?;
            Ok(Stats {
                by_status,
                by_assignee,
                oldest_ready_age_seconds: oldest.map(|t| (now - t).max(0)),
                now,
            })
        })
    }

    /// Live profiles on disk (see [`profile_state`], plus `default`) united with the assignees
    /// of non-archived tasks and the directories under `profiles/` that are not (or no longer)
    /// profiles, each with task counts by status. `on_disk` uses the same test as the
    /// dispatcher's spawnability check; `not_a_profile` says why a name is not spawnable as a
    /// profile (a `worker_command` entry can still make it spawnable).
    pub fn assignees(&self) -> Result<Vec<AssigneeInfo>> {
        let root = hermes_root(self.env());
        let mut map: BTreeMap<String, AssigneeInfo> = BTreeMap::new();
        let info = |name: &str| {
            let state = profile_state(&root, name);
            AssigneeInfo {
                name: name.to_string(),
                on_disk: state == ProfileState::Live,
                not_a_profile: state.reason(&root, name),
                counts: BTreeMap::new(),
            }
        };
        for name in on_disk_profiles(&root)
            .into_iter()
            .chain(profile_dirs(&root))
        {
            map.entry(name.clone()).or_insert_with(|| info(&name));
        }
        let rows: Vec<(String, String, i64)> = self.read(|c| {
            c.rows(
                "SELECT assignee, status, count(*) FROM tasks
                 WHERE status!='archived' AND assignee IS NOT NULL GROUP BY assignee, status",
                args![],
            )
        })?;
        for (a, s, n) in rows {
            map.entry(a.clone())
                .or_insert_with(|| info(&a))
                .counts
                .insert(s, n);
        }
        Ok(map.into_values().collect())
    }
}

/// The `WHERE … ORDER BY … LIMIT …` tail of a list and its arguments (`list_tasks` and the
/// CLI listing's narrower rows, `kernel::listing`).
pub(crate) fn list_tail(f: &ListFilter) -> Result<(String, Vec<Value>)> {
    let (where_sql, args) = list_where(f)?;
    // SQLite's LIMIT is an i64; a larger usize would be a "datatype mismatch".
    let limit = f
        .limit
        .map(|n| format!(" LIMIT {}", n.min(i64::MAX as usize)))
        .unwrap_or_default();
    Ok((
        format!("{where_sql} ORDER BY {}{limit}", list_order(f.sort)),
        args,
    ))
}

/// The `WHERE` clause of a list (empty for no filter) and its arguments, `?N`-numbered.
fn list_where(f: &ListFilter) -> Result<(String, Vec<Value>)> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut push = |clause: &str, val: Value, clauses: &mut Vec<String>| {
        args.push(val);
        clauses.push(clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(a) = &f.assignee {
        push("assignee = ?", json!(a.trim().to_lowercase()), &mut clauses);
    }
    match f.status {
        Some(s) => push("status = ?", json!(s.as_str()), &mut clauses),
        None if !f.include_archived => clauses.push("status != 'archived'".into()),
        None => {}
    }
    if let Some(t) = &f.tenant {
        push("tenant = ?", json!(t), &mut clauses);
    }
    if let Some(s) = &f.session_id {
        push("session_id = ?", json!(s), &mut clauses);
    }
    if let Some(w) = &f.workflow_template_id {
        push("workflow_template_id = ?", json!(w), &mut clauses);
    }
    if let Some(k) = &f.step_key {
        push("current_step_key = ?", json!(k), &mut clauses);
    }
    if let Some(k) = f.after {
        if !matches!(f.sort, TaskSort::Default | TaskSort::PriorityDesc) {
            return Err(KernelError::Invalid {
                field: "cursor",
                message: "paging with a cursor needs the default order".into(),
            });
        }
        let n = args.len();
        args.push(json!(k.priority));
        args.push(json!(k.created_at));
        args.push(json!(k.rowid));
        let (p, c, r) = (n + 1, n + 2, n + 3);
        clauses.push(format!(
            "(priority < ?{p} OR (priority = ?{p} AND (created_at > ?{c} OR (created_at = ?{c} AND \
            _seq_ > ?{r}))))"
        ));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    Ok((where_sql, args))
}

/// The `ORDER BY` of a sort; insertion order (`_seq_`) breaks the remaining ties.
fn list_order(sort: TaskSort) -> &'static str {
    match sort {
        TaskSort::Default | TaskSort::PriorityDesc => "priority DESC, created_at ASC, _seq_ ASC",
        TaskSort::PriorityAsc => "priority ASC, created_at ASC, _seq_ ASC",
        TaskSort::Created => "created_at ASC, _seq_ ASC",
        TaskSort::CreatedDesc => "created_at DESC, _seq_ DESC",
        TaskSort::Status => {
            "CASE status WHEN 'triage' THEN 0 WHEN 'todo' THEN 1 WHEN 'scheduled' THEN 2 \
             WHEN 'ready' THEN 3 WHEN 'running' THEN 4 WHEN 'blocked' THEN 5 WHEN 'review' THEN 6 \
             WHEN 'done' THEN 7 ELSE 8 END, priority DESC, created_at ASC"
        }
        TaskSort::Assignee => "assignee IS NULL, assignee ASC, priority DESC, created_at ASC",
        TaskSort::Title => "lower(title) ASC, created_at ASC",
        TaskSort::Updated => "started_at IS NULL, started_at DESC, created_at DESC",
        TaskSort::CompletedDesc => "completed_at IS NULL, completed_at DESC, id DESC",
    }
}
