//! The journal policy of a SQLite board (UP §3): which journal mode a file runs in, why
//! (`diagnostics` reports it), and `database.journal_mode` from `config.yaml`.

use std::time::Duration;

use rusqlite::Connection;

use super::busy::jitter_ms;
use crate::kernel::error::Result;

/// The journal mode a board runs in and why (reported by `diagnostics`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalInfo {
    /// `wal` or `delete` (or whatever SQLite reports, lower-cased).
    pub mode: String,
    /// `database.journal_mode` from `$HERMES_HOME/config.yaml`, when set.
    pub setting: Option<String>,
    /// One sentence: why this mode.
    pub reason: String,
}

/// Parse `database.journal_mode` as Hermes does (UP §3): `delete` or `wal`; any other value
/// counts as `wal`. `None` when the key is absent.
pub(crate) fn journal_setting(config_yaml: &str) -> Option<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(config_yaml).ok()?;
    let v = doc.get("database")?.get("journal_mode")?;
    let s = match v {
        serde_yaml::Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => String::new(),
    };
    Some(if s == "delete" {
        "delete".into()
    } else {
        "wal".into()
    })
}

fn info(mode: &str, setting: Option<&str>, reason: String) -> JournalInfo {
    JournalInfo {
        mode: mode.to_string(),
        setting: setting.map(str::to_string),
        reason,
    }
}

/// The journal policy (UP §3). A board shared with Hermes keeps the mode it has: a WAL file is
/// never downgraded live (whatever the setting), and a non-WAL file with content is switched
/// only when `database.journal_mode: wal` asks for it (Hermes on a SQLite with the WAL-reset
/// bug keeps its boards in DELETE, and flipping them would expose every such Hermes process).
/// A new (empty) file follows the setting; without one it gets WAL: our bundled SQLite is not
/// affected by the WAL-reset bug, Hermes 0.19.0 creates WAL boards itself, and a ~0.22 Hermes
/// leaves a WAL board in WAL. A home shared with a Hermes that links an affected SQLite
/// (3.7.0–3.51.2 except 3.50.7/3.44.6) should set `database.journal_mode: delete`, which both
/// tools honour.
pub(super) fn apply_journal_policy(
    conn: &Connection,
    busy_timeout_ms: i64,
    setting: Option<&str>,
) -> Result<JournalInfo> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    let mode = mode.to_ascii_lowercase();
    if mode == "memory" {
        let why = "the board has no database file yet (reading creates none)";
        return Ok(info("none", setting, why.into()));
    }
    let fresh: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    let fresh = fresh == 0;
    if mode == "wal" {
        let reason = if setting == Some("delete") {
            "the file is already in WAL mode; database.journal_mode: delete cannot apply to a \
             WAL board (never downgraded live) — convert it offline with \
             `sqlite3 kanban.db 'PRAGMA journal_mode=DELETE'` while nothing has it open"
        } else {
            "the file is already in WAL mode (kept)"
        };
        return Ok(info("wal", setting, reason.into()));
    }
    let want_wal = match setting {
        Some("wal") => true,
        Some(_) => false,
        None => fresh,
    };
    if want_wal {
        enter_wal(conn, busy_timeout_ms, setting)
    } else {
        stay_out_of_wal(conn, &mode, setting, fresh)
    }
}

/// A board that stays out of WAL: a new file is put in DELETE mode, an existing one keeps its
/// mode.
fn stay_out_of_wal(
    conn: &Connection,
    mode: &str,
    setting: Option<&str>,
    fresh: bool,
) -> Result<JournalInfo> {
    let reason = match (setting, fresh) {
        (Some(_), true) => "new board; database.journal_mode: delete in config.yaml".to_string(),
        (Some(_), false) => {
            format!("the file is in {mode} mode; database.journal_mode: delete in config.yaml")
        }
        (None, _) => format!(
            "the file is in {mode} mode (kept: a board Hermes chose not to run in WAL is never \
             switched; set database.journal_mode: wal in config.yaml to switch it)"
        ),
    };
    if fresh && mode != "delete" {
        conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))?;
        return Ok(info("delete", setting, reason));
    }
    Ok(info(mode, setting, reason))
}

/// Switch to WAL. Entering WAL needs an exclusive lock that SQLite does not wait for (no busy
/// handler when upgrading from a read), so concurrent first opens retry until the busy
/// timeout; a file system without WAL support falls back to DELETE.
fn enter_wal(
    conn: &Connection,
    busy_timeout_ms: i64,
    setting: Option<&str>,
) -> Result<JournalInfo> {
    let deadline = std::time::Instant::now() + Duration::from_millis(busy_timeout_ms.max(0) as u64);
    let set: rusqlite::Result<String> = loop {
        let r = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
        match &r {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5 + jitter_ms(45)));
            }
            _ => break r,
        }
    };
    let why = if setting == Some("wal") {
        "database.journal_mode: wal in config.yaml".to_string()
    } else {
        format!(
            "new board; our bundled SQLite {} is not affected by the WAL-reset bug (set \
             database.journal_mode: delete in config.yaml when a Hermes on this home links an \
             affected SQLite)",
            rusqlite::version()
        )
    };
    match set {
        Ok(m) if m.eq_ignore_ascii_case("wal") => Ok(info("wal", setting, why)),
        Ok(m) => Ok(info(
            &m.to_ascii_lowercase(),
            setting,
            format!("WAL requested ({why}) but SQLite kept {m}"),
        )),
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("locking protocol") || msg.contains("not authorized") {
                tracing::warn!("WAL unavailable on this file system ({msg}); using DELETE journal");
                conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| {
                    r.get::<_, String>(0)
                })?;
                let why = format!("WAL unavailable on this file system ({msg})");
                Ok(info("delete", setting, why))
            } else {
                Err(e.into())
            }
        }
    }
}
