//! The query options of `GET /api/indicators`: `$filter`, `$top`, `$skip` and `$orderby`.

use crate::catalogue::{
    find_property, find_property_ignoring_case, property_names, Kind, Property,
};
use crate::error::ODataError;
use crate::filter::{parse_filter, Expr};
use crate::lexer::{Lexer, TokenKind};

/// The documented maximum page size.
pub const MAX_TOP: u32 = 10_000;

const SUPPORTED_OPTIONS: &[&str] = &["$filter", "$top", "$skip", "$orderby"];

/// The parsed, validated query options of a list request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    pub filter: Option<Expr>,
    pub top: Option<u32>,
    pub skip: u64,
    pub order_by: Vec<OrderBy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy {
    pub property: &'static Property,
    pub direction: SortDirection,
}

/// Parses already percent-decoded query parameters.
///
/// Option names are matched case-insensitively (OData 4.01). Parameters without a leading `$` are
/// ignored because real clients send unrelated ones; unknown `$` options and repeated options are errors.
pub fn parse_list_query(pairs: &[(String, String)]) -> Result<ListQuery, ODataError> {
    let mut query = ListQuery::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in pairs {
        let name = name.trim();
        if !name.starts_with('$') {
            continue;
        }
        let option = name.to_ascii_lowercase();
        if !SUPPORTED_OPTIONS.contains(&option.as_str()) {
            return Err(ODataError::new(format!(
                "query option '{name}' is not supported; supported options are {}",
                SUPPORTED_OPTIONS.join(", ")
            )));
        }
        if seen.contains(&option) {
            return Err(ODataError::new(format!(
                "query option '{option}' is given more than once"
            )));
        }
        match option.as_str() {
            "$filter" => query.filter = Some(parse_filter(value)?),
            "$top" => query.top = Some(parse_top(value)?),
            "$skip" => query.skip = parse_skip(value)?,
            _ => query.order_by = parse_order_by(value)?,
        }
        seen.push(option);
    }
    Ok(query)
}

fn is_unsigned_integer(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}

fn not_a_count(option: &str, value: &str) -> ODataError {
    ODataError::new(format!(
        "{option}: expected a non-negative integer, found '{value}'"
    ))
}

fn parse_non_negative(option: &str, value: &str) -> Result<u64, ODataError> {
    let text = value.trim();
    if !is_unsigned_integer(text) {
        return Err(not_a_count(option, value));
    }
    // All digits, so the only way to fail is overflow.
    text.parse::<u64>()
        .map_err(|_| ODataError::new(format!("{option}: {text} is too large")))
}

fn parse_top(value: &str) -> Result<u32, ODataError> {
    let text = value.trim();
    if !is_unsigned_integer(text) {
        return Err(not_a_count("$top", value));
    }
    match text.parse::<u32>() {
        Ok(top) if top <= MAX_TOP => Ok(top),
        // Larger than the maximum, including values too long for any integer type.
        _ => Err(ODataError::new(format!(
            "$top: {text} is larger than the maximum of 10,000"
        ))),
    }
}

fn parse_skip(value: &str) -> Result<u64, ODataError> {
    let skip = parse_non_negative("$skip", value)?;
    // Databases take OFFSET as a signed 64-bit integer.
    if skip > i64::MAX as u64 {
        return Err(ODataError::new(format!("$skip: {skip} is too large")));
    }
    Ok(skip)
}

/// Parses `$orderby`: comma-separated `property [asc|desc]` on scalar properties.
pub fn parse_order_by(text: &str) -> Result<Vec<OrderBy>, ODataError> {
    const OPTION: &str = "$orderby";
    let mut lexer = Lexer::new(OPTION, text);
    let mut order = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let TokenKind::Name(name) = &token.kind else {
            return Err(ODataError::at(
                OPTION,
                token.pos,
                format!("expected a property name, found {}", token.describe()),
            ));
        };
        let sortable = |p: &Property| p.kind != Kind::TextList;
        let property = match find_property(name) {
            Some(p) if sortable(p) => p,
            Some(p) => {
                return Err(ODataError::at(
                    OPTION,
                    token.pos,
                    format!(
                        "cannot sort by {} (a collection); sortable properties are: {}",
                        p.name,
                        property_names(sortable)
                    ),
                ))
            }
            None => {
                let detail = match find_property_ignoring_case(name) {
                    Some(p) => format!(
                        "unknown property '{name}'; did you mean '{}'? (property names are case-sensitive)",
                        p.name
                    ),
                    None => format!(
                        "unknown property '{name}'; sortable properties are: {}",
                        property_names(sortable)
                    ),
                };
                return Err(ODataError::at(OPTION, token.pos, detail));
            }
        };
        if order.iter().any(|o: &OrderBy| o.property == property) {
            return Err(ODataError::at(
                OPTION,
                token.pos,
                format!("{} appears more than once", property.name),
            ));
        }
        let mut next = lexer.next_token()?;
        let mut direction = SortDirection::Ascending;
        if next.is_keyword("asc") || next.is_keyword("desc") {
            if next.is_keyword("desc") {
                direction = SortDirection::Descending;
            }
            next = lexer.next_token()?;
        }
        order.push(OrderBy {
            property,
            direction,
        });
        match next.kind {
            TokenKind::End => return Ok(order),
            TokenKind::Comma => {}
            _ => {
                return Err(ODataError::at(
                    OPTION,
                    next.pos,
                    format!(
                        "expected 'asc', 'desc', ',' or end of input, found {}",
                        next.describe()
                    ),
                ))
            }
        }
    }
}

/// The `ORDER BY` list (without the keywords) for `order`, e.g. `creation_time DESC, id ASC`.
///
/// Always ends with `id` so that `$top`/`$skip` paging is stable. Nullable columns get an explicit
/// NULLS FIRST/LAST (nulls sort lowest, as in .NET and SQL Server) because SQLite and PostgreSQL
/// default to opposite ends and the result must not depend on the backend.
pub fn order_by_sql(order: &[OrderBy]) -> String {
    let mut terms = Vec::with_capacity(order.len() + 1);
    for item in order {
        let (direction, nulls) = match item.direction {
            SortDirection::Ascending => ("ASC", " NULLS FIRST"),
            SortDirection::Descending => ("DESC", " NULLS LAST"),
        };
        let nulls = if item.property.nullable { nulls } else { "" };
        terms.push(format!("{} {direction}{nulls}", item.property.column));
        // id is unique: anything after it could never change the order.
        if item.property.name == "id" {
            return terms.join(", ");
        }
    }
    terms.push("id ASC".to_string());
    terms.join(", ")
}
