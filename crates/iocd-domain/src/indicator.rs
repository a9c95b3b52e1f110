//! The stored indicator and the upsert rules: how a submission creates an indicator, and how
//! it updates one in place.

use serde::{Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::change::ChangeSource;
use crate::enums::{Action, IndicatorType, Severity};
use crate::submission::Submission;
use crate::time::{format_wire, Timestamp};

/// `createdBySource` of indicators submitted through the API (`Portal` is the UI's).
pub const CREATED_BY_SOURCE_API: &str = "PublicApi";
/// `createdBySource` of indicators created in a portal.
pub const CREATED_BY_SOURCE_PORTAL: &str = "Portal";
/// `category` of every indicator observed from the real service when none is given.
pub const DEFAULT_CATEGORY: i64 = 1;

/// Who is writing: the calling application (or user) as the API reports it, and through what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Client id of the application (or the user's UPN): `createdBy` / `lastUpdatedBy`.
    pub id: String,
    /// `createdByDisplayName`.
    pub display_name: String,
    /// Through what the write arrives: the change log records it, and a portal creation says
    /// `createdBySource: "Portal"` as the real portal's rows do.
    pub source: ChangeSource,
}

impl Actor {
    /// A caller of the Indicators API.
    pub fn new(id: impl Into<String>, display_name: impl Into<String>) -> Actor {
        Actor {
            id: id.into(),
            display_name: display_name.into(),
            source: ChangeSource::PublicApi,
        }
    }

    /// The same caller, writing through `source` (the portal, say).
    pub fn via(self, source: ChangeSource) -> Actor {
        Actor { source, ..self }
    }
}

impl ChangeSource {
    /// `createdBySource` of an indicator created through this source: the real service knows
    /// only `Portal` and `PublicApi`, so iocd's own sources report `PublicApi`.
    pub fn created_by_source(self) -> &'static str {
        match self {
            ChangeSource::Portal => CREATED_BY_SOURCE_PORTAL,
            ChangeSource::PublicApi | ChangeSource::CliImport | ChangeSource::Sweeper => {
                CREATED_BY_SOURCE_API
            }
        }
    }
}

/// The Indicator entity. Field order is the wire order of real responses, and optional
/// properties serialise as explicit `null` (clients index them without checking).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Indicator {
    /// A per-tenant sequential integer, sent as a string.
    #[serde(serialize_with = "id_as_string")]
    #[schema(value_type = String, example = "17")]
    pub id: i64,
    pub indicator_value: String,
    pub indicator_type: IndicatorType,
    pub action: Action,
    pub created_by: String,
    pub severity: Severity,
    pub category: Option<i64>,
    pub application: Option<String>,
    pub educate_url: Option<String>,
    pub bypass_duration_hours: Option<i64>,
    pub title: String,
    pub description: String,
    pub recommended_actions: Option<String>,
    #[serde(rename = "creationTimeDateTimeUtc", serialize_with = "wire_time")]
    #[schema(value_type = String, format = DateTime)]
    pub creation_time: Timestamp,
    #[serde(serialize_with = "wire_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiration_time: Option<Timestamp>,
    #[serde(serialize_with = "wire_time")]
    #[schema(value_type = String, format = DateTime)]
    pub last_update_time: Timestamp,
    pub last_updated_by: Option<String>,
    pub rbac_group_names: Vec<String>,
    pub rbac_group_ids: Vec<String>,
    pub notification_id: Option<String>,
    pub notification_body: Option<String>,
    pub version: Option<String>,
    pub mitre_techniques: Vec<String>,
    pub historical_detection: bool,
    #[schema(value_type = Option<Object>)]
    pub look_back_period: Option<Value>,
    pub generate_alert: bool,
    #[schema(value_type = Option<Object>)]
    pub additional_info: Option<Value>,
    pub created_by_display_name: String,
    pub external_id: Option<String>,
    pub created_by_source: String,
    #[schema(value_type = Option<Object>)]
    pub certificate_info: Option<Value>,
    /// Normalised `indicatorValue`, part of the upsert key; not on the wire.
    #[serde(skip)]
    #[schema(ignore)]
    pub value_key: String,
}

fn id_as_string<S: Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn wire_time<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_wire(*t))
}

fn wire_time_opt<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_wire(*t)),
        None => s.serialize_none(),
    }
}

impl Indicator {
    /// A new indicator from a submission. Defaults where the request is silent: severity
    /// `Informational`, category 1, generateAlert and historicalDetection false, empty lists.
    pub fn create(id: i64, sub: &Submission, actor: &Actor, now: Timestamp) -> Indicator {
        Indicator {
            id,
            indicator_value: sub.indicator_value.clone(),
            indicator_type: sub.indicator_type,
            action: sub.action,
            created_by: actor.id.clone(),
            severity: sub.severity.on_create().unwrap_or(Severity::Informational),
            category: Some(sub.category.on_create().unwrap_or(DEFAULT_CATEGORY)),
            application: sub.application.on_create(),
            educate_url: sub.educate_url.on_create(),
            bypass_duration_hours: sub.bypass_duration_hours.on_create(),
            title: sub.title.clone(),
            description: sub.description.clone(),
            recommended_actions: sub.recommended_actions.on_create(),
            creation_time: now,
            expiration_time: sub.expiration_time.on_create(),
            last_update_time: now,
            last_updated_by: None,
            rbac_group_names: sub.rbac_group_names.on_create().unwrap_or_default(),
            rbac_group_ids: sub.rbac_group_ids.on_create().unwrap_or_default(),
            notification_id: sub.notification_id.on_create(),
            notification_body: sub.notification_body.on_create(),
            version: sub.version.on_create(),
            mitre_techniques: sub.mitre_techniques.on_create().unwrap_or_default(),
            historical_detection: sub.historical_detection.on_create().unwrap_or(false),
            look_back_period: sub.look_back_period.on_create(),
            generate_alert: sub.generate_alert.on_create().unwrap_or(false),
            additional_info: sub.additional_info.on_create(),
            created_by_display_name: actor.display_name.clone(),
            external_id: sub.external_id.on_create(),
            created_by_source: actor.source.created_by_source().to_string(),
            certificate_info: sub.certificate_info.on_create(),
            value_key: sub.value_key.clone(),
        }
    }

    /// Updates in place: `id`, `creationTimeDateTimeUtc` and the creator stay; `application`,
    /// `version` and `certificateInfo` are honoured only on create and silently ignored here.
    /// The submitted spelling of the value replaces the stored one (the key is unchanged).
    pub fn apply_update(&mut self, sub: &Submission, actor: &Actor, now: Timestamp) {
        debug_assert_eq!(
            (self.indicator_type, self.action, self.value_key.as_str()),
            (sub.indicator_type, sub.action, sub.value_key.as_str())
        );
        self.indicator_value = sub.indicator_value.clone();
        self.title = sub.title.clone();
        self.description = sub.description.clone();
        sub.severity
            .apply_with_default(&mut self.severity, Severity::Informational);
        let mut category = self.category;
        sub.category.apply_to(&mut category);
        self.category = Some(category.unwrap_or(DEFAULT_CATEGORY));
        sub.educate_url.apply_to(&mut self.educate_url);
        sub.bypass_duration_hours
            .apply_to(&mut self.bypass_duration_hours);
        sub.recommended_actions
            .apply_to(&mut self.recommended_actions);
        sub.expiration_time.apply_to(&mut self.expiration_time);
        sub.rbac_group_names
            .apply_with_default(&mut self.rbac_group_names, Vec::new());
        sub.rbac_group_ids
            .apply_with_default(&mut self.rbac_group_ids, Vec::new());
        sub.notification_id.apply_to(&mut self.notification_id);
        sub.notification_body.apply_to(&mut self.notification_body);
        sub.mitre_techniques
            .apply_with_default(&mut self.mitre_techniques, Vec::new());
        sub.historical_detection
            .apply_with_default(&mut self.historical_detection, false);
        sub.look_back_period.apply_to(&mut self.look_back_period);
        sub.generate_alert
            .apply_with_default(&mut self.generate_alert, false);
        sub.additional_info.apply_to(&mut self.additional_info);
        sub.external_id.apply_to(&mut self.external_id);
        self.last_update_time = now;
        self.last_updated_by = Some(actor.id.clone());
    }

    /// Active = not expired. Expired indicators behave as deleted: hidden, not counted
    /// against the quota, and replaced by a fresh indicator when their key is submitted again.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expiration_time.is_none_or(|t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::parse_submission;
    use crate::time::parse_datetime;
    use serde_json::json;

    fn actor(id: &str) -> Actor {
        Actor::new(id, format!("{id} app"))
    }

    #[test]
    fn wire_order_and_explicit_nulls() {
        let sub = parse_submission(
            &json!({"indicatorValue": "8.8.8.8", "indicatorType": "IpAddress",
            "action": "Block", "title": "t", "description": "d"}),
        )
        .unwrap();
        let now = parse_datetime("t", "2024-05-01T10:00:00.5Z").unwrap();
        let ind = Indicator::create(7, &sub, &actor("app1"), now);
        let text = serde_json::to_string(&ind).unwrap();
        assert!(text.starts_with(r#"{"id":"7","indicatorValue":"8.8.8.8","indicatorType":"IpAddress","action":"Block","createdBy":"app1","severity":"Informational","category":1,"application":null"#), "{text}");
        assert!(
            text.contains(
                r#""creationTimeDateTimeUtc":"2024-05-01T10:00:00.5Z","expirationTime":null"#
            ),
            "{text}"
        );
        assert!(
            text.ends_with(r#""createdBySource":"PublicApi","certificateInfo":null}"#),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 31);
    }

    #[test]
    fn update_keeps_identity_and_create_only_fields() {
        let first = parse_submission(&json!({"indicatorValue": "evil.example", "indicatorType": "DomainName",
            "action": "Block", "title": "t1", "description": "d1", "application": "app-a", "version": "1",
            "severity": "High", "expirationTime": "2030-01-01T00:00:00Z"})).unwrap();
        let t0 = parse_datetime("t", "2024-01-01T00:00:00Z").unwrap();
        let t1 = parse_datetime("t", "2024-01-02T00:00:00Z").unwrap();
        let mut ind = Indicator::create(3, &first, &actor("creator"), t0);
        let second = parse_submission(&json!({"indicatorValue": "EVIL.example", "indicatorType": "DomainName",
            "action": "Block", "title": "t2", "description": "d2", "application": "app-b", "version": "2",
            "expirationTime": null})).unwrap();
        ind.apply_update(&second, &actor("updater"), t1);
        assert_eq!(
            (ind.id, ind.creation_time, ind.created_by.as_str()),
            (3, t0, "creator")
        );
        assert_eq!(
            (ind.application.as_deref(), ind.version.as_deref()),
            (Some("app-a"), Some("1"))
        );
        assert_eq!(
            (ind.title.as_str(), ind.severity),
            ("t2", Severity::High),
            "absent severity is kept"
        );
        assert_eq!(ind.expiration_time, None, "explicit null clears");
        assert_eq!(
            (ind.last_update_time, ind.last_updated_by.as_deref()),
            (t1, Some("updater"))
        );
        assert_eq!(ind.indicator_value, "EVIL.example");
    }

    #[test]
    fn expiry_makes_inactive() {
        let sub = parse_submission(&json!({"indicatorValue": "8.8.8.8", "indicatorType": "IpAddress",
            "action": "Block", "title": "t", "description": "d", "expirationTime": "2024-01-01T00:00:00Z"})).unwrap();
        let before = parse_datetime("t", "2023-12-31T23:59:59Z").unwrap();
        let at = parse_datetime("t", "2024-01-01T00:00:00Z").unwrap();
        let ind = Indicator::create(1, &sub, &actor("a"), before);
        assert!(ind.is_active(before));
        assert!(!ind.is_active(at));
    }
}
