//! Creating tasks: validation and normalisation of a [`NewTask`] (no database access), then
//! one insert inside the caller's write transaction — the idempotency lookup, parents, the
//! initial status, the row, its links and the `created` (and `blocked`) events.

use serde_json::{Value, json};

use super::{Created, InitialStatus, NewTask, query_tasks};
use crate::kernel::board::{Board, add_event, load_task};
use crate::kernel::error::{KernelError, Result};
use crate::kernel::store::Tx;
use crate::kernel::types::{Status, WorkspaceKind};
use crate::kernel::validate as v;
use crate::{args, obj};

impl Board {
    /// Create a task (REF §5.1 with SPEC fixes): validates every field, resolves the initial
    /// status (`blocked` if asked, `triage` if asked, else `ready` or `todo` when a parent is
    /// neither done nor archived), and — when an idempotency key is given — returns the newest
    /// non-archived task with that key instead, the lookup and insert sharing one transaction.
    pub fn create_task(&self, new: NewTask) -> Result<Created> {
        let p = self.prepare_task(new)?;
        let now = self.now();
        self.write(|c| insert_task_tx(c, &p, now))
    }

    /// Validate and normalise a [`NewTask`] (everything that needs no database access).
    pub(crate) fn prepare_task(&self, new: NewTask) -> Result<PreparedTask> {
        let title = v::title(&new.title)?;
        let body = v::optional_text("body", new.body.as_deref(), v::BODY_MAX_BYTES)?;
        let assignee = v::profile_name("assignee", new.assignee.as_deref())?;
        let tenant = v::short_name("tenant", new.tenant.as_deref())?;
        let key = v::short_name("idempotency_key", new.idempotency_key.as_deref())?;
        let created_by = v::short_name("created_by", new.created_by.as_deref())?;
        let session_id = v::short_name("session_id", new.session_id.as_deref())?;
        let project_id = v::short_name("project_id", new.project_id.as_deref())?;
        let priority = v::in_range("priority", new.priority, v::PRIORITY_RANGE)?;
        let completion_contract = v::completion_contract(new.completion_contract.as_deref())?;
        let max_runtime = new
            .max_runtime_seconds
            .map(|s| v::in_range("max_runtime_seconds", s, v::MAX_RUNTIME_RANGE))
            .transpose()?;
        let max_retries = new
            .max_retries
            .map(|n| v::in_range("max_retries", n, 1..=1000))
            .transpose()?;
        let goal_max_turns = new
            .goal_max_turns
            .map(|n| v::in_range("goal_max_turns", n, 1..=10_000))
            .transpose()?;
        let skills = v::skills(&new.skills)?;
        let model = v::model_word("model_override", new.model_override.as_deref())?;
        let provider = v::model_word("provider_override", new.provider_override.as_deref())?;
        if provider.is_some() && model.is_none() {
            return Err(KernelError::invalid(
                "provider_override",
                "a provider needs a model (pass --model too); Hermes only takes --provider with -m",
            ));
        }
        let reasoning = v::reasoning_effort("reasoning_effort", new.reasoning_effort.as_deref())?;
        let (kind, branch, workspace_path) = self.workspace_of(&new)?;
        let mut parents: Vec<String> = Vec::new();
        for p in &new.parents {
            let p = v::task_id("parents", p)?;
            if !parents.contains(&p) {
                parents.push(p);
            }
        }
        let creator = self
            .env()
            .get("HERMES_KANBAN_TASK")
            .and_then(|t| v::task_id("HERMES_KANBAN_TASK", t).ok());
        Ok(PreparedTask {
            creator,
            completion_contract,
            title,
            body,
            assignee,
            tenant,
            key,
            created_by,
            session_id,
            project_id,
            priority,
            max_runtime,
            max_retries,
            goal_max_turns,
            skills,
            kind,
            branch,
            workspace_path,
            parents,
            initial_status: new.initial_status,
            triage: new.triage,
            goal_mode: new.goal_mode,
            model,
            provider,
            reasoning,
        })
    }

    /// The workspace kind, branch and path of a new task: a branch only with a worktree, an
    /// absolute path only, and the board's `default_workdir` for a non-scratch task without one.
    fn workspace_of(
        &self,
        new: &NewTask,
    ) -> Result<(WorkspaceKind, Option<String>, Option<String>)> {
        let kind = new.workspace_kind.unwrap_or(WorkspaceKind::Scratch);
        let branch = v::optional_text("branch_name", new.branch_name.as_deref(), 200)?;
        if let Some(b) = &branch {
            if kind != WorkspaceKind::Worktree {
                return Err(KernelError::invalid(
                    "branch_name",
                    "a branch is only allowed with a worktree workspace (--workspace worktree)",
                ));
            }
            if b.starts_with('-') || b.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(KernelError::invalid(
                    "branch_name",
                    format!("{b:?}: branch names cannot start with '-' or contain whitespace"),
                ));
            }
        }
        let mut workspace_path =
            v::optional_text("workspace_path", new.workspace_path.as_deref(), 4096)?;
        if let Some(p) = &workspace_path
            && !std::path::Path::new(p).is_absolute()
        {
            return Err(KernelError::invalid(
                "workspace_path",
                format!("{p:?} is relative; give an absolute path"),
            ));
        }
        if workspace_path.is_none() && kind != WorkspaceKind::Scratch {
            workspace_path = self.board_default_workdir();
        }
        Ok((kind, branch, workspace_path))
    }

    fn board_default_workdir(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.paths().meta).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v.get("default_workdir")?
            .as_str()
            .filter(|s| std::path::Path::new(s).is_absolute())
            .map(str::to_string)
    }
}

/// A validated [`NewTask`], ready to insert.
#[derive(Debug, Clone)]
pub(crate) struct PreparedTask {
    pub(crate) title: String,
    pub(crate) body: Option<String>,
    pub(crate) assignee: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) created_by: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) priority: i64,
    pub(crate) max_runtime: Option<i64>,
    pub(crate) max_retries: Option<i64>,
    pub(crate) goal_max_turns: Option<i64>,
    pub(crate) skills: Vec<String>,
    pub(crate) kind: WorkspaceKind,
    pub(crate) branch: Option<String>,
    pub(crate) workspace_path: Option<String>,
    pub(crate) parents: Vec<String>,
    pub(crate) initial_status: InitialStatus,
    pub(crate) triage: bool,
    pub(crate) goal_mode: bool,
    pub(crate) model: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) reasoning: Option<String>,
    pub(crate) completion_contract: Option<String>,
    /// The task whose worker is creating this one (`HERMES_KANBAN_TASK` in a worker's
    /// environment): recorded as `creator_task_id` and the source of inherited session and
    /// notify subscriptions, as upstream does (UP §7, §10).
    pub(crate) creator: Option<String>,
}

/// Insert a prepared task inside the caller's write transaction (idempotency lookup included).
pub(crate) fn insert_task_tx(c: &Tx, p: &PreparedTask, now: i64) -> Result<Created> {
    let creator = match &p.creator {
        Some(t) => c.row::<String>("SELECT id FROM tasks WHERE id=?1", args![t])?,
        None => None,
    };
    if let Some(k) = &p.key {
        // Lookup then insert: two writers with the same key must not both miss the lookup.
        // `idempotency_key` has no unique index (Hermes' schema allows duplicates, and a shared
        // board may already hold some), so the board lock serialises the pair: a no-op under
        // SQLite's single writer (`BEGIN IMMEDIATE`), an advisory lock on other backends.
        c.lock_board()?;
        let existing = query_tasks(
            c,
            "WHERE idempotency_key=?1 AND status!='archived'
             ORDER BY created_at DESC, _seq_ DESC LIMIT 1",
            &[json!(k)],
        )?;
        if let Some(task) = existing.into_iter().next() {
            return Ok(Created {
                task,
                existing: true,
            });
        }
    }
    for parent in &p.parents {
        load_task(c, parent).map_err(|_| {
            KernelError::invalid("parents", format!("unknown parent task {parent}"))
        })?;
    }
    let tenant = match &p.tenant {
        Some(t) => Some(t.clone()),
        None => inherited_tenant(c, &p.parents)?,
    };
    let status = if p.initial_status == InitialStatus::Blocked {
        Status::Blocked
    } else if p.triage {
        Status::Triage
    } else if parents_satisfied_list(c, &p.parents)? {
        Status::Ready
    } else {
        Status::Todo
    };
    let id = insert_row(c, p, &tenant, status, now)?;
    for parent in &p.parents {
        c.exec(
            "INSERT INTO task_links (parent_id, child_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![parent, id],
        )?;
    }
    add_created_events(c, p, &id, status, (&creator, &tenant), now)?;
    inherit_from_creator_and_parents(c, p, &id, status, &creator, now)?;
    Ok(Created {
        task: load_task(c, &id)?,
        existing: false,
    })
}

/// Insert the `tasks` row under a fresh random id (a colliding id is retried twice with new
/// ones) and return the id.
fn insert_row(
    c: &Tx,
    p: &PreparedTask,
    tenant: &Option<String>,
    status: Status,
    now: i64,
) -> Result<String> {
    let skills_json = if p.skills.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&p.skills)?)
    };
    for _ in 0..3 {
        let id = new_task_id();
        let n = c.exec(
            "INSERT INTO tasks (id, title, body, assignee, status, priority, created_by, created_at,
                workspace_kind, workspace_path, branch_name, project_id, tenant, idempotency_key,
                max_runtime_seconds, skills, max_retries, goal_mode, goal_max_turns, session_id,
                model_override, provider_override, reasoning_effort, completion_contract)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,
                     ?22,?23,?24)
             ON CONFLICT DO NOTHING",
            args![
                id,
                p.title,
                p.body,
                p.assignee,
                status.as_str(),
                p.priority,
                p.created_by,
                now,
                p.kind.as_str(),
                p.workspace_path,
                p.branch,
                p.project_id,
                tenant,
                p.key,
                p.max_runtime,
                skills_json,
                p.max_retries,
                p.goal_mode,
                p.goal_max_turns,
                p.session_id,
                p.model,
                p.provider,
                p.reasoning,
                p.completion_contract
            ],
        )?;
        if n == 1 {
            return Ok(id);
        }
    }
    Err(KernelError::Storage(
        "could not allocate a task id: three random ids collided; try again".into(),
    ))
}

/// The `created` event (and, for a task born blocked, its `blocked` event).
fn add_created_events(
    c: &Tx,
    p: &PreparedTask,
    id: &str,
    status: Status,
    (creator, tenant): (&Option<String>, &Option<String>),
    now: i64,
) -> Result<()> {
    // Upstream's payload (UP §7): 0.19.0's keys plus creator, workspace and model fields.
    let mut created = obj! {
        "assignee" => p.assignee,
        "status" => status.as_str(),
        "parents" => p.parents,
        "creator_task_id" => creator,
        "tenant" => tenant,
        "workspace_kind" => p.kind.as_str(),
        "workspace_path" => p.workspace_path,
        "branch_name" => p.branch,
        "project_id" => p.project_id,
        "skills" => if p.skills.is_empty() { Value::Null } else { json!(p.skills) },
        "goal_mode" => if p.goal_mode { json!(true) } else { Value::Null },
        "model_override" => p.model,
        "provider_override" => p.provider,
    };
    if p.reasoning.is_some() {
        created.insert("reasoning_effort".into(), json!(p.reasoning));
    }
    add_event(c, id, None, "created", created, now)?;
    if status == Status::Blocked {
        // A `blocked` event makes Hermes' recompute (0.19.0 and ~0.22) treat the block as
        // sticky too, so a Python reader on the same DB does not resurrect it. The payload is
        // upstream's (UP §6).
        add_event(
            c,
            id,
            None,
            "blocked",
            obj! {"reason" => "initial_status", "status" => "blocked", "actor" => p.created_by},
            now,
        )?;
    }
    Ok(())
}

/// A child without a tenant takes its first parent's (in the order given), as upstream's
/// `initial_task_state` does; an explicit tenant wins (the caller checks).
fn inherited_tenant(c: &Tx, parents: &[String]) -> Result<Option<String>> {
    for p in parents {
        let t = c.row::<Option<String>>("SELECT tenant FROM tasks WHERE id=?1", args![p])?;
        if let Some(Some(t)) = t.filter(|t| t.as_deref().is_some_and(|s| !s.is_empty())) {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// After the insert: `dependency_wait` for a child parked behind an open parent, the
/// creator's session, and the creator's and parents' notify subscriptions (UP §7, §10).
fn inherit_from_creator_and_parents(
    c: &Tx,
    p: &PreparedTask,
    id: &str,
    status: Status,
    creator: &Option<String>,
    now: i64,
) -> Result<()> {
    if status == Status::Todo {
        // Parked behind an open parent: say why, as upstream does (UP §7 `dependency_wait`).
        if let Some(gate) = first_open_parent(c, &p.parents)? {
            add_event(
                c,
                id,
                None,
                "dependency_wait",
                obj! {"reason" => "parent_not_done", "parent" => gate},
                now,
            )?;
        }
    }
    if let Some(creator) = creator {
        c.exec(
            "UPDATE tasks SET session_id = COALESCE(session_id,
                 (SELECT session_id FROM tasks WHERE id = ?1)) WHERE id = ?2",
            args![creator, id],
        )?;
        crate::kernel::notify::inherit_subs_tx(c, id, std::slice::from_ref(creator), now)?;
    }
    crate::kernel::notify::inherit_subs_tx(c, id, &p.parents, now)?;
    Ok(())
}

/// The first of `parents` (in the given order) that is neither done nor archived.
pub(crate) fn first_open_parent(c: &Tx, parents: &[String]) -> Result<Option<String>> {
    for p in parents {
        let open = c.exists(
            "SELECT 1 FROM tasks WHERE id=?1 AND status NOT IN ('done','archived')",
            args![p],
        )?;
        if open {
            return Ok(Some(p.clone()));
        }
    }
    Ok(None)
}

fn new_task_id() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source is available");
    format!("t_{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

fn parents_satisfied_list(c: &Tx, parents: &[String]) -> Result<bool> {
    for p in parents {
        let t = load_task(c, p)?;
        if !t.status.satisfies_children() {
            return Ok(false);
        }
    }
    Ok(true)
}
