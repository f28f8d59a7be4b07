-- Zapline schema, PostgreSQL dialect. Timestamps are timestamptz; JSON columns are jsonb.
-- Composite foreign keys (tenant_id, x_id) keep every reference inside one tenant.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    email          text NOT NULL UNIQUE,
    name           text,
    role           text NOT NULL CHECK (role IN ('admin', 'agent', 'ops')),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL,
    UNIQUE (tenant_id, id)
);

CREATE TABLE whatsapp_accounts (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    phone_number_id  text NOT NULL UNIQUE,
    verify_token     text,
    app_secret       text,
    access_token     text,
    created_at       timestamptz NOT NULL,
    UNIQUE (tenant_id, id)
);

CREATE INDEX whatsapp_accounts_verify_token ON whatsapp_accounts (verify_token);

CREATE TABLE contacts (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    phone_number  text NOT NULL,
    name          text,
    created_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, phone_number),
    UNIQUE (tenant_id, id)
);

CREATE TABLE conversations (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    contact_id       text NOT NULL,
    account_id       text NOT NULL,
    stage            text NOT NULL DEFAULT 'new',
    assignee_id      text,
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (tenant_id, contact_id),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES whatsapp_accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, assignee_id) REFERENCES users (tenant_id, id)
);

CREATE INDEX conversations_tenant_last_message
    ON conversations (tenant_id, last_message_at DESC NULLS LAST, id);

CREATE TABLE messages (
    id                   text PRIMARY KEY,
    tenant_id            text NOT NULL,
    conversation_id      text NOT NULL,
    contact_id           text NOT NULL,
    whatsapp_message_id  text,
    direction            text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    type                 text NOT NULL,
    content              text NOT NULL,
    metadata             jsonb NOT NULL,
    status               text NOT NULL,
    error                jsonb,
    timestamp            timestamptz NOT NULL,
    created_at           timestamptz NOT NULL,
    UNIQUE (tenant_id, whatsapp_message_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);

CREATE INDEX messages_conversation_timestamp ON messages (conversation_id, timestamp DESC, id DESC);

CREATE TABLE inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body         bytea NOT NULL,
    received_at  timestamptz NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'done', 'failed', 'unroutable')),
    attempts     integer NOT NULL DEFAULT 0,
    error        text
);

CREATE INDEX inbox_pending ON inbox (id) WHERE state = 'pending';

CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL
);
