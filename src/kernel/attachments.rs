//! Attachments: the one write path for files attached to a task (safe leaf names, collision
//! suffixes, 25 MiB cap, row + `attached` event), plus list, lookup, reading the content and
//! removal (row + blob, `attachment_removed` event). Where the content lives is the kernel's
//! choice per board ([`Board::attachments_in_db`]): a file under the board's attachment root
//! (SQLite's default), or a row of `kanban_attachment_blobs` (migration 0009; the attachment's
//! `stored_path` is then `db:<id>`) so that every host sharing the board can serve it — always
//! on a server database, and on SQLite with `kanban.attachments: database` in config.yaml.
//! Each attachment is read from where it was stored, whatever the setting says now. File blobs
//! are never read or deleted outside the board's attachment root.

use std::path::{Path, PathBuf};

use super::board::{Board, add_event, load_task};
use super::error::{KernelError, Result};
use super::store::{FromRow, Row, Tx};
use super::types::{Attachment, lenient_i64, lenient_text};
use super::validate as v;
use crate::{args, obj};

/// The column list attachment queries select, in [`Attachment`]'s [`FromRow`] order.
pub(crate) const ATTACHMENT_COLUMNS: &str =
    "id, task_id, filename, stored_path, content_type, size, uploaded_by, created_at";

impl FromRow for Attachment {
    fn from_row(r: &Row<'_>) -> Result<Attachment> {
        Ok(Attachment {
            id: r.get(0)?,
            task_id: lenient_text(r, 1).unwrap_or_default(),
            filename: lenient_text(r, 2).unwrap_or_default(),
            stored_path: lenient_text(r, 3).unwrap_or_default(),
            content_type: lenient_text(r, 4),
            size: lenient_i64(r, 5).unwrap_or(0),
            uploaded_by: lenient_text(r, 6),
            created_at: lenient_i64(r, 7).unwrap_or(0),
        })
    }
}

/// Validate an attachment file name: a plain leaf (no `/`, `\`, control characters, leading
/// dot), 1-200 characters.
pub fn attachment_name(raw: &str) -> Result<String> {
    let t = raw.trim();
    let bad = t.is_empty()
        || t.contains('/')
        || t.contains('\\')
        || t.starts_with('.')
        || t.chars().any(char::is_control)
        || t.chars().count() > 200
        // File systems cap a name at 255 bytes; leave room for a " (n)" collision suffix.
        || t.len() > 240;
    if bad {
        return Err(KernelError::invalid(
            "filename",
            format!(
                "{:?} is not a plain file name: use 1-200 characters (at most 240 bytes) without \
                '/', '\\', control characters or a leading '.'",
                v::truncate(t, 80)
            ),
        ));
    }
    Ok(t.to_string())
}

/// The `stored_path` prefix of an attachment whose content is a `kanban_attachment_blobs` row.
pub(crate) const DB_PREFIX: &str = "db:";

/// The row of a new attachment.
struct NewAttachment<'a> {
    task_id: &'a str,
    filename: &'a str,
    content_type: Option<&'a str>,
    uploaded_by: Option<&'a str>,
    size: usize,
}

/// Insert an attachment row (`stored_path` as given) and its `attached` event; its id.
fn insert_attachment(c: &Tx, a: &NewAttachment<'_>, stored: &str, now: i64) -> Result<i64> {
    load_task(c, a.task_id)?;
    let id = c.insert_id(
        "INSERT INTO task_attachments (task_id, filename, stored_path, content_type, size, \
        uploaded_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        args![
            a.task_id,
            a.filename,
            stored,
            a.content_type,
            a.size as i64,
            a.uploaded_by,
            now
        ],
    )?;
    add_event(
        c,
        a.task_id,
        None,
        "attached",
        obj! {"filename" => a.filename, "size" => a.size, "by" => a.uploaded_by},
        now,
    )?;
    Ok(id)
}

fn with_suffix(name: &str, n: usize) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({n}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({n})"),
    }
}

/// The upload limit: 25 MiB.
fn check_size(bytes: &[u8]) -> Result<()> {
    if bytes.len() > v::ATTACHMENT_MAX_BYTES {
        return Err(KernelError::invalid(
            "content",
            format!(
                "is {} bytes; attachments are limited to {} bytes (25 MiB)",
                bytes.len(),
                v::ATTACHMENT_MAX_BYTES
            ),
        ));
    }
    Ok(())
}

/// `name`, or the first ` (n)` variant of it that `taken` does not report.
fn free_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    (0..10_000)
        .map(|n| match n {
            0 => name.to_string(),
            n => with_suffix(name, n),
        })
        .find(|n| !taken(n))
        .unwrap_or_else(|| with_suffix(name, 10_000))
}

/// Write `bytes` to a new file in `dir` named `name` or its first free ` (n)` variant, reserved
/// with `create_new` so concurrent uploads never overwrite each other. The name and path.
fn write_new_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(String, PathBuf)> {
    let mut n = 0;
    loop {
        let candidate = if n == 0 {
            name.to_string()
        } else {
            with_suffix(name, n)
        };
        let p = dir.join(&candidate);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(mut f) => {
                use std::io::Write;
                if let Err(e) = f.write_all(bytes).and_then(|_| f.sync_all()) {
                    let _ = std::fs::remove_file(&p);
                    return Err(KernelError::io(&p, e));
                }
                return Ok((candidate, p));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(e) => return Err(KernelError::io(&p, e)),
        }
    }
}

impl Board {
    /// Store `bytes` as an attachment of `task_id` and record it. A name already used on the
    /// task gets a ` (n)` suffix. Refuses files over 25 MiB and unsafe names.
    pub fn add_attachment(
        &self,
        task_id: &str,
        filename: &str,
        bytes: &[u8],
        content_type: Option<&str>,
        uploaded_by: Option<&str>,
    ) -> Result<Attachment> {
        let task_id = v::task_id("task_id", task_id)?;
        let name = attachment_name(filename)?;
        check_size(bytes)?;
        let content_type = v::short_name("content_type", content_type)?;
        let uploaded_by = v::short_name("uploaded_by", uploaded_by)?;
        self.get_task(&task_id)?;
        // Fenced before the blob is written, so a refused upload leaves no file behind.
        super::fence::check(self.env(), &self.paths().db)?;
        let upload = NewAttachment {
            task_id: &task_id,
            filename: &name,
            content_type: content_type.as_deref(),
            uploaded_by: uploaded_by.as_deref(),
            size: bytes.len(),
        };
        if self.attachments_in_db() {
            self.store_in_db(&upload, bytes)
        } else {
            self.store_as_file(&upload, bytes)
        }
    }

    /// The content as a `kanban_attachment_blobs` row (`stored_path` `db:<id>`), under the first
    /// name not used on the task; row, blob and event in one transaction.
    fn store_in_db(&self, upload: &NewAttachment<'_>, bytes: &[u8]) -> Result<Attachment> {
        let names = self.list_attachments(upload.task_id)?;
        let final_name = free_name(upload.filename, |n| names.iter().any(|a| a.filename == n));
        let meta = NewAttachment {
            filename: &final_name,
            ..*upload
        };
        let id = self.write(|c| {
            let id = insert_attachment(c, &meta, "db:", self.now())?;
            c.exec(
                "UPDATE task_attachments SET stored_path=?1 WHERE id=?2",
                args![format!("{DB_PREFIX}{id}"), id],
            )?;
            c.exec(
                "INSERT INTO kanban_attachment_blobs (attachment_id, content) VALUES (?1, ?2)",
                args![id, bytes],
            )?;
            Ok(id)
        })?;
        self.get_attachment(id)
    }

    /// The content as a file under the board's attachment root (`<root>/<task>/<name>`); the
    /// file is removed again when the row cannot be recorded.
    fn store_as_file(&self, upload: &NewAttachment<'_>, bytes: &[u8]) -> Result<Attachment> {
        let dir = self.paths().attachments.join(upload.task_id);
        std::fs::create_dir_all(&dir).map_err(|e| KernelError::io(&dir, e))?;
        let (final_name, path) = write_new_file(&dir, upload.filename, bytes)?;
        let stored = path.to_string_lossy().into_owned();
        let meta = NewAttachment {
            filename: &final_name,
            ..*upload
        };
        let res = self.write(|c| insert_attachment(c, &meta, &stored, self.now()));
        match res {
            Ok(id) => self.get_attachment(id),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Attachments of a task, oldest first.
    pub fn list_attachments(&self, task_id: &str) -> Result<Vec<Attachment>> {
        self.tx().rows(
            &format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM task_attachments WHERE task_id=?1 ORDER BY \
                created_at, id"
            ),
            args![task_id],
        )
    }

    /// One attachment by id.
    pub fn get_attachment(&self, id: i64) -> Result<Attachment> {
        self.tx()
            .row(
                &format!("SELECT {ATTACHMENT_COLUMNS} FROM task_attachments WHERE id=?1"),
                args![id],
            )?
            .ok_or(KernelError::AttachmentNotFound(id))
    }

    /// The blob path of an attachment, only if it lies inside this board's attachment root.
    pub fn attachment_blob_path(&self, a: &Attachment) -> Option<PathBuf> {
        let root = std::fs::canonicalize(&self.paths().attachments).ok()?;
        let p = std::fs::canonicalize(Path::new(&a.stored_path)).ok()?;
        p.starts_with(&root).then_some(p)
    }

    /// Whether this board keeps new attachments' content in the database (so any host can
    /// serve it) rather than as files under its attachment root: always on PostgreSQL; on
    /// SQLite only with `kanban.attachments: database` in `$HERMES_HOME/config.yaml` (default
    /// `files`).
    pub fn attachments_in_db(&self) -> bool {
        if self.is_postgres() {
            return true;
        }
        let path = super::paths::hermes_root(self.env()).join("config.yaml");
        let Ok(text) = std::fs::read_to_string(path) else {
            return false;
        };
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_default();
        doc.get("kanban")
            .and_then(|k| k.get("attachments"))
            .and_then(serde_yaml::Value::as_str)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("database"))
    }

    /// The content of an attachment, from wherever it was stored: its database row, or its
    /// file inside this board's attachment root. `None` when the content is gone (a missing
    /// file, a path outside the root).
    pub fn attachment_content(&self, a: &Attachment) -> Result<Option<Vec<u8>>> {
        if a.stored_path.starts_with(DB_PREFIX) {
            return self.read(|c| {
                c.row(
                    "SELECT content FROM kanban_attachment_blobs WHERE attachment_id=?1",
                    args![a.id],
                )
            });
        }
        let Some(p) = self.attachment_blob_path(a) else {
            return Ok(None);
        };
        std::fs::read(&p)
            .map(Some)
            .map_err(|e| KernelError::io(&p, e))
    }

    /// Delete an attachment row and its blob (its database row in the same transaction; a file
    /// only if inside the attachment root).
    pub fn remove_attachment(&self, id: i64) -> Result<Attachment> {
        let a = self.get_attachment(id)?;
        let now = self.now();
        self.write(|c| {
            c.exec(
                "DELETE FROM kanban_attachment_blobs WHERE attachment_id=?1",
                args![id],
            )?;
            let n = c.exec("DELETE FROM task_attachments WHERE id=?1", args![id])?;
            if n != 1 {
                return Err(KernelError::AttachmentNotFound(id));
            }
            add_event(
                c,
                &a.task_id,
                None,
                "attachment_removed",
                obj! {"filename" => a.filename},
                now,
            )?;
            Ok(())
        })?;
        if let Some(p) = self.attachment_blob_path(&a) {
            let _ = std::fs::remove_file(p);
        }
        Ok(a)
    }
}
