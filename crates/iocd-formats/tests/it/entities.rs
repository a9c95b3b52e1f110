//! Entities shaped as `GET /api/indicators` returns them (docs/reference §4.2), shared by the
//! integration tests.

use serde_json::{json, Map, Value};

/// The client-settable fields, which are all an export may contain.
pub const CLIENT_FIELDS: [&str; 24] = [
    "indicatorValue",
    "indicatorType",
    "action",
    "application",
    "title",
    "description",
    "expirationTime",
    "severity",
    "recommendedActions",
    "rbacGroupNames",
    "rbacGroupIds",
    "educateUrl",
    "generateAlert",
    "category",
    "externalId",
    "mitreTechniques",
    "bypassDurationHours",
    "notificationId",
    "notificationBody",
    "version",
    "historicalDetection",
    "lookBackPeriod",
    "additionalInfo",
    "certificateInfo",
];

/// Every field set, awkward text included.
pub fn full_entity() -> Value {
    json!({
        "id": "5143",
        "indicatorValue": "https://example.com/path?q=a,b&x=\"y\"",
        "indicatorType": "Url",
        "action": "Block",
        "createdBy": "29c9ea20-6466-4ddd-8f23-bcd0b9e74bbd",
        "severity": "High",
        "category": 7,
        "application": "Contoso, \"Agent\"",
        "educateUrl": "https://help.example.com/blocked",
        "bypassDurationHours": 24,
        "title": "חסימה – Blöck \"this\", now",
        "description": "Line one, with comma\nLine two with \"quotes\"\r\nLine three ✓",
        "recommendedActions": "Isolate; then, re-image",
        "creationTimeDateTimeUtc": "2023-05-04T16:08:56.7716458Z",
        "expirationTime": "2026-12-12T00:00:00Z",
        "lastUpdateTime": "2023-05-04T16:21:24.6281036Z",
        "lastUpdatedBy": "29c9ea20-6466-4ddd-8f23-bcd0b9e74bbd",
        "rbacGroupNames": ["Servers", "Finance, EU", " padded "],
        "rbacGroupIds": [12, 34],
        "notificationId": "n-1",
        "notificationBody": "Blocked: \"{value}\", contact IT",
        "version": "42",
        "mitreTechniques": ["T1059", "T1566.001"],
        "historicalDetection": true,
        "lookBackPeriod": {"days": 30, "unit": "d"},
        "generateAlert": true,
        "additionalInfo": {"note": "a,b \"c\"", "list": [1, "two", null]},
        "createdByDisplayName": "WindowsDefenderATPSiemConnector",
        "externalId": "ticket-42",
        "createdBySource": "PublicApi",
        "certificateInfo": {"issuer": "CN=Évil, O=X", "serial": "0a1b"}
    })
}

/// As the service really returns a minimal API-created indicator: nulls and empty lists.
pub fn sparse_entity() -> Value {
    json!({
        "id": "17",
        "indicatorValue": "yahoo.com",
        "indicatorType": "DomainName",
        "action": "Block",
        "createdBy": "29c9ea20-6466-4ddd-8f23-bcd0b9e74bbd",
        "severity": "Informational",
        "category": 1,
        "application": null,
        "educateUrl": null,
        "bypassDurationHours": null,
        "title": "Block the yahoo.com Domain",
        "description": "Block the yahoo.com Domain, this will apply to all defender protected endpoints",
        "recommendedActions": null,
        "creationTimeDateTimeUtc": "2023-05-04T16:08:56Z",
        "expirationTime": null,
        "lastUpdateTime": "2023-05-04T16:21:24.6281036Z",
        "lastUpdatedBy": null,
        "rbacGroupNames": [],
        "rbacGroupIds": [],
        "notificationId": null,
        "notificationBody": null,
        "version": null,
        "mitreTechniques": [],
        "historicalDetection": false,
        "lookBackPeriod": null,
        "generateAlert": false,
        "additionalInfo": null,
        "createdByDisplayName": "WindowsDefenderATPSiemConnector",
        "externalId": null,
        "createdBySource": "PublicApi",
        "certificateInfo": null
    })
}

/// One of each other indicator type, with values that stress each format.
pub fn typed_entities() -> Vec<Value> {
    let base = |kind: &str, value: &str, action: &str| {
        let mut entity = sparse_entity();
        let object = entity.as_object_mut().unwrap();
        object.insert("indicatorType".into(), kind.into());
        object.insert("indicatorValue".into(), value.into());
        object.insert("action".into(), action.into());
        object.insert("title".into(), format!("{kind} indicator").into());
        entity
    };
    let mut with_stix_id = base(
        "FileSha1",
        "220e7d15b011d7fac48f2bd61114db1022197f7f",
        "Allowed",
    );
    with_stix_id["externalId"] = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f".into();
    with_stix_id["rbacGroupNames"] = json!(["[prod]", "dev"]);
    let mut json_strings = base("FileMd5", "5d41402abc4b2a76b9719d911017c592", "Audit");
    json_strings["generateAlert"] = true.into();
    json_strings["version"] = "7".into();
    json_strings["notificationBody"] = "".into();
    json_strings["additionalInfo"] = "free text".into();
    json_strings["lookBackPeriod"] = json!([]);
    json_strings["certificateInfo"] = json!({});
    json_strings["recommendedActions"] = "".into();
    vec![
        with_stix_id,
        json_strings,
        base(
            "FileSha256",
            "881c0f10c75e64ec39d257a131fcd531f47dd2cff2070ae94baa347d375126fd",
            "BlockAndRemediate",
        ),
        base(
            "CertificateThumbprint",
            "A1B2C3D4E5F60718293A4B5C6D7E8F9011223344",
            "Allowed",
        ),
        base("IpAddress", "8.8.8.8", "Warn"),
        base("IpAddress", "2001:4860:4860:0:0:0:0:8888", "Block"),
        base("Url", "http://it's.example/a\\b", "Block"),
    ]
}

pub fn all_entities() -> Vec<Value> {
    let mut entities = vec![full_entity(), sparse_entity()];
    entities.extend(typed_entities());
    entities
}

/// The entity reduced to what a request body carries: client fields that are set.
pub fn client_view(entity: &Value) -> Map<String, Value> {
    let object = entity.as_object().unwrap();
    CLIENT_FIELDS
        .iter()
        .filter_map(|field| {
            object
                .get(*field)
                .filter(|value| !value.is_null())
                .map(|value| ((*field).to_owned(), value.clone()))
        })
        .collect()
}
