//! The mapping between [`Indicator`] and the `indicators` table's rows, as both databases
//! store them (times in ticks, lists and raw JSON as text). The SQL lives in [`crate::sql`].

use iocd_domain::change;
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

/// The `changes` column of `entry`: a JSON array of `{property, old, new}`; for a creation, a
/// JSON object of only its [`change::creation_essentials`] (property: new value), the rest
/// being implied by the entry itself. Creations are most of the log, and this keeps each in
/// a fraction of the bytes (the change log's cost on the write path, docs/benchmarks.md).
pub fn changes_text(entry: &ChangeEntry) -> String {
    if entry.kind == ChangeKind::Created {
        let essentials: serde_json::Map<String, Value> = change::creation_essentials(entry)
            .map(|c| (c.property.clone(), c.new.clone()))
            .collect();
        serde_json::to_string(&essentials)
    } else {
        serde_json::to_string(&entry.changes)
    }
    .expect("property changes serialise")
}

/// The property changes of a `changes` column ([`changes_text`]; an array for every kind in
/// rows written before creations were kept as an object).
fn parse_changes(text: &str) -> Result<(Vec<PropertyChange>, bool), StoreError> {
    let bad = |e: serde_json::Error| corrupt("changes column", e);
    if text.trim_start().starts_with('{') {
        let essentials: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(bad)?;
        let changes = essentials
            .into_iter()
            .map(|(property, new)| PropertyChange {
                property,
                old: Value::Null,
                new,
            })
            .collect();
        Ok((changes, true))
    } else {
        Ok((serde_json::from_str(text).map_err(bad)?, false))
    }
}

impl TryFrom<ChangeRow> for ChangeEntry {
    type Error = StoreError;

    fn try_from(r: ChangeRow) -> Result<Self, StoreError> {
        let enum_err = |e: iocd_domain::ValidationError| corrupt("enum column", e.message);
        let (changes, essentials_only) = parse_changes(&r.changes)?;
        let mut entry = ChangeEntry {
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
            changes,
            created_by: r.created_by,
        };
        if essentials_only && entry.kind == ChangeKind::Created {
            change::restore_creation(&mut entry);
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iocd_domain::{parse_submission, Actor};

    fn row_of(entry: &ChangeEntry) -> ChangeRow {
        ChangeRow {
            seq: 1,
            time: to_ticks(entry.time),
            actor_id: entry.actor.id.clone(),
            actor_name: entry.actor.display_name.clone(),
            source: entry.actor.source.as_str().to_string(),
            indicator_id: entry.indicator_id,
            indicator_type: entry.indicator_type.as_str().to_string(),
            indicator_value: entry.indicator_value.clone(),
            action: entry.action.as_str().to_string(),
            created_by: entry.created_by.clone(),
            kind: entry.kind.as_str().to_string(),
            changes: changes_text(entry),
        }
    }

    /// A creation is stored as the object of what it does not imply, and read back whole;
    /// other kinds, and creations stored before, keep the array of `{property, old, new}`.
    #[test]
    fn a_creation_is_stored_short_and_read_back_whole() {
        let sub = parse_submission(&serde_json::json!({
            "indicatorValue": "a.example.com", "indicatorType": "DomainName",
            "action": "Alert", "title": "t", "description": "d", "severity": "High"
        }))
        .unwrap();
        let actor = Actor::new("app", "App");
        let now = from_ticks(to_ticks(iocd_domain::time::now()));
        let ind = Indicator::create(7, &sub, &actor, now);
        let mut entry = ChangeEntry::new(
            ChangeKind::Created,
            &ind,
            ChangeActor::of(&actor),
            change::diff(None, Some(&ind)),
            now,
        );
        entry.sequence = 1;
        let stored = changes_text(&entry);
        assert_eq!(
            serde_json::from_str::<Value>(&stored).unwrap(),
            serde_json::json!({"description": "d", "severity": "High", "title": "t"})
        );
        assert_eq!(ChangeEntry::try_from(row_of(&entry)).unwrap(), entry);

        let mut older = row_of(&entry);
        older.changes = serde_json::to_string(&entry.changes).unwrap();
        assert_eq!(ChangeEntry::try_from(older).unwrap(), entry);

        let deleted = ChangeEntry {
            kind: ChangeKind::Deleted,
            changes: Vec::new(),
            ..entry
        };
        assert_eq!(changes_text(&deleted), "[]");
        assert_eq!(ChangeEntry::try_from(row_of(&deleted)).unwrap(), deleted);
    }
}
