-- 0002 (ours): serve the dispatcher's ready queue and the board's column scans from an index.
-- Additive only; Hermes 0.19.0 ignores it.
CREATE INDEX IF NOT EXISTS idx_tasks_status_priority ON tasks(status, priority DESC, created_at);
