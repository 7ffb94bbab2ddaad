-- 0007 (ours): the per-task provider and reasoning level upstream Hermes added to `tasks`
-- (`provider_override` 0.19.1, `reasoning_effort` 0.20.0; UP §2), read by the dispatcher to
-- pass `--provider` (only with `-m`) and `--reasoning`. Hermes ~0.22 adds exactly these columns
-- with ALTER on every open; when it got there first, the migration runner skips an ADD COLUMN
-- whose column already exists. Hermes 0.19.0 reads task rows by column name and inserts with
-- explicit column lists, so the extra columns are invisible to it.
ALTER TABLE tasks ADD COLUMN provider_override TEXT;
ALTER TABLE tasks ADD COLUMN reasoning_effort TEXT;
