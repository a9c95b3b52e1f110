-- Indexes for GET /api/indicators filters (0001 has value, createdBy, expiration, action).
-- Incremental syncs filter on creation time ("creationTimeDateTimeUtc ge …"), and severity is
-- one of the documented filter properties.
CREATE INDEX indicators_creation_time ON indicators (tenant_id, creation_time);
CREATE INDEX indicators_severity ON indicators (tenant_id, severity);
-- Its own index for indicatorType (rather than the upsert key's): equal types then come out in
-- id order, so a filtered page needs no sort.
CREATE INDEX indicators_type ON indicators (tenant_id, indicator_type);
