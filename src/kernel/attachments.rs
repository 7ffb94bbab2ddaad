//! Attachments: the one write path for files attached to a task (safe leaf names, collision
//! suffixes, 25 MiB cap, blob under the board's attachment root, row + `attached` event), plus
//! list, lookup and removal (row + blob, `attachment_removed` event). Blobs are never read or
//! deleted outside the board's attachment root.

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

fn with_suffix(name: &str, n: usize) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({n}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({n})"),
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
        let content_type = v::short_name("content_type", content_type)?;
        let uploaded_by = v::short_name("uploaded_by", uploaded_by)?;
        self.get_task(&task_id)?;
        // Fenced before the blob is written, so a refused upload leaves no file behind.
        super::fence::check(self.env(), &self.paths().db)?;
        let dir = self.paths().attachments.join(&task_id);
        std::fs::create_dir_all(&dir).map_err(|e| KernelError::io(&dir, e))?;
        // Reserve a unique file name with create_new so concurrent uploads never overwrite.
        let mut n = 0;
        let (final_name, path) = loop {
            let candidate = if n == 0 {
                name.clone()
            } else {
                with_suffix(&name, n)
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
                    break (candidate, p);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                Err(e) => return Err(KernelError::io(&p, e)),
            }
        };
        let now = self.now();
        let stored = path.to_string_lossy().into_owned();
        let res = self.write(|c| {
            load_task(c, &task_id)?;
            let id = c.insert_id(
                "INSERT INTO task_attachments (task_id, filename, stored_path, content_type, size, \
                uploaded_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                args![task_id, final_name, stored, content_type, bytes.len() as i64, uploaded_by,
                    now],
            )?;
            add_event(
                c,
                &task_id,
                None,
                "attached",
                obj! {
                    "filename" => final_name, "size" => bytes.len(), "by" => uploaded_by,
                },
                now,
            )?;
            Ok(id)
        });
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
        Tx::sqlite(self.read_conn()).rows(
            &format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM task_attachments WHERE task_id=?1 ORDER BY \
                created_at, id"
            ),
            args![task_id],
        )
    }

    /// One attachment by id.
    pub fn get_attachment(&self, id: i64) -> Result<Attachment> {
        Tx::sqlite(self.read_conn())
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

    /// Delete an attachment row and its blob (the blob only if inside the attachment root).
    pub fn remove_attachment(&self, id: i64) -> Result<Attachment> {
        let a = self.get_attachment(id)?;
        let now = self.now();
        self.write(|c| {
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
