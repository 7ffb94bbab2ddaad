//! Board metadata edits from the dashboard: a board's `board.json` (name, description, icon,
//! colour, default workdir), checked field by field; no SQL.

use crate::kernel::env::Env;
use crate::kernel::error::{KernelError, Result};
use crate::kernel::paths::{
    BoardMeta, board_exists, normalize_slug, read_board_meta, write_board_meta,
};
use crate::kernel::validate;

/// Changes for [`update_board`] (`None` = leave; `Some(None)` = clear).
#[derive(Debug, Clone, Default)]
pub struct BoardPatch {
    /// Display name (must not be blank).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<Option<String>>,
    /// Emoji or short icon text.
    pub icon: Option<Option<String>>,
    /// CSS colour.
    pub color: Option<Option<String>>,
    /// Default workdir: an existing absolute directory.
    pub default_workdir: Option<Option<String>>,
}

/// Edit a board's `board.json` (name, description, icon, colour, default workdir); unknown
/// keys are kept. The default workdir must be an existing absolute directory.
pub fn update_board(env: &Env, raw_slug: &str, patch: BoardPatch, now: i64) -> Result<BoardMeta> {
    let slug = normalize_slug(raw_slug)?;
    if !board_exists(env, &slug) {
        return Err(KernelError::BoardNotFound(slug));
    }
    let mut meta = read_board_meta(env, &slug);
    if let Some(n) = patch.name {
        let n = validate::required_text("name", &n, 200)?;
        meta.name = n;
    }
    let clean = |field: &'static str, v: Option<String>| -> Result<Option<String>> {
        validate::optional_text(field, v.as_deref(), 4096)
    };
    if let Some(d) = patch.description {
        meta.description = clean("description", d)?;
    }
    if let Some(i) = patch.icon {
        meta.icon = clean("icon", i)?;
    }
    if let Some(c) = patch.color {
        meta.color = clean("color", c)?;
    }
    if let Some(w) = patch.default_workdir {
        let w = clean("default_workdir", w)?;
        if let Some(p) = &w {
            check_workdir(p)?;
        }
        meta.default_workdir = w;
    }
    meta.created_at.get_or_insert(now);
    write_board_meta(env, &meta)?;
    Ok(meta)
}

/// A board default workdir must be an absolute path to an existing directory.
pub fn check_workdir(p: &str) -> Result<()> {
    let path = std::path::Path::new(p);
    if !path.is_absolute() {
        return Err(KernelError::invalid(
            "default_workdir",
            format!("{p:?} is not an absolute path"),
        ));
    }
    if !path.is_dir() {
        return Err(KernelError::invalid(
            "default_workdir",
            format!("{p:?} is not an existing directory"),
        ));
    }
    Ok(())
}
