-- hermes-kanban on PostgreSQL: the whole board schema of SQLite migrations 0001-0008 (Hermes
-- 0.19.0's tables plus ours) in PostgreSQL types. Runs inside the board's own schema
-- (search_path = board_<slug>), in one transaction, recorded in schema_migrations.
--
-- Every table and column keeps its SQLite name (an operator's SQL carries over). Types:
-- INTEGER -> BIGINT, INTEGER PRIMARY KEY AUTOINCREMENT -> BIGSERIAL, TEXT -> TEXT. The one
-- extra column is `_seq_ BIGSERIAL` on every table: insertion order, which the kernel's SQL
-- names `_seq_` (SQLite's rowid).

CREATE TABLE IF NOT EXISTS tasks (
    id                   TEXT PRIMARY KEY,
    title                TEXT NOT NULL,
    body                 TEXT,
    assignee             TEXT,
    status               TEXT NOT NULL,
    priority             BIGINT DEFAULT 0,
    created_by           TEXT,
    created_at           BIGINT NOT NULL,
    started_at           BIGINT,
    completed_at         BIGINT,
    workspace_kind       TEXT NOT NULL DEFAULT 'scratch',
    workspace_path       TEXT,
    branch_name          TEXT,
    project_id           TEXT,
    claim_lock           TEXT,
    claim_expires        BIGINT,
    tenant               TEXT,
    result               TEXT,
    idempotency_key      TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    worker_pid           BIGINT,
    last_failure_error   TEXT,
    max_runtime_seconds  BIGINT,
    last_heartbeat_at    BIGINT,
    current_run_id       BIGINT,
    workflow_template_id TEXT,
    current_step_key     TEXT,
    skills               TEXT,
    model_override       TEXT,
    max_retries          BIGINT,
    goal_mode            BIGINT NOT NULL DEFAULT 0,
    goal_max_turns       BIGINT,
    session_id           TEXT,
    block_kind           TEXT,
    block_recurrences    BIGINT NOT NULL DEFAULT 0,
    provider_override    TEXT,
    reasoning_effort     TEXT,
    completion_contract  TEXT,
    worker_started_at    BIGINT,
    _seq_                BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS task_links (
    parent_id  TEXT NOT NULL,
    child_id   TEXT NOT NULL,
    _seq_      BIGSERIAL NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);

CREATE TABLE IF NOT EXISTS task_comments (
    id         BIGSERIAL PRIMARY KEY,
    task_id    TEXT NOT NULL,
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    _seq_      BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS task_events (
    id         BIGSERIAL PRIMARY KEY,
    task_id    TEXT NOT NULL,
    run_id     BIGINT,
    kind       TEXT NOT NULL,
    payload    TEXT,
    created_at BIGINT NOT NULL,
    _seq_      BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS task_runs (
    id                  BIGSERIAL PRIMARY KEY,
    task_id             TEXT NOT NULL,
    profile             TEXT,
    step_key            TEXT,
    status              TEXT NOT NULL,
    claim_lock          TEXT,
    claim_expires       BIGINT,
    worker_pid          BIGINT,
    max_runtime_seconds BIGINT,
    last_heartbeat_at   BIGINT,
    started_at          BIGINT NOT NULL,
    ended_at            BIGINT,
    outcome             TEXT,
    summary             TEXT,
    metadata            TEXT,
    error               TEXT,
    worker_started_at   BIGINT,
    _seq_               BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS task_attachments (
    id           BIGSERIAL PRIMARY KEY,
    task_id      TEXT NOT NULL,
    filename     TEXT NOT NULL,
    stored_path  TEXT NOT NULL,
    content_type TEXT,
    size         BIGINT NOT NULL DEFAULT 0,
    uploaded_by  TEXT,
    created_at   BIGINT NOT NULL,
    _seq_        BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS kanban_notify_subs (
    task_id            TEXT NOT NULL,
    platform           TEXT NOT NULL,
    chat_id            TEXT NOT NULL,
    thread_id          TEXT NOT NULL DEFAULT '',
    user_id            TEXT,
    notifier_profile   TEXT,
    created_at         BIGINT NOT NULL,
    last_event_id      BIGINT NOT NULL DEFAULT 0,
    last_ping_event_id BIGINT NOT NULL DEFAULT 0,
    delivery_mode      TEXT NOT NULL DEFAULT 'notify',
    chat_type          TEXT,
    user_id_alt        TEXT,
    delivery_metadata  TEXT,
    _seq_              BIGSERIAL NOT NULL,
    PRIMARY KEY (task_id, platform, chat_id, thread_id)
);

CREATE TABLE IF NOT EXISTS kanban_run_tokens (
    token_hash TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    run_id     BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    _seq_      BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS kanban_worker_procs (
    run_id           BIGINT PRIMARY KEY,
    task_id          TEXT NOT NULL,
    host             TEXT,
    supervisor_pid   BIGINT,
    supervisor_start BIGINT,
    worker_pid       BIGINT,
    worker_start     BIGINT,
    registered_at    BIGINT NOT NULL,
    exited_at        BIGINT,
    exit_class       TEXT,
    exit_code        BIGINT,
    exit_signal      BIGINT,
    exit_detail      TEXT,
    settled_at       BIGINT,
    settled_by       TEXT,
    settled_outcome  TEXT,
    tripped          BIGINT NOT NULL DEFAULT 0,
    reported_at      BIGINT,
    _seq_            BIGSERIAL NOT NULL
);

CREATE TABLE IF NOT EXISTS kanban_webhook_cursors (
    hook          TEXT PRIMARY KEY,
    last_event_id BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    delivered     BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_error_at BIGINT,
    _seq_         BIGSERIAL NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_tasks_status           ON tasks(status);
CREATE INDEX IF NOT EXISTS idx_tasks_assignee_status  ON tasks(assignee, status);
CREATE INDEX IF NOT EXISTS idx_tasks_tenant           ON tasks(tenant);
CREATE INDEX IF NOT EXISTS idx_tasks_idempotency      ON tasks(idempotency_key);
CREATE INDEX IF NOT EXISTS idx_tasks_session_id       ON tasks(session_id);
CREATE INDEX IF NOT EXISTS idx_tasks_id_status        ON tasks(id, status);
CREATE INDEX IF NOT EXISTS idx_tasks_priority_created ON tasks(priority DESC, created_at ASC);
-- Many writers on many hosts: one live task per idempotency key, enforced by the database
-- (SQLite relies on its single writer; Hermes' schema allows duplicates there).
CREATE UNIQUE INDEX IF NOT EXISTS uq_tasks_idempotency_live ON tasks(idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status <> 'archived';
CREATE INDEX IF NOT EXISTS idx_links_child            ON task_links(child_id);
CREATE INDEX IF NOT EXISTS idx_links_parent           ON task_links(parent_id);
CREATE INDEX IF NOT EXISTS idx_links_child_parent     ON task_links(child_id, parent_id);
CREATE INDEX IF NOT EXISTS idx_comments_task          ON task_comments(task_id, created_at);
CREATE INDEX IF NOT EXISTS idx_events_task            ON task_events(task_id, created_at);
CREATE INDEX IF NOT EXISTS idx_events_run             ON task_events(run_id, id);
CREATE INDEX IF NOT EXISTS idx_runs_task              ON task_runs(task_id, started_at);
CREATE INDEX IF NOT EXISTS idx_runs_status            ON task_runs(status);
CREATE INDEX IF NOT EXISTS idx_runs_profile_completed
    ON task_runs(profile, COALESCE(ended_at, started_at))
    WHERE outcome = 'completed';
CREATE INDEX IF NOT EXISTS idx_attachments_task       ON task_attachments(task_id, created_at);
CREATE INDEX IF NOT EXISTS idx_notify_task            ON kanban_notify_subs(task_id);
CREATE INDEX IF NOT EXISTS idx_run_tokens_task        ON kanban_run_tokens(task_id);
CREATE INDEX IF NOT EXISTS idx_worker_procs_task      ON kanban_worker_procs(task_id);
CREATE INDEX IF NOT EXISTS idx_worker_procs_unreported ON kanban_worker_procs(settled_at)
    WHERE reported_at IS NULL AND settled_at IS NOT NULL;
