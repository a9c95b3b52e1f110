-- The change log: every change to an indicator, appended in the transaction of the change.
-- `seq` is per tenant, strictly increasing without gaps: the writer assigns it from
-- `tenants.last_change_seq` inside the batch's transaction. Times are ticks, like indicators';
-- `changes` is a JSON array of {property, old, new}.
ALTER TABLE tenants ADD COLUMN last_change_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE change_log (
    tenant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    time BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    source TEXT NOT NULL,
    indicator_id BIGINT NOT NULL,
    indicator_type TEXT NOT NULL,
    indicator_value TEXT NOT NULL,
    action TEXT NOT NULL,
    -- The indicator's creator: Ti.ReadWrite apps read only their own indicators' entries.
    created_by TEXT NOT NULL,
    kind TEXT NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- One indicator's history.
CREATE INDEX change_log_indicator ON change_log (tenant_id, indicator_id, seq);
