-- The durable event log (issue 11): every event that changes what an agent sees, numbered
-- per tenant and written in the transaction of the change it describes. A reconnecting
-- Socket.IO client holds the seq of the last event it got (its offset) and is sent the rest.
CREATE TABLE events (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    seq         bigint NOT NULL,
    name        text NOT NULL,
    rooms       jsonb NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX events_created_at ON events (created_at);

-- The last seq handed out per tenant: its row is the lock that orders commits by seq.
CREATE TABLE event_seq (
    tenant_id  text PRIMARY KEY REFERENCES tenants (id),
    seq        bigint NOT NULL
);

-- The conversation rooms each recoverable Socket.IO session had joined, for a recovery on a
-- process that never held the session in memory (a restart, another node).
CREATE TABLE recovery_sessions (
    pid         text PRIMARY KEY,
    tenant_id   text NOT NULL,
    user_id     text NOT NULL,
    rooms       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX recovery_sessions_updated_at ON recovery_sessions (updated_at);
