//! Per-run bearer tokens (migration 0002): minted for a run the dispatcher spawns, stored only as
//! a SHA-256 hash, and resolved by the MCP server over HTTP to give a request worker scope for
//! exactly that run while it is the task's open run.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::board::{Board, load_task};
use super::error::{KernelError, Result};
use super::types::Status;
use crate::args;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunScope {
    /// The worker's task.
    pub task_id: String,
    /// The run the token was minted for.
    pub run_id: i64,
    /// True while that run is the task's open run and the task is running.
    pub live: bool,
}

/// SHA-256 of a token, lowercase hex.
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Board {
    /// Mint a token for `run_id`, which must be `task_id`'s open run. Returns the secret (never
    /// stored).
    pub fn mint_run_token(&self, task_id: &str, run_id: i64) -> Result<String> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|e| KernelError::Storage(format!("random source: {e}")))?;
        let token = format!(
            "hkr_{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let hash = token_hash(&token);
        let now = self.now();
        self.write(|c| {
            let t = c.lock_task(task_id)?;
            if t.status != Status::Running || t.current_run_id != Some(run_id) {
                return Err(KernelError::stale_run(task_id, run_id, t.current_run_id));
            }
            c.exec(
                "INSERT INTO kanban_run_tokens (token_hash, task_id, run_id, created_at) VALUES \
                (?1, ?2, ?3, ?4)",
                args![hash, task_id, run_id, now],
            )?;
            Ok(())
        })?;
        Ok(token)
    }

    /// Look a token up. `None` when unknown; `live: false` once its run has ended.
    pub fn resolve_run_token(&self, token: &str) -> Result<Option<RunScope>> {
        let t = token.trim();
        if t.is_empty() || t.len() > 256 {
            return Ok(None);
        }
        let hash = token_hash(t);
        self.read(|c| {
            let Some((task_id, run_id)) = c.row::<(String, i64)>(
                "SELECT task_id, run_id FROM kanban_run_tokens WHERE token_hash=?1",
                args![hash],
            )?
            else {
                return Ok(None);
            };
            let live = match load_task(c, &task_id) {
                Ok(t) => t.status == Status::Running && t.current_run_id == Some(run_id),
                Err(_) => false,
            };
            Ok(Some(RunScope {
                task_id,
                run_id,
                live,
            }))
        })
    }

    /// Delete tokens whose run has ended (or whose task is gone). Returns how many.
    pub fn prune_run_tokens(&self) -> Result<usize> {
        self.write(|c| {
            c.exec(
                "DELETE FROM kanban_run_tokens WHERE NOT EXISTS (
                   SELECT 1 FROM tasks t WHERE t.id = kanban_run_tokens.task_id
                     AND t.status = 'running' AND t.current_run_id = kanban_run_tokens.run_id)",
                args![],
            )
        })
    }
}
