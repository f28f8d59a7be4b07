-- WhatsApp's customer service window: a business may send free-form messages only within
-- 24 hours of the customer's last message. The conversation keeps when that was.
ALTER TABLE conversations ADD COLUMN last_inbound_at timestamptz;

UPDATE conversations SET last_inbound_at = (
    SELECT max(m.timestamp) FROM messages m
    WHERE m.conversation_id = conversations.id AND m.direction = 'inbound'
);
