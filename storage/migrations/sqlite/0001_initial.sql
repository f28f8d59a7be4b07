-- Zapline schema, SQLite dialect. Timestamps are ISO-8601 UTC text with microseconds
-- (fixed width, so they sort as text); JSON columns are TEXT written by orjson.
-- Composite foreign keys (tenant_id, x_id) keep every reference inside one tenant.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    email          TEXT NOT NULL UNIQUE,
    name           TEXT,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'agent', 'ops')),
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE whatsapp_accounts (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    phone_number_id  TEXT NOT NULL UNIQUE,
    verify_token     TEXT,
    app_secret       TEXT,
    access_token     TEXT,
    created_at       TEXT NOT NULL,
    UNIQUE (tenant_id, id)
) STRICT;

CREATE INDEX whatsapp_accounts_verify_token ON whatsapp_accounts (verify_token);

CREATE TABLE contacts (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    phone_number  TEXT NOT NULL,
    name          TEXT,
    created_at    TEXT NOT NULL,
    UNIQUE (tenant_id, phone_number),
    UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    contact_id       TEXT NOT NULL,
    account_id       TEXT NOT NULL,
    stage            TEXT NOT NULL DEFAULT 'new',
    assignee_id      TEXT,
    last_message_at  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (tenant_id, contact_id),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES whatsapp_accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, assignee_id) REFERENCES users (tenant_id, id)
) STRICT;

CREATE INDEX conversations_tenant_last_message
    ON conversations (tenant_id, last_message_at DESC, id);

CREATE TABLE messages (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    conversation_id      TEXT NOT NULL,
    contact_id           TEXT NOT NULL,
    whatsapp_message_id  TEXT,
    direction            TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    type                 TEXT NOT NULL,
    content              TEXT NOT NULL,
    metadata             TEXT NOT NULL,
    status               TEXT NOT NULL,
    error                TEXT,
    timestamp            TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    UNIQUE (tenant_id, whatsapp_message_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
) STRICT;

CREATE INDEX messages_conversation_timestamp ON messages (conversation_id, timestamp DESC, id DESC);

-- AUTOINCREMENT: an inbox id is never reused, so "after_id" scans never skip a new row.
CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    body         BLOB NOT NULL,
    received_at  TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'done', 'failed', 'unroutable')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT
) STRICT;

CREATE INDEX inbox_pending ON inbox (id) WHERE state = 'pending';

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    error       TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
