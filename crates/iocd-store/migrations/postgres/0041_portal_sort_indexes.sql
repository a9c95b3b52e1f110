-- The portal sorts a tab by title, one sorted query per type merged by the database (see
-- SQLite's 0041): each type's page is a walk of this index. It ends with id, the tie-break,
-- which SQLite's indexes do by themselves (see 0042).
CREATE INDEX indicators_type_title ON indicators (tenant_id, indicator_type, title, id);
