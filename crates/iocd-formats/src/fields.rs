//! The client-settable fields of an indicator (docs/reference §5.1 plus the undocumented fields
//! the service accepts), in the one order every exporter writes them.

/// How a field's value is shaped, which decides how it is written to a CSV cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string.
    Text,
    /// A JSON boolean, `True`/`False` in CSV.
    Bool,
    /// A JSON integer (only `category`).
    Integer,
    /// A list of strings (or, for `rbacGroupIds`, possibly numbers).
    List,
    /// Any JSON; the field's type is undocumented or free-form.
    Json,
}

pub(crate) struct Field {
    /// The wire name (camelCase), as in request and response bodies.
    pub wire: &'static str,
    /// The CSV header this exporter writes.
    pub csv_header: &'static str,
    pub kind: Kind,
    /// Whether the portal's own CSV template has this column (these come first in exported CSV).
    pub portal: bool,
}

const fn field(wire: &'static str, csv_header: &'static str, kind: Kind, portal: bool) -> Field {
    Field {
        wire,
        csv_header,
        kind,
        portal,
    }
}

/// Every client-settable field in the fixed export order (JSON keys, STIX `x_mde_*` properties).
pub(crate) const CLIENT_FIELDS: [Field; 24] = [
    field("indicatorValue", "IndicatorValue", Kind::Text, true),
    field("indicatorType", "IndicatorType", Kind::Text, true),
    field("action", "Action", Kind::Text, true),
    field("application", "Application", Kind::Text, false),
    field("title", "Title", Kind::Text, true),
    field("description", "Description", Kind::Text, true),
    field("expirationTime", "ExpirationTime", Kind::Text, true),
    field("severity", "Severity", Kind::Text, true),
    field("recommendedActions", "RecommendedActions", Kind::Text, true),
    field("rbacGroupNames", "RbacGroups", Kind::List, true),
    field("rbacGroupIds", "RbacGroupIds", Kind::List, false),
    field("educateUrl", "EducateUrl", Kind::Text, false),
    field("generateAlert", "GenerateAlert", Kind::Bool, true),
    field("category", "Category", Kind::Integer, true),
    field("externalId", "ExternalId", Kind::Text, false),
    field("mitreTechniques", "MitreTechniques", Kind::List, true),
    field(
        "bypassDurationHours",
        "BypassDurationHours",
        Kind::Json,
        false,
    ),
    field("notificationId", "NotificationId", Kind::Json, false),
    field("notificationBody", "NotificationBody", Kind::Json, false),
    field("version", "Version", Kind::Json, false),
    field(
        "historicalDetection",
        "HistoricalDetection",
        Kind::Bool,
        false,
    ),
    field("lookBackPeriod", "LookBackPeriod", Kind::Json, false),
    field("additionalInfo", "AdditionalInfo", Kind::Json, false),
    field("certificateInfo", "CertificateInfo", Kind::Json, false),
];

/// The portal template's column order (docs/reference §11.11), which exported CSV keeps before
/// iocd's extra columns.
const PORTAL_CSV_ORDER: [&str; 12] = [
    "indicatorType",
    "indicatorValue",
    "expirationTime",
    "action",
    "severity",
    "title",
    "description",
    "recommendedActions",
    "rbacGroupNames",
    "category",
    "mitreTechniques",
    "generateAlert",
];

/// Columns a CSV header must have: the fields the API requires (docs/reference §5.1).
pub(crate) const REQUIRED_CSV_FIELDS: [&str; 5] = [
    "indicatorType",
    "indicatorValue",
    "action",
    "title",
    "description",
];

pub(crate) fn by_wire(wire: &str) -> &'static Field {
    CLIENT_FIELDS
        .iter()
        .find(|field| field.wire == wire)
        .expect("every wire name used in this crate is in CLIENT_FIELDS")
}

/// The CSV column order: the portal's twelve columns, then iocd's extra columns in field order.
pub(crate) fn csv_columns() -> Vec<&'static Field> {
    let mut columns: Vec<&'static Field> = PORTAL_CSV_ORDER.iter().map(|w| by_wire(w)).collect();
    columns.extend(CLIENT_FIELDS.iter().filter(|field| !field.portal));
    columns
}

/// Finds the field a CSV header names, case-insensitively; the portal's older `RbacGroupNames`
/// header is accepted for `RbacGroups`.
pub(crate) fn by_csv_header(header: &str) -> Option<&'static Field> {
    let header = header.trim();
    if header.eq_ignore_ascii_case("RbacGroupNames") {
        return Some(by_wire("rbacGroupNames"));
    }
    CLIENT_FIELDS
        .iter()
        .find(|field| field.csv_header.eq_ignore_ascii_case(header))
}

/// `rbacGroupNames` → `rbac_group_names`, the suffix of STIX `x_mde_*` custom properties.
pub(crate) fn snake_case(wire: &str) -> String {
    let mut snake = String::with_capacity(wire.len() + 4);
    for ch in wire.chars() {
        if ch.is_ascii_uppercase() {
            snake.push('_');
            snake.push(ch.to_ascii_lowercase());
        } else {
            snake.push(ch);
        }
    }
    snake
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_start_with_the_portal_template_then_list_every_field_once() {
        let headers: Vec<&str> = csv_columns().iter().map(|f| f.csv_header).collect();
        assert_eq!(
            &headers[..12],
            &[
                "IndicatorType",
                "IndicatorValue",
                "ExpirationTime",
                "Action",
                "Severity",
                "Title",
                "Description",
                "RecommendedActions",
                "RbacGroups",
                "Category",
                "MitreTechniques",
                "GenerateAlert"
            ]
        );
        assert_eq!(headers.len(), CLIENT_FIELDS.len());
        let mut unique = headers.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), headers.len());
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("rbacGroupNames"), "rbac_group_names");
        assert_eq!(snake_case("action"), "action");
        assert_eq!(snake_case("bypassDurationHours"), "bypass_duration_hours");
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_knows_the_old_rbac_name() {
        assert_eq!(
            by_csv_header(" indicatortype ").unwrap().wire,
            "indicatorType"
        );
        assert_eq!(
            by_csv_header("RBACGROUPNAMES").unwrap().wire,
            "rbacGroupNames"
        );
        assert_eq!(by_csv_header("rbacgroups").unwrap().wire, "rbacGroupNames");
        assert!(by_csv_header("Severty").is_none());
    }
}
