-- 0002: many hosts on one board — the twin of SQLite's 0009. Runs with search_path = the board's
-- schema.
--
-- kanban_hosts: one lease row per dispatcher host (HERMES_KANBAN_HOST_ID, else the hostname),
-- upserted by every tick of a `daemon`/`serve` loop; a host is live while its last_tick_at is
-- within a few of its intervals (`diagnostics --hosts`, GET /api/hosts, the dashboard).
CREATE TABLE IF NOT EXISTS kanban_hosts (
    host_id          TEXT PRIMARY KEY,
    pid              BIGINT NOT NULL,
    version          TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    last_tick_at     BIGINT NOT NULL,
    interval_seconds BIGINT NOT NULL,
    _seq_            BIGSERIAL NOT NULL
);
-- kanban_attachment_blobs: attachment content (always in the database on PostgreSQL, so any
-- host can serve it); task_attachments.stored_path is `db:<id>`. Capped at 25 MiB by the kernel.
CREATE TABLE IF NOT EXISTS kanban_attachment_blobs (
    attachment_id BIGINT PRIMARY KEY,
    content       BYTEA NOT NULL,
    _seq_         BIGSERIAL NOT NULL
);
