//! The CLI listing's rows: `list` decodes only the columns it prints — [`TaskLine`] for the
//! text lines, [`TaskDict`] for `--json` (Hermes' task dict, REF §15.3) — instead of every
//! task column, with the same filters, order and lenient reading as [`Board::list_tasks`].

use serde::Serialize;

use super::board::Board;
use super::error::Result;
use super::store::{FromRow, Row, Tx, arg_refs};
use super::tasks::{ListFilter, list_tail};
use super::types::{Status, lenient_i64, lenient_text, skills_cell, status_cell, text_key};

/// What a text `list` line shows of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLine {
    pub id: String,
    pub status: Status,
    pub assignee: Option<String>,
    pub tenant: Option<String>,
    pub title: String,
}

const LINE_COLUMNS: &str = "id, status, assignee, tenant, title";

impl FromRow for TaskLine {
    fn from_row(r: &Row<'_>) -> Result<TaskLine> {
        Ok(TaskLine {
            id: text_key(r, 0)?,
            status: status_cell(r, 1),
            assignee: lenient_text(r, 2),
            tenant: lenient_text(r, 3),
            title: lenient_text(r, 4).unwrap_or_default(),
        })
    }
}

/// The task dict of `hermes kanban … --json` (REF §15.3): the keys and order of
/// [`Task::to_hermes_json`](super::Task::to_hermes_json), serialised as it is (a test compares
/// the two byte for byte).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDict {
    pub id: String,
    pub title: String,
    pub body: Option<String>,
    pub assignee: Option<String>,
    pub status: Status,
    pub priority: i64,
    pub tenant: Option<String>,
    pub workspace_kind: String,
    pub workspace_path: Option<String>,
    pub branch_name: Option<String>,
    pub project_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub result: Option<String>,
    pub skills: Vec<String>,
    pub max_retries: Option<i64>,
    pub session_id: Option<String>,
    pub workflow_template_id: Option<String>,
    pub current_step_key: Option<String>,
}

const DICT_COLUMNS: &str = "id, title, body, assignee, status, priority, tenant, workspace_kind, \
    workspace_path, branch_name, project_id, created_by, created_at, started_at, completed_at, \
    result, skills, max_retries, session_id, workflow_template_id, current_step_key";

impl FromRow for TaskDict {
    fn from_row(r: &Row<'_>) -> Result<TaskDict> {
        Ok(TaskDict {
            id: text_key(r, 0)?,
            title: lenient_text(r, 1).unwrap_or_default(),
            body: lenient_text(r, 2),
            assignee: lenient_text(r, 3),
            status: status_cell(r, 4),
            priority: lenient_i64(r, 5).unwrap_or(0),
            tenant: lenient_text(r, 6),
            workspace_kind: lenient_text(r, 7).unwrap_or_else(|| "scratch".into()),
            workspace_path: lenient_text(r, 8),
            branch_name: lenient_text(r, 9),
            project_id: lenient_text(r, 10),
            created_by: lenient_text(r, 11),
            created_at: lenient_i64(r, 12).unwrap_or(0),
            started_at: lenient_i64(r, 13),
            completed_at: lenient_i64(r, 14),
            result: lenient_text(r, 15),
            skills: skills_cell(r, 16),
            max_retries: lenient_i64(r, 17),
            session_id: lenient_text(r, 18),
            workflow_template_id: lenient_text(r, 19),
            current_step_key: lenient_text(r, 20),
        })
    }
}

impl Board {
    /// [`Board::list_tasks`] reading only what a text `list` line prints.
    pub fn list_task_lines(&self, f: &ListFilter) -> Result<Vec<TaskLine>> {
        self.list_columns(LINE_COLUMNS, f)
    }

    /// [`Board::list_tasks`] reading only Hermes' task dict (`list --json`).
    pub fn list_task_dicts(&self, f: &ListFilter) -> Result<Vec<TaskDict>> {
        self.list_columns(DICT_COLUMNS, f)
    }

    fn list_columns<T: FromRow>(&self, columns: &str, f: &ListFilter) -> Result<Vec<T>> {
        let (tail, args) = list_tail(f)?;
        let sql = format!("SELECT {columns} FROM tasks {tail}");
        Tx::sqlite(&self.conn).rows(&sql, &arg_refs(&args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{NewTask, TaskSort};

    /// A board whose rows exercise every listed column, odd values included (malformed skills,
    /// numeric text and a real in integer columns, an unknown status).
    fn board() -> (tempfile::TempDir, Board) {
        let dir = tempfile::tempdir().unwrap();
        let b = Board::open_file(&dir.path().join("kanban.db")).unwrap();
        b.create_task(NewTask {
            title: "A \"quoted\" title ✓".into(),
            ..Default::default()
        })
        .unwrap();
        let full = b
            .create_task(NewTask {
                title: "Full".into(),
                body: Some("line 1\nline 2".into()),
                assignee: Some("coder".into()),
                tenant: Some("acme".into()),
                project_id: Some("p1".into()),
                skills: vec!["rust".into(), "sql".into()],
                max_retries: Some(3),
                session_id: Some("s".into()),
                created_by: Some("user".into()),
                ..Default::default()
            })
            .unwrap()
            .task;
        b.write(|c| {
            c.exec(
                "UPDATE tasks SET started_at='5', completed_at=9.5, result='done — ok', \
                workspace_path='/tmp/w', branch_name='feat/x', workflow_template_id='wf', \
                current_step_key='step' WHERE id=?1",
                crate::args![full.id],
            )
        })
        .unwrap();
        let odd = b
            .create_task(NewTask {
                title: "odd".into(),
                ..Default::default()
            })
            .unwrap()
            .task;
        b.write(|c| {
            c.exec(
                "UPDATE tasks SET skills='not json', status='bogus', \
                priority='7' WHERE id=?1",
                crate::args![odd.id],
            )
        })
        .unwrap();
        (dir, b)
    }

    /// The narrow rows hold exactly what the full rows give for the printed fields, in the
    /// same order, for every filter shape the listing has (so no column can go missing or be
    /// read differently).
    #[test]
    fn narrow_rows_match_the_full_task_rows() {
        let (_dir, b) = board();
        let filters = [
            ListFilter::default(),
            ListFilter {
                include_archived: true,
                sort: TaskSort::Title,
                ..Default::default()
            },
            ListFilter {
                assignee: Some("coder".into()),
                ..Default::default()
            },
            ListFilter {
                limit: Some(1),
                sort: TaskSort::CreatedDesc,
                ..Default::default()
            },
        ];
        for f in &filters {
            let full = b.list_tasks(f).unwrap();
            assert!(!full.is_empty());
            let dicts = b.list_task_dicts(f).unwrap();
            let expected: Vec<_> = full.iter().map(|t| t.to_hermes_json()).collect();
            assert_eq!(
                serde_json::to_value(&dicts).unwrap(),
                serde_json::json!(expected)
            );
            assert_eq!(
                serde_json::to_string_pretty(&dicts).unwrap(),
                serde_json::to_string_pretty(&expected).unwrap()
            );
            let lines = b.list_task_lines(f).unwrap();
            let expected: Vec<TaskLine> = full
                .iter()
                .map(|t| TaskLine {
                    id: t.id.clone(),
                    status: t.status,
                    assignee: t.assignee.clone(),
                    tenant: t.tenant.clone(),
                    title: t.title.clone(),
                })
                .collect();
            assert_eq!(lines, expected);
        }
    }
}
