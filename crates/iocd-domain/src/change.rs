//! The change log's model: what one recorded change to an indicator says, and which of its
//! properties a change touched ([`diff`]). Pure: the store assigns sequence numbers and writes
//! the entries in the transaction of the change itself.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::enums::{Action, IndicatorType};
use crate::error::ValidationError;
use crate::indicator::{Actor, Indicator};
use crate::time::{format_wire, Timestamp};

/// What happened to an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ChangeKind {
    /// Created by a submission or an import.
    Created,
    /// An upsert changed at least one property.
    Updated,
    /// An upsert that changed nothing but `lastUpdateTime` (and `lastUpdatedBy`).
    Touched,
    /// Deleted by `DELETE /api/indicators/{id}`.
    Deleted,
    /// Deleted by `POST /api/indicators/BatchDelete`.
    BatchDeleted,
    /// Removed after its `expirationTime` passed (by the sweeper, or when its key was
    /// submitted again).
    Expired,
    /// Removed by a retention rule of the operator.
    Purged,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 7] = [
        ChangeKind::Created,
        ChangeKind::Updated,
        ChangeKind::Touched,
        ChangeKind::Deleted,
        ChangeKind::BatchDeleted,
        ChangeKind::Expired,
        ChangeKind::Purged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "Created",
            ChangeKind::Updated => "Updated",
            ChangeKind::Touched => "Touched",
            ChangeKind::Deleted => "Deleted",
            ChangeKind::BatchDeleted => "BatchDeleted",
            ChangeKind::Expired => "Expired",
            ChangeKind::Purged => "Purged",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Through what a change arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ChangeSource {
    /// The Indicators API (`createdBySource` `PublicApi`); `iocd import` uses it too.
    PublicApi,
    /// An import run by the operator's command line against the database.
    CliImport,
    /// A person in a portal.
    Portal,
    /// iocd's own background jobs (the expiry sweeper).
    Sweeper,
}

impl ChangeSource {
    pub const ALL: [ChangeSource; 4] = [
        ChangeSource::PublicApi,
        ChangeSource::CliImport,
        ChangeSource::Portal,
        ChangeSource::Sweeper,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::PublicApi => "PublicApi",
            ChangeSource::CliImport => "CliImport",
            ChangeSource::Portal => "Portal",
            ChangeSource::Sweeper => "Sweeper",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeSource> {
        ChangeSource::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeActor {
    /// The application's client id (or a user's UPN); `iocd` for the sweeper.
    pub id: String,
    pub display_name: String,
    pub source: ChangeSource,
}

impl ChangeActor {
    /// The writer of a change, through the source it wrote by.
    pub fn of(actor: &Actor) -> ChangeActor {
        ChangeActor {
            id: actor.id.clone(),
            display_name: actor.display_name.clone(),
            source: actor.source,
        }
    }

    /// iocd itself, removing expired indicators.
    pub fn sweeper() -> ChangeActor {
        ChangeActor {
            id: "iocd".to_string(),
            display_name: "iocd expiry sweeper".to_string(),
            source: ChangeSource::Sweeper,
        }
    }
}

/// One property a change touched, by its wire name, with its values before and after (`null`
/// for absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PropertyChange {
    pub property: String,
    /// Any JSON value: a string, number, boolean, array, object, or `null`.
    pub old: Value,
    /// Any JSON value, as `old`.
    pub new: Value,
}

/// One entry of a tenant's change log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEntry {
    /// Strictly increasing within the tenant, without gaps.
    pub sequence: i64,
    #[serde(serialize_with = "wire_time")]
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    pub actor: ChangeActor,
    /// The indicator's id, as a string like the Indicators API's.
    #[serde(serialize_with = "id_as_string")]
    #[schema(value_type = String, example = "17")]
    pub indicator_id: i64,
    pub indicator_type: IndicatorType,
    pub indicator_value: String,
    pub action: Action,
    pub kind: ChangeKind,
    /// The properties the change touched (every property set, for a creation; none for a
    /// removal).
    pub changes: Vec<PropertyChange>,
    /// The indicator's creator: a `Ti.ReadWrite` app sees only entries of its own indicators.
    #[serde(skip)]
    pub created_by: String,
}

impl ChangeEntry {
    /// The entry for `kind` of `indicator` (its state after the change, or before a removal),
    /// not yet numbered.
    pub fn new(
        kind: ChangeKind,
        indicator: &Indicator,
        actor: ChangeActor,
        changes: Vec<PropertyChange>,
        time: Timestamp,
    ) -> ChangeEntry {
        ChangeEntry {
            sequence: 0,
            time,
            actor,
            indicator_id: indicator.id,
            indicator_type: indicator.indicator_type,
            indicator_value: indicator.indicator_value.clone(),
            action: indicator.action,
            kind,
            changes,
            created_by: indicator.created_by.clone(),
        }
    }
}

fn wire_time<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_wire(*t))
}

fn id_as_string<S: Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// Properties an upsert moves whatever it submits; a change of only these is a touch.
const BOOKKEEPING: [&str; 2] = ["lastUpdateTime", "lastUpdatedBy"];

/// Properties that identify the indicator and are in every entry already.
const IDENTITY: [&str; 4] = ["id", "indicatorValue", "indicatorType", "action"];

fn properties(indicator: Option<&Indicator>) -> Map<String, Value> {
    match indicator.map(serde_json::to_value) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    }
}

/// The properties that differ between `old` and `new` (either absent: every property the
/// other has that is not `null`), by property name. `indicatorValue` appears only when an update
/// re-spelled it; the id, type and action never change.
pub fn diff(old: Option<&Indicator>, new: Option<&Indicator>) -> Vec<PropertyChange> {
    let before = properties(old);
    let after = properties(new);
    let keys = if new.is_some() { &after } else { &before };
    keys.keys()
        .filter(|key| {
            !(IDENTITY.contains(&key.as_str())
                && (old.is_none() || new.is_none() || key.as_str() != "indicatorValue"))
        })
        .filter_map(|key| {
            let old = before.get(key).cloned().unwrap_or(Value::Null);
            let new = after.get(key).cloned().unwrap_or(Value::Null);
            (old != new).then(|| PropertyChange {
                property: key.clone(),
                old,
                new,
            })
        })
        .collect()
}

/// Properties every creation sets to the same value when the request is silent
/// ([`Indicator::create`]), with that value.
fn creation_defaults() -> [(&'static str, Value); 7] {
    [
        ("category", Value::from(crate::indicator::DEFAULT_CATEGORY)),
        ("generateAlert", Value::Bool(false)),
        ("historicalDetection", Value::Bool(false)),
        ("mitreTechniques", Value::Array(Vec::new())),
        ("rbacGroupIds", Value::Array(Vec::new())),
        ("rbacGroupNames", Value::Array(Vec::new())),
        (
            "severity",
            Value::from(crate::enums::Severity::Informational.as_str()),
        ),
    ]
}

/// Properties a creation's entry already says: who created it, through what, and when.
fn creation_implied(entry: &ChangeEntry) -> [(&'static str, Value); 5] {
    let time = Value::from(format_wire(entry.time));
    [
        ("createdBy", Value::from(entry.actor.id.clone())),
        (
            "createdByDisplayName",
            Value::from(entry.actor.display_name.clone()),
        ),
        (
            "createdBySource",
            Value::from(entry.actor.source.created_by_source()),
        ),
        ("creationTimeDateTimeUtc", time.clone()),
        ("lastUpdateTime", time),
    ]
}

/// The changes of a `Created` entry that its entry does not imply: without the creator, the
/// time and the properties left at their creation defaults. A creation is most of the log's
/// writes, and most of its properties are those; [`restore_creation`] gives them back, so a
/// store keeps a creation in a fraction of the bytes and readers see every property.
pub fn creation_essentials(entry: &ChangeEntry) -> impl Iterator<Item = &PropertyChange> {
    let implied = creation_implied(entry);
    let defaults = creation_defaults();
    entry.changes.iter().filter(move |change| {
        let elided =
            |(name, value): &(&str, Value)| *name == change.property && *value == change.new;
        change.old.is_null() && !implied.iter().any(elided) && !defaults.iter().any(elided)
    })
}

/// A `Created` entry's changes from its [`creation_essentials`]: the implied and default
/// properties added back, in property order, as [`diff`] lists them.
pub fn restore_creation(entry: &mut ChangeEntry) {
    let implied = creation_implied(entry);
    for (name, value) in implied.into_iter().chain(creation_defaults()) {
        if !entry.changes.iter().any(|c| c.property == name) {
            entry.changes.push(PropertyChange {
                property: name.to_string(),
                old: Value::Null,
                new: value,
            });
        }
    }
    entry.changes.sort_by(|a, b| a.property.cmp(&b.property));
}

/// The kind and diff of an upsert that found `old` and left `new`: `Touched` when nothing but
/// the bookkeeping properties moved.
pub fn update_change(old: &Indicator, new: &Indicator) -> (ChangeKind, Vec<PropertyChange>) {
    let changes = diff(Some(old), Some(new));
    let kind = if changes
        .iter()
        .all(|c| BOOKKEEPING.contains(&c.property.as_str()))
    {
        ChangeKind::Touched
    } else {
        ChangeKind::Updated
    };
    (kind, changes)
}

/// Entries one read of the feed returns when the client names no `limit`.
pub const DEFAULT_FEED_LIMIT: u32 = 100;
/// Most entries one read of the feed returns.
pub const MAX_FEED_LIMIT: u32 = 1000;
/// Longest a long-poll (`wait`) holds the request, in seconds.
pub const MAX_FEED_WAIT_SECONDS: u64 = 60;

/// The options of a read of the change feed (`GET /iocd/v1/changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedQuery {
    /// Entries with a sequence number above this one.
    pub since: i64,
    pub limit: u32,
    /// Seconds to wait for an entry when there is none yet (0: answer at once).
    pub wait_seconds: u64,
}

impl Default for FeedQuery {
    fn default() -> Self {
        FeedQuery {
            since: 0,
            limit: DEFAULT_FEED_LIMIT,
            wait_seconds: 0,
        }
    }
}

impl FeedQuery {
    /// Parses the query string's (decoded) parameters; names match case-insensitively, unknown
    /// ones are ignored, and every refusal names its parameter.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<FeedQuery, ValidationError> {
        let mut query = FeedQuery::default();
        for (name, value) in pairs {
            let name = name.trim();
            let value = value.trim();
            if name.eq_ignore_ascii_case("since") {
                query.since = number(name, value, 0, i64::MAX as u64)? as i64;
            } else if name.eq_ignore_ascii_case("limit") {
                query.limit = number(name, value, 1, u64::from(MAX_FEED_LIMIT))? as u32;
            } else if name.eq_ignore_ascii_case("wait") {
                query.wait_seconds = number(name, value, 0, MAX_FEED_WAIT_SECONDS)?;
            }
        }
        Ok(query)
    }
}

fn number(name: &str, value: &str, min: u64, max: u64) -> Result<u64, ValidationError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ValidationError::invalid_input(
                name,
                format!(
                    "Invalid input {name}: '{value}' is not a whole number from {min} to {max}."
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::parse_submission;
    use chrono::{Duration, TimeZone, Utc};
    use serde_json::json;

    fn actor() -> Actor {
        Actor::new("app", "App")
    }

    fn submit(body: Value) -> crate::Submission {
        parse_submission(&body).unwrap()
    }

    fn base() -> Value {
        json!({"indicatorValue": "evil.example", "indicatorType": "DomainName",
               "action": "Alert", "title": "t", "description": "d"})
    }

    #[test]
    fn a_creation_lists_the_properties_it_set() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let ind = Indicator::create(3, &submit(base()), &actor(), now);
        let changes = diff(None, Some(&ind));
        let names: Vec<&str> = changes.iter().map(|c| c.property.as_str()).collect();
        assert!(
            names.contains(&"title") && names.contains(&"severity"),
            "{names:?}"
        );
        assert!(!names.contains(&"id") && !names.contains(&"indicatorValue"));
        // Nulls before and after are no change.
        assert!(!names.contains(&"expirationTime"), "{names:?}");
        let title = changes.iter().find(|c| c.property == "title").unwrap();
        assert_eq!((&title.old, &title.new), (&Value::Null, &json!("t")));
    }

    /// A creation's entry keeps only what it does not imply, and gets every property back.
    #[test]
    fn a_creation_restores_from_its_essentials() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let mut rich = base();
        rich["severity"] = json!("High");
        rich["generateAlert"] = json!(true);
        rich["rbacGroupNames"] = json!(["Lab"]);
        rich["expirationTime"] = json!("2031-01-01T00:00:00Z");
        rich["category"] = json!(4);
        let mut stated_defaults = base();
        stated_defaults["severity"] = json!("Informational");
        stated_defaults["generateAlert"] = json!(false);
        for (body, actor) in [
            (base(), actor()),
            (rich, actor()),
            (stated_defaults, actor().via(ChangeSource::Portal)),
        ] {
            let ind = Indicator::create(3, &submit(body), &actor, now);
            let full = ChangeEntry::new(
                ChangeKind::Created,
                &ind,
                ChangeActor::of(&actor),
                diff(None, Some(&ind)),
                now,
            );
            let essentials: Vec<PropertyChange> = creation_essentials(&full).cloned().collect();
            // The creator, its source and the two times are never kept.
            assert!(essentials.len() + 5 <= full.changes.len(), "{essentials:?}");
            let names: Vec<&str> = essentials.iter().map(|c| c.property.as_str()).collect();
            assert!(names.contains(&"title") && !names.contains(&"createdBy"));
            let mut restored = ChangeEntry {
                changes: essentials,
                ..full.clone()
            };
            restore_creation(&mut restored);
            assert_eq!(restored, full);
        }
    }

    #[test]
    fn an_update_lists_only_what_changed_with_old_and_new() {
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let old = Indicator::create(3, &submit(base()), &actor(), t0);
        let mut new = old.clone();
        let mut body = base();
        body["title"] = json!("new title");
        body["severity"] = json!("High");
        new.apply_update(&submit(body), &actor(), t0 + Duration::minutes(1));
        let (kind, changes) = update_change(&old, &new);
        assert_eq!(kind, ChangeKind::Updated);
        let names: Vec<&str> = changes.iter().map(|c| c.property.as_str()).collect();
        assert_eq!(
            names,
            ["lastUpdateTime", "lastUpdatedBy", "severity", "title"]
        );
        assert_eq!(changes[2].old, json!("Informational"));
        assert_eq!(changes[2].new, json!("High"));
    }

    #[test]
    fn an_upsert_that_changes_nothing_is_a_touch() {
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let mut old = Indicator::create(3, &submit(base()), &actor(), t0);
        old.apply_update(&submit(base()), &actor(), t0);
        let mut new = old.clone();
        new.apply_update(&submit(base()), &actor(), t0 + Duration::minutes(1));
        let (kind, changes) = update_change(&old, &new);
        assert_eq!(kind, ChangeKind::Touched);
        let names: Vec<&str> = changes.iter().map(|c| c.property.as_str()).collect();
        assert_eq!(names, ["lastUpdateTime"]);
    }

    #[test]
    fn a_respelled_value_is_a_change() {
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let old = Indicator::create(3, &submit(base()), &actor(), t0);
        let mut new = old.clone();
        let mut body = base();
        body["indicatorValue"] = json!("EVIL.example");
        new.apply_update(&submit(body), &actor(), t0);
        let (kind, changes) = update_change(&old, &new);
        assert_eq!(kind, ChangeKind::Updated);
        assert_eq!(changes[0].property, "indicatorValue");
    }

    #[test]
    fn feed_queries_parse_with_defaults_and_refuse_naming_the_parameter() {
        assert_eq!(FeedQuery::parse([]).unwrap(), FeedQuery::default());
        let q = FeedQuery::parse([("since", "42"), ("Limit", "7"), ("wait", "60"), ("x", "y")])
            .unwrap();
        assert_eq!(
            q,
            FeedQuery {
                since: 42,
                limit: 7,
                wait_seconds: 60
            }
        );
        for (name, value) in [
            ("since", "-1"),
            ("since", "abc"),
            ("limit", "0"),
            ("limit", "1001"),
            ("wait", "61"),
        ] {
            let e = FeedQuery::parse([(name, value)]).unwrap_err();
            assert_eq!(e.field, name);
            assert!(e.message.contains(name), "{}", e.message);
        }
    }

    #[test]
    fn kinds_and_sources_round_trip() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            assert_eq!(json!(kind), json!(kind.as_str()));
        }
        for source in ChangeSource::ALL {
            assert_eq!(ChangeSource::parse(source.as_str()), Some(source));
            assert_eq!(json!(source), json!(source.as_str()));
        }
    }
}
