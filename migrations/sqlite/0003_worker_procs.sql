-- 0003 (ours): host-local process bookkeeping of dispatched runs. The dispatcher registers the
-- supervisor it spawned for a run (pid + /proc start time, so a reused pid is not mistaken for
-- it); the supervisor adds the real worker's pid (leader of its own process group) and, when the
-- worker ends, its exit status. Whoever applies that exit to the task (the supervisor, or a tick
-- that finds the supervisor dead) marks the row settled: a run is settled exactly once.
-- Additive only; Hermes 0.19.0 ignores this table.
CREATE TABLE IF NOT EXISTS kanban_worker_procs (
    run_id           INTEGER PRIMARY KEY,   -- task_runs.id
    task_id          TEXT NOT NULL,
    host             TEXT,
    supervisor_pid   INTEGER,
    supervisor_start INTEGER,               -- /proc/<pid>/stat field 22 (clock ticks after boot)
    worker_pid       INTEGER,               -- the real worker; leader of its own process group
    worker_start     INTEGER,
    registered_at    INTEGER NOT NULL,
    exited_at        INTEGER,
    exit_class       TEXT,                  -- clean_exit, rate_limited, nonzero_exit, signaled, timed_out, spawn_failed, unknown
    exit_code        INTEGER,
    exit_signal      INTEGER,
    exit_detail      TEXT,                  -- JSON: pid, elapsed_seconds, limit_seconds, sigkill, error
    settled_at       INTEGER,
    settled_by       TEXT,                  -- supervisor | tick
    settled_outcome  TEXT,                  -- run outcome applied, or already_closed
    tripped          INTEGER NOT NULL DEFAULT 0,
    reported_at      INTEGER                -- when a tick reported a supervisor's settlement
);
CREATE INDEX IF NOT EXISTS idx_worker_procs_task ON kanban_worker_procs(task_id);
CREATE INDEX IF NOT EXISTS idx_worker_procs_unreported ON kanban_worker_procs(settled_at)
    WHERE reported_at IS NULL AND settled_at IS NOT NULL;
-- Readiness recompute (every tick and every completion) probes each todo task's parents; on a
-- board of 100k tasks these two covering indexes make that probe index-only (33 ms -> ~15 ms).
CREATE INDEX IF NOT EXISTS idx_links_child_parent ON task_links(child_id, parent_id);
CREATE INDEX IF NOT EXISTS idx_tasks_id_status ON tasks(id, status);
