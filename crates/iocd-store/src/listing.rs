//! The list query both databases share: the visibility rules plus a compiled `$filter`,
//! `$orderby` and a page, as one parameterised statement. Only column names from the OData
//! catalogue and fixed keywords are written into the SQL; every value is a bind.

use iocd_domain::Indicator;
use iocd_odata::{order_by_sql, Dialect, Expr, OrderBy, SqlValue};

use crate::sql::COLUMNS;
use crate::Scope;

/// What to list: an already parsed and type-checked `$filter`, the `$orderby` terms, and the page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListRequest {
    pub filter: Option<Expr>,
    pub order_by: Vec<OrderBy>,
    pub skip: u64,
    /// The page size; 0 returns an empty page (that still tells whether rows exist).
    pub take: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub indicators: Vec<Indicator>,
    /// Whether rows remain after this page (the store fetched one row more than it returns).
    pub more: bool,
}

/// A statement and its binds, in placeholder order.
pub(crate) struct BoundSql {
    pub sql: String,
    pub binds: Vec<SqlValue>,
}

/// Writes placeholders in a dialect's style while collecting their values, so the fixed
/// conditions and the compiled filter number their parameters as one sequence.
struct Statement {
    dialect: Dialect,
    sql: String,
    binds: Vec<SqlValue>,
}

impl Statement {
    fn push(&mut self, text: &str) {
        self.sql.push_str(text);
    }

    fn bind(&mut self, value: SqlValue) {
        self.binds.push(value);
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => self.sql.push_str(&format!("${}", self.binds.len())),
        }
    }
}

/// The page query: `take + 1` rows, so that the caller learns whether more remain.
///
/// The owner condition is only written when the scope has one (rather than `$n IS NULL OR …`),
/// and the filter is ANDed in its plain form, so the planner sees indexable conditions:
/// `tenant_id = ? AND indicator_value = ?` uses `indicators_value`, and so on.
pub(crate) fn list_sql(
    dialect: Dialect,
    scope: &Scope,
    request: &ListRequest,
    now_ticks: i64,
) -> BoundSql {
    let mut statement = Statement {
        dialect,
        sql: format!("SELECT {COLUMNS} FROM indicators WHERE tenant_id = "),
        binds: Vec::new(),
    };
    statement.bind(SqlValue::Text(scope.tenant_id.clone()));
    statement.push(" AND (expiration_time IS NULL OR expiration_time > ");
    statement.bind(SqlValue::Int(now_ticks));
    statement.push(")");
    if let Some(owner) = &scope.owner {
        statement.push(" AND created_by = ");
        statement.bind(SqlValue::Text(owner.clone()));
    }
    if let Some(filter) = &request.filter {
        let fragment = filter.to_sql(dialect, statement.binds.len() + 1);
        statement.push(" AND (");
        statement.push(&fragment.sql);
        statement.push(")");
        statement.binds.extend(fragment.binds);
    }
    statement.push(&format!(
        " ORDER BY {} LIMIT ",
        order_by_sql(&request.order_by)
    ));
    // Both databases take LIMIT/OFFSET as signed 64-bit; the OData layer bounds both far below.
    statement.bind(SqlValue::Int(
        i64::try_from(request.take.saturating_add(1)).unwrap_or(i64::MAX),
    ));
    statement.push(" OFFSET ");
    statement.bind(SqlValue::Int(
        i64::try_from(request.skip).unwrap_or(i64::MAX),
    ));
    BoundSql {
        sql: statement.sql,
        binds: statement.binds,
    }
}

/// Binds [`SqlValue`]s to a sqlx query in order (the same code for both databases).
macro_rules! bind_values {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for value in $binds {
            query = match value {
                iocd_odata::SqlValue::Text(text) => query.bind(text.clone()),
                iocd_odata::SqlValue::Int(int) => query.bind(*int),
                iocd_odata::SqlValue::Bool(flag) => query.bind(*flag),
            };
        }
        query
    }};
}
pub(crate) use bind_values;

/// Splits the `take + 1` rows fetched into the page and whether more remain.
pub(crate) fn into_page(mut indicators: Vec<Indicator>, take: u64) -> ListPage {
    let take = usize::try_from(take).unwrap_or(usize::MAX);
    let more = indicators.len() > take;
    indicators.truncate(take);
    ListPage { indicators, more }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iocd_odata::parse_filter;

    #[test]
    fn filter_placeholders_continue_the_fixed_ones() {
        let scope = Scope {
            tenant_id: "t".into(),
            owner: Some("app".into()),
        };
        let request = ListRequest {
            filter: Some(parse_filter("indicatorValue eq 'x' or title eq 'y'").unwrap()),
            order_by: Vec::new(),
            skip: 5,
            take: 10,
        };
        let pg = list_sql(Dialect::Postgres, &scope, &request, 7);
        assert!(
            pg.sql.ends_with(
                "WHERE tenant_id = $1 AND (expiration_time IS NULL OR expiration_time > $2) \
                 AND created_by = $3 AND ((indicator_value = $4 OR title = $5)) \
                 ORDER BY id ASC LIMIT $6 OFFSET $7"
            ),
            "{}",
            pg.sql
        );
        assert_eq!(pg.binds.len(), 7);
        assert_eq!(pg.binds[5], SqlValue::Int(11));
        assert_eq!(pg.binds[6], SqlValue::Int(5));
        let lite = list_sql(Dialect::Sqlite, &Scope::tenant_wide("t"), &request, 7);
        assert_eq!(lite.sql.matches('?').count(), lite.binds.len());
        assert!(!lite.sql.contains('$'));
    }
}
