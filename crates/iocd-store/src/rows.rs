//! The mapping between [`Indicator`] and table rows, and the SQL of both databases: shared
//! statements use `$n` placeholders, which SQLite and PostgreSQL both accept; the batched
//! statements of each database follow further down.

use iocd_domain::time::{from_ticks, to_ticks};
use iocd_domain::{Action, Indicator, IndicatorType, Severity};
use std::sync::LazyLock;

use serde_json::Value;

use crate::StoreError;

pub const COLUMNS: &str = "id, indicator_value, indicator_type, action, created_by, severity, category, \
    application, educate_url, bypass_duration_hours, title, description, recommended_actions, \
    creation_time, expiration_time, last_update_time, last_updated_by, rbac_group_names, rbac_group_ids, \
    notification_id, notification_body, version, mitre_techniques, historical_detection, look_back_period, \
    generate_alert, additional_info, created_by_display_name, external_id, created_by_source, \
    certificate_info, value_key";

#[derive(sqlx::FromRow)]
pub struct IndicatorRow {
    id: i64,
    indicator_value: String,
    indicator_type: String,
    action: String,
    created_by: String,
    severity: String,
    category: Option<i64>,
    application: Option<String>,
    educate_url: Option<String>,
    bypass_duration_hours: Option<i64>,
    title: String,
    description: String,
    recommended_actions: Option<String>,
    creation_time: i64,
    expiration_time: Option<i64>,
    last_update_time: i64,
    last_updated_by: Option<String>,
    rbac_group_names: String,
    rbac_group_ids: String,
    notification_id: Option<String>,
    notification_body: Option<String>,
    version: Option<String>,
    mitre_techniques: String,
    historical_detection: bool,
    look_back_period: Option<String>,
    generate_alert: bool,
    additional_info: Option<String>,
    created_by_display_name: String,
    external_id: Option<String>,
    created_by_source: String,
    certificate_info: Option<String>,
    value_key: String,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

fn list_from(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("list column", e))
}

fn raw_from(text: Option<String>) -> Result<Option<Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("JSON column", e)))
        .transpose()
}

pub fn list_text(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings serialises")
}

pub fn raw_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

impl TryFrom<IndicatorRow> for Indicator {
    type Error = StoreError;

    fn try_from(r: IndicatorRow) -> Result<Self, StoreError> {
        let enum_err = |e: iocd_domain::ValidationError| corrupt("enum column", e.message);
        Ok(Indicator {
            id: r.id,
            indicator_type: IndicatorType::parse("indicatorType", &r.indicator_type)
                .map_err(enum_err)?,
            action: Action::parse("action", &r.action).map_err(enum_err)?,
            severity: Severity::parse("severity", &r.severity).map_err(enum_err)?,
            indicator_value: r.indicator_value,
            created_by: r.created_by,
            category: r.category,
            application: r.application,
            educate_url: r.educate_url,
            bypass_duration_hours: r.bypass_duration_hours,
            title: r.title,
            description: r.description,
            recommended_actions: r.recommended_actions,
            creation_time: from_ticks(r.creation_time),
            expiration_time: r.expiration_time.map(from_ticks),
            last_update_time: from_ticks(r.last_update_time),
            last_updated_by: r.last_updated_by,
            rbac_group_names: list_from(&r.rbac_group_names)?,
            rbac_group_ids: list_from(&r.rbac_group_ids)?,
            notification_id: r.notification_id,
            notification_body: r.notification_body,
            version: r.version,
            mitre_techniques: list_from(&r.mitre_techniques)?,
            historical_detection: r.historical_detection,
            look_back_period: raw_from(r.look_back_period)?,
            generate_alert: r.generate_alert,
            additional_info: raw_from(r.additional_info)?,
            created_by_display_name: r.created_by_display_name,
            external_id: r.external_id,
            created_by_source: r.created_by_source,
            certificate_info: raw_from(r.certificate_info)?,
            value_key: r.value_key,
        })
    }
}

/// Binds a tenant id and then an indicator's columns in [`COLUMNS`] order.
macro_rules! bind_indicator {
    ($query:expr, $tenant:expr, $ind:expr) => {{
        let ind: &iocd_domain::Indicator = $ind;
        $query
            .bind($tenant)
            .bind(ind.id)
            .bind(ind.indicator_value.clone())
            .bind(ind.indicator_type.as_str())
            .bind(ind.action.as_str())
            .bind(ind.created_by.clone())
            .bind(ind.severity.as_str())
            .bind(ind.category)
            .bind(ind.application.clone())
            .bind(ind.educate_url.clone())
            .bind(ind.bypass_duration_hours)
            .bind(ind.title.clone())
            .bind(ind.description.clone())
            .bind(ind.recommended_actions.clone())
            .bind(iocd_domain::time::to_ticks(ind.creation_time))
            .bind(ind.expiration_time.map(iocd_domain::time::to_ticks))
            .bind(iocd_domain::time::to_ticks(ind.last_update_time))
            .bind(ind.last_updated_by.clone())
            .bind($crate::rows::list_text(&ind.rbac_group_names))
            .bind($crate::rows::list_text(&ind.rbac_group_ids))
            .bind(ind.notification_id.clone())
            .bind(ind.notification_body.clone())
            .bind(ind.version.clone())
            .bind($crate::rows::list_text(&ind.mitre_techniques))
            .bind(ind.historical_detection)
            .bind($crate::rows::raw_text(&ind.look_back_period))
            .bind(ind.generate_alert)
            .bind($crate::rows::raw_text(&ind.additional_info))
            .bind(ind.created_by_display_name.clone())
            .bind(ind.external_id.clone())
            .bind(ind.created_by_source.clone())
            .bind($crate::rows::raw_text(&ind.certificate_info))
            .bind(ind.value_key.clone())
    }};
}
pub(crate) use bind_indicator;

pub fn ticks(t: iocd_domain::time::Timestamp) -> i64 {
    to_ticks(t)
}

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

// Batched statements. SQLite takes each batch's rows or keys as one JSON text parameter, read
// with `json_each`: one statement shape whatever the batch size, and few parameters (sqlx looks
// up every parameter's name as it binds, which SQLite does by walking the statement's list of
// names, so binding thousands of `$n` would be quadratic). PostgreSQL takes multi-row
// statements of fixed sizes with `$n` parameters.

/// The `SELECT` list and the column values of [`indicator_json`], by position.
fn json_columns() -> String {
    (0..COLUMNS.split(',').count())
        .map(|i| format!("value ->> {i}"))
        .collect::<Vec<_>>()
        .join(", ")
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
fn set_changeable_columns() -> String {
    COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|column| !FIXED_ON_UPDATE.contains(column))
        .map(|column| format!("{column} = excluded.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQLite: rows of tenant `?1` and type `?2` whose value key is in the JSON array `?3`.
pub static SQLITE_SELECT_BY_VALUES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = ?1 AND indicator_type = ?2 \
         AND value_key IN (SELECT value FROM json_each(?3))"
    )
});

/// SQLite: rows of tenant `?1` whose id is in the JSON array `?2`, expired or not.
pub static SQLITE_SELECT_BY_IDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = ?1 \
         AND id IN (SELECT value FROM json_each(?2))"
    )
});

/// SQLite: deletes the rows of tenant `?1` whose id is in the JSON array `?2`.
pub const SQLITE_DELETE_BY_IDS: &str =
    "DELETE FROM indicators WHERE tenant_id = ?1 AND id IN (SELECT value FROM json_each(?2))";

/// SQLite: inserts into tenant `?1` the rows of the JSON array `?2` (each an
/// [`indicator_json`]), rewriting whole those whose id exists already. (`WHERE true` tells
/// SQLite's parser that `ON CONFLICT` belongs to the `INSERT`, not to a join.)
pub static SQLITE_UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO indicators (tenant_id, {COLUMNS}) SELECT ?1, {} FROM json_each(?2) WHERE true \
         ON CONFLICT (tenant_id, id) DO UPDATE SET {}",
        json_columns(),
        set_changeable_columns()
    )
});

/// An indicator as a JSON array of its column values in [`COLUMNS`] order, as stored (times in
/// ticks, lists and raw JSON as text, booleans as `true`/`false`, which SQLite reads as 1/0).
pub fn indicator_json(ind: &Indicator) -> Value {
    serde_json::json!([
        ind.id,
        ind.indicator_value,
        ind.indicator_type.as_str(),
        ind.action.as_str(),
        ind.created_by,
        ind.severity.as_str(),
        ind.category,
        ind.application,
        ind.educate_url,
        ind.bypass_duration_hours,
        ind.title,
        ind.description,
        ind.recommended_actions,
        to_ticks(ind.creation_time),
        ind.expiration_time.map(to_ticks),
        to_ticks(ind.last_update_time),
        ind.last_updated_by,
        list_text(&ind.rbac_group_names),
        list_text(&ind.rbac_group_ids),
        ind.notification_id,
        ind.notification_body,
        ind.version,
        list_text(&ind.mitre_techniques),
        ind.historical_detection,
        raw_text(&ind.look_back_period),
        ind.generate_alert,
        raw_text(&ind.additional_info),
        ind.created_by_display_name,
        ind.external_id,
        ind.created_by_source,
        raw_text(&ind.certificate_info),
        ind.value_key,
    ])
}

/// Most rows one PostgreSQL multi-row upsert carries (an upsert of this
/// many rows binds 33 × 256 = 8,448 parameters; PostgreSQL allows 65,535).
pub const MAX_ROWS_PER_STATEMENT: usize = 256;
/// The statement sizes in use, 1, 2, 4, … 256: every multi-row statement has one of them, so a
/// connection prepares at most nine shapes of each and its statement cache keeps them all.
const STATEMENT_SIZES: usize = MAX_ROWS_PER_STATEMENT.trailing_zeros() as usize + 1;

type SizedStatements = [std::sync::OnceLock<String>; STATEMENT_SIZES];

/// The statement for `n` rows (a power of two up to [`MAX_ROWS_PER_STATEMENT`]), built once.
fn sized(cache: &'static SizedStatements, n: usize, build: fn(usize) -> String) -> &'static str {
    debug_assert!(n.is_power_of_two() && n <= MAX_ROWS_PER_STATEMENT);
    cache[n.trailing_zeros() as usize].get_or_init(|| build(n))
}

/// Splits `n` rows into statement sizes, largest first (`500` → 256, 128, 64, 32, 16, 4).
pub fn statement_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= MAX_ROWS_PER_STATEMENT {
            MAX_ROWS_PER_STATEMENT
        } else {
            1 << n.ilog2()
        };
        n -= size;
        Some(size)
    })
}

/// `$first, $first+1, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// PostgreSQL: rows of tenant `$1` and type `$2` whose value key is in the array `$3`.
pub static PG_SELECT_BY_VALUES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND indicator_type = $2 \
         AND value_key = ANY($3)"
    )
});

/// PostgreSQL: rows of tenant `$1` whose id is in the array `$2`, expired or not.
pub static PG_SELECT_BY_IDS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND id = ANY($2)")
});

/// PostgreSQL: deletes the rows of tenant `$1` whose id is in the array `$2`.
pub const PG_DELETE_BY_IDS: &str = "DELETE FROM indicators WHERE tenant_id = $1 AND id = ANY($2)";

/// PostgreSQL: inserts `n` rows, each bound by [`bind_indicator`], rewriting whole any row
/// whose (tenant, id) exists already: creates and updates of a batch in one statement.
pub fn upsert_sql(n: usize) -> &'static str {
    static CACHE: SizedStatements = [const { std::sync::OnceLock::new() }; STATEMENT_SIZES];
    sized(&CACHE, n, |n| {
        let per_row = COLUMNS.split(',').count() + 1;
        let rows: Vec<String> = (0..n)
            .map(|row| format!("({})", placeholders(row * per_row + 1, per_row)))
            .collect();
        format!(
            "INSERT INTO indicators (tenant_id, {COLUMNS}) VALUES {} \
             ON CONFLICT (tenant_id, id) DO UPDATE SET {}",
            rows.join(", "),
            set_changeable_columns()
        )
    })
}

/// The last id handed out in tenant `$1` (no row: none yet).
pub const LAST_ID: &str = "SELECT next_indicator_id FROM tenants WHERE tenant_id = $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_add_up_and_are_powers_of_two() {
        for n in 0..1200 {
            let sizes: Vec<usize> = statement_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}");
            assert!(
                sizes.iter().all(|s| s.is_power_of_two() && *s <= 256),
                "{n}"
            );
        }
        assert_eq!(
            statement_sizes(500).collect::<Vec<_>>(),
            [256, 128, 64, 32, 16, 4]
        );
    }

    #[test]
    fn upsert_binds_as_many_parameters_as_insert() {
        let one = upsert_sql(1);
        assert!(one.contains("($1, $2,") && one.ends_with("external_id = excluded.external_id"));
        assert!(one.contains("$33)") && !one.contains("$34"));
        assert!(!one.contains("value_key = excluded") && one.contains("title = excluded.title"));
        let two = upsert_sql(2);
        assert!(two.contains("($34, $35,") && two.contains("$66)") && !two.contains("$67"));
        assert!(!one.contains(" id = excluded.id"));
    }

    #[test]
    fn the_json_row_has_a_value_for_every_column() {
        let columns = COLUMNS.split(',').count();
        assert!(SQLITE_UPSERT.contains(&format!("value ->> {}", columns - 1)));
        assert!(!SQLITE_UPSERT.contains(&format!("value ->> {columns}")));
        let sub = iocd_domain::parse_submission(&serde_json::json!({
            "indicatorValue": "a.example.com", "indicatorType": "DomainName",
            "action": "Alert", "title": "t", "description": "d"
        }))
        .unwrap();
        let actor = iocd_domain::Actor {
            id: "app".into(),
            display_name: "App".into(),
        };
        let ind = Indicator::create(7, &sub, &actor, iocd_domain::time::now());
        let row = indicator_json(&ind);
        assert_eq!(row.as_array().unwrap().len(), columns);
        assert_eq!(row[0], 7);
        assert_eq!(row[columns - 1], "a.example.com");
    }
}
