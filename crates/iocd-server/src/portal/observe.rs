//! "Test an observable": what Defender would do with a URL, domain, address, file hash or
//! certificate, asked of the match engine as `GET /iocd/v1/match` asks it, with the deciding
//! indicator and the rule that decided.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use iocd_domain::matching::parse_match_query;
use iocd_domain::time;
use maud::html;

use super::indicators::no_role;
use super::{field, page_with_status, Section, Signed};
use crate::AppState;

/// The kinds of observable, as `GET /iocd/v1/match` names its parameters.
const KINDS: [(&str, &str); 7] = [
    ("url", "URL"),
    ("domain", "Domain"),
    ("ip", "IP address"),
    ("sha256", "File SHA-256"),
    ("sha1", "File SHA-1"),
    ("md5", "File MD5"),
    ("certificateThumbprint", "Certificate thumbprint"),
];

/// The engine's answer: the action (none when no indicator applies), why, and the deciding
/// indicator; or why the observable could not be read.
type Answer = Result<(Option<String>, String, Option<i64>), String>;

/// `GET /portal/match?kind=url&value=…&deviceGroup=…`.
pub(crate) async fn test_observable(
    State(app): State<AppState>,
    signed: Signed,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if !signed.can_read() {
        return no_role(&signed);
    }
    let kind = field(&params, "kind");
    let kind = if KINDS.iter().any(|(k, _)| *k == kind) {
        kind
    } else {
        "url"
    };
    let value = field(&params, "value").trim();
    let group = field(&params, "deviceGroup").trim();
    let mut answer: Option<Answer> = None;
    let mut status = StatusCode::OK;
    if !value.is_empty() {
        let mut query = vec![(kind.to_string(), value.to_string())];
        if !group.is_empty() {
            query.push(("deviceGroup".to_string(), group.to_string()));
        }
        answer = Some(match parse_match_query(&query) {
            Err(error) => Err(error.message),
            Ok(request) => {
                match app
                    .matcher
                    .decide(
                        &signed.caller.tenant_id,
                        &request.observables,
                        request.device_group.as_deref(),
                        time::now(),
                    )
                    .await
                {
                    Err(error) => {
                        tracing::error!(%error, "portal match failed");
                        status = StatusCode::SERVICE_UNAVAILABLE;
                        Err("The match engine is unavailable; try again in a moment.".to_string())
                    }
                    Ok(decisions) => match (request.observables.first(), decisions.first()) {
                        (Some(Err(error)), _) => Err(error.message.clone()),
                        (_, Some(Some(decision))) => Ok((
                            Some(decision.action.as_str().to_string()),
                            decision.reason.clone(),
                            Some(decision.id),
                        )),
                        _ => Ok((None, "No indicator applies.".to_string(), None)),
                    },
                }
            }
        });
        if matches!(answer, Some(Err(_))) && status == StatusCode::OK {
            status = StatusCode::BAD_REQUEST;
        }
    }
    let body = html! {
        h1 { "Test an observable" }
        p.muted { "What would Defender do with it? The match engine applies Defender's rules (most specific indicator, then action precedence) to this tenant's indicators." }
        form.toolbar method="get" action="/portal/match" role="search" {
            label { "Kind"
                select name="kind" {
                    @for (name, label) in KINDS {
                        option value=(name) selected[name == kind] { (label) }
                    }
                }
            }
            label { "Observable"
                input #observable type="text" name="value" value=(value) size="60"
                    placeholder="https://evil.example/path" spellcheck="false";
            }
            label { "Device group"
                input type="text" name="deviceGroup" value=(group) placeholder="(none)";
            }
            button type="submit" #test { "Test" }
        }
        @match &answer {
            None => {}
            Some(Err(error)) => {
                div.notice.bad role="alert" #decision { (error) }
            }
            Some(Ok((action, reason, id))) => {
                div.notice.good[action.is_none()] #decision role="status" {
                    @match action {
                        Some(action) => { "Decision: " strong.decision { (action) } }
                        None => { strong.decision { "No indicator applies" } " (the default: allowed)" }
                    }
                    p { "Why: " (reason) }
                    @if let Some(id) = id {
                        p { "Deciding indicator: " a href={ "/portal/indicators/" (id) } { "indicator " (id) } }
                    }
                }
            }
        }
    };
    page_with_status(&signed, status, Section::Match, "Test an observable", body)
}
