-- 0004 (ours): `list` (and the dispatcher's ready queue) read tasks in Hermes' default order,
-- `priority DESC, created_at ASC` (rowid breaks ties). Without an index SQLite sorts every
-- listed row, whole, in a temporary B-tree; with this one it walks the index in order and
-- fetches each row (no sort). Additive only; Hermes 0.19.0 ignores it.
CREATE INDEX IF NOT EXISTS idx_tasks_priority_created ON tasks(priority DESC, created_at ASC);
