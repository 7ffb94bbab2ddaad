//! Attachment verbs: `attach` (size and name checks before reading the file, MIME type
//! guessed from the extension), `attachments`, `attach-rm`.

use clap::Args;

use super::output::print_json;
use super::{CliError, Ctx};

/// `attach` arguments.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Task id.
    pub id: String,
    /// File to attach.
    pub path: std::path::PathBuf,
    /// MIME type (default: guessed from the extension).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Stored file name (default: the file's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Uploader (default: your profile or `user`).
    #[arg(long)]
    pub author: Option<String>,
}

/// A MIME type guessed from a file extension.
pub(crate) fn guess_content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "json" => "application/json",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "yaml" | "yml" => "application/yaml",
        _ => "application/octet-stream",
    }
}

pub(crate) fn attach(ctx: &Ctx, a: &AttachArgs) -> Result<(), CliError> {
    let meta = std::fs::metadata(&a.path)
        .map_err(|e| CliError::Failed(format!("{}: {e}", a.path.display())))?;
    if meta.len() > crate::kernel::validate::ATTACHMENT_MAX_BYTES as u64 {
        return Err(CliError::Failed(format!(
            "cannot attach {} to {}: it is {} bytes and attachments are limited to 25 MiB; attach \
            a smaller file or mention where it lives in a comment",
            a.path.display(),
            a.id,
            meta.len()
        )));
    }
    if let Some(n) = &a.name {
        crate::kernel::attachment_name(n).map_err(|_| {
            CliError::Failed(format!(
                "invalid --name {:?}: give a plain file name like report.pdf (no '/', '\\', \
                control characters or leading '.')",
                crate::kernel::validate::truncate(n, 80)
            ))
        })?;
    }
    let bytes = std::fs::read(&a.path)
        .map_err(|e| CliError::Failed(format!("{}: {e}", a.path.display())))?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => a
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                CliError::Failed(format!(
                    "{} has no file name; pass --name",
                    a.path.display()
                ))
            })?,
    };
    let ct = a
        .content_type
        .clone()
        .unwrap_or_else(|| guess_content_type(&name).to_string());
    let b = ctx.open()?;
    let author = a.author.clone().unwrap_or_else(|| ctx.author());
    let att = b.add_attachment(&a.id, &name, &bytes, Some(&ct), Some(&author))?;
    println!(
        "Attached {} to {} (id {}, {} bytes) → {}",
        att.filename, att.task_id, att.id, att.size, att.stored_path
    );
    Ok(())
}

pub(crate) fn attachments(ctx: &Ctx, a: &IdJsonArgs) -> Result<(), CliError> {
    let b = ctx.open_read()?;
    b.get_task(&a.id)?;
    let list = b.list_attachments(&a.id)?;
    if a.json {
        print_json(&list);
        return Ok(());
    }
    if list.is_empty() {
        println!("(no attachments on {})", a.id);
    }
    for x in &list {
        println!(
            "{:<5} {:<32} {:>10}  {}  {}",
            x.id,
            x.filename,
            x.size,
            x.content_type.as_deref().unwrap_or("-"),
            x.stored_path
        );
    }
    Ok(())
}

/// `attach-rm` arguments.
#[derive(Debug, Args)]
pub struct AttachRmArgs {
    /// Attachment id (see `attachments <task>`).
    pub attachment_id: i64,
}

pub(crate) fn attach_rm(ctx: &Ctx, a: &AttachRmArgs) -> Result<(), CliError> {
    let b = ctx.open()?;
    let x = b.remove_attachment(a.attachment_id)?;
    println!(
        "Removed attachment {} ({}) from {}",
        x.id, x.filename, x.task_id
    );
    Ok(())
}

/// A task id and `--json`.
#[derive(Debug, Args)]
pub struct IdJsonArgs {
    /// Task id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
