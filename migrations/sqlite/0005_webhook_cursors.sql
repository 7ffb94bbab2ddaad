-- 0005 (ours): one delivery cursor per configured webhook (`kanban.notify.webhooks` in
-- config.yaml, keyed by the hook's name). `last_event_id` is the last `task_events.id` the hook
-- has claimed; a new hook starts at the board's max event id, so nothing is replayed. The
-- counters and the last error are what `notify test` / `notify status` report. Additive and
-- idempotent (IF NOT EXISTS): the migration runner may re-apply it when a DB reached a higher
-- version without it. Hermes 0.19.0 ignores the table.
CREATE TABLE IF NOT EXISTS kanban_webhook_cursors (
    hook          TEXT PRIMARY KEY,
    last_event_id INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    delivered     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_error_at INTEGER
);
