-- What happens to a message after it arrived: reactions (by sender), an edit, a deletion
-- for everyone. The message keeps its row; these columns say what became of it.
ALTER TABLE messages ADD COLUMN reactions TEXT;
ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN deleted_at TEXT;

-- An edit, deletion or reaction that arrived before the message it refers to waits here,
-- keyed by its own WhatsApp id (a replay keeps one), and is applied when the message comes.
CREATE TABLE pending_changes (
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    whatsapp_message_id  TEXT NOT NULL,
    target_id            TEXT NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('edit', 'revoke', 'reaction')),
    sender               TEXT NOT NULL,
    content              TEXT,
    body                 TEXT NOT NULL,
    timestamp            TEXT NOT NULL,
    received_at          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, whatsapp_message_id)
) STRICT;

CREATE INDEX pending_changes_target ON pending_changes (tenant_id, target_id);
CREATE INDEX pending_changes_received_at ON pending_changes (received_at);
