//! Turning a request body (`POST /api/indicators`, or one item of an import) into a
//! validated [`Submission`]. Parsing works on a `serde_json::Value` rather than a derived
//! struct so every refusal names the property and says what was expected, and so the lenient
//! shapes real clients send (`"generateAlert": "True"`, comma-separated group names) pass.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::enums::{Action, IndicatorType, Severity};
use crate::error::{ErrorCode, ValidationError};
use crate::time::{parse_datetime, Timestamp};
use crate::value::{normalise, parse_absolute_url};

/// Longest `title` accepted (characters).
pub const MAX_TITLE_CHARS: usize = 4_000;
/// Longest `description`, `recommendedActions` and `notificationBody` (characters).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Longest short identifiers: `application`, `externalId`, `notificationId`, `version`, group names.
pub const MAX_SHORT_CHARS: usize = 1_000;
/// Most entries in `rbacGroupNames`, `rbacGroupIds` and `mitreTechniques`.
pub const MAX_LIST_ITEMS: usize = 500;

/// An optional property as the request states it. Absent keeps the stored value on update,
/// `null` resets it to its default, a value replaces it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T: Clone> Patch<T> {
    /// The value an indicator created from this request gets.
    pub fn on_create(&self) -> Option<T> {
        match self {
            Patch::Value(v) => Some(v.clone()),
            Patch::Absent | Patch::Null => None,
        }
    }

    /// Applies the request to a stored optional value.
    pub fn apply_to(&self, current: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *current = None,
            Patch::Value(v) => *current = Some(v.clone()),
        }
    }

    /// Applies the request to a stored value that has a default instead of `null`.
    pub fn apply_with_default(&self, current: &mut T, default: T) {
        match self {
            Patch::Absent => {}
            Patch::Null => *current = default,
            Patch::Value(v) => *current = v.clone(),
        }
    }
}

/// A validated submit-or-update request.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// As submitted (trimmed); the service preserves the submitter's spelling.
    pub indicator_value: String,
    /// Normalised form, part of the upsert key.
    pub value_key: String,
    pub indicator_type: IndicatorType,
    pub action: Action,
    pub title: String,
    pub description: String,
    pub application: Patch<String>,
    pub expiration_time: Patch<Timestamp>,
    pub severity: Patch<Severity>,
    pub recommended_actions: Patch<String>,
    pub rbac_group_names: Patch<Vec<String>>,
    pub rbac_group_ids: Patch<Vec<String>>,
    pub educate_url: Patch<String>,
    pub generate_alert: Patch<bool>,
    pub category: Patch<i64>,
    pub external_id: Patch<String>,
    pub mitre_techniques: Patch<Vec<String>>,
    pub bypass_duration_hours: Patch<i64>,
    pub notification_id: Patch<String>,
    pub notification_body: Patch<String>,
    pub version: Patch<String>,
    pub historical_detection: Patch<bool>,
    pub look_back_period: Patch<Value>,
    pub additional_info: Patch<Value>,
    pub certificate_info: Patch<Value>,
}

/// Validates one request body. Unknown and read-only properties (`id`, `createdBy`,
/// `lastUpdateTime`, `source`, …) are ignored, as real clients echo them back.
pub fn parse_submission(body: &Value) -> Result<Submission, ValidationError> {
    let Some(map) = body.as_object() else {
        return Err(ValidationError::new(
            ErrorCode::InvalidRequestBody,
            "",
            format!(
                "Invalid request body: expected a JSON object with the indicator's properties, got {}.",
                json_kind(body)
            ),
        ));
    };
    let fields = Fields { map };

    let indicator_type =
        IndicatorType::parse("indicatorType", fields.required_str("indicatorType")?)?;
    let action = Action::parse("action", fields.required_str("action")?)?;
    let indicator_value = fields.required_str("indicatorValue")?.trim().to_string();
    // No type's value is longer than a URL's; refusing longer ones first keeps the work of
    // normalising (IDNA, URL parsing) and the refusal's message small.
    check_length(
        "indicatorValue",
        &indicator_value,
        crate::value::MAX_URL_LEN,
    )?;
    if indicator_value.is_empty() {
        return Err(ValidationError::invalid_input(
            "indicatorValue",
            "Invalid input indicatorValue: received an empty indicator value.",
        ));
    }
    let value_key = normalise(indicator_type, &indicator_value)?;
    let title = fields.required_text("title", MAX_TITLE_CHARS)?;
    let description = fields.required_text("description", MAX_TEXT_CHARS)?;

    let generate_alert = fields.boolean("generateAlert")?;
    if action == Action::Audit && generate_alert != Patch::Value(true) {
        return Err(ValidationError::invalid_input(
            "generateAlert",
            "Invalid input generateAlert: it must be true when action is Audit (an Audit indicator exists to raise alerts).",
        ));
    }

    let educate_url = fields.text("educateUrl", MAX_SHORT_CHARS.max(crate::value::MAX_URL_LEN))?;
    if let Patch::Value(url) = &educate_url {
        let supported =
            indicator_type == IndicatorType::Url && matches!(action, Action::Block | Action::Warn);
        if !supported {
            return Err(ValidationError::invalid_input(
                "educateUrl",
                format!(
                    "Invalid input educateUrl: a custom notification URL is supported only for Url indicators with action Block or Warn, not {indicator_type} with {action}."
                ),
            ));
        }
        parse_absolute_url(url).map_err(|why| {
            ValidationError::invalid_input("educateUrl", format!("Invalid input educateUrl: {why}"))
        })?;
    }

    let severity = match fields.text("severity", MAX_SHORT_CHARS)? {
        Patch::Value(s) => Patch::Value(Severity::parse("severity", &s)?),
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    };
    let expiration_time = match fields.text("expirationTime", MAX_SHORT_CHARS)? {
        Patch::Value(s) => Patch::Value(parse_datetime("expirationTime", &s)?),
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    };

    let mitre_techniques = fields.string_list("mitreTechniques")?;
    if let Patch::Value(list) = &mitre_techniques {
        if let Some(bad) = list.iter().find(|t| !is_mitre_technique_id(t)) {
            return Err(ValidationError::invalid_input(
                "mitreTechniques",
                format!("Invalid input mitreTechniques: '{bad}' is not a MITRE ATT&CK technique ID such as T1566 or T1566.001."),
            ));
        }
    }

    let bypass_duration_hours = fields.integer("bypassDurationHours")?;
    if let Patch::Value(h) = bypass_duration_hours {
        if h < 0 {
            return Err(ValidationError::invalid_input(
                "bypassDurationHours",
                "Invalid input bypassDurationHours: it cannot be negative.",
            ));
        }
    }

    Ok(Submission {
        indicator_value,
        value_key,
        indicator_type,
        action,
        title,
        description,
        application: fields.text("application", MAX_SHORT_CHARS)?,
        expiration_time,
        severity,
        recommended_actions: fields.text("recommendedActions", MAX_TEXT_CHARS)?,
        rbac_group_names: fields.string_list("rbacGroupNames")?,
        rbac_group_ids: fields.string_list("rbacGroupIds")?,
        educate_url,
        generate_alert,
        category: fields.integer("category")?,
        external_id: fields.text("externalId", MAX_SHORT_CHARS)?,
        mitre_techniques,
        bypass_duration_hours,
        notification_id: fields.text("notificationId", MAX_SHORT_CHARS)?,
        notification_body: fields.text("notificationBody", MAX_TEXT_CHARS)?,
        version: fields.text("version", MAX_SHORT_CHARS)?,
        historical_detection: fields.boolean("historicalDetection")?,
        look_back_period: fields.raw("lookBackPeriod"),
        additional_info: fields.raw("additionalInfo"),
        certificate_info: fields.raw("certificateInfo"),
    })
}

fn is_mitre_technique_id(s: &str) -> bool {
    let b = s.as_bytes();
    let base_ok = b.len() >= 5 && b[0] == b'T' && b[1..5].iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => base_ok,
        9 => base_ok && b[5] == b'.' && b[6..9].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed access to the body's properties, each refusal naming the property.
struct Fields<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Patch<&'a Value> {
        match self.map.get(name) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(v) => Patch::Value(v),
        }
    }

    fn wrong_type(name: &str, expected: &str, got: &Value) -> ValidationError {
        ValidationError::invalid_input(
            name,
            format!(
                "Invalid input {name}: expected {expected}, got {}.",
                json_kind(got)
            ),
        )
    }

    fn missing(&self, name: &str) -> ValidationError {
        // Property names are case-sensitive; a near miss deserves a precise hint.
        let near = self
            .map
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .map(|k| format!(" (found '{k}': property names are case-sensitive)"))
            .unwrap_or_default();
        ValidationError::new(
            ErrorCode::MissingRequiredParameter,
            name,
            format!("Parameter {name} is missing{near}."),
        )
    }

    fn required_str(&self, name: &str) -> Result<&'a str, ValidationError> {
        match self.get(name) {
            Patch::Value(Value::String(s)) => Ok(s),
            Patch::Value(other) => Err(Self::wrong_type(name, "a string", other)),
            Patch::Absent | Patch::Null => Err(self.missing(name)),
        }
    }

    fn required_text(&self, name: &str, max_chars: usize) -> Result<String, ValidationError> {
        let s = self.required_str(name)?;
        if s.trim().is_empty() {
            return Err(ValidationError::invalid_input(
                name,
                format!("Invalid input {name}: it cannot be empty."),
            ));
        }
        check_length(name, s, max_chars)?;
        Ok(s.to_string())
    }

    /// A string property; numbers are accepted as their decimal text (clients send
    /// `notificationId` and `externalId` as numbers).
    fn text(&self, name: &str, max_chars: usize) -> Result<Patch<String>, ValidationError> {
        match self.get(name) {
            Patch::Value(Value::String(s)) => {
                check_length(name, s, max_chars)?;
                Ok(Patch::Value(s.clone()))
            }
            Patch::Value(Value::Number(n)) => Ok(Patch::Value(n.to_string())),
            Patch::Value(other) => Err(Self::wrong_type(name, "a string", other)),
            Patch::Null => Ok(Patch::Null),
            Patch::Absent => Ok(Patch::Absent),
        }
    }

    /// A boolean; the strings "true"/"false" in any case are accepted (.NET clients send "True").
    fn boolean(&self, name: &str) -> Result<Patch<bool>, ValidationError> {
        match self.get(name) {
            Patch::Value(Value::Bool(b)) => Ok(Patch::Value(*b)),
            Patch::Value(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => {
                Ok(Patch::Value(true))
            }
            Patch::Value(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => {
                Ok(Patch::Value(false))
            }
            Patch::Value(other) => Err(ValidationError::invalid_input(
                name,
                format!(
                    "Invalid input {name}: expected true or false, got {}.",
                    match other {
                        Value::String(s) => format!("'{s}'"),
                        v => json_kind(v).to_string(),
                    }
                ),
            )),
            Patch::Null => Ok(Patch::Null),
            Patch::Absent => Ok(Patch::Absent),
        }
    }

    /// An integer; a string of digits is accepted too.
    fn integer(&self, name: &str) -> Result<Patch<i64>, ValidationError> {
        match self.get(name) {
            Patch::Value(Value::Number(n)) => n.as_i64().map(Patch::Value).ok_or_else(|| {
                ValidationError::invalid_input(
                    name,
                    format!("Invalid input {name}: expected a whole number, got {n}."),
                )
            }),
            Patch::Value(Value::String(s)) => {
                s.trim().parse::<i64>().map(Patch::Value).map_err(|_| {
                    ValidationError::invalid_input(
                        name,
                        format!("Invalid input {name}: expected a whole number, got '{s}'."),
                    )
                })
            }
            Patch::Value(other) => Err(Self::wrong_type(name, "a whole number", other)),
            Patch::Null => Ok(Patch::Null),
            Patch::Absent => Ok(Patch::Absent),
        }
    }

    /// A list of strings: a JSON array (of strings or numbers) or one comma-separated string,
    /// as the docs describe `rbacGroupNames` while their own example sends an array.
    /// Entries are trimmed; empty entries and repeats are dropped.
    fn string_list(&self, name: &str) -> Result<Patch<Vec<String>>, ValidationError> {
        match self.get(name) {
            Patch::Absent => Ok(Patch::Absent),
            Patch::Null => Ok(Patch::Null),
            Patch::Value(Value::String(s)) => {
                distinct_entries(name, s.split(',').map(|entry| Ok(Cow::Borrowed(entry))))
            }
            Patch::Value(Value::Array(items)) => distinct_entries(
                name,
                items.iter().enumerate().map(|(i, item)| match item {
                    Value::String(s) => Ok(Cow::Borrowed(s.as_str())),
                    Value::Number(n) => Ok(Cow::Owned(n.to_string())),
                    other => Err(ValidationError::invalid_input(
                        name,
                        format!(
                            "Invalid input {name}: element {i} should be a string, got {}.",
                            json_kind(other)
                        ),
                    )),
                }),
            ),
            Patch::Value(other) => Err(Self::wrong_type(
                name,
                "an array of strings or a comma-separated string",
                other,
            )),
        }
    }

    /// A property whose shape the reference does not know; kept as the JSON it was sent as.
    fn raw(&self, name: &str) -> Patch<Value> {
        match self.get(name) {
            Patch::Value(v) => Patch::Value(v.clone()),
            Patch::Null => Patch::Null,
            Patch::Absent => Patch::Absent,
        }
    }
}

/// The trimmed, non-empty, distinct entries of a list property, in order. A hash set keeps the
/// dedupe linear, and the walk stops at the first entry beyond [`MAX_LIST_ITEMS`]: a body of
/// hundreds of thousands of entries costs no more than one of 501.
fn distinct_entries<'v>(
    name: &str,
    entries: impl Iterator<Item = Result<Cow<'v, str>, ValidationError>>,
) -> Result<Patch<Vec<String>>, ValidationError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut list: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let entry = entry.trim();
        check_length(name, entry, MAX_SHORT_CHARS)?;
        if entry.is_empty() || seen.contains(entry) {
            continue;
        }
        if list.len() == MAX_LIST_ITEMS {
            return Err(ValidationError::invalid_input(
                name,
                format!("Invalid input {name}: at most {MAX_LIST_ITEMS} distinct entries."),
            ));
        }
        seen.insert(entry.to_string());
        list.push(entry.to_string());
    }
    Ok(Patch::Value(list))
}

fn check_length(name: &str, s: &str, max_chars: usize) -> Result<(), ValidationError> {
    let n = s.chars().count();
    if n > max_chars {
        return Err(ValidationError::invalid_input(
            name,
            format!("Invalid input {name}: at most {max_chars} characters, got {n}."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed() -> Value {
        json!({
            "indicatorValue": "220e7d15b011d7fac48f2bd61114db1022197f7f",
            "indicatorType": "FileSha1",
            "title": "test",
            "application": "demo-test",
            "expirationTime": "2020-12-12T00:00:00Z",
            "action": "AlertAndBlock",
            "severity": "Informational",
            "description": "test",
            "recommendedActions": "nothing",
            "rbacGroupNames": ["group1", "group2"]
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = seed();
        body[field] = value;
        body
    }

    #[test]
    fn seed_example_is_valid() {
        let s = parse_submission(&seed()).unwrap();
        assert_eq!(s.indicator_type, IndicatorType::FileSha1);
        assert_eq!(s.action, Action::AlertAndBlock);
        assert_eq!(
            s.rbac_group_names,
            Patch::Value(vec!["group1".into(), "group2".into()])
        );
        assert_eq!(s.generate_alert, Patch::Absent);
    }

    #[test]
    fn lenient_shapes() {
        let s = parse_submission(&with("generateAlert", json!("TRUE"))).unwrap();
        assert_eq!(s.generate_alert, Patch::Value(true));
        let s = parse_submission(&with("rbacGroupNames", json!(" a, b ,,a"))).unwrap();
        assert_eq!(
            s.rbac_group_names,
            Patch::Value(vec!["a".into(), "b".into()])
        );
        // Blank entries are dropped, so an empty string is an empty list (the schema says so).
        let s = parse_submission(&with("mitreTechniques", json!(" T1566,, "))).unwrap();
        assert_eq!(s.mitre_techniques, Patch::Value(vec!["T1566".into()]));
        let s = parse_submission(&with("mitreTechniques", json!(""))).unwrap();
        assert_eq!(s.mitre_techniques, Patch::Value(vec![]));
        let s = parse_submission(&with("id", json!("17"))).unwrap();
        assert_eq!(s.title, "test");
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                with("generateAlert", json!("yes")),
                "generateAlert",
                ErrorCode::InvalidInput,
            ),
            (
                with("action", json!("Audit")),
                "generateAlert",
                ErrorCode::InvalidInput,
            ),
            (
                with("educateUrl", json!("https://help.example.com")),
                "educateUrl",
                ErrorCode::InvalidInput,
            ),
            (with("title", json!(5)), "title", ErrorCode::InvalidInput),
            (
                with("title", Value::Null),
                "title",
                ErrorCode::MissingRequiredParameter,
            ),
            (
                with("mitreTechniques", json!(["T15"])),
                "mitreTechniques",
                ErrorCode::InvalidInput,
            ),
            // Written with a fraction, a whole number is refused, as .NET refuses `1.0` for
            // an `int` (JSON Schema cannot tell it from `1`: see tests/api-fuzz/hooks.py).
            (
                with("category", json!(1.0)),
                "category",
                ErrorCode::InvalidInput,
            ),
            (
                with("bypassDurationHours", json!(2.0)),
                "bypassDurationHours",
                ErrorCode::InvalidInput,
            ),
            (
                with("severity", json!("high")),
                "severity",
                ErrorCode::InvalidInput,
            ),
            (
                with("indicatorValue", json!("xyz")),
                "indicatorValue",
                ErrorCode::InvalidHashValue,
            ),
        ];
        for (body, field, code) in cases {
            let err = parse_submission(&body).unwrap_err();
            assert_eq!(
                (err.field.as_str(), err.code),
                (field, code),
                "{}",
                err.message
            );
            assert!(err.message.contains(field), "{}", err.message);
        }
    }

    #[test]
    fn wrong_case_property_is_reported_as_missing_with_hint() {
        let mut body = seed();
        let v = body
            .as_object_mut()
            .unwrap()
            .remove("indicatorValue")
            .unwrap();
        body["IndicatorValue"] = v;
        let err = parse_submission(&body).unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingRequiredParameter);
        assert!(err.message.contains("case-sensitive"), "{}", err.message);
    }

    #[test]
    fn audit_with_alert_and_educate_url_on_url_block_pass() {
        let mut body = with("action", json!("Audit"));
        body["generateAlert"] = json!(true);
        assert!(parse_submission(&body).is_ok());
        let body = json!({"indicatorValue": "https://evil.example/x", "indicatorType": "Url", "action": "Block",
            "title": "t", "description": "d", "educateUrl": "https://help.example.com/why"});
        assert!(parse_submission(&body).is_ok());
    }
}
