-- The audit log: who did what, in which tenant, when, and under which request id. A failed
-- login for an email nobody has belongs to no tenant (tenant_id NULL). Rows are appended in
-- batches and pruned by age; nothing updates them.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text,
    user_id     text,
    action      text NOT NULL,
    target      text,
    details     jsonb NOT NULL,
    request_id  text,
    created_at  timestamptz NOT NULL
);

-- Listing: one tenant, newest first (optionally one action or one user); pruning: by age.
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_created ON audit_log (created_at);

-- Optimistic concurrency on a card: every change of its stage or assignee counts one up, so
-- a move that says which version it saw can be refused when someone moved it first.
ALTER TABLE conversations ADD COLUMN version integer NOT NULL DEFAULT 0;
