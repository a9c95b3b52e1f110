//! The OpenAPI document (served at `/openapi.json`, browsable at `/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{ErrorBody, ErrorDetail};
use iocd_domain::{
    Action, ChangeActor, ChangeEntry, ChangeKind, ChangeSource, Indicator, IndicatorType,
    PropertyChange, Severity,
};

/// The body of `POST /api/indicators` (and each element of an import). Documented for the
/// OpenAPI reader; the server parses bodies leniently (see docs/compatibility.md).
#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndicatorRequest {
    /// Required. Hash (hex), single public IP, domain name or absolute http(s) URL.
    indicator_value: String,
    /// Required.
    indicator_type: IndicatorType,
    /// Required. `Audit` needs `generateAlert: true`.
    action: Action,
    /// Required.
    title: String,
    /// Required.
    description: String,
    /// Honoured on create only.
    application: Option<String>,
    /// ISO 8601 with any offset; returned in UTC.
    expiration_time: Option<String>,
    severity: Option<Severity>,
    recommended_actions: Option<String>,
    /// A JSON array, or one comma-separated string.
    rbac_group_names: Option<Vec<String>>,
    rbac_group_ids: Option<Vec<String>>,
    /// Only for `Url` indicators with action `Block` or `Warn`.
    educate_url: Option<String>,
    /// A boolean, or the string "true"/"false" in any case.
    generate_alert: Option<bool>,
    category: Option<i64>,
    external_id: Option<String>,
    /// MITRE ATT&CK technique ids (T1566, T1566.001); array or comma-separated string.
    mitre_techniques: Option<Vec<String>>,
    bypass_duration_hours: Option<i64>,
    notification_id: Option<String>,
    notification_body: Option<String>,
    /// Honoured on create only.
    version: Option<String>,
    historical_detection: Option<bool>,
    #[schema(value_type = Option<Object>)]
    look_back_period: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    additional_info: Option<serde_json::Value>,
    /// Honoured on create only.
    #[schema(value_type = Option<Object>)]
    certificate_info: Option<serde_json::Value>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iocd",
        description = "Threat-intelligence indicators, wire-compatible with the Microsoft Defender for Endpoint Indicators API. Every path is also served under /api/v1.0."
    ),
    paths(
        crate::handlers::submit_indicator,
        crate::handlers::get_indicator,
        crate::handlers::delete_indicator,
        crate::list::list_indicators,
        crate::bulk::import_indicators,
        crate::bulk::batch_delete_indicators,
        crate::match_api::match_batch,
        crate::match_api::match_one,
        crate::feeds::feed,
        crate::emulator::reset,
        crate::emulator::seed,
        crate::changes::indicator_history,
        crate::changes::changes,
        crate::changes::change_stream,
        crate::faults::add_fault,
        crate::faults::list_faults,
        crate::faults::clear_faults,
        crate::faults::remove_fault,
        crate::journal::list_requests,
        crate::journal::clear_requests,
        crate::handlers::ready,
        crate::metrics::metrics,
    ),
    components(schemas(
        Indicator, IndicatorRequest, IndicatorType, Action, Severity, ErrorBody, ErrorDetail,
        crate::list::IndicatorCollection, crate::bulk::ImportRequest, crate::bulk::ImportResult,
        crate::bulk::ImportResponse, crate::bulk::BatchDeleteRequest,
        crate::match_api::MatchBody, crate::match_api::MatchResponse,
        crate::match_api::MatchResult, crate::match_api::ItemError,
        crate::emulator::ResetReport, crate::emulator::SeedReport, crate::emulator::RefusedRow,
        crate::changes::ChangeHistory, crate::changes::ChangePage, ChangeEntry, ChangeActor,
        ChangeKind, ChangeSource, PropertyChange,
        crate::faults::FaultRule, crate::journal::JournalPage, crate::journal::JournalEntry,
        crate::handlers::Readiness,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "indicators", description = "Submit, list, import, read and delete indicators"),
        (name = "feeds", description = "iocd's own: indicators as lists for firewalls, DNS resolvers and IDS"),
        (name = "match", description = "iocd's own: what Defender would do with a URL, domain, address, file or certificate"),
        (name = "emulator", description = "iocd's emulator controls (only with --emulator): reset, seed, faults, the request journal"),
        (name = "changes", description = "iocd's change log: indicator history and the change feed"),
        (name = "operations", description = "Readiness and Prometheus metrics")
    )
)]
pub struct ApiDoc;

/// The OpenAPI document the server serves: the one the route annotations generate
/// ([`ApiDoc`]), completed with what they cannot say (`openapi_complete.rs`): the statuses every
/// authenticated, rate-limited or JSON-body operation can answer, the `/api/v1.0` aliases, the
/// identity provider's and the service's other routes, and request schemas exact enough that
/// what they accept the server accepts.
pub fn document() -> serde_json::Value {
    let mut document =
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    crate::openapi_complete::complete(&mut document);
    document
}

/// The OpenAPI document as pretty JSON: what `/openapi.json` serves, `iocd openapi` prints and
/// `docs/openapi.json` commits, so that a change to the API shows up in review as a diff.
pub fn document_json() -> String {
    serde_json::to_string_pretty(&document()).expect("the OpenAPI document serialises")
}
