//! The SQL of the `indicators`, `tenants` and `change_log` tables. The statements here use `$n`
//! placeholders, which SQLite and PostgreSQL both accept; each database's batched statements
//! are in [`sqlite`] and [`postgres`].
//!
//! The batched statements differ. SQLite takes each batch's indicator rows or keys as one JSON
//! text parameter, read with `json_each`: one statement shape whatever the batch size, and few
//! parameters (sqlx looks up every named parameter as it binds, which SQLite does by walking
//! the statement's list of names, so binding thousands of `$n` would be quadratic). Its
//! change-log rows go in as multi-row statements of anonymous `?` parameters, which sqlx binds
//! by position. PostgreSQL takes multi-row statements of fixed sizes with `$n` parameters.

pub mod postgres;
pub mod sqlite;

/// Most rows one multi-row statement carries (a PostgreSQL upsert of this many rows binds
/// 33 × 256 = 8,448 parameters, which PostgreSQL allows up to 65,535; SQLite's change-log
/// insert 13 × 256 = 3,328, of SQLite's 32,766).
pub const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Built statements by their number of rows (index 0 unused), each built once.
pub(crate) type SizedStatements = [std::sync::OnceLock<String>; MAX_ROWS_PER_STATEMENT + 1];

/// The statement for `n` rows (a size [`statement_sizes`] gives), built once by `build`.
pub(crate) fn sized(
    cache: &'static SizedStatements,
    n: usize,
    build: fn(usize) -> String,
) -> &'static str {
    assert!(
        (1..=MAX_ROWS_PER_STATEMENT).contains(&n),
        "a statement of {n} rows"
    );
    cache[n].get_or_init(|| build(n))
}

/// Splits `n` rows into statement sizes, largest first: the rest at once when at most
/// `exact_up_to` are left, otherwise the largest power of two that fits, at most
/// [`MAX_ROWS_PER_STATEMENT`]. With `exact_up_to` 1 every size is a power of two (`500` → 256,
/// 128, 64, 32, 16, 4): a connection prepares at most nine shapes. A larger `exact_up_to`
/// makes a small batch one statement, for `exact_up_to` shapes more.
pub fn statement_sizes(mut n: usize, exact_up_to: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n <= exact_up_to {
            n
        } else {
            (1 << n.ilog2()).min(MAX_ROWS_PER_STATEMENT)
        };
        n -= size;
        Some(size)
    })
}

/// The columns of a stored indicator, in the order of [`crate::rows::IndicatorRow`], the
/// SQLite JSON row and PostgreSQL's bind order.
pub const COLUMNS: &str = "id, indicator_value, indicator_type, action, created_by, severity, category, \
    application, educate_url, bypass_duration_hours, title, description, recommended_actions, \
    creation_time, expiration_time, last_update_time, last_updated_by, rbac_group_names, rbac_group_ids, \
    notification_id, notification_body, version, mitre_techniques, historical_detection, look_back_period, \
    generate_alert, additional_info, created_by_display_name, external_id, created_by_source, \
    certificate_info, value_key";

/// Active indicators of tenant `$1` at time `$2` (ticks).
pub const COUNT_ACTIVE: &str = "SELECT COUNT(*) FROM indicators \
    WHERE tenant_id = $1 AND (expiration_time IS NULL OR expiration_time > $2)";

/// Active indicators at `$1` per tenant and type.
pub const ACTIVE_COUNTS: &str = "SELECT tenant_id, indicator_type, COUNT(*) FROM indicators \
    WHERE expiration_time IS NULL OR expiration_time > $1 \
    GROUP BY tenant_id, indicator_type ORDER BY tenant_id, indicator_type";

/// Condition: indicator `$3` of tenant `$1` is active at `$2` and, when `$4` is not null,
/// created by `$4` (the CAST gives PostgreSQL the parameter's type; SQLite accepts it too).
const VISIBLE: &str = "tenant_id = $1 AND (expiration_time IS NULL OR expiration_time > $2) \
    AND id = $3 AND (CAST($4 AS TEXT) IS NULL OR created_by = $4)";

/// The whole row of `$3` if it is visible (see [`VISIBLE`]).
pub fn get_visible_sql() -> String {
    format!("SELECT {COLUMNS} FROM indicators WHERE {VISIBLE}")
}

/// The last id handed out and the last change-log sequence number of tenant `$1` (no row:
/// none yet).
pub const COUNTERS: &str =
    "SELECT next_indicator_id, last_change_seq FROM tenants WHERE tenant_id = $1";

/// Sets tenant `$1`'s last id to `$2` and last change-log sequence number to `$3`, creating its
/// row if missing.
pub const SET_COUNTERS: &str =
    "INSERT INTO tenants (tenant_id, next_indicator_id, last_change_seq) \
    VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET \
    next_indicator_id = excluded.next_indicator_id, last_change_seq = excluded.last_change_seq";

/// The columns of a change-log entry after `tenant_id`, in the order of
/// [`crate::rows::ChangeRow`] and of each database's batched insert.
pub const CHANGE_COLUMNS: &str = "seq, time, actor_id, actor_name, source, indicator_id, \
    indicator_type, indicator_value, action, created_by, kind, changes";

/// Condition: the entry belongs to tenant `$1` and, when `$2` is not null, to an indicator
/// created by `$2`.
const CHANGE_VISIBLE: &str = "tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR created_by = $2)";

/// Entries visible (see [`CHANGE_VISIBLE`]) after sequence number `$3`, oldest first, at most
/// `$4`.
pub fn changes_after_sql() -> String {
    format!(
        "SELECT {CHANGE_COLUMNS} FROM change_log WHERE {CHANGE_VISIBLE} AND seq > $3 \
         ORDER BY seq LIMIT $4"
    )
}

/// The visible entries of indicator `$3`, oldest first.
pub fn history_sql() -> String {
    format!(
        "SELECT {CHANGE_COLUMNS} FROM change_log WHERE {CHANGE_VISIBLE} AND indicator_id = $3 \
         ORDER BY seq"
    )
}

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

/// Every tenant with a counters row.
pub const TENANT_IDS: &str = "SELECT tenant_id FROM tenants ORDER BY tenant_id";

/// Ids of tenant `$1`'s indicators expired at `$2` (ticks), soonest expired first, at most `$3`
/// (served by the `(tenant_id, expiration_time)` index).
pub const EXPIRED_IDS: &str = "SELECT id FROM indicators WHERE tenant_id = $1 \
    AND expiration_time <= $2 ORDER BY expiration_time LIMIT $3";

/// The last change-log sequence number of tenant `$1`.
pub const LAST_CHANGE_SEQ: &str = "SELECT last_change_seq FROM tenants WHERE tenant_id = $1";

/// Deletes, among the `$4` oldest entries of tenant `$1`, those numbered `$2` or below or older
/// than `$3` (ticks): it reads at most `$4` entries, whatever the log's length.
pub const TRIM_CHANGES: &str = "DELETE FROM change_log WHERE tenant_id = $1 \
    AND seq IN (SELECT seq FROM change_log WHERE tenant_id = $1 ORDER BY seq LIMIT $4) \
    AND (seq <= $2 OR time < $3)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_add_up_and_are_powers_of_two() {
        for n in 0..1200 {
            let sizes: Vec<usize> = statement_sizes(n, 1).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}");
            assert!(
                sizes.iter().all(|s| s.is_power_of_two() && *s <= 256),
                "{n}"
            );
        }
        assert_eq!(
            statement_sizes(500, 1).collect::<Vec<_>>(),
            [256, 128, 64, 32, 16, 4]
        );
    }
}
