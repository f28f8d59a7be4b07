-- A delivery status can overtake its message: the status webhook arrives before the send
-- worker has recorded the WhatsApp id, or it is for a message sent from elsewhere. It waits
-- here (the highest status reported, with its error) until the message is known, or until it
-- expires. One row per (tenant, WhatsApp id).
CREATE TABLE pending_statuses (
    tenant_id            text NOT NULL REFERENCES tenants (id),
    whatsapp_message_id  text NOT NULL,
    status               text NOT NULL,
    error                jsonb,
    received_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, whatsapp_message_id)
);

CREATE INDEX pending_statuses_received_at ON pending_statuses (received_at);
