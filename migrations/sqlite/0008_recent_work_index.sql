-- 0008 (ours): the worker context's "Recent work by @profile" (kanban_show, the worker prompt)
-- asks for a profile's latest completed runs by COALESCE(ended_at, started_at). Without an
-- index it scanned and sorted every run of the board (18 ms of server CPU per kanban_show at
-- 100k tasks); this partial index holds only completed runs, in exactly that order, so the
-- query reads the few rows it returns at any board size. Additive and idempotent (IF NOT
-- EXISTS); Hermes ignores it. Both SQLite and PostgreSQL accept partial expression indexes.
CREATE INDEX IF NOT EXISTS idx_runs_profile_completed
    ON task_runs(profile, COALESCE(ended_at, started_at))
    WHERE outcome = 'completed';
