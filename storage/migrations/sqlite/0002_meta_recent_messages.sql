-- Process-level facts that outlive a run (e.g. whether the last run stopped cleanly).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The crash recovery re-announces the newest messages: find them without a scan.
CREATE INDEX messages_created_at ON messages (created_at);
