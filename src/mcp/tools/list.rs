//! `kanban_list` — its parameters and its body: list tasks on the board (orchestrators only),
//! highest priority first.

use super::*;

/// Task statuses for filters.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusParam {
    /// triage
    Triage,
    /// todo
    Todo,
    /// scheduled
    Scheduled,
    /// ready
    Ready,
    /// running
    Running,
    /// blocked
    Blocked,
    /// review
    Review,
    /// done
    Done,
    /// archived
    Archived,
}

/// `kanban_list` (orchestrators only).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListParams {
    /// Only this assignee.
    pub assignee: Option<String>,
    /// Only this status.
    pub status: Option<StatusParam>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Include archived tasks.
    pub include_archived: Option<BoolLike>,
    /// Page size (1-200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (omit for the first page).
    pub cursor: Option<String>,
    /// Row fields to return (id is always included), e.g. ["title", "status", "children"].
    pub fields: Option<StringList>,
    /// Return every row field instead of the compact ones.
    pub verbose: Option<BoolLike>,
    /// Board slug.
    pub board: Option<String>,
}

/// Every field a `kanban_list` row can carry (`fields` picks among them; `verbose` = all).
pub const LIST_FIELDS: &[&str] = &[
    "id",
    "title",
    "status",
    "assignee",
    "priority",
    "tenant",
    "parents",
    "children",
    "parent_count",
    "child_count",
    "workspace_kind",
    "workspace_path",
    "project_id",
    "created_by",
    "created_at",
    "started_at",
    "completed_at",
    "current_run_id",
    "model_override",
    "block_kind",
    "skills",
];
/// The default row of `kanban_list`.
pub const LIST_COMPACT: &[&str] = &[
    "id", "title", "status", "assignee", "priority", "tenant", "parents",
];

/// An opaque page cursor: the keyset position of the page's last task.
fn encode_cursor(k: crate::kernel::PageKey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1:{}:{}:{}", k.priority, k.created_at, k.rowid))
}

fn decode_cursor(c: &str) -> Option<crate::kernel::PageKey> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.strip_prefix("v1:")?.split(':');
    let k = crate::kernel::PageKey {
        priority: parts.next()?.parse().ok()?,
        created_at: parts.next()?.parse().ok()?,
        rowid: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(k)
}

/// The fields of a `kanban_list` row: `fields` (validated, `id` first), else all with
/// `verbose`, else the compact set.
fn pick_fields(
    fields: Option<StringList>,
    verbose: bool,
) -> Result<Vec<String>, Box<CallToolResult>> {
    let fields: Vec<String> = match fields.map(StringList::into_vec) {
        None if verbose => LIST_FIELDS.iter().map(|f| f.to_string()).collect(),
        None => LIST_COMPACT.iter().map(|f| f.to_string()).collect(),
        Some(v) => {
            let mut out = vec!["id".to_string()];
            for f in v.iter().flat_map(|f| f.split(',')).map(str::trim) {
                if f.is_empty() || out.iter().any(|o| o == f) {
                    continue;
                }
                if !LIST_FIELDS.contains(&f) {
                    return Err(Box::new(fail(format!(
                        "kanban_list: invalid fields: unknown field {f:?}; known fields: {}",
                        LIST_FIELDS.join(", ")
                    ))));
                }
                out.push(f.to_string());
            }
            out
        }
    };
    Ok(fields)
}

/// The kernel status a `status` filter names.
fn status_of(s: StatusParam) -> Status {
    match s {
        StatusParam::Triage => Status::Triage,
        StatusParam::Todo => Status::Todo,
        StatusParam::Scheduled => Status::Scheduled,
        StatusParam::Ready => Status::Ready,
        StatusParam::Running => Status::Running,
        StatusParam::Blocked => Status::Blocked,
        StatusParam::Review => Status::Review,
        StatusParam::Done => Status::Done,
        StatusParam::Archived => Status::Archived,
    }
}

/// One `kanban_list` row (the picked fields) and its text line.
fn list_row(
    b: &Board,
    t: &crate::kernel::Task,
    fields: &[String],
) -> Result<(Value, String), KernelError> {
    let parents = b.parents(&t.id)?;
    let needs_children = fields.iter().any(|f| f == "children" || f == "child_count");
    let children = if needs_children {
        b.children(&t.id)?
    } else {
        Vec::new()
    };
    let all = json!({
        "id": t.id, "title": t.title, "assignee": t.assignee, "status": t.status,
        "priority": t.priority, "tenant": t.tenant, "workspace_kind": t.workspace_kind,
        "workspace_path": t.workspace_path, "project_id": t.project_id,
        "created_by": t.created_by, "created_at": t.created_at, "started_at": t.started_at,
        "completed_at": t.completed_at, "current_run_id": t.current_run_id,
        "model_override": t.model_override, "parent_count": parents.len(),
        "child_count": children.len(), "parents": parents, "children": children,
        "block_kind": t.block_kind, "skills": t.skills,
    });
    let row: serde_json::Map<String, Value> = fields
        .iter()
        .filter_map(|f| all.get(f).map(|v| (f.clone(), v.clone())))
        .collect();
    let mut line = format!(
        "{} [{}] p{} {} — {}",
        t.id,
        t.status,
        t.priority,
        t.assignee.as_deref().unwrap_or("(unassigned)"),
        t.title
    );
    if !parents.is_empty() {
        line.push_str(&format!(" (after {})", parents.join(", ")));
    }
    Ok((lean(Value::Object(row)), line))
}

/// The `kanban_list` result: a header, one line per task and the next-page hint; the JSON
/// rows, count, limit, promotions and `next_cursor`.
fn list_reply(
    board: &str,
    rows: Vec<Value>,
    lines: &[String],
    next: Option<String>,
    promoted: usize,
    limit: i64,
) -> CallToolResult {
    let mut text = format!(
        "{} task(s) on board {board}{}",
        rows.len(),
        if promoted > 0 {
            format!(" ({promoted} promoted to ready)")
        } else {
            String::new()
        }
    );
    for l in lines {
        text.push('\n');
        text.push_str(l);
    }
    if let Some(c) = &next {
        text.push_str(&format!(
            "\nMore tasks: call kanban_list again with cursor={c}"
        ));
    }
    let mut v = json!({"tasks": rows, "count": rows.len(), "limit": limit, "promoted": promoted});
    if let Some(c) = next {
        v["next_cursor"] = json!(c);
    }
    reply(board, text, v)
}

/// A `kanban_list` call's parameters, checked: the kernel filter (one row more than `limit`,
/// to know whether a next page exists), the row fields and the page size.
fn list_request(p: ListParams) -> Result<(ListFilter, Vec<String>, i64), Box<CallToolResult>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Box::new(fail(format!(
            "kanban_list: invalid limit {limit}: use 1..=200"
        ))));
    }
    let flag = |b: &Option<BoolLike>, name: &str| {
        b.as_ref()
            .map(|b| b.get(name))
            .transpose()
            .map(|v| v.unwrap_or(false))
    };
    let include_archived = match flag(&p.include_archived, "include_archived") {
        Ok(v) => v,
        Err(e) => return Err(Box::new(fail(format!("kanban_list: {e}")))),
    };
    let verbose = match flag(&p.verbose, "verbose") {
        Ok(v) => v,
        Err(e) => return Err(Box::new(fail(format!("kanban_list: {e}")))),
    };
    let fields = pick_fields(p.fields, verbose)?;
    let after = match p.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match decode_cursor(c) {
            Some(k) => Some(k),
            None => {
                return Err(Box::new(fail(
                    "kanban_list: invalid cursor: pass the next_cursor of a previous \
                    kanban_list result unchanged (or omit it for the first page)",
                )));
            }
        },
    };
    let status = p.status.map(status_of);
    let filter = ListFilter {
        assignee: p.assignee,
        status,
        tenant: p.tenant,
        include_archived,
        limit: Some(limit as usize + 1),
        after,
        ..Default::default()
    };
    Ok((filter, fields, limit))
}

#[tool_router(router = list_router, vis = "pub(super)")]
impl KanbanMcp {
    /// List tasks on the board (orchestrators only), highest priority first. Recomputes
    /// readiness first. Returns compact rows (id, title, status, assignee, priority, tenant,
    /// parents); `verbose` or `fields` for more. Pages of `limit` (default 50): pass the
    /// result's `next_cursor` as `cursor` for the next page (absent on the last page).
    #[tool(annotations(title = "List tasks", read_only_hint = true, open_world_hint = false))]
    async fn kanban_list(
        &self,
        Extension(scope): Extension<Scope>,
        Parameters(p): Parameters<ListParams>,
    ) -> CallToolResult {
        if matches!(scope, Scope::Worker { .. }) {
            return fail(
                "kanban_list is orchestrator-only; workers read their own task with kanban_show",
            );
        }
        let board = p.board.clone();
        let (filter, fields, limit) = match list_request(p) {
            Ok(r) => r,
            Err(e) => return *e,
        };
        let r = self
            .on_board(&scope, &board, move |b| {
                let promoted = if b.write_fenced() {
                    0
                } else {
                    b.recompute_ready()?.len()
                };
                let mut tasks = b.list_tasks(&filter)?;
                let more = tasks.len() as i64 > limit;
                tasks.truncate(limit as usize);
                let next = match (more, tasks.last()) {
                    (true, Some(t)) => Some(encode_cursor(b.page_key(&t.id)?)),
                    _ => None,
                };
                let mut rows = Vec::new();
                let mut lines = Vec::new();
                for t in &tasks {
                    let (row, line) = list_row(b, t, &fields)?;
                    rows.push(row);
                    lines.push(line);
                }
                Ok((rows, lines, next, promoted))
            })
            .await;
        match r {
            Ok(((rows, lines, next, promoted), board)) => {
                list_reply(&board, rows, &lines, next, promoted, limit)
            }
            Err(e) => e,
        }
    }
}
