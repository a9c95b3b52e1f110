-- Times are i64 ticks of 100 ns since the Unix epoch (UTC); lists are JSON arrays in TEXT;
-- properties of unknown shape (lookBackPeriod, additionalInfo, certificateInfo) are raw JSON.
CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    -- The last indicator id given out in this tenant; ids are never reused.
    next_indicator_id INTEGER NOT NULL
);

CREATE TABLE indicators (
    tenant_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    indicator_type TEXT NOT NULL,
    value_key TEXT NOT NULL,
    action TEXT NOT NULL,
    indicator_value TEXT NOT NULL,
    created_by TEXT NOT NULL,
    severity TEXT NOT NULL,
    category INTEGER,
    application TEXT,
    educate_url TEXT,
    bypass_duration_hours INTEGER,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    recommended_actions TEXT,
    creation_time INTEGER NOT NULL,
    expiration_time INTEGER,
    last_update_time INTEGER NOT NULL,
    last_updated_by TEXT,
    rbac_group_names TEXT NOT NULL,
    rbac_group_ids TEXT NOT NULL,
    notification_id TEXT,
    notification_body TEXT,
    version TEXT,
    mitre_techniques TEXT NOT NULL,
    historical_detection INTEGER NOT NULL,
    look_back_period TEXT,
    generate_alert INTEGER NOT NULL,
    additional_info TEXT,
    created_by_display_name TEXT NOT NULL,
    external_id TEXT,
    created_by_source TEXT NOT NULL,
    certificate_info TEXT,
    PRIMARY KEY (tenant_id, id),
    -- The upsert key: one indicator per (tenant, type, normalised value, action).
    UNIQUE (tenant_id, indicator_type, value_key, action)
) WITHOUT ROWID;

-- Lookups that real clients make ("find the id of value X"), ownership filters and expiry.
CREATE INDEX indicators_value ON indicators (tenant_id, indicator_value);
CREATE INDEX indicators_created_by ON indicators (tenant_id, created_by);
CREATE INDEX indicators_expiration ON indicators (tenant_id, expiration_time);
CREATE INDEX indicators_action ON indicators (tenant_id, action);
