-- PostgreSQL's 0042 ends its list indexes with id, as SQLite's already do (the table is
-- WITHOUT ROWID, so every index ends with the table's key). Nothing changes here; the file
-- keeps the numbering in step.
SELECT 1;
