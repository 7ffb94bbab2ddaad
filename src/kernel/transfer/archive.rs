//! The file side of board archives: writing the deterministic `.tar.gz`, extracting one
//! (directories and regular files only, no member outside the archive, exactly one top-level
//! directory), reading and checking `manifest.json`, and copying attachment and log trees.
//! No SQL.

use std::fs;
use std::io::Read;
use std::path::{Component, Path};

use serde_json::Value;

use super::{ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION};
use crate::kernel::error::{KernelError, Result};

/// Write `staged` as the single top-level directory `slug` of a deterministic `.tar.gz`.
pub(super) fn write_tar_gz(part: &Path, slug: &str, staged: &Path) -> Result<()> {
    let f = fs::File::create(part).map_err(|e| KernelError::io(part, e))?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    t.mode(tar::HeaderMode::Deterministic);
    t.follow_symlinks(false);
    t.append_dir_all(slug, staged)
        .map_err(|e| KernelError::io(part, e))?;
    let gz = t.into_inner().map_err(|e| KernelError::io(part, e))?;
    gz.finish().map_err(|e| KernelError::io(part, e))?;
    Ok(())
}
/// Extract a board archive into `dest`: directories and regular files only. Returns the single
/// top-level directory name.
pub(super) fn extract(archive: &Path, dest: &Path) -> Result<String> {
    let f = fs::File::open(archive).map_err(|e| KernelError::io(archive, e))?;
    let mut t = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut roots: Vec<String> = Vec::new();
    let bad = |e: std::io::Error| {
        KernelError::BoardRefused(format!(
            "{} is not a readable .tar.gz board archive ({e})",
            archive.display()
        ))
    };
    for entry in t.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let parts = member_parts(&path)?;
        if parts.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        if (parts.len() > 1 || kind.is_dir()) && !roots.contains(&parts[0]) {
            roots.push(parts[0].clone());
        }
        let target = parts.iter().fold(dest.to_path_buf(), |p, s| p.join(s));
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(|e| KernelError::io(&target, e))?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| KernelError::io(parent, e))?;
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(bad)?;
            fs::write(&target, buf).map_err(|e| KernelError::io(&target, e))?;
        } else {
            return Err(KernelError::BoardRefused(format!(
                "archive member {} is not a regular file or directory (links and devices are \
                refused)",
                path.display()
            )));
        }
    }
    match roots.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(KernelError::BoardRefused(
            "a board archive must contain exactly one top-level directory".into(),
        )),
    }
}
/// The normal components of an archive member path, refusing absolute paths and `..`.
pub(super) fn member_parts(p: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(KernelError::BoardRefused(format!(
                    "archive member {} escapes the archive (absolute path or '..'); refusing the \
                    import",
                    p.display()
                )));
            }
        }
    }
    Ok(out)
}
/// The archive's `manifest.json`, refused unless it names our format at a version we read.
pub(super) fn read_manifest(extracted: &Path) -> Result<Value> {
    let manifest: Value = fs::read_to_string(extracted.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str(t.trim_start_matches('\u{feff}')).ok())
        .ok_or_else(|| {
            KernelError::BoardRefused(
                "archive is not a Hermes kanban board export (no readable manifest.json)".into(),
            )
        })?;
    if manifest["format"] != ARCHIVE_FORMAT {
        return Err(KernelError::BoardRefused(format!(
            "archive is not a Hermes kanban board export (format={})",
            manifest["format"]
        )));
    }
    match manifest["format_version"].as_i64() {
        Some(v) if v <= ARCHIVE_FORMAT_VERSION => {}
        v => {
            return Err(KernelError::BoardRefused(format!(
                "archive format version {v:?} is newer than this hermes-kanban understands (max \
                {ARCHIVE_FORMAT_VERSION}); update and retry"
            )));
        }
    }
    Ok(manifest)
}
/// Copy the regular files under `src` into `dst` (symlinks skipped); the number copied.
pub(super) fn copy_regular_files(src: &Path, dst: &Path) -> Result<u64> {
    let mut n = 0;
    let Ok(rd) = fs::read_dir(src) else {
        return Ok(0);
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type().map_err(|x| KernelError::io(e.path(), x))?;
        let target = dst.join(e.file_name());
        if ft.is_symlink() {
            continue;
        } else if ft.is_dir() {
            n += copy_regular_files(&e.path(), &target)?;
        } else if ft.is_file() {
            fs::create_dir_all(dst).map_err(|x| KernelError::io(dst, x))?;
            fs::copy(e.path(), &target).map_err(|x| KernelError::io(&target, x))?;
            n += 1;
        }
    }
    Ok(n)
}
/// Write `v` as pretty JSON with a trailing newline.
pub(super) fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v)? + "\n";
    fs::write(path, text).map_err(|e| KernelError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_that_escape_the_archive_are_refused() {
        assert!(member_parts(Path::new("b/kanban.db")).is_ok());
        assert!(member_parts(Path::new("/etc/passwd")).is_err());
        assert!(member_parts(Path::new("b/../../x")).is_err());
    }
}
