-- The wire contract's status enum is PENDING | SENT | DELIVERED | READ | FAILED: an inbound
-- message is DELIVERED when it reaches us (READ once an agent has read it). RECEIVED was
-- outside the enum; rows stored with it take its place on the ladder.
UPDATE messages SET status = 'DELIVERED' WHERE status = 'RECEIVED';
