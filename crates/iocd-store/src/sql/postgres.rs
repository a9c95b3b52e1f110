//! PostgreSQL's batched statements: keys and ids as one array parameter (`= ANY($n)`), rows in
//! multi-row statements of a few fixed sizes.

use std::sync::LazyLock;

use super::{set_changeable_columns, sized, SizedStatements, CHANGE_COLUMNS, COLUMNS};

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

/// `$first, $first+1, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// rows of tenant `$1` and type `$2` whose value key is in the array `$3`.
pub static SELECT_BY_VALUES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND indicator_type = $2 \
         AND value_key = ANY($3)"
    )
});

/// rows of tenant `$1` whose id is in the array `$2`, expired or not.
pub static SELECT_BY_IDS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND id = ANY($2)")
});

/// deletes the rows of tenant `$1` whose id is in the array `$2`.
pub const DELETE_BY_IDS: &str = "DELETE FROM indicators WHERE tenant_id = $1 AND id = ANY($2)";

/// appends to tenant `$1` the change-log entries whose columns are the arrays `$2`…`$13`, in
/// [`CHANGE_COLUMNS`] order: one statement whatever the number of entries.
pub static INSERT_CHANGES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO change_log (tenant_id, {CHANGE_COLUMNS}) SELECT $1, * FROM unnest(\
         $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], \
         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])"
    )
});

/// Upserts go in statements of powers of two only ([`super::statement_sizes`]).
pub const EXACT_UPSERT_ROWS: usize = 1;

/// inserts `n` rows (a power of two), each bound by [`bind_indicator`], rewriting whole any row
/// whose (tenant, id) exists already: creates and updates of a batch in one statement.
pub fn upsert_sql(n: usize) -> &'static str {
    static CACHE: SizedStatements =
        [const { std::sync::OnceLock::new() }; super::MAX_ROWS_PER_STATEMENT + 1];
    debug_assert!(n.is_power_of_two());
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
