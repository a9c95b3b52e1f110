//! SQLite's batched statements: each batch's keys or rows go in as one JSON text parameter,
//! read with `json_each`.

use std::sync::LazyLock;

use iocd_domain::time::to_ticks;
use iocd_domain::{ChangeEntry, Indicator};
use serde_json::Value;

use super::{set_changeable_columns, CHANGE_COLUMNS, COLUMNS};
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

/// appends to tenant `?1` the change-log entries of the JSON array `?2` (each a
/// [`change_json`]).
pub static INSERT_CHANGES: LazyLock<String> = LazyLock::new(|| {
    let values = (0..CHANGE_COLUMNS.split(',').count())
        .map(|i| format!("value ->> {i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO change_log (tenant_id, {CHANGE_COLUMNS}) SELECT ?1, {values} FROM json_each(?2)")
});

/// A change-log entry as a JSON array of its column values in [`CHANGE_COLUMNS`] order.
pub fn change_json(entry: &ChangeEntry) -> Value {
    serde_json::json!([
        entry.sequence,
        to_ticks(entry.time),
        entry.actor.id,
        entry.actor.display_name,
        entry.actor.source.as_str(),
        entry.indicator_id,
        entry.indicator_type.as_str(),
        entry.indicator_value,
        entry.action.as_str(),
        entry.created_by,
        entry.kind.as_str(),
        crate::rows::changes_text(entry),
    ])
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
}
