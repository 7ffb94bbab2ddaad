//! `repair`: check a board's database and apply the one repair that is lossless — rebuilding
//! damaged indexes (Hermes 0.19.1+'s `repair_db`, UP §3). It runs `PRAGMA quick_check` and
//! `PRAGMA integrity_check`; when every problem is index-scoped ("wrong # of entries in index
//! X", "row N missing from index X") it first saves a backup (SQLite's backup API, next to the
//! DB as `<db>.corrupt.<hash>.bak`, at most 10 kept), then `REINDEX`es those indexes and checks
//! again. Anything else is reported as corrupt and left alone.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{KernelError, Result};
use super::store::sqlite::RawDb;

/// Corrupt-board backups kept per DB (Hermes caps them at 10).
pub const REPAIR_BACKUPS_KEPT: usize = 10;

/// What `repair` found and did (`repair --json`: Hermes' keys plus `quick_check`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepairReport {
    /// `ok`, `repaired`, `corrupt` or `missing` (no DB file, nothing to do).
    pub status: &'static str,
    pub db_path: PathBuf,
    /// `PRAGMA integrity_check` rows before any repair (`["ok"]` when healthy).
    pub messages: Vec<String>,
    /// `PRAGMA quick_check` rows before any repair.
    pub quick_check: Vec<String>,
    /// `integrity_check` rows after the REINDEX (empty when none was attempted).
    pub post_repair_messages: Vec<String>,
    /// The backup taken before repairing (or of a corrupt file).
    pub backup_path: Option<PathBuf>,
    /// Indexes rebuilt.
    pub reindexed: Vec<String>,
}

impl RepairReport {
    /// Exit status for the CLI: healthy, repaired or missing is success.
    pub fn ok(&self) -> bool {
        self.status != "corrupt"
    }
}

fn healthy(messages: &[String]) -> bool {
    messages.len() == 1 && messages[0].trim().eq_ignore_ascii_case("ok")
}

/// Index names when every message is index-scoped, else `None`.
fn repairable_indexes(messages: &[String]) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for m in messages.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        let name = if let Some(rest) = m.strip_prefix("wrong # of entries in index ") {
            rest
        } else if let Some(rest) = m.strip_prefix("row ")
            && let Some((num, idx)) = rest.split_once(" missing from index ")
            && num.chars().all(|c| c.is_ascii_digit())
        {
            idx
        } else {
            return None;
        };
        let name = name.trim().to_string();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    (!names.is_empty()).then_some(names)
}

/// A page-level copy of `db` through SQLite's backup API, named by its content hash.
fn backup(conn: &RawDb, db: &Path) -> Result<PathBuf> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let base = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kanban.db".into());
    let tmp = dir.join(format!(".{base}.repair-backup.tmp"));
    let _ = std::fs::remove_file(&tmp);
    conn.backup_to(&tmp)?;
    let bytes = std::fs::read(&tmp).map_err(|e| KernelError::io(&tmp, e))?;
    let hash = Sha256::digest(&bytes);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dest = dir.join(format!("{base}.corrupt.{hex}.bak"));
    if dest.exists() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        std::fs::rename(&tmp, &dest).map_err(|e| KernelError::io(&dest, e))?;
    }
    prune_backups(dir, &base, &dest);
    Ok(dest)
}

fn prune_backups(dir: &Path, base: &str, keep: &Path) {
    let prefix = format!("{base}.corrupt.");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(".bak")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort();
    while found.len() > REPAIR_BACKUPS_KEPT {
        let (_, p) = found.remove(0);
        if p != keep {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Check the DB at `db` and rebuild damaged indexes (see the module doc). Does not migrate or
/// otherwise change a healthy DB.
pub fn repair_db(db: &Path) -> Result<RepairReport> {
    let mut report = RepairReport {
        status: "ok",
        db_path: db.to_path_buf(),
        messages: vec![],
        quick_check: vec![],
        post_repair_messages: vec![],
        backup_path: None,
        reindexed: vec![],
    };
    if std::fs::metadata(db).map(|m| m.len() == 0).unwrap_or(true) {
        report.status = "missing";
        return Ok(report);
    }
    let conn = match RawDb::open(db) {
        Ok(c) => c,
        Err(e) => {
            report.status = "corrupt";
            report.messages = vec![format!("SQLite refused to open the file: {e}")];
            return Ok(report);
        }
    };
    let probe = conn.pragma_rows("quick_check").and_then(|q| {
        let i = conn.pragma_rows("integrity_check")?;
        Ok((q, i))
    });
    let (quick, integrity) = match probe {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, KernelError::Busy) {
                return Err(e);
            }
            report.status = "corrupt";
            report.messages = vec![e.to_string()];
            report.backup_path = backup(&conn, db).ok();
            return Ok(report);
        }
    };
    report.quick_check = quick;
    report.messages = integrity;
    if healthy(&report.messages) {
        return Ok(report);
    }
    report.backup_path = Some(backup(&conn, db)?);
    let Some(indexes) = repairable_indexes(&report.messages) else {
        report.status = "corrupt";
        return Ok(report);
    };
    conn.reindex(&indexes)?;
    report.reindexed = indexes;
    report.post_repair_messages = conn.pragma_rows("integrity_check")?;
    report.status = if healthy(&report.post_repair_messages) {
        "repaired"
    } else {
        "corrupt"
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_index_scoped_messages_are_repairable() {
        let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            repairable_indexes(&m(&[
                "row 3 missing from index idx_a",
                "wrong # of entries in index idx_a",
                "wrong # of entries in index idx_b"
            ])),
            Some(vec!["idx_a".to_string(), "idx_b".to_string()])
        );
        assert_eq!(
            repairable_indexes(&m(&[
                "*** in database main ***",
                "row 3 missing from index idx_a"
            ])),
            None
        );
        assert_eq!(repairable_indexes(&m(&[])), None);
        assert_eq!(
            repairable_indexes(&m(&["row x missing from index i"])),
            None
        );
    }
}
