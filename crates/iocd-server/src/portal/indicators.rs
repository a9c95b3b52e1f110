//! The indicator pages: the list with its four tabs, search, filters, sorting and paging.
//!
//! The list's controls become the OData query options of `GET /api/indicators` (`$filter`,
//! `$orderby`, `$top`, `$skip`), parsed by `iocd_odata` and run by the store's list query: the
//! portal shows exactly what the API would return, and the page shows that API call.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use iocd_domain::search::SearchHits;
use iocd_domain::time::{self, format_wire, Timestamp};
use iocd_domain::{Indicator, IndicatorType};
use iocd_odata::parse_list_query;
use iocd_store::{ListPage, ListRequest};
use maud::{html, Markup};

use super::{field, message_page, page, Section, Signed};
use crate::AppState;

/// Page sizes the list offers; the default is the first.
const PAGE_SIZES: [u64; 3] = [50, 100, 25];

/// The list's tabs, as Defender's portal groups the types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Files,
    Ips,
    Urls,
    Certificates,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Files, Tab::Ips, Tab::Urls, Tab::Certificates];

    pub fn slug(self) -> &'static str {
        match self {
            Tab::Files => "files",
            Tab::Ips => "ips",
            Tab::Urls => "urls",
            Tab::Certificates => "certificates",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tab::Files => "File hashes",
            Tab::Ips => "IP addresses",
            Tab::Urls => "URLs/Domains",
            Tab::Certificates => "Certificates",
        }
    }

    /// What one row of the tab is called ("no file hashes yet").
    fn noun(self) -> &'static str {
        match self {
            Tab::Files => "file hashes",
            Tab::Ips => "IP addresses",
            Tab::Urls => "URLs or domains",
            Tab::Certificates => "certificates",
        }
    }

    pub fn types(self) -> &'static [IndicatorType] {
        match self {
            Tab::Files => &[
                IndicatorType::FileSha256,
                IndicatorType::FileSha1,
                IndicatorType::FileMd5,
            ],
            Tab::Ips => &[IndicatorType::IpAddress],
            Tab::Urls => &[IndicatorType::Url, IndicatorType::DomainName],
            Tab::Certificates => &[IndicatorType::CertificateThumbprint],
        }
    }

    pub fn of_type(indicator_type: IndicatorType) -> Tab {
        Tab::ALL
            .into_iter()
            .find(|tab| tab.types().contains(&indicator_type))
            .unwrap_or(Tab::Files)
    }

    pub fn parse(slug: &str) -> Tab {
        Tab::ALL
            .into_iter()
            .find(|tab| tab.slug() == slug)
            .unwrap_or(Tab::Files)
    }
}

/// The columns the list sorts by: (OData property, heading).
const SORTABLE: &[(&str, &str)] = &[
    ("indicatorValue", "Value"),
    ("indicatorType", "Type"),
    ("action", "Action"),
    ("severity", "Severity"),
    ("title", "Title"),
    ("expirationTime", "Expires"),
    ("createdBy", "Created by"),
    ("creationTimeDateTimeUtc", "Created"),
];

/// What the list's form asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListParams {
    pub tab: Tab,
    pub search: String,
    pub action: String,
    pub severity: String,
    /// `""` any, `never`, or `1d`/`7d`/`30d`: expires within that time.
    pub expiry: String,
    pub created_by: String,
    pub sort: String,
    pub descending: bool,
    /// 1-based.
    pub page: u64,
    pub size: u64,
}

impl ListParams {
    pub fn parse(raw: Option<&str>) -> ListParams {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| field(&pairs, name).trim().to_string();
        let sort = get("sort");
        // Newest first by default: ids grow with creation, and every index ends in the id, so
        // the first page is read without sorting the tab (docs/benchmarks.md, "Portal").
        let sort = if sort == "id" || SORTABLE.iter().any(|(p, _)| *p == sort) {
            sort
        } else {
            "id".to_string()
        };
        let size = get("size").parse().unwrap_or(PAGE_SIZES[0]);
        ListParams {
            tab: Tab::parse(&get("tab")),
            search: get("q"),
            action: get("action"),
            severity: get("severity"),
            expiry: get("expiry"),
            created_by: get("createdBy"),
            sort,
            // Newest first unless asked otherwise.
            descending: get("dir") != "asc",
            page: get("page").parse().unwrap_or(1).max(1),
            size: if PAGE_SIZES.contains(&size) {
                size
            } else {
                PAGE_SIZES[0]
            },
        }
    }

    /// Whether anything narrows the tab.
    fn filtered(&self) -> bool {
        !(self.search.is_empty()
            && self.action.is_empty()
            && self.severity.is_empty()
            && self.expiry.is_empty()
            && self.created_by.is_empty())
    }

    /// The OData `$filter` of these controls at `now`.
    pub fn odata_filter(&self, now: Timestamp) -> String {
        let types: Vec<String> = self
            .tab
            .types()
            .iter()
            .map(|t| literal(t.as_str()))
            .collect();
        let mut terms = vec![if types.len() == 1 {
            format!("indicatorType eq {}", types[0])
        } else {
            format!("indicatorType in ({})", types.join(","))
        }];
        if !self.search.is_empty() {
            let text = literal(&self.search);
            terms.push(format!(
                "(contains(indicatorValue,{text}) or contains(title,{text}))"
            ));
        }
        if !self.action.is_empty() {
            terms.push(format!("action eq {}", literal(&self.action)));
        }
        if !self.severity.is_empty() {
            terms.push(format!("severity eq {}", literal(&self.severity)));
        }
        let within = |days: i64| {
            let until = now + chrono::Duration::days(days);
            format!(
                "expirationTime ne null and expirationTime le {}",
                format_wire(until)
            )
        };
        match self.expiry.as_str() {
            "never" => terms.push("expirationTime eq null".to_string()),
            "1d" => terms.push(within(1)),
            "7d" => terms.push(within(7)),
            "30d" => terms.push(within(30)),
            _ => {}
        }
        if !self.created_by.is_empty() {
            terms.push(format!("createdBy eq {}", literal(&self.created_by)));
        }
        terms.join(" and ")
    }

    /// The sort, with ties broken by id in the same direction. The API's own tie-break is
    /// `id asc`; with a descending column that makes SQLite sort each run of equal values (all
    /// the indicators without an expiry, or of one severity: most of a tab at a million), where
    /// `id desc` lets it walk the column's index backwards and stop after a page (its indexes
    /// end with the table's key, `id`).
    pub fn odata_order_by(&self) -> String {
        let direction = if self.descending { "desc" } else { "asc" };
        if self.sort == "id" {
            format!("id {direction}")
        } else {
            format!("{} {direction},id {direction}", self.sort)
        }
    }

    /// The types to read one by one ([`ListRequest::per_type`]) when sorting by value, title or
    /// type. Value and title follow the type (hashes are hex, URLs start with their scheme), so
    /// one walk of the column's index would pass every row of the other types first; per type,
    /// each walk starts at the page (docs/benchmarks.md, "Portal"). A type sort is the type's
    /// index read in order per type: PostgreSQL sorted the tab for `type in (…)` instead. A
    /// value sort is per type even for one type: that reads the upsert key's index, in the
    /// normalised value's order.
    pub fn per_type(&self) -> Vec<IndicatorType> {
        let types = self.tab.types();
        let split = match self.sort.as_str() {
            "indicatorValue" => true,
            // One type's filter already leads to its title index, or has one type.
            "title" | "indicatorType" => types.len() > 1,
            _ => false,
        };
        if split {
            types.to_vec()
        } else {
            Vec::new()
        }
    }

    /// The query options of the API call that lists the same page.
    pub fn odata_pairs(&self, now: Timestamp) -> Vec<(String, String)> {
        vec![
            ("$filter".to_string(), self.odata_filter(now)),
            ("$orderby".to_string(), self.odata_order_by()),
            ("$top".to_string(), self.size.to_string()),
            (
                "$skip".to_string(),
                ((self.page - 1) * self.size).to_string(),
            ),
        ]
    }

    /// This list's URL with some controls changed (links of tabs, headings and pages).
    pub fn url_with(&self, change: impl FnOnce(&mut ListParams)) -> String {
        let mut next = self.clone();
        change(&mut next);
        next.url()
    }

    pub fn url(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("tab", self.tab.slug());
        for (name, value) in [
            ("q", &self.search),
            ("action", &self.action),
            ("severity", &self.severity),
            ("expiry", &self.expiry),
            ("createdBy", &self.created_by),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.append_pair("sort", &self.sort);
        query.append_pair("dir", if self.descending { "desc" } else { "asc" });
        if self.size != PAGE_SIZES[0] {
            query.append_pair("size", &self.size.to_string());
        }
        if self.page > 1 {
            query.append_pair("page", &self.page.to_string());
        }
        format!("/portal/indicators?{}", query.finish())
    }
}

/// An OData string literal (quotes doubled).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `GET /portal/indicators`: one page of a tab.
pub(crate) async fn list(
    State(app): State<AppState>,
    signed: Signed,
    RawQuery(raw): RawQuery,
) -> Response {
    if !signed.can_read() {
        return no_role(&signed);
    }
    let params = ListParams::parse(raw.as_deref());
    let notice = done_notice(raw.as_deref());
    let now = time::now();
    let pairs = params.odata_pairs(now);
    let query = match parse_list_query(&pairs) {
        Ok(query) => query,
        Err(error) => {
            return list_page(
                &signed,
                &params,
                &pairs,
                Err(error.to_string()),
                None,
                notice,
            );
        }
    };
    let mut request = ListRequest {
        filter: query.filter,
        order_by: query.order_by,
        skip: query.skip,
        take: params.size,
        per_type: params.per_type(),
        only_ids: None,
    };
    let scope = signed.caller.read_scope();
    let searched = narrow_to_search(&app, &signed.caller.tenant_id, &params, &mut request).await;
    let listed = if searched == Searched::NothingFound {
        Ok(ListPage {
            indicators: Vec::new(),
            more: false,
        })
    } else {
        app.store.list(&scope, &request, now).await
    };
    let listed = match listed {
        Ok(page) => page,
        Err(error) => {
            tracing::error!(%error, "portal list failed");
            return message_page(
                &signed,
                StatusCode::SERVICE_UNAVAILABLE,
                "The list is unavailable",
                html! { p { "The database did not answer. Try again in a moment." } },
            );
        }
    };
    // An empty tab: is the whole tenant empty (then say how to start)?
    let tenant_empty = if listed.indicators.is_empty() && !params.filtered() {
        app.store
            .count_active(&signed.caller.tenant_id, now)
            .await
            .ok()
            .map(|count| count == 0)
    } else {
        None
    };
    list_page(
        &signed,
        &params,
        &pairs,
        Ok((&listed.indicators, listed.more)),
        tenant_empty,
        notice,
    )
}

/// Most ids a search hands the list query (`ListRequest::only_ids`). A term found more often
/// reads the rows instead, where a page fills after some thousands of rows.
pub(crate) const SEARCH_IDS: usize = 10_000;

/// What the search index did to a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Searched {
    /// No search, or a term too common for the index to help: the rows are read as they are.
    Unchanged,
    /// The request now reads only the ids the index found.
    Narrowed,
    /// No indicator of the tab holds the term: nothing to read.
    NothingFound,
}

/// Narrows `request` to the indicators whose value or title the tenant's search index
/// ([`iocd_domain::search::TextIndex`]) says may hold the search term. The request keeps its
/// `contains` conditions, so the page is exactly what the database alone would give; the ids
/// only spare it reading the whole tab, which at a million indicators took 0.3 s.
async fn narrow_to_search(
    app: &AppState,
    tenant_id: &str,
    params: &ListParams,
    request: &mut ListRequest,
) -> Searched {
    if params.search.is_empty() {
        return Searched::Unchanged;
    }
    let found = app
        .matcher
        .search(tenant_id, &params.search, params.tab.types(), SEARCH_IDS)
        .await;
    let ids = match found {
        Ok(SearchHits::Ids(ids)) => ids,
        Ok(SearchHits::TooMany) => return Searched::Unchanged,
        Err(error) => {
            tracing::warn!(%error, "the search index is unavailable; the list reads every row");
            return Searched::Unchanged;
        }
    };
    if ids.is_empty() {
        return Searched::NothingFound;
    }
    request.only_ids = Some(ids);
    // A few rows found by their key and then sorted beat a walk of each type's sort index.
    // A value sort stays per type: it sorts by the normalised value there (see `per_type`).
    if params.sort != "indicatorValue" {
        request.per_type.clear();
    }
    Searched::Narrowed
}

/// What the page after a change says (`done=deleted&n=3`).
fn done_notice(raw: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    match field(&pairs, "done") {
        "deleted" => {
            let n: u64 = field(&pairs, "n").parse().unwrap_or(1);
            Some(if n == 1 {
                "1 indicator deleted.".to_string()
            } else {
                format!("{n} indicators deleted.")
            })
        }
        _ => None,
    }
}

/// The page for a user whose role does not let them read indicators.
pub(crate) fn no_role(signed: &Signed) -> Response {
    message_page(
        signed,
        StatusCode::FORBIDDEN,
        "No access to indicators",
        html! {
            p { "Your account has no role that lets you see indicators. Ask an administrator for "
                code { "Iocd.Indicators.Read" } " or " code { "Iocd.Indicators.Manage" } "." }
        },
    )
}

type Listed<'a> = Result<(&'a [Indicator], bool), String>;

fn list_page(
    signed: &Signed,
    params: &ListParams,
    pairs: &[(String, String)],
    listed: Listed<'_>,
    tenant_empty: Option<bool>,
    notice: Option<String>,
) -> Response {
    let api_query = pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{name}={}",
                form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let body = html! {
        h1 { "Indicators" }
        @if let Some(notice) = &notice {
            div.notice.good role="status" #notice { (notice) }
        }
        nav.tabs aria-label="Indicator types" {
            @for tab in Tab::ALL {
                a href=(params.url_with(|p| { p.tab = tab; p.page = 1; }))
                    aria-current=[(tab == params.tab).then_some("page")] { (tab.label()) }
            }
        }
        (filter_form(params))
        div.actions {
            @if signed.can_manage() {
                a.button #add href={ "/portal/indicators/new?tab=" (params.tab.slug()) } { "Add indicator" }
                a.button.secondary href="/portal/import" { "Import" }
            }
            @let query = params.url();
            @let query = query.split_once('?').map_or("", |(_, q)| q);
            span.muted { "Export this filter:" }
            @for (format, label) in [("csv", "CSV"), ("json", "JSON"), ("stix", "STIX")] {
                a.button.secondary href={ "/portal/export?format=" (format) "&" (query) } { (label) }
            }
        }
        @match &listed {
            Err(error) => {
                div.notice.bad role="alert" { "The filter could not be applied: " (error) }
            }
            Ok((rows, more)) => {
                @if rows.is_empty() {
                    (empty_state(signed, params, tenant_empty == Some(true)))
                } @else {
                    (table(signed, params, rows))
                    (pager(params, rows.len() as u64, *more))
                }
            }
        }
        details {
            summary.muted { "The same list through the API" }
            pre { "GET " (signed.origin.url) "/api/indicators?" (api_query) }
        }
    };
    page(signed, Section::Indicators, "Indicators", body)
}

fn filter_form(params: &ListParams) -> Markup {
    let option = |value: &str, label: &str, current: &str| {
        html! { option value=(value) selected[value == current] { (label) } }
    };
    html! {
        form.toolbar method="get" action="/portal/indicators" role="search" data-autosubmit {
            input type="hidden" name="tab" value=(params.tab.slug());
            input type="hidden" name="sort" value=(params.sort);
            input type="hidden" name="dir" value=(if params.descending { "desc" } else { "asc" });
            label { "Search value or title"
                input type="search" name="q" value=(params.search) placeholder="evil.example";
            }
            label { "Action"
                select name="action" {
                    (option("", "Any", &params.action))
                    @for action in iocd_domain::Action::ALL {
                        (option(action.as_str(), action.as_str(), &params.action))
                    }
                }
            }
            label { "Severity"
                select name="severity" {
                    (option("", "Any", &params.severity))
                    @for severity in iocd_domain::Severity::ALL {
                        (option(severity.as_str(), severity.as_str(), &params.severity))
                    }
                }
            }
            label { "Expiry"
                select name="expiry" {
                    (option("", "Any", &params.expiry))
                    (option("never", "Never expires", &params.expiry))
                    (option("1d", "Expires within a day", &params.expiry))
                    (option("7d", "Expires within 7 days", &params.expiry))
                    (option("30d", "Expires within 30 days", &params.expiry))
                }
            }
            label { "Created by"
                input type="text" name="createdBy" value=(params.created_by) placeholder="app id or user";
            }
            label { "Per page"
                select name="size" {
                    @for size in PAGE_SIZES {
                        (option(&size.to_string(), &size.to_string(), &params.size.to_string()))
                    }
                }
            }
            button type="submit" { "Apply" }
            @if params.filtered() {
                a.button.secondary href=(params.url_with(|p| {
                    p.search.clear(); p.action.clear(); p.severity.clear();
                    p.expiry.clear(); p.created_by.clear(); p.page = 1;
                })) { "Clear filters" }
            }
        }
    }
}

fn table(signed: &Signed, params: &ListParams, rows: &[Indicator]) -> Markup {
    let manage = signed.can_manage();
    html! {
        @if manage {
            // The rows' boxes belong to this form through their `form` attribute.
            form #batch method="post" action="/portal/indicators/delete"
                data-confirm="Delete the selected indicators? All of them are deleted, or none." {
                (signed.csrf_field())
                input type="hidden" name="tab" value=(params.tab.slug());
                button.danger type="submit" #delete-selected { "Delete selected" }
            }
        }
        table #indicators {
            thead {
                tr {
                    @if manage {
                        th { input type="checkbox" data-select-all="batch" aria-label="Select all rows"; }
                    }
                    @for (property, heading) in SORTABLE {
                        th scope="col" aria-sort=[(params.sort == *property).then_some(if params.descending { "descending" } else { "ascending" })] {
                            a href=(params.url_with(|p| {
                                p.descending = if p.sort == *property { !p.descending } else { false };
                                p.sort = property.to_string();
                                p.page = 1;
                            })) {
                                (heading)
                                @if params.sort == *property {
                                    (if params.descending { " ↓" } else { " ↑" })
                                }
                            }
                        }
                    }
                }
            }
            tbody {
                @for indicator in rows {
                    (row(indicator, manage))
                }
            }
        }
    }
}

fn row(indicator: &Indicator, manage: bool) -> Markup {
    html! {
        tr data-id=(indicator.id) {
            @if manage {
                td { input type="checkbox" name="id" value=(indicator.id) form="batch"
                    aria-label={ "Select " (indicator.indicator_value) }; }
            }
            td.value { a href={ "/portal/indicators/" (indicator.id) } { (indicator.indicator_value) } }
            td { (indicator.indicator_type.as_str()) }
            td { span class={ "badge " (indicator.action.as_str()) } { (indicator.action.as_str()) } }
            td { (indicator.severity.as_str()) }
            td { (indicator.title) }
            td { (expiry_text(indicator.expiration_time)) }
            td { (indicator.created_by_display_name) }
            td { (short_time(indicator.creation_time)) }
        }
    }
}

pub(crate) fn short_time(t: Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(crate) fn expiry_text(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "Never".to_string(), short_time)
}

fn pager(params: &ListParams, shown: u64, more: bool) -> Markup {
    let first = (params.page - 1) * params.size + 1;
    html! {
        nav.pager aria-label="Pages" {
            @if params.page > 1 {
                a rel="prev" href=(params.url_with(|p| p.page -= 1)) { "← Previous" }
            }
            span.muted { "Rows " (first) "–" (first + shown - 1) }
            @if more {
                a rel="next" href=(params.url_with(|p| p.page += 1)) { "Next →" }
            }
        }
    }
}

fn empty_state(signed: &Signed, params: &ListParams, tenant_empty: bool) -> Markup {
    let origin = &signed.origin.url;
    let tenant = &signed.caller.tenant_id;
    html! {
        div.empty #empty {
            @if params.filtered() {
                p { strong { "No " (params.tab.noun()) " match these filters." } }
                p { "Change the search or the filters, or "
                    a href=(params.url_with(|p| {
                        p.search.clear(); p.action.clear(); p.severity.clear();
                        p.expiry.clear(); p.created_by.clear(); p.page = 1;
                    })) { "clear them" } "." }
            } @else if params.page > 1 {
                p { "This page is past the last one. " a href=(params.url_with(|p| p.page = 1)) { "Back to the first page" } "." }
            } @else if tenant_empty {
                p { strong { "This tenant has no indicators yet." } }
                p { "Submit a first one through the API, as a SOAR playbook or a feed connector would:" }
                ol {
                    li { "Register an app with the right to write indicators (or ask an administrator):"
                        pre { "iocd apps create --tenant " (tenant) " --name \"My playbook\" --role Ti.ReadWrite.All" } }
                    li { "Get a token with the app's client id and secret:"
                        pre { "TOKEN=$(curl -s " (origin) "/" (tenant) "/oauth2/v2.0/token \\\n  -d grant_type=client_credentials -d client_id=CLIENT_ID -d client_secret=CLIENT_SECRET \\\n  -d scope=https://api.securitycenter.microsoft.com/.default | jq -r .access_token)" } }
                    li { "Submit an indicator:"
                        pre { "curl -s " (origin) "/api/indicators -H \"Authorization: Bearer $TOKEN\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{\"indicatorValue\":\"evil.example\",\"indicatorType\":\"DomainName\",\"action\":\"Block\",\"title\":\"First indicator\",\"description\":\"Submitted through the API\"}'" } }
                }
                @if signed.can_manage() {
                    p { "Or add one here, or import a CSV, JSON or STIX file." }
                }
            } @else {
                p { strong { "No " (params.tab.noun()) " yet." } }
                p { "Indicators of other types are in the other tabs."
                    @if signed.can_manage() { " Add one here, or import a file." } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_noon() -> Timestamp {
        time::parse_datetime("t", "2026-01-01T12:00:00Z").unwrap()
    }

    #[test]
    fn the_controls_become_an_odata_query_the_api_accepts() {
        let params = ListParams::parse(Some(
            "tab=urls&q=it's&action=Block&severity=High&expiry=7d&createdBy=alice%40contoso.example&sort=title&dir=asc&page=3&size=25",
        ));
        let filter = params.odata_filter(at_noon());
        assert_eq!(
            filter,
            "indicatorType in ('Url','DomainName') and (contains(indicatorValue,'it''s') or contains(title,'it''s')) and action eq 'Block' and severity eq 'High' and expirationTime ne null and expirationTime le 2026-01-08T12:00:00Z and createdBy eq 'alice@contoso.example'"
        );
        let query = parse_list_query(&params.odata_pairs(at_noon())).unwrap();
        assert_eq!((query.top, query.skip), (Some(25), 50));
        assert!(query.filter.is_some());
    }

    #[test]
    fn unknown_controls_fall_back_to_defaults() {
        let params = ListParams::parse(Some("tab=nope&sort=password&size=7&page=0"));
        assert_eq!(params.tab, Tab::Files);
        assert_eq!(params.sort, "id");
        assert!(params.descending);
        assert_eq!((params.page, params.size), (1, 50));
        assert_eq!(
            params.odata_filter(at_noon()),
            "indicatorType in ('FileSha256','FileSha1','FileMd5')"
        );
    }

    #[test]
    fn a_sorted_page_breaks_ties_by_id_in_the_sort_direction() {
        let order = |raw: &str| {
            let params = ListParams::parse(Some(raw));
            let query = parse_list_query(&params.odata_pairs(at_noon())).unwrap();
            iocd_odata::order_by_sql(&query.order_by)
        };
        assert_eq!(
            order("sort=expirationTime&dir=desc"),
            "expiration_time DESC NULLS LAST, id DESC"
        );
        assert_eq!(order("sort=severity&dir=asc"), "severity ASC, id ASC");
        assert_eq!(order(""), "id DESC");
    }

    #[test]
    fn value_and_title_sorts_of_a_tab_of_several_types_read_per_type() {
        let per_type = |raw: &str| ListParams::parse(Some(raw)).per_type();
        assert_eq!(
            per_type("tab=files&sort=title"),
            Tab::Files.types().to_vec()
        );
        assert_eq!(
            per_type("tab=urls&sort=indicatorValue&dir=asc"),
            vec![IndicatorType::Url, IndicatorType::DomainName]
        );
        // One type: its filter already leads to its title index; a value sort reads the
        // upsert key's index, in the normalised value's order.
        assert!(per_type("tab=ips&sort=title").is_empty());
        assert_eq!(
            per_type("tab=ips&sort=indicatorValue"),
            vec![IndicatorType::IpAddress]
        );
        assert_eq!(
            per_type("tab=files&sort=indicatorType&dir=desc"),
            Tab::Files.types().to_vec()
        );
        // Other columns do not follow the type; the default order is the table's key.
        assert!(per_type("tab=files&sort=severity").is_empty());
        assert!(per_type("tab=files").is_empty());
    }

    #[test]
    fn a_bad_enum_value_is_an_odata_error_not_a_panic() {
        let params = ListParams::parse(Some("action=Nope"));
        assert!(parse_list_query(&params.odata_pairs(at_noon())).is_err());
    }

    #[test]
    fn urls_round_trip() {
        let params = ListParams::parse(Some("tab=ips&q=1.2&sort=action&dir=asc&page=2"));
        let again = ListParams::parse(params.url().split_once('?').map(|(_, q)| q));
        assert_eq!(params, again);
    }
}
