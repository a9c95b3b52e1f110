-- Indexes for GET /api/indicators filters (0001 has value, createdBy, expiration, action).
-- Incremental syncs filter on creation time ("creationTimeDateTimeUtc ge …"), and severity is
-- one of the documented filter properties.
CREATE INDEX indicators_creation_time ON indicators (tenant_id, creation_time);
CREATE INDEX indicators_severity ON indicators (tenant_id, severity);
-- Its own index for indicatorType (rather than the upsert key's): equal types then come out in
-- id order, so a filtered page needs no sort.
CREATE INDEX indicators_type ON indicators (tenant_id, indicator_type);

-- Planner statistics. Without any, SQLite's planner prefers walking the primary key through
-- all of a tenant's rows (they come out in id order) over searching the index a filter names:
-- a full read of the tenant for `indicatorValue eq '…'`. These rows describe a typical large
-- tenant (SQLite's documented way to guide the planner before real statistics exist): a tenant
-- holds many rows; a value, a creator or an expiry time few of them; an action or severity
-- about a fifth. `ANALYZE` (or `PRAGMA optimize`) later replaces them with measured ones.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl = 'indicators';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('indicators', 'indicators', '100000 100000 1'),
    ('indicators', 'sqlite_autoindex_indicators_2', '100000 100000 15000 1 1'),
    ('indicators', 'indicators_value', '100000 100000 1'),
    ('indicators', 'indicators_created_by', '100000 100000 2000'),
    ('indicators', 'indicators_expiration', '100000 100000 10'),
    ('indicators', 'indicators_action', '100000 100000 20000'),
    ('indicators', 'indicators_creation_time', '100000 100000 10'),
    ('indicators', 'indicators_severity', '100000 100000 25000'),
    ('indicators', 'indicators_type', '100000 100000 15000');
