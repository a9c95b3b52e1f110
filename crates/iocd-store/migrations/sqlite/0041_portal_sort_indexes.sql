-- The portal sorts a tab by title. Without an index a page read and sorted the whole tab
-- (about a second for the 490,000 file hashes of a 1,000,000-indicator tenant). The portal
-- reads a page of a tab of several types per type (ListRequest::per_type), each a walk of this
-- index, and the database merges the types' pages. Ties end with the table's key (the table
-- is WITHOUT ROWID), which is the portal's tie-break. Sorting by value per type walks the upsert
-- key's index (tenant, type, value_key, action), so it needs none of its own.
CREATE INDEX indicators_type_title ON indicators (tenant_id, indicator_type, title);
-- Statistics in the style of 0003: many rows per tenant and per type, a title shared by a few.
DELETE FROM sqlite_stat1 WHERE tbl = 'indicators' AND idx = 'indicators_type_title';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('indicators', 'indicators_type_title', '100000 100000 15000 10');
