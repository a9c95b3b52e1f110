//! One indicator's page: every property as the API returns it, and its whole history from the
//! change log (who changed it, when, and what), newest first.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use iocd_domain::time::{self, format_wire};
use iocd_domain::{ChangeEntry, Indicator};
use maud::{html, Markup};
use serde_json::Value;

use super::forms::store_failure;
use super::indicators::{no_role, Tab};
use super::{field, message_page, page, Section, Signed};
use crate::AppState;

/// The Indicator entity's properties in wire order (`iocd_domain::Indicator`'s field order).
const WIRE_ORDER: &[&str] = &[
    "id",
    "indicatorValue",
    "indicatorType",
    "action",
    "createdBy",
    "severity",
    "category",
    "application",
    "educateUrl",
    "bypassDurationHours",
    "title",
    "description",
    "recommendedActions",
    "creationTimeDateTimeUtc",
    "expirationTime",
    "lastUpdateTime",
    "lastUpdatedBy",
    "rbacGroupNames",
    "rbacGroupIds",
    "notificationId",
    "notificationBody",
    "version",
    "mitreTechniques",
    "historicalDetection",
    "lookBackPeriod",
    "generateAlert",
    "additionalInfo",
    "createdByDisplayName",
    "externalId",
    "createdBySource",
    "certificateInfo",
];

/// `GET /portal/indicators/{id}`.
pub(crate) async fn show(
    State(app): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if !signed.can_read() {
        return no_role(&signed);
    }
    let not_found = || {
        message_page(
            &signed,
            StatusCode::NOT_FOUND,
            "Indicator not found",
            html! {
                p { "No indicator " (id) " of yours was ever recorded here." }
                p { a href="/portal/indicators" { "Back to the indicators" } }
            },
        )
    };
    let Ok(number) = crate::extract::parse_indicator_id(&id) else {
        return not_found();
    };
    let scope = signed.caller.read_scope();
    let (indicator, history) = match tokio::try_join!(
        app.store.get(&scope, number, time::now()),
        app.store.history(&scope, number)
    ) {
        Ok(found) => found,
        Err(error) => return store_failure(&signed, &error),
    };
    if indicator.is_none() && history.is_empty() {
        return not_found();
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let saved = field(&pairs, "saved") == "1";
    let title = match &indicator {
        Some(indicator) => indicator.indicator_value.clone(),
        None => format!("Indicator {number}"),
    };
    let body = html! {
        @let back = match (&indicator, history.last()) {
            (Some(i), _) => Tab::of_type(i.indicator_type),
            (None, Some(e)) => Tab::of_type(e.indicator_type),
            _ => Tab::Files,
        };
        p { a href={ "/portal/indicators?tab=" (back.slug()) } { "← " (back.label()) } }
        h1.value { (title) }
        @if saved {
            div.notice.good role="status" #saved { "Saved." }
        }
        @match &indicator {
            Some(indicator) => {
                @if signed.can_manage() {
                    div.actions {
                        a.button href={ "/portal/indicators/" (indicator.id) "/edit" } #edit { "Edit" }
                        form.inline method="post" action={ "/portal/indicators/" (indicator.id) "/delete" }
                            data-confirm="Delete this indicator?" {
                            (signed.csrf_field())
                            button.danger type="submit" #delete { "Delete" }
                        }
                    }
                } @else {
                    p.muted #read-only { "Read-only: your role lets you view indicators, not change them." }
                }
                h2 { "Properties" }
                (properties(indicator))
            }
            None => {
                div.notice #gone { "This indicator no longer exists (it was deleted or expired); its history remains." }
            }
        }
        h2 { "History" }
        (history_list(&history))
    };
    page(&signed, Section::Indicators, &title, body)
}

fn properties(indicator: &Indicator) -> Markup {
    let value = serde_json::to_value(indicator).unwrap_or(Value::Null);
    let map = value.as_object().cloned().unwrap_or_default();
    let mut names: Vec<&str> = WIRE_ORDER
        .iter()
        .copied()
        .filter(|n| map.contains_key(*n))
        .collect();
    for name in map.keys() {
        if !WIRE_ORDER.contains(&name.as_str()) {
            names.push(name);
        }
    }
    html! {
        dl.props #properties {
            @for name in names {
                dt { code { (name) } }
                dd data-property=(name) { (show_value(&map[name])) }
            }
        }
    }
}

fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            if items.is_empty() {
                "[]".to_string()
            } else {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
        other => other.to_string(),
    }
}

fn history_list(history: &[ChangeEntry]) -> Markup {
    html! {
        @if history.is_empty() {
            p.muted { "No change of this indicator is recorded." }
        } @else {
            ol.history #history reversed {
                @for entry in history.iter().rev() {
                    li data-kind=(entry.kind.as_str()) {
                        strong { (entry.kind.as_str()) }
                        " by " (entry.actor.display_name)
                        @if entry.actor.display_name != entry.actor.id { " (" code { (entry.actor.id) } ")" }
                        " via " (entry.actor.source.as_str())
                        ", " time datetime=(format_wire(entry.time)) { (format_wire(entry.time)) }
                        @if !entry.changes.is_empty() {
                            table.changes {
                                thead { tr { th { "Property" } th { "Before" } th { "After" } } }
                                tbody {
                                    @for change in &entry.changes {
                                        tr {
                                            td { code { (change.property) } }
                                            td { (show_value(&change.old)) }
                                            td { (show_value(&change.new)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
