-- The match index follows the change log's sequence (iocd_store::matching) instead of reading
-- rows by update time: 0030's index is no longer read, and every upsert paid for it.
DROP INDEX IF EXISTS indicators_updated;
