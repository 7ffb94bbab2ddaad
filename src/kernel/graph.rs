//! The dependency graph: link (self-link and cycle rejection, demoting a ready child whose new
//! parent is unfinished), unlink, parent/child queries, and `recompute_ready` — the one place
//! `todo` tasks are promoted. A parent is satisfied by `done` or `archived` everywhere
//! (SPEC §3.3 fix 1); `blocked` tasks are never promoted here (fix 2).

use super::store::Tx;

use super::board::{Board, add_event, load_task};
use super::error::{KernelError, Result};
use super::types::Status;
use super::validate as v;
use crate::{args, obj};

/// Whether every parent of `task_id` is `done` or `archived` (vacuously true without parents;
/// dangling edges to deleted tasks are ignored).
pub(crate) fn parents_satisfied_tx(c: &Tx, task_id: &str) -> Result<bool> {
    let unfinished = c.exists(
        "SELECT 1 FROM task_links l JOIN tasks p ON p.id = l.parent_id
         WHERE l.child_id = ?1 AND p.status NOT IN ('done', 'archived')",
        args![task_id],
    )?;
    Ok(!unfinished)
}

/// Promote every `todo` task whose parents are all done/archived to `ready` (event
/// `promoted`), or to `review` when it left a review lane (UP §4; `promoted {status:
/// "review"}`). Returns the promoted ids. Holds the board lock: a promotion must not race a
/// link that adds an unfinished parent.
pub(crate) fn recompute_ready_tx(c: &Tx, now: i64) -> Result<Vec<String>> {
    c.lock_board()?;
    let ids = promotable_ids(c)?;
    let mut promoted = Vec::with_capacity(ids.len());
    for id in ids {
        // UP §4: a task that left a review lane resumes to review.
        let to = super::review::resume_status_tx(c, &id)?;
        let n = c.exec(
            "UPDATE tasks SET status=?2 WHERE id=?1 AND status='todo'",
            args![id, to.as_str()],
        )?;
        if n == 1 {
            let payload = if to == super::types::Status::Review {
                obj! {"status" => "review"}
            } else {
                obj! {}
            };
            add_event(c, &id, None, "promoted", payload, now)?;
            promoted.push(id);
        }
    }
    Ok(promoted)
}

/// `todo` tasks whose parents are all done or archived, by priority then age.
const PROMOTABLE: &str = "SELECT t.id FROM tasks t WHERE t.status = 'todo' AND NOT EXISTS (
        SELECT 1 FROM task_links l JOIN tasks p {hint} ON p.id = l.parent_id
        WHERE l.child_id = t.id AND p.status NOT IN ('done', 'archived'))
    ORDER BY t.priority DESC, t.created_at ASC";

/// The ids [`recompute_ready_tx`] would promote. Without statistics SQLite probes each parent
/// through the primary-key index and then the table; the covering index of migration 0003 makes
/// the probe index-only (2-3x faster at 100k tasks). It is named explicitly, with the plain
/// query as the fallback should the index be missing. `INDEXED BY` is a SQLite planner hint
/// (`sqlite_hint` on the transaction): PostgreSQL runs the plain query.
pub(crate) fn promotable_ids(c: &Tx) -> Result<Vec<String>> {
    static HINTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static PLAIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hint = c.sqlite_hint("INDEXED BY idx_tasks_id_status");
    if hint.is_empty() {
        return c.rows::<String>(
            PLAIN.get_or_init(|| PROMOTABLE.replace("{hint}", "")),
            args![],
        );
    }
    let hinted = HINTED.get_or_init(|| PROMOTABLE.replace("{hint}", hint));
    match c.rows::<String>(hinted, args![]) {
        Ok(ids) => Ok(ids),
        Err(_) => c.rows::<String>(
            PLAIN.get_or_init(|| PROMOTABLE.replace("{hint}", "")),
            args![],
        ),
    }
}

pub(crate) fn ids_query(c: &Tx, sql: &str, id: &str) -> Result<Vec<String>> {
    c.rows::<String>(sql, args![id])
}

pub(crate) fn parents_of(c: &Tx, id: &str) -> Result<Vec<String>> {
    ids_query(
        c,
        "SELECT parent_id FROM task_links WHERE child_id=?1 ORDER BY parent_id",
        id,
    )
}

pub(crate) fn children_of(c: &Tx, id: &str) -> Result<Vec<String>> {
    ids_query(
        c,
        "SELECT child_id FROM task_links WHERE parent_id=?1 ORDER BY child_id",
        id,
    )
}

impl Board {
    /// Add the edge `parent -> child` (the child waits for the parent). Refuses self-links,
    /// cycles and unknown ids. A `ready` child whose new parent is unfinished goes back to
    /// `todo`. Linking an existing edge is a no-op. Event `linked` on the child.
    pub fn link_tasks(&self, parent: &str, child: &str) -> Result<()> {
        let parent = v::task_id("parent_id", parent)?;
        let child = v::task_id("child_id", child)?;
        if parent == child {
            return Err(KernelError::SelfLink(parent));
        }
        let now = self.now();
        self.write(|c| {
            // The cycle check and the insert must see the same graph.
            c.lock_board()?;
            let p = load_task(c, &parent)?;
            let ch = c.lock_task(&child)?;
            if c.exists(
                "SELECT 1 FROM task_links WHERE parent_id=?1 AND child_id=?2",
                args![parent, child],
            )? {
                return Ok(());
            }
            let cycle = c.exists(
                "WITH RECURSIVE down(id) AS (
                     SELECT CAST(?1 AS TEXT) UNION SELECT l.child_id FROM task_links l JOIN down d \
                     ON l.parent_id = d.id)
                 SELECT 1 FROM down WHERE id = ?2",
                args![child, parent],
            )?;
            if cycle {
                return Err(KernelError::Cycle {
                    parent: parent.clone(),
                    child: child.clone(),
                });
            }
            c.exec(
                "INSERT INTO task_links (parent_id, child_id) VALUES (?1, ?2)",
                args![parent, child],
            )?;
            if ch.status == Status::Ready && !p.status.satisfies_children() {
                let gated = c.exec(
                    "UPDATE tasks SET status='todo' WHERE id=?1 AND status='ready'",
                    args![child],
                )?;
                if gated == 1 {
                    // Upstream says why the child went back to todo (UP §7).
                    add_event(
                        c,
                        &child,
                        None,
                        "dependency_wait",
                        obj! {"reason" => "parent_not_done", "demoted" => true, "parent" => parent},
                        now,
                    )?;
                }
            }
            add_event(
                c,
                &child,
                None,
                "linked",
                obj! {"parent" => parent, "child" => child},
                now,
            )?;
            super::notify::inherit_subs_tx(c, &child, std::slice::from_ref(&parent), now)?;
            Ok(())
        })
    }

    /// Remove the edge `parent -> child` (event `unlinked` on the child), then recompute
    /// readiness. Returns the ids promoted as a result.
    pub fn unlink_tasks(&self, parent: &str, child: &str) -> Result<Vec<String>> {
        let parent = v::task_id("parent_id", parent)?;
        let child = v::task_id("child_id", child)?;
        let now = self.now();
        self.write(|c| {
            c.lock_board()?;
            let n = c.exec(
                "DELETE FROM task_links WHERE parent_id=?1 AND child_id=?2",
                args![parent, child],
            )?;
            if n == 0 {
                load_task(c, &parent)?;
                load_task(c, &child)?;
                return Err(KernelError::NoSuchLink {
                    parent: parent.clone(),
                    child: child.clone(),
                });
            }
            add_event(
                c,
                &child,
                None,
                "unlinked",
                obj! {"parent" => parent, "child" => child},
                now,
            )?;
            recompute_ready_tx(c, now)
        })
    }

    /// Promote every `todo` task whose parents are all done or archived. Never touches
    /// `blocked` tasks (SPEC §3.3 fix 2). Returns the promoted ids. Reads first and takes the
    /// write lock only when something is promotable (readers such as `list` call this on every
    /// call; the write re-checks under the lock).
    pub fn recompute_ready(&self) -> Result<Vec<String>> {
        if self.read(promotable_ids)?.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        self.write(|c| recompute_ready_tx(c, now))
    }

    /// Parent ids of a task, sorted.
    pub fn parents(&self, task_id: &str) -> Result<Vec<String>> {
        self.read(|c| parents_of(c, task_id))
    }

    /// Child ids of a task, sorted.
    pub fn children(&self, task_id: &str) -> Result<Vec<String>> {
        self.read(|c| children_of(c, task_id))
    }

    /// Parents that are neither done nor archived, with their status, sorted by id — what holds
    /// the task back (`kanban_show`'s `unsatisfied_parents`, as Hermes ~0.22).
    pub fn unsatisfied_parents(
        &self,
        task_id: &str,
    ) -> Result<Vec<(String, super::types::Status)>> {
        self.read(|c| {
            let rows = c.rows::<(String, String)>(
                "SELECT t.id, t.status FROM task_links l JOIN tasks t ON t.id = l.parent_id
                 WHERE l.child_id = ?1 AND t.status NOT IN ('done', 'archived') ORDER BY t.id",
                args![task_id],
            )?;
            rows.into_iter()
                .map(|(id, s)| Ok((id, s.parse()?)))
                .collect()
        })
    }
}
