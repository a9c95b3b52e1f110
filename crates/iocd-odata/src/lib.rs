//! OData query options for iocd's `GET /api/indicators`, compiled to parameterised SQL.
//!
//! ```
//! use iocd_odata::{parse_list_query, order_by_sql, Dialect, SqlValue};
//!
//! let pairs = vec![
//!     ("$filter".to_string(), "indicatorValue eq 'evil.example'".to_string()),
//!     ("$top".to_string(), "50".to_string()),
//! ];
//! let query = parse_list_query(&pairs).unwrap();
//! let fragment = query.filter.unwrap().to_sql(Dialect::Postgres, 1);
//! assert_eq!(fragment.sql, "indicator_value = $1");
//! assert_eq!(fragment.binds, vec![SqlValue::Text("evil.example".into())]);
//! assert_eq!(query.top, Some(50));
//! assert_eq!(order_by_sql(&query.order_by), "id ASC");
//! ```
//!
//! The library only parses and compiles; it performs no HTTP and no database access.

mod catalogue;
mod datetime;
mod error;
mod filter;
mod lexer;
mod query;
mod sql;

pub use catalogue::{
    find_property, indicator_properties, Kind, Property, ACTIONS, INDICATOR_TYPES, SEVERITIES,
};
pub use error::ODataError;
pub use filter::{
    parse_filter, ComparisonOp, Expr, Quantifier, Target, TextFunction, Value, MAX_CONDITIONS,
    MAX_NESTING,
};
pub use query::{
    order_by_sql, parse_list_query, parse_order_by, ListQuery, OrderBy, SortDirection, MAX_TOP,
};
pub use sql::{Dialect, SqlFragment, SqlValue};

/// Ticks per second. The store keeps times as i64 ticks of 100 ns since the Unix epoch, UTC,
/// and datetime literals compile to binds in that unit.
pub const TICKS_PER_SECOND: i64 = datetime::TICKS_PER_SECOND;
