-- Outbound messages still PENDING when a process died are sent at the next start: find them
-- without scanning every message (the index only holds PENDING rows, a handful at most).
CREATE INDEX messages_pending ON messages (created_at) WHERE status = 'PENDING';
