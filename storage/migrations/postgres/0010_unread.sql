-- Unread counters: each conversation counts the customer's messages (inbound_count, raised in
-- the message's own write), each agent keeps how many of them they have read (read_positions:
-- the count read up to, never moving back); unread = inbound_count - position. Whether an
-- agent's read marks the customer's messages read on WhatsApp too is per account.
ALTER TABLE conversations ADD COLUMN inbound_count bigint NOT NULL DEFAULT 0;

UPDATE conversations SET inbound_count = (
    SELECT count(*) FROM messages m
    WHERE m.conversation_id = conversations.id AND m.direction = 'inbound'
);

ALTER TABLE whatsapp_accounts ADD COLUMN read_receipts boolean NOT NULL DEFAULT true;

CREATE TABLE read_positions (
    user_id          text NOT NULL,
    conversation_id  text NOT NULL,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    position         bigint NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (user_id, conversation_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

CREATE INDEX read_positions_conversation ON read_positions (conversation_id);
