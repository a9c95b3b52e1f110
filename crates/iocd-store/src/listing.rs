//! The list query both databases share: the visibility rules plus a compiled `$filter`,
//! `$orderby` and a page, as one parameterised statement. Only column names from the OData
//! catalogue and fixed keywords are written into the SQL; every value is a bind.

use iocd_domain::{Indicator, IndicatorType};
use iocd_odata::{order_by_sql, Dialect, Expr, Kind, OrderBy, Property, SqlValue};

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
    /// When not empty: the rows are of these types only (the filter says so too), and the
    /// page is read as one sorted query per type, merged by the database. For a sort on a
    /// column whose values follow the type (hashes are hex, URLs start with a scheme), one
    /// walk of the column's index passes every row of the other types before the first of
    /// the page; per type, each walk of a `(tenant, type, column)` index starts at the page.
    /// `indicatorValue` is sorted by its normalised form then, the upsert key's `value_key`.
    pub per_type: Vec<IndicatorType>,
    /// When set: only these ids (besides the filter). The portal's search names the rows its
    /// search index found this way. The ids are one bound parameter (a JSON array for SQLite's
    /// `json_each`, an array for PostgreSQL's `ANY`), so any number of them is one statement
    /// shape, and SQLite's planner, which takes such a list for a few rows, reads them by key.
    pub only_ids: Option<Vec<i64>>,
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
        sql: String::new(),
        binds: Vec::new(),
    };
    let order = if request.per_type.is_empty() {
        order_by_sql(&request.order_by)
    } else {
        order_by_sql(&by_value_key(&request.order_by))
    };
    let limit = i64::try_from(request.take.saturating_add(1)).unwrap_or(i64::MAX);
    let skip = i64::try_from(request.skip).unwrap_or(i64::MAX);
    if request.per_type.is_empty() {
        select_rows(&mut statement, scope, request, now_ticks, None);
    } else {
        // Each arm is a sorted page of one type from the top (skip + take + 1 rows: all the
        // merged page can need of it); the compound sorts the arms' rows and takes the page.
        // Arms are subqueries because SQLite does not take ORDER BY/LIMIT on a bare arm; the
        // aliases are for PostgreSQL before 16.
        statement.push(&format!("SELECT {COLUMNS} FROM ("));
        for (n, indicator_type) in request.per_type.iter().enumerate() {
            if n > 0 {
                statement.push(" UNION ALL ");
            }
            statement.push("SELECT * FROM (");
            select_rows(
                &mut statement,
                scope,
                request,
                now_ticks,
                Some(*indicator_type),
            );
            statement.push(&format!(" ORDER BY {order} LIMIT "));
            statement.bind(SqlValue::Int(limit.saturating_add(skip)));
            statement.push(&format!(") AS by_type_{n}"));
        }
        statement.push(") AS merged");
    }
    statement.push(&format!(" ORDER BY {order} LIMIT "));
    // Both databases take LIMIT/OFFSET as signed 64-bit; the OData layer bounds both far below.
    statement.bind(SqlValue::Int(limit));
    statement.push(" OFFSET ");
    statement.bind(SqlValue::Int(skip));
    BoundSql {
        sql: statement.sql,
        binds: statement.binds,
    }
}

/// The normalised value, which a per-type listing sorts by instead of the value as submitted:
/// the upsert key's index, `(tenant, type, value_key, action)`, gives each type's rows in that
/// order, where the submitted value would need an index of its own on every write. It is the
/// same order but for case (hashes in capitals sort with their lower-case spelling) and the
/// canonical form of addresses and URLs.
static VALUE_KEY: Property = Property {
    name: "indicatorValue",
    column: "value_key",
    kind: Kind::Text,
    nullable: false,
};

fn by_value_key(order_by: &[OrderBy]) -> Vec<OrderBy> {
    order_by
        .iter()
        .map(|item| OrderBy {
            property: if item.property.column == "indicator_value" {
                &VALUE_KEY
            } else {
                item.property
            },
            direction: item.direction,
        })
        .collect()
}

/// `SELECT … FROM indicators WHERE …`: the tenant, the active rows, the scope's owner, the
/// filter and, for one arm of a per-type listing, its type.
fn select_rows(
    statement: &mut Statement,
    scope: &Scope,
    request: &ListRequest,
    now_ticks: i64,
    only_type: Option<IndicatorType>,
) {
    statement.push(&format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = "
    ));
    statement.bind(SqlValue::Text(scope.tenant_id.clone()));
    if let Some(ids) = &request.only_ids {
        let listed: Vec<String> = ids.iter().map(i64::to_string).collect();
        match statement.dialect {
            Dialect::Sqlite => {
                statement.push(" AND id IN (SELECT value FROM json_each(");
                statement.bind(SqlValue::Text(format!("[{}]", listed.join(","))));
                statement.push("))");
            }
            Dialect::Postgres => {
                statement.push(" AND id = ANY(CAST(");
                statement.bind(SqlValue::Text(format!("{{{}}}", listed.join(","))));
                statement.push(" AS BIGINT[]))");
            }
        }
    }
    if let Some(indicator_type) = only_type {
        statement.push(" AND indicator_type = ");
        statement.bind(SqlValue::Text(indicator_type.as_str().to_string()));
    }
    statement.push(" AND (expiration_time IS NULL OR expiration_time > ");
    statement.bind(SqlValue::Int(now_ticks));
    statement.push(")");
    if let Some(owner) = &scope.owner {
        statement.push(" AND created_by = ");
        statement.bind(SqlValue::Text(owner.clone()));
    }
    if let Some(filter) = &request.filter {
        let fragment = filter.to_sql(statement.dialect, statement.binds.len() + 1);
        statement.push(" AND (");
        statement.push(&fragment.sql);
        statement.push(")");
        statement.binds.extend(fragment.binds);
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

    /// An app's own rows (an owner condition), the page of 10 after 5.
    fn own_page(filter: &str, per_type: Vec<IndicatorType>) -> (Scope, ListRequest) {
        let scope = Scope {
            tenant_id: "t".into(),
            owner: Some("app".into()),
        };
        let request = ListRequest {
            filter: Some(parse_filter(filter).unwrap()),
            order_by: Vec::new(),
            skip: 5,
            take: 10,
            per_type,
            only_ids: None,
        };
        (scope, request)
    }

    #[test]
    fn filter_placeholders_continue_the_fixed_ones() {
        let (scope, request) = own_page("indicatorValue eq 'x' or title eq 'y'", Vec::new());
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

    #[test]
    fn a_per_type_listing_has_an_arm_per_type_numbered_in_order() {
        let (scope, request) = own_page(
            "title eq 'y'",
            vec![IndicatorType::FileSha1, IndicatorType::FileMd5],
        );
        let pg = list_sql(Dialect::Postgres, &scope, &request, 7);
        assert_eq!(pg.sql.matches(" UNION ALL ").count(), 1, "{}", pg.sql);
        assert!(pg.sql.contains(
            "WHERE tenant_id = $1 AND indicator_type = $2 AND (expiration_time IS NULL OR \
             expiration_time > $3) AND created_by = $4 AND (title = $5) ORDER BY id ASC LIMIT $6) \
             AS by_type_0"
        ));
        assert!(pg.sql.contains("AND indicator_type = $8 AND"), "{}", pg.sql);
        assert!(pg
            .sql
            .ends_with(") AS merged ORDER BY id ASC LIMIT $13 OFFSET $14"));
        assert_eq!(pg.binds.len(), 14);
        assert_eq!(pg.binds[1], SqlValue::Text("FileSha1".into()));
        assert_eq!(pg.binds[7], SqlValue::Text("FileMd5".into()));
        // Each arm reads the rows before the page and one past it: skip + take + 1.
        assert_eq!(pg.binds[5], SqlValue::Int(16));
        assert_eq!(pg.binds[11], SqlValue::Int(16));
        assert_eq!(pg.binds[12], SqlValue::Int(11));
        assert_eq!(pg.binds[13], SqlValue::Int(5));
        let lite = list_sql(Dialect::Sqlite, &scope, &request, 7);
        assert_eq!(lite.sql.matches('?').count(), lite.binds.len());
    }
}
