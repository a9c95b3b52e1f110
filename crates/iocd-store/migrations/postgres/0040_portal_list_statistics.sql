-- SQLite's 0040 gives its planner statistics for indicators_updated. PostgreSQL gathers its own
-- (autovacuum's ANALYZE), so nothing changes here; the file keeps the numbering in step.
SELECT 1;
