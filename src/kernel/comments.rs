//! Comments on a task: add (author and body required, event `commented`) and list.

use super::board::{Board, add_event, load_task};
use super::error::Result;
use super::store::Tx;
use super::types::Comment;
use super::types::{lenient_i64, lenient_text};
use super::validate as v;
use crate::{args, obj};

pub(crate) fn add_comment_tx(
    c: &Tx,
    task_id: &str,
    author: &str,
    body: &str,
    now: i64,
) -> Result<i64> {
    let id = c.insert_id(
        "INSERT INTO task_comments (task_id, author, body, created_at) VALUES (?1, ?2, ?3, ?4)
         RETURNING id",
        args![task_id, author, body, now],
    )?;
    add_event(
        c,
        task_id,
        None,
        "commented",
        obj! {"author" => author, "len" => body.chars().count()},
        now,
    )?;
    Ok(id)
}

pub(crate) fn list_comments_tx(c: &Tx, task_id: &str) -> Result<Vec<Comment>> {
    c.map(
        "SELECT id, task_id, author, body, created_at FROM task_comments
         WHERE task_id=?1 ORDER BY created_at, id",
        args![task_id],
        |r| {
            Ok(Comment {
                id: r.get(0)?,
                task_id: r.get(1)?,
                author: lenient_text(r, 2).unwrap_or_default(),
                body: lenient_text(r, 3).unwrap_or_default(),
                created_at: lenient_i64(r, 4).unwrap_or(0),
            })
        },
    )
}

impl Board {
    /// Add a comment (author and body trimmed, both required). Returns the comment id.
    pub fn add_comment(&self, task_id: &str, author: &str, body: &str) -> Result<i64> {
        let author = v::required_text("author", author, v::NAME_MAX_CHARS)?;
        // The author is rendered inline in the worker context; no line breaks or escapes.
        v::short_name("author", Some(&author))?;
        let body = v::required_text("body", body, v::COMMENT_MAX_BYTES)?;
        let now = self.now();
        self.write(|c| {
            load_task(c, task_id)?;
            add_comment_tx(c, task_id, &author, &body, now)
        })
    }

    /// Comments of a task, oldest first.
    pub fn list_comments(&self, task_id: &str) -> Result<Vec<Comment>> {
        self.read(|c| list_comments_tx(c, task_id))
    }
}
