//! The mapping between [`Indicator`] and the `indicators` table's rows, as both databases
//! store them (times in ticks, lists and raw JSON as text). The SQL lives in [`crate::sql`].

use iocd_domain::time::{from_ticks, to_ticks};
use iocd_domain::{
    Action, ChangeActor, ChangeEntry, ChangeKind, ChangeSource, Indicator, IndicatorType,
    PropertyChange, Severity,
};

use serde_json::Value;

use crate::StoreError;

#[derive(sqlx::FromRow)]
pub struct IndicatorRow {
    id: i64,
    indicator_value: String,
    indicator_type: String,
    action: String,
    created_by: String,
    severity: String,
    category: Option<i64>,
    application: Option<String>,
    educate_url: Option<String>,
    bypass_duration_hours: Option<i64>,
    title: String,
    description: String,
    recommended_actions: Option<String>,
    creation_time: i64,
    expiration_time: Option<i64>,
    last_update_time: i64,
    last_updated_by: Option<String>,
    rbac_group_names: String,
    rbac_group_ids: String,
    notification_id: Option<String>,
    notification_body: Option<String>,
    version: Option<String>,
    mitre_techniques: String,
    historical_detection: bool,
    look_back_period: Option<String>,
    generate_alert: bool,
    additional_info: Option<String>,
    created_by_display_name: String,
    external_id: Option<String>,
    created_by_source: String,
    certificate_info: Option<String>,
    value_key: String,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

fn list_from(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("list column", e))
}

fn raw_from(text: Option<String>) -> Result<Option<Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("JSON column", e)))
        .transpose()
}

pub fn list_text(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings serialises")
}

pub fn raw_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

impl TryFrom<IndicatorRow> for Indicator {
    type Error = StoreError;

    fn try_from(r: IndicatorRow) -> Result<Self, StoreError> {
        let enum_err = |e: iocd_domain::ValidationError| corrupt("enum column", e.message);
        Ok(Indicator {
            id: r.id,
            indicator_type: IndicatorType::parse("indicatorType", &r.indicator_type)
                .map_err(enum_err)?,
            action: Action::parse("action", &r.action).map_err(enum_err)?,
            severity: Severity::parse("severity", &r.severity).map_err(enum_err)?,
            indicator_value: r.indicator_value,
            created_by: r.created_by,
            category: r.category,
            application: r.application,
            educate_url: r.educate_url,
            bypass_duration_hours: r.bypass_duration_hours,
            title: r.title,
            description: r.description,
            recommended_actions: r.recommended_actions,
            creation_time: from_ticks(r.creation_time),
            expiration_time: r.expiration_time.map(from_ticks),
            last_update_time: from_ticks(r.last_update_time),
            last_updated_by: r.last_updated_by,
            rbac_group_names: list_from(&r.rbac_group_names)?,
            rbac_group_ids: list_from(&r.rbac_group_ids)?,
            notification_id: r.notification_id,
            notification_body: r.notification_body,
            version: r.version,
            mitre_techniques: list_from(&r.mitre_techniques)?,
            historical_detection: r.historical_detection,
            look_back_period: raw_from(r.look_back_period)?,
            generate_alert: r.generate_alert,
            additional_info: raw_from(r.additional_info)?,
            created_by_display_name: r.created_by_display_name,
            external_id: r.external_id,
            created_by_source: r.created_by_source,
            certificate_info: raw_from(r.certificate_info)?,
            value_key: r.value_key,
        })
    }
}

pub fn ticks(t: iocd_domain::time::Timestamp) -> i64 {
    to_ticks(t)
}

/// A change-log row, in [`crate::sql::CHANGE_COLUMNS`] order.
#[derive(sqlx::FromRow)]
pub struct ChangeRow {
    seq: i64,
    time: i64,
    actor_id: String,
    actor_name: String,
    source: String,
    indicator_id: i64,
    indicator_type: String,
    indicator_value: String,
    action: String,
    created_by: String,
    kind: String,
    changes: String,
}

pub fn changes_text(changes: &[PropertyChange]) -> String {
    serde_json::to_string(changes).expect("property changes serialise")
}

impl TryFrom<ChangeRow> for ChangeEntry {
    type Error = StoreError;

    fn try_from(r: ChangeRow) -> Result<Self, StoreError> {
        let enum_err = |e: iocd_domain::ValidationError| corrupt("enum column", e.message);
        Ok(ChangeEntry {
            sequence: r.seq,
            time: from_ticks(r.time),
            actor: ChangeActor {
                id: r.actor_id,
                display_name: r.actor_name,
                source: ChangeSource::parse(&r.source)
                    .ok_or_else(|| corrupt("change source", &r.source))?,
            },
            indicator_id: r.indicator_id,
            indicator_type: IndicatorType::parse("indicatorType", &r.indicator_type)
                .map_err(enum_err)?,
            indicator_value: r.indicator_value,
            action: Action::parse("action", &r.action).map_err(enum_err)?,
            kind: ChangeKind::parse(&r.kind).ok_or_else(|| corrupt("change kind", &r.kind))?,
            changes: serde_json::from_str(&r.changes).map_err(|e| corrupt("changes column", e))?,
            created_by: r.created_by,
        })
    }
}
