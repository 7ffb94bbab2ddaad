-- 0002 (ours): per-run bearer tokens for the MCP server over HTTP. The dispatcher mints one for
-- each run it spawns and passes it to the worker as HERMES_KANBAN_TOKEN; only its SHA-256 is
-- stored. A token grants worker scope for its run while that run is the task's open run.
-- Additive only; Hermes 0.19.0 ignores this table.
CREATE TABLE IF NOT EXISTS kanban_run_tokens (
    token_hash TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    run_id     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_run_tokens_task ON kanban_run_tokens(task_id);
