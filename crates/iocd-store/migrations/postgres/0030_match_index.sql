-- The match index follows the store by reading the rows changed since its last look
-- (iocd_store::matching): a tenant's rows by update time, without scanning the tenant.
CREATE INDEX indicators_updated ON indicators (tenant_id, last_update_time);
