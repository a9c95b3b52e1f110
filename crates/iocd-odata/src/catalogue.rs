//! The filterable/sortable properties of an indicator and the database columns behind them.

/// How a property is stored and therefore which literals and operators it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TEXT column compared with string literals.
    Text,
    /// A TEXT column whose values are one of a fixed, case-sensitive set (the API rejects `alert` for `Alert`).
    Enum(&'static [&'static str]),
    /// A BIGINT column of 100 ns ticks since the Unix epoch, UTC.
    DateTime,
    /// INTEGER 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Bool,
    /// A BIGINT column (`id`); ids are strings on the wire, so `'17'` is accepted as well as `17`.
    Int,
    /// A TEXT column holding a JSON array of strings; only reachable through `any()`/`all()`.
    TextList,
}

/// One OData property of the Indicator entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    /// The OData (wire) name, case-sensitive.
    pub name: &'static str,
    /// The column name, identical in SQLite and PostgreSQL.
    pub column: &'static str,
    pub kind: Kind,
    /// Whether the column may hold NULL. Needed so that negated comparisons keep OData's
    /// two-valued semantics (`application ne 'x'` is true for a row without an application).
    pub nullable: bool,
}

pub const INDICATOR_TYPES: &[&str] = &[
    "FileSha1",
    "FileMd5",
    "FileSha256",
    "CertificateThumbprint",
    "IpAddress",
    "DomainName",
    "Url",
];

pub const ACTIONS: &[&str] = &[
    "Alert",
    "Warn",
    "Block",
    "Audit",
    "BlockAndRemediate",
    "AlertAndBlock",
    "Allowed",
];

pub const SEVERITIES: &[&str] = &["Informational", "Low", "Medium", "High"];

const fn property(
    name: &'static str,
    column: &'static str,
    kind: Kind,
    nullable: bool,
) -> Property {
    Property {
        name,
        column,
        kind,
        nullable,
    }
}

static INDICATOR_PROPERTIES: &[Property] = &[
    property("id", "id", Kind::Int, false),
    property("indicatorValue", "indicator_value", Kind::Text, false),
    property(
        "indicatorType",
        "indicator_type",
        Kind::Enum(INDICATOR_TYPES),
        false,
    ),
    property("action", "action", Kind::Enum(ACTIONS), false),
    property("severity", "severity", Kind::Enum(SEVERITIES), false),
    property("application", "application", Kind::Text, true),
    property("title", "title", Kind::Text, false),
    property("createdBy", "created_by", Kind::Text, false),
    property(
        "createdByDisplayName",
        "created_by_display_name",
        Kind::Text,
        false,
    ),
    property("lastUpdatedBy", "last_updated_by", Kind::Text, true),
    property("externalId", "external_id", Kind::Text, true),
    property(
        "creationTimeDateTimeUtc",
        "creation_time",
        Kind::DateTime,
        false,
    ),
    property("lastUpdateTime", "last_update_time", Kind::DateTime, false),
    property("expirationTime", "expiration_time", Kind::DateTime, true),
    property("generateAlert", "generate_alert", Kind::Bool, false),
    property("rbacGroupNames", "rbac_group_names", Kind::TextList, false),
    property("rbacGroupIds", "rbac_group_ids", Kind::TextList, false),
];

/// The properties of an Indicator that `$filter` and `$orderby` may use.
pub fn indicator_properties() -> &'static [Property] {
    INDICATOR_PROPERTIES
}

/// Looks a property up by its exact (case-sensitive) OData name.
pub fn find_property(name: &str) -> Option<&'static Property> {
    INDICATOR_PROPERTIES.iter().find(|p| p.name == name)
}

/// The property whose name matches ignoring case, for "did you mean" hints.
pub(crate) fn find_property_ignoring_case(name: &str) -> Option<&'static Property> {
    INDICATOR_PROPERTIES
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
}

pub(crate) fn property_names(filter: impl Fn(&Property) -> bool) -> String {
    INDICATOR_PROPERTIES
        .iter()
        .filter(|p| filter(p))
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}
