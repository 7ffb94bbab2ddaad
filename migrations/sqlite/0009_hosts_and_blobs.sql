-- 0009 (ours): many hosts on one board. Additive only (two new tables, `IF NOT EXISTS`); Hermes
-- 0.19.0 and ~0.22 never read them, so both still open the file.
--
-- kanban_hosts: one lease row per dispatcher host (HERMES_KANBAN_HOST_ID, else the hostname),
-- upserted by every tick of a `daemon`/`serve` loop. A host is live while its last_tick_at is
-- within a few of its intervals; `diagnostics` and the dashboard list them.
CREATE TABLE IF NOT EXISTS kanban_hosts (
    host_id          TEXT PRIMARY KEY,
    pid              INTEGER NOT NULL,
    version          TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    last_tick_at     INTEGER NOT NULL,
    interval_seconds INTEGER NOT NULL
);
-- kanban_attachment_blobs: attachment content kept in the database (kanban.attachments:
-- database, and always on a server database) so any host can serve it; the task_attachments row
-- then names `db:<id>` as its stored_path. Capped at 25 MiB like a file.
CREATE TABLE IF NOT EXISTS kanban_attachment_blobs (
    attachment_id INTEGER PRIMARY KEY,
    content       BLOB NOT NULL
);
