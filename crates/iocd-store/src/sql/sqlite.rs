//! SQLite's batched statements: each batch's keys or indicator rows go in as one JSON text
//! parameter, read with `json_each`; change-log entries go in as multi-row statements of
//! anonymous parameters.

use std::sync::LazyLock;

use iocd_domain::time::to_ticks;
use iocd_domain::{ChangeEntry, Indicator};
use serde_json::Value;

use super::{set_changeable_columns, sized, SizedStatements, CHANGE_COLUMNS, COLUMNS};
use crate::rows::{list_text, raw_text};

/// The `SELECT` list and the column values of [`indicator_json`], by position.
fn json_columns() -> String {
    (0..COLUMNS.split(',').count())
        .map(|i| format!("value ->> {i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// rows of tenant `?1` and type `?2` whose value key is in the JSON array `?3`.
pub static SELECT_BY_VALUES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = ?1 AND indicator_type = ?2 \
         AND value_key IN (SELECT value FROM json_each(?3))"
    )
});

/// rows of tenant `?1` whose id is in the JSON array `?2`, expired or not.
pub static SELECT_BY_IDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = ?1 \
         AND id IN (SELECT value FROM json_each(?2))"
    )
});

/// deletes the rows of tenant `?1` whose id is in the JSON array `?2`.
pub const DELETE_BY_IDS: &str =
    "DELETE FROM indicators WHERE tenant_id = ?1 AND id IN (SELECT value FROM json_each(?2))";

/// inserts into tenant `?1` the rows of the JSON array `?2` (each an
/// [`indicator_json`]), rewriting whole those whose id exists already. (`WHERE true` tells
/// SQLite's parser that `ON CONFLICT` belongs to the `INSERT`, not to a join.)
pub static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO indicators (tenant_id, {COLUMNS}) SELECT ?1, {} FROM json_each(?2) WHERE true \
         ON CONFLICT (tenant_id, id) DO UPDATE SET {}",
        json_columns(),
        set_changeable_columns()
    )
});

/// Up to this many entries, a batch's change-log rows go in as one statement of exactly that
/// many rows: small batches (single creates under load) then cost one round trip to SQLite's
/// thread, not one per power of two. With the powers of two above it, a connection prepares at
/// most 35 shapes, within sqlx's statement cache of 100.
pub const EXACT_CHANGE_ROWS: usize = 32;

/// appends `n` change-log entries (a size [`statement_sizes`](super::statement_sizes) gives
/// with [`EXACT_CHANGE_ROWS`]), each bound by [`bind_change`]: thirteen anonymous parameters,
/// the tenant then [`CHANGE_COLUMNS`].
///
/// Bound parameters rather than one JSON text read with `json_each` (as the indicators'
/// statements are): profiled under an import, SQLite's re-reading of each JSON row, once per
/// column, was the largest cost the log added to a batch. Anonymous `?`, not `?NNN`: sqlx looks
/// each named parameter up by walking SQLite's list of names, quadratic at thousands of them.
pub fn insert_changes(n: usize) -> &'static str {
    static CACHE: SizedStatements =
        [const { std::sync::OnceLock::new() }; super::MAX_ROWS_PER_STATEMENT + 1];
    assert!(
        n <= EXACT_CHANGE_ROWS || n.is_power_of_two(),
        "a change-log statement of {n} rows"
    );
    sized(&CACHE, n, |n| {
        let per_row = CHANGE_COLUMNS.split(',').count() + 1;
        let row = format!("({})", vec!["?"; per_row].join(", "));
        format!(
            "INSERT INTO change_log (tenant_id, {CHANGE_COLUMNS}) VALUES {}",
            vec![row; n].join(", ")
        )
    })
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds tenant `tenant`'s change-log entry `entry`: one row of [`insert_changes`].
pub fn bind_change<'q>(
    query: SqliteQuery<'q>,
    tenant: &'q str,
    entry: &'q ChangeEntry,
) -> SqliteQuery<'q> {
    query
        .bind(tenant)
        .bind(entry.sequence)
        .bind(to_ticks(entry.time))
        .bind(entry.actor.id.as_str())
        .bind(entry.actor.display_name.as_str())
        .bind(entry.actor.source.as_str())
        .bind(entry.indicator_id)
        .bind(entry.indicator_type.as_str())
        .bind(entry.indicator_value.as_str())
        .bind(entry.action.as_str())
        .bind(entry.created_by.as_str())
        .bind(entry.kind.as_str())
        .bind(crate::rows::changes_text(entry))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{statement_sizes, MAX_ROWS_PER_STATEMENT};

    #[test]
    fn the_json_row_has_a_value_for_every_column() {
        let columns = COLUMNS.split(',').count();
        assert!(UPSERT.contains(&format!("value ->> {}", columns - 1)));
        assert!(!UPSERT.contains(&format!("value ->> {columns}")));
        let sub = iocd_domain::parse_submission(&serde_json::json!({
            "indicatorValue": "a.example.com", "indicatorType": "DomainName",
            "action": "Alert", "title": "t", "description": "d"
        }))
        .unwrap();
        let actor = iocd_domain::Actor::new("app", "App");
        let ind = Indicator::create(7, &sub, &actor, iocd_domain::time::now());
        let row = indicator_json(&ind);
        assert_eq!(row.as_array().unwrap().len(), columns);
        assert_eq!(row[0], 7);
        assert_eq!(row[columns - 1], "a.example.com");
    }

    #[test]
    fn a_change_statement_has_thirteen_anonymous_parameters_per_entry() {
        let per_row = CHANGE_COLUMNS.split(',').count() + 1;
        for n in [1, 4, 7, EXACT_CHANGE_ROWS, 64, MAX_ROWS_PER_STATEMENT] {
            let sql = insert_changes(n);
            assert_eq!(sql.matches('?').count(), n * per_row, "{n}");
            assert_eq!(sql.matches("), (").count(), n - 1, "{n}");
        }
        assert!(MAX_ROWS_PER_STATEMENT * per_row < 32_766);
    }

    #[test]
    fn small_batches_of_changes_are_one_statement_and_large_ones_few() {
        for n in 1..=EXACT_CHANGE_ROWS {
            assert_eq!(
                statement_sizes(n, EXACT_CHANGE_ROWS).collect::<Vec<_>>(),
                [n]
            );
        }
        assert_eq!(
            statement_sizes(300, EXACT_CHANGE_ROWS).collect::<Vec<_>>(),
            [256, 32, 12]
        );
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..3000 {
            let sizes: Vec<usize> = statement_sizes(n, EXACT_CHANGE_ROWS).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}");
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{n}: {sizes:?}");
            let rest = sizes
                .iter()
                .filter(|s| **s < MAX_ROWS_PER_STATEMENT)
                .count();
            assert!(rest <= 4, "{n}: {sizes:?}");
            for size in sizes {
                insert_changes(size);
                shapes.insert(size);
            }
        }
        assert!(shapes.len() <= 35, "{} shapes", shapes.len());
    }
}
