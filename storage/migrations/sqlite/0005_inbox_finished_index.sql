-- Finished inbox rows are deleted once older than ZAPLINE_INBOX_RETENTION (Storage.inbox_prune):
-- this index lets the pruner read the oldest of them without scanning the rows it keeps.
CREATE INDEX inbox_finished ON inbox (received_at) WHERE state IN ('done', 'unroutable');
