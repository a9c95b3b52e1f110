-- Planner statistics for the index 0030 added (indicators_updated), in the style of 0003: with
-- none, SQLite's planner takes that index for any query naming only the tenant and sorts every
-- row of it, so a list page of a common type ("the newest 100 file hashes", the portal's default)
-- read and sorted the tenant's whole table. Described like creation_time (a time column: few rows
-- per value), the planner walks the primary key or the sort's index and stops after one page,
-- and the match index's "changed since" query still uses indicators_updated.
DELETE FROM sqlite_stat1 WHERE tbl = 'indicators' AND idx = 'indicators_updated';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('indicators', 'indicators_updated', '100000 100000 10');
