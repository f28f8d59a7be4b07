-- The audit log: who did what, in which tenant, when, and under which request id. A failed
-- login for an email nobody has belongs to no tenant (tenant_id NULL). Rows are appended in
-- batches and pruned by age; nothing updates them.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT,
    user_id     TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    details     TEXT NOT NULL,
    request_id  TEXT,
    created_at  TEXT NOT NULL
) STRICT;

-- Listing: one tenant, newest first (optionally one action or one user); pruning: by age.
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_created ON audit_log (created_at);

-- Optimistic concurrency on a card: every change of its stage or assignee counts one up, so
-- a move that says which version it saw can be refused when someone moved it first.
ALTER TABLE conversations ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
