//! The SQL of the `indicators` and `tenants` tables. The statements here use `$n`
//! placeholders, which SQLite and PostgreSQL both accept; each database's batched statements
//! are in [`sqlite`] and [`postgres`].
//!
//! The batched statements differ. SQLite takes each batch's rows or keys as one JSON text parameter, read
//! with `json_each`: one statement shape whatever the batch size, and few parameters (sqlx looks
//! up every parameter's name as it binds, which SQLite does by walking the statement's list of
//! names, so binding thousands of `$n` would be quadratic). PostgreSQL takes multi-row
//! statements of fixed sizes with `$n` parameters.

pub mod postgres;
pub mod sqlite;

/// The columns of a stored indicator, in the order of [`crate::rows::IndicatorRow`], the
/// SQLite JSON row and PostgreSQL's bind order.
pub const COLUMNS: &str = "id, indicator_value, indicator_type, action, created_by, severity, category, \
    application, educate_url, bypass_duration_hours, title, description, recommended_actions, \
    creation_time, expiration_time, last_update_time, last_updated_by, rbac_group_names, rbac_group_ids, \
    notification_id, notification_body, version, mitre_techniques, historical_detection, look_back_period, \
    generate_alert, additional_info, created_by_display_name, external_id, created_by_source, \
    certificate_info, value_key";

/// Sets the last id given out in tenant `$1` to `$2`, creating the tenant's counter if missing.
pub const SET_LAST_ID: &str = "INSERT INTO tenants (tenant_id, next_indicator_id) VALUES ($1, $2) \
    ON CONFLICT (tenant_id) DO UPDATE SET next_indicator_id = excluded.next_indicator_id";

/// Active indicators of tenant `$1` at time `$2` (ticks).
pub const COUNT_ACTIVE: &str = "SELECT COUNT(*) FROM indicators \
    WHERE tenant_id = $1 AND (expiration_time IS NULL OR expiration_time > $2)";

/// Condition: indicator `$3` of tenant `$1` is active at `$2` and, when `$4` is not null,
/// created by `$4` (the CAST gives PostgreSQL the parameter's type; SQLite accepts it too).
const VISIBLE: &str = "tenant_id = $1 AND (expiration_time IS NULL OR expiration_time > $2) \
    AND id = $3 AND (CAST($4 AS TEXT) IS NULL OR created_by = $4)";

/// The whole row of `$3` if it is visible (see [`VISIBLE`]).
pub fn get_visible_sql() -> String {
    format!("SELECT {COLUMNS} FROM indicators WHERE {VISIBLE}")
}

/// The last id handed out in tenant `$1` (no row: none yet).
pub const LAST_ID: &str = "SELECT next_indicator_id FROM tenants WHERE tenant_id = $1";

/// Columns an update never changes: [`Indicator::apply_update`] keeps the key, the creator and
/// what is honoured only on create. Leaving them out of the upserts' `SET` spares SQLite
/// rewriting the index entries that hold only them (the upsert key, type, action, creator,
/// creation time): an update then rewrites three indexes instead of eight.
const FIXED_ON_UPDATE: [&str; 11] = [
    "id",
    "indicator_type",
    "action",
    "value_key",
    "created_by",
    "created_by_display_name",
    "created_by_source",
    "creation_time",
    "application",
    "version",
    "certificate_info",
];

/// `col = excluded.col` for every column an update may change.
pub(crate) fn set_changeable_columns() -> String {
    COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|column| !FIXED_ON_UPDATE.contains(column))
        .map(|column| format!("{column} = excluded.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}
