//! The list handler: `GET /api/indicators` with OData query options (`$filter`, `$orderby`,
//! `$top`, `$skip`), paged with `@odata.nextLink`. Parsing is `iocd_odata`'s, the query the
//! store's; this module only joins them and builds the next page's link.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use iocd_domain::time;
use iocd_odata::{parse_list_query, ListQuery, MAX_TOP};
use iocd_store::ListRequest;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ODataBase;
use crate::handlers::{odata_json, CollectionEnvelope};
use crate::identity::{Caller, READ_ROLES};
use crate::AppState;

/// The query string's parameters, percent- and form-decoded (`%24filter` is `$filter`, `+` is
/// a space), in order.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The value of an OData option as the client sent it (matched as the parser matches it).
fn option_text<'a>(pairs: &'a [(String, String)], option: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(option))
        .map(|(_, value)| value.as_str())
}

/// The absolute URL of the page after this one: the same `$filter`, `$orderby` and `$top`,
/// the next `$skip`. Parameters that are not OData options are not repeated.
fn next_link(
    base: &ODataBase,
    pairs: &[(String, String)],
    query: &ListQuery,
    next_skip: u64,
) -> String {
    let mut link = format!("{}/indicators?", base.0);
    let mut first = true;
    let mut add = |name: &str, value: &str| {
        if !first {
            link.push('&');
        }
        first = false;
        link.push_str(name);
        link.push('=');
        link.extend(form_urlencoded::byte_serialize(value.as_bytes()));
    };
    for option in ["$filter", "$orderby"] {
        if let Some(text) = option_text(pairs, option) {
            add(option, text);
        }
    }
    if let Some(top) = query.top {
        add("$top", &top.to_string());
    }
    add("$skip", &next_skip.to_string());
    link
}

/// List indicators.
#[utoipa::path(
    get,
    path = "/api/indicators",
    tag = "indicators",
    params(
        ("$filter" = Option<String>, Query, description = "OData filter: eq ne gt ge lt le, in (a list in parentheses or brackets), and or not, parentheses, contains/startswith/endswith, rbacGroupNames/any(g: g eq 'x'). Percent-encoded names (%24filter) are accepted."),
        ("$top" = Option<u32>, Query, description = "Page size, at most 10000 (the default)."),
        ("$skip" = Option<u64>, Query, description = "Rows to skip."),
        ("$orderby" = Option<String>, Query, description = "Comma-separated `property [asc|desc]`; id breaks ties."),
    ),
    responses(
        (status = 200, description = "One page; `@odata.nextLink` is present when more rows remain", body = IndicatorCollection),
        (status = 400, description = "Invalid OData query (code ODataError); the message names the position and what was expected", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_indicators(
    State(app): State<AppState>,
    caller: Caller,
    base: ODataBase,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(READ_ROLES)?;
    let pairs = query_pairs(raw.as_deref());
    let query = parse_list_query(&pairs)?;
    let take = u64::from(query.top.unwrap_or(MAX_TOP));
    let request = ListRequest {
        filter: query.filter.clone(),
        order_by: query.order_by.clone(),
        skip: query.skip,
        take,
        per_type: Vec::new(),
        only_ids: None,
    };
    let page = app
        .store
        .list(&caller.read_scope(), &request, time::now())
        .await?;
    // `$top=0` asks for no rows; a link to the "next" empty page would never end.
    let next = (page.more && take > 0).then(|| {
        next_link(
            &base,
            &pairs,
            &query,
            query.skip + page.indicators.len() as u64,
        )
    });
    Ok(odata_json(&CollectionEnvelope {
        context: base.collection_context(),
        value: &page.indicators,
        next_link: next,
    }))
}

/// A page of `GET /api/indicators`, for the OpenAPI document.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct IndicatorCollection {
    #[serde(rename = "@odata.context")]
    #[schema(example = "https://iocd.example.com/api/$metadata#Indicators")]
    context: String,
    value: Vec<iocd_domain::Indicator>,
    /// Present when more rows remain: the absolute URL of the next page.
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}
