//! Adding, editing and deleting indicators from the portal.
//!
//! The form's fields are the API's property names; a submitted form becomes the JSON body of
//! `POST /api/indicators` and goes through the same validation (`iocd_domain::parse_submission`)
//! and the same store call, as the signed-in user. Deleting a selection is BatchDelete: all of
//! the selected indicators, or none.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use iocd_domain::time;
use iocd_domain::{
    parse_submission, Action, ChangeSource, Indicator, IndicatorType, Severity, ValidationError,
};
use iocd_store::{DeleteOutcome, DeleteVia};
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::indicators::{no_role, Tab};
use super::{field, message_page, page_with_status, see_other, Section, Signed, SignedForm};
use crate::bulk::MAX_BATCH;
use crate::error::ApiError;
use crate::AppState;

/// The form's fields, in the order shown: the API's property names.
const FIELDS: [&str; 11] = [
    "indicatorType",
    "indicatorValue",
    "action",
    "title",
    "description",
    "severity",
    "expirationTime",
    "generateAlert",
    "rbacGroupNames",
    "educateUrl",
    "recommendedActions",
];

/// What the form holds: submitted text, or an indicator's current values.
#[derive(Debug, Clone, Default)]
pub(crate) struct FormValues(Vec<(String, String)>);

impl FormValues {
    fn get(&self, name: &str) -> &str {
        field(&self.0, name)
    }

    fn from_fields(fields: &[(String, String)]) -> FormValues {
        FormValues(
            FIELDS
                .iter()
                .map(|name| (name.to_string(), field(fields, name).to_string()))
                .collect(),
        )
    }

    fn of(indicator: &Indicator) -> FormValues {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        FormValues(vec![
            (
                "indicatorType".into(),
                indicator.indicator_type.as_str().into(),
            ),
            ("indicatorValue".into(), indicator.indicator_value.clone()),
            ("action".into(), indicator.action.as_str().into()),
            ("title".into(), indicator.title.clone()),
            ("description".into(), indicator.description.clone()),
            ("severity".into(), indicator.severity.as_str().into()),
            (
                "expirationTime".into(),
                indicator
                    .expiration_time
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                    .unwrap_or_default(),
            ),
            (
                "generateAlert".into(),
                if indicator.generate_alert { "true" } else { "" }.into(),
            ),
            (
                "rbacGroupNames".into(),
                indicator.rbac_group_names.join(", "),
            ),
            ("educateUrl".into(), text(&indicator.educate_url)),
            (
                "recommendedActions".into(),
                text(&indicator.recommended_actions),
            ),
        ])
    }

    /// The JSON body of `POST /api/indicators` this form stands for. Empty optional fields are
    /// `null` (an edit clears them); an unticked box is `false`.
    fn body(&self) -> Value {
        let mut body = Map::new();
        for name in [
            "indicatorType",
            "indicatorValue",
            "action",
            "title",
            "description",
        ] {
            body.insert(name.to_string(), Value::from(self.get(name)));
        }
        for name in [
            "severity",
            "expirationTime",
            "educateUrl",
            "recommendedActions",
        ] {
            let value = self.get(name).trim();
            body.insert(
                name.to_string(),
                if value.is_empty() {
                    Value::Null
                } else {
                    Value::from(value)
                },
            );
        }
        body.insert(
            "generateAlert".to_string(),
            Value::Bool(!self.get("generateAlert").is_empty()),
        );
        body.insert(
            "rbacGroupNames".to_string(),
            Value::from(self.get("rbacGroupNames")),
        );
        Value::Object(body)
    }
}

/// Every property the API would refuse in `body`, not only the first: after each refusal the
/// property is given a value the API accepts and the body checked again. Stops at the type (what
/// else is right depends on it).
pub(crate) fn all_errors(body: &Value) -> Vec<ValidationError> {
    let Some(map) = body.as_object() else {
        return parse_submission(body).err().into_iter().collect();
    };
    let mut map = map.clone();
    let mut errors: Vec<ValidationError> = Vec::new();
    for _ in 0..FIELDS.len() + 1 {
        let Err(error) = parse_submission(&Value::Object(map.clone())) else {
            break;
        };
        let name = error.field.clone();
        if name.is_empty() || errors.iter().any(|e| e.field == name) {
            if !errors.iter().any(|e| e.field == name) {
                errors.push(error);
            }
            break;
        }
        let stand_in = stand_in(&name, &map);
        errors.push(error);
        match stand_in {
            Some(value) => {
                map.insert(name, value);
            }
            None => break,
        }
    }
    errors
}

/// A value of `name` the API accepts, given the rest of the body.
fn stand_in(name: &str, map: &Map<String, Value>) -> Option<Value> {
    let indicator_type = map
        .get("indicatorType")
        .and_then(Value::as_str)
        .and_then(|t| IndicatorType::parse("indicatorType", t).ok());
    match name {
        "indicatorType" => None,
        "indicatorValue" => Some(Value::from(match indicator_type? {
            IndicatorType::FileSha256 => "a".repeat(64),
            IndicatorType::FileSha1 | IndicatorType::CertificateThumbprint => "a".repeat(40),
            IndicatorType::FileMd5 => "a".repeat(32),
            IndicatorType::IpAddress => "8.8.8.8".to_string(),
            IndicatorType::DomainName => "example.com".to_string(),
            IndicatorType::Url => "https://example.com/".to_string(),
        })),
        "action" => Some(Value::from("Allowed")),
        "title" | "description" => Some(Value::from("x")),
        "generateAlert" => Some(Value::Bool(true)),
        _ => Some(Value::Null),
    }
}

/// `GET /portal/indicators/new?tab=…`: the add form of a tab's types.
pub(crate) async fn new_form(signed: Signed, RawQuery(raw): RawQuery) -> Response {
    if !signed.can_manage() {
        return read_only(&signed);
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let tab = Tab::parse(field(&pairs, "tab"));
    let mut values = FormValues::default();
    values
        .0
        .push(("indicatorType".into(), tab.types()[0].as_str().to_string()));
    values.0.push(("severity".into(), "Informational".into()));
    form_page(&signed, StatusCode::OK, tab, None, &values, &[], None)
}

/// `POST /portal/indicators/new`.
pub(crate) async fn create(State(app): State<AppState>, form: SignedForm) -> Response {
    let signed = &form.signed;
    if !signed.can_manage() {
        return read_only(signed);
    }
    let values = FormValues::from_fields(&form.fields);
    let tab = IndicatorType::parse("indicatorType", values.get("indicatorType"))
        .map(Tab::of_type)
        .unwrap_or(Tab::parse(form.get("tab")));
    save(&app, signed, tab, None, values).await
}

/// `GET /portal/indicators/{id}/edit`.
pub(crate) async fn edit_form(
    State(app): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let indicator = match find_to_manage(&app, &signed, &id).await {
        Ok(indicator) => indicator,
        Err(response) => return response,
    };
    let tab = Tab::of_type(indicator.indicator_type);
    form_page(
        &signed,
        StatusCode::OK,
        tab,
        Some(&indicator),
        &FormValues::of(&indicator),
        &[],
        None,
    )
}

/// `POST /portal/indicators/{id}/edit`. The type, value and action are the indicator's (they are
/// its identity: another action is another indicator), whatever the form sent.
pub(crate) async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    let signed = &form.signed;
    let indicator = match find_to_manage(&app, signed, &id).await {
        Ok(indicator) => indicator,
        Err(response) => return response,
    };
    let mut values = FormValues::from_fields(&form.fields);
    for (name, value) in [
        (
            "indicatorType",
            indicator.indicator_type.as_str().to_string(),
        ),
        ("indicatorValue", indicator.indicator_value.clone()),
        ("action", indicator.action.as_str().to_string()),
    ] {
        if let Some(slot) = values.0.iter_mut().find(|(k, _)| k == name) {
            slot.1 = value;
        }
    }
    let tab = Tab::of_type(indicator.indicator_type);
    save(&app, signed, tab, Some(&indicator), values).await
}

/// Validates and submits the form; on success, the indicator's page.
async fn save(
    app: &AppState,
    signed: &Signed,
    tab: Tab,
    editing: Option<&Indicator>,
    values: FormValues,
) -> Response {
    let body = values.body();
    let submission = match parse_submission(&body) {
        Ok(submission) => submission,
        Err(_) => {
            let errors = all_errors(&body);
            return form_page(
                signed,
                StatusCode::BAD_REQUEST,
                tab,
                editing,
                &values,
                &errors,
                None,
            );
        }
    };
    let outcome = app
        .store
        .submit(
            &signed.caller.write_scope(),
            &signed.caller.actor().via(ChangeSource::Portal),
            vec![submission],
            app.write_limits(),
            time::now(),
        )
        .await
        .map_err(ApiError::from)
        .and_then(|mut results| results.pop().ok_or_else(ApiError::internal))
        .and_then(|result| result.map_err(ApiError::from));
    match outcome {
        Ok(outcome) => see_other(&format!(
            "/portal/indicators/{}?saved=1",
            outcome.indicator().id
        )),
        Err(error) => form_page(
            signed,
            error.status,
            tab,
            editing,
            &values,
            &[],
            Some(&error.message),
        ),
    }
}

/// The indicator `id` as the user may see it, or the page saying it is not there.
/// [`find`] for a page that changes the indicator: a user without the manage role gets the
/// read-only refusal instead.
async fn find_to_manage(app: &AppState, signed: &Signed, id: &str) -> Result<Indicator, Response> {
    if !signed.can_manage() {
        return Err(read_only(signed));
    }
    find(app, signed, id).await
}

pub(crate) async fn find(app: &AppState, signed: &Signed, id: &str) -> Result<Indicator, Response> {
    let not_found = || {
        message_page(
            signed,
            StatusCode::NOT_FOUND,
            "Indicator not found",
            html! {
                p { "There is no active indicator " (id) " that you may see: it may have been deleted or have expired." }
                p { a href="/portal/indicators" { "Back to the indicators" } }
            },
        )
    };
    let Ok(number) = crate::extract::parse_indicator_id(id) else {
        return Err(not_found());
    };
    match app
        .store
        .get(&signed.caller.read_scope(), number, time::now())
        .await
    {
        Ok(Some(indicator)) => Ok(indicator),
        Ok(None) => Err(not_found()),
        Err(error) => {
            tracing::error!(%error, "portal read failed");
            Err(message_page(
                signed,
                StatusCode::SERVICE_UNAVAILABLE,
                "The indicator is unavailable",
                html! { p { "The database did not answer. Try again in a moment." } },
            ))
        }
    }
}

/// What a viewer sees instead of a form or a change.
pub(crate) fn read_only(signed: &Signed) -> Response {
    if !signed.can_read() {
        return no_role(signed);
    }
    message_page(
        signed,
        StatusCode::FORBIDDEN,
        "Read-only access",
        html! {
            p { "Your role lets you view indicators but not change them. Ask an administrator for "
                code { "Iocd.Indicators.Manage" } " to add, edit or delete indicators." }
            p { a href="/portal/indicators" { "Back to the indicators" } }
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    signed: &Signed,
    status: StatusCode,
    tab: Tab,
    editing: Option<&Indicator>,
    values: &FormValues,
    errors: &[ValidationError],
    general_error: Option<&str>,
) -> Response {
    let title = match editing {
        Some(indicator) => format!("Edit indicator {}", indicator.id),
        None => "Add indicator".to_string(),
    };
    let action_url = match editing {
        Some(indicator) => format!("/portal/indicators/{}/edit", indicator.id),
        None => "/portal/indicators/new".to_string(),
    };
    let error_of = |name: &str| errors.iter().find(|e| e.field == name);
    let allowed = tab.types()[0].portal_actions();
    let body = html! {
        h1 { (title) }
        @if editing.is_none() {
            nav.tabs aria-label="Indicator types" {
                @for other in Tab::ALL {
                    a href={ "/portal/indicators/new?tab=" (other.slug()) }
                        aria-current=[(other == tab).then_some("page")] { (other.label()) }
                }
            }
        }
        @if !errors.is_empty() {
            div.notice.bad role="alert" #form-errors {
                "The indicator was not saved: " (errors.len())
                @if errors.len() == 1 { " property needs" } @else { " properties need" }
                " attention (marked below)."
            }
        }
        @if let Some(message) = general_error {
            div.notice.bad role="alert" #form-errors { "The indicator was not saved: " (message) }
        }
        form.stacked method="post" action=(action_url) novalidate {
            (signed.csrf_field())
            input type="hidden" name="tab" value=(tab.slug());
            (field_box("indicatorType", "Type (indicatorType)", error_of("indicatorType"), None, html! {
                @if editing.is_some() {
                    input #indicatorType type="text" name="indicatorType" value=(values.get("indicatorType")) readonly;
                } @else {
                    select #indicatorType name="indicatorType" {
                        @for t in tab.types() {
                            option value=(t.as_str()) selected[values.get("indicatorType") == t.as_str()] { (t.as_str()) }
                        }
                    }
                }
            }))
            (field_box("indicatorValue", "Value (indicatorValue)", error_of("indicatorValue"),
                Some(value_hint(tab)), html! {
                input #indicatorValue type="text" name="indicatorValue" value=(values.get("indicatorValue"))
                    readonly[editing.is_some()] autocomplete="off" spellcheck="false";
            }))
            (field_box("action", "Action (action)", error_of("action"),
                Some(if editing.is_some() {
                    "An indicator's action is part of its identity: to change it, add the value with the new action and delete this one.".to_string()
                } else {
                    format!("{} allow: {}.", tab.label(), action_names(allowed))
                }), html! {
                @if editing.is_some() {
                    input #action type="text" name="action" value=(values.get("action")) readonly;
                } @else {
                    select #action name="action" {
                        @for action in allowed {
                            option value=(action.as_str()) selected[values.get("action") == action.as_str()] { (action.as_str()) }
                        }
                    }
                }
            }))
            (field_box("title", "Title (title)", error_of("title"), None, html! {
                input #title type="text" name="title" value=(values.get("title"));
            }))
            (field_box("description", "Description (description)", error_of("description"), None, html! {
                textarea #description name="description" { (values.get("description")) }
            }))
            (field_box("severity", "Severity (severity)", error_of("severity"), None, html! {
                select #severity name="severity" {
                    @for severity in Severity::ALL {
                        option value=(severity.as_str()) selected[values.get("severity") == severity.as_str()] { (severity.as_str()) }
                    }
                }
            }))
            (field_box("expirationTime", "Expires (expirationTime, UTC)", error_of("expirationTime"),
                Some("Empty: never expires.".to_string()), html! {
                input #expirationTime type="datetime-local" step="1" name="expirationTime" value=(values.get("expirationTime"));
            }))
            (field_box("generateAlert", "Alert (generateAlert)", error_of("generateAlert"),
                Some("Required for Audit.".to_string()), html! {
                label.inline { input #generateAlert type="checkbox" name="generateAlert" value="true" checked[!values.get("generateAlert").is_empty()]; " Generate an alert when it matches" }
            }))
            (field_box("rbacGroupNames", "Device groups (rbacGroupNames)", error_of("rbacGroupNames"),
                Some("Comma-separated; empty: all devices.".to_string()), html! {
                input #rbacGroupNames type="text" name="rbacGroupNames" value=(values.get("rbacGroupNames"));
            }))
            @if tab == Tab::Urls {
                (field_box("educateUrl", "Custom notification URL (educateUrl)", error_of("educateUrl"),
                    Some("Only for Url indicators with Block or Warn.".to_string()), html! {
                    input #educateUrl type="url" name="educateUrl" value=(values.get("educateUrl"));
                }))
            }
            (field_box("recommendedActions", "Recommended actions (recommendedActions)", error_of("recommendedActions"), None, html! {
                textarea #recommendedActions name="recommendedActions" { (values.get("recommendedActions")) }
            }))
            div.actions {
                button type="submit" #save { "Save" }
                a.button.secondary href=(match editing {
                    Some(indicator) => format!("/portal/indicators/{}", indicator.id),
                    None => format!("/portal/indicators?tab={}", tab.slug()),
                }) { "Cancel" }
            }
        }
    };
    page_with_status(signed, status, Section::Indicators, &title, body)
}

fn field_box(
    name: &str,
    label: &str,
    error: Option<&ValidationError>,
    hint: Option<String>,
    control: Markup,
) -> Markup {
    let error_id = format!("{name}-error");
    html! {
        div.field.invalid[error.is_some()] data-field=(name) {
            label for=(name) { (label) }
            (control)
            @if let Some(hint) = hint { p.hint { (hint) } }
            @if let Some(error) = error {
                p.field-error id=(error_id) role="alert" { (error.message) }
            }
        }
    }
}

fn value_hint(tab: Tab) -> String {
    match tab {
        Tab::Files => "A SHA-256, SHA-1 or MD5 hash (hex), matching the type.",
        Tab::Ips => "One public IPv4 or IPv6 address (no ranges).",
        Tab::Urls => {
            "A URL (https://evil.example/path) or a domain (evil.example), matching the type."
        }
        Tab::Certificates => "The certificate's SHA-1 thumbprint (40 hex digits).",
    }
    .to_string()
}

fn action_names(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST /portal/indicators/{id}/delete`.
pub(crate) async fn delete_one(
    State(app): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    let signed = &form.signed;
    let indicator = match find_to_manage(&app, signed, &id).await {
        Ok(indicator) => indicator,
        Err(response) => return response,
    };
    match app
        .store
        .delete(
            &signed.caller.write_scope(),
            &signed.caller.actor().via(ChangeSource::Portal),
            &[indicator.id],
            DeleteVia::Single,
            time::now(),
        )
        .await
    {
        Ok(DeleteOutcome::Deleted(_)) => see_other(&format!(
            "/portal/indicators?tab={}&done=deleted&n=1",
            Tab::of_type(indicator.indicator_type).slug()
        )),
        Ok(DeleteOutcome::NotFound(_)) => find(&app, signed, &id)
            .await
            .err()
            .unwrap_or_else(|| see_other("/portal/indicators")),
        Err(error) => store_failure(signed, &error),
    }
}

/// `POST /portal/indicators/delete`: the ticked rows, through BatchDelete's rules (1 to 500
/// ids; every one must exist, or nothing is deleted).
pub(crate) async fn delete_selected(State(app): State<AppState>, form: SignedForm) -> Response {
    let signed = &form.signed;
    if !signed.can_manage() {
        return read_only(signed);
    }
    let tab = Tab::parse(form.get("tab"));
    let back = format!("/portal/indicators?tab={}", tab.slug());
    let ids: Vec<i64> = form
        .all("id")
        .iter()
        .filter_map(|id| crate::extract::parse_indicator_id(id).ok())
        .collect();
    let refuse = |status: StatusCode, message: String| {
        message_page(
            signed,
            status,
            "Nothing was deleted",
            html! { p { (message) } p { a href=(back) { "Back to the list" } } },
        )
    };
    if ids.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "No indicator was selected: tick the rows to delete.".to_string(),
        );
    }
    if ids.len() > MAX_BATCH {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "{} indicators were selected; at most {MAX_BATCH} can be deleted at once.",
                ids.len()
            ),
        );
    }
    match app
        .store
        .delete(
            &signed.caller.write_scope(),
            &signed.caller.actor().via(ChangeSource::Portal),
            &ids,
            DeleteVia::Batch,
            time::now(),
        )
        .await
    {
        Ok(DeleteOutcome::Deleted(_)) => see_other(&format!(
            "/portal/indicators?tab={}&done=deleted&n={}",
            tab.slug(),
            ids.len()
        )),
        Ok(DeleteOutcome::NotFound(missing)) => refuse(
            StatusCode::NOT_FOUND,
            format!(
                "These indicators were not found (deleted or expired meanwhile, or not yours to delete): {}. As with BatchDelete, all of a selection is deleted or none.",
                missing
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(error) => store_failure(signed, &error),
    }
}

pub(crate) fn store_failure(signed: &Signed, error: &iocd_store::StoreError) -> Response {
    tracing::error!(%error, "portal storage failure");
    message_page(
        signed,
        StatusCode::SERVICE_UNAVAILABLE,
        "The change was not made",
        html! { p { "The database did not answer; nothing was changed. Try again in a moment." } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormValues {
        FormValues::from_fields(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_valid_form_is_a_valid_api_body() {
        let values = form(&[
            ("indicatorType", "DomainName"),
            ("indicatorValue", "evil.example"),
            ("action", "Block"),
            ("title", "t"),
            ("description", "d"),
            ("severity", "High"),
            ("expirationTime", "2030-01-01T00:00"),
            ("rbacGroupNames", "a, b"),
        ]);
        let submission = parse_submission(&values.body()).unwrap();
        assert_eq!(
            submission.severity,
            iocd_domain::Patch::Value(Severity::High)
        );
        assert_eq!(
            submission.rbac_group_names,
            iocd_domain::Patch::Value(vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn every_bad_property_is_reported_not_only_the_first() {
        let values = form(&[
            ("indicatorType", "IpAddress"),
            ("indicatorValue", "999.1.1.1"),
            ("action", "Audit"),
            ("title", ""),
            ("description", "d"),
            ("expirationTime", "tomorrow"),
        ]);
        let fields: Vec<String> = all_errors(&values.body())
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["indicatorValue", "title", "generateAlert", "expirationTime"]
        );
    }
}
