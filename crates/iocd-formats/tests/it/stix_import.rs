//! STIX 2.1 bundles from other tools: what maps, what is skipped and why.

use iocd_formats::{export, parse, Format, FormatError, ImportOptions, ParsedFile};
use serde_json::{json, Value};

fn parse_bundle(bundle: &Value, options: &ImportOptions) -> ParsedFile {
    parse(Format::Stix, bundle.to_string().as_bytes(), options).unwrap()
}

fn indicator(id_suffix: u32, pattern: &str) -> Value {
    json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{id_suffix:012}"),
        "created": "2024-01-02T03:04:05.000Z",
        "modified": "2024-01-02T03:04:05.000Z",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2024-01-02T03:04:05Z"
    })
}

fn sample_bundle() -> Value {
    let mut named = indicator(1, "[file:hashes.'SHA-256' = '881c0f10c75e64ec39d257a131fcd531f47dd2cff2070ae94baa347d375126fd']");
    named["name"] = "Emotet loader".into();
    named["description"] = "Seen in campaign X".into();
    named["valid_until"] = "2026-01-01T00:00:00Z".into();
    named["x_mde_action"] = "BlockAndRemediate".into();
    named["x_mde_generate_alert"] = true.into();
    named["x_mde_severity"] = "High".into();
    named["x_mde_rbac_group_names"] = json!(["Servers"]);
    named["x_mde_external_id"] = "ticket-9".into();

    let mut sigma = indicator(6, "title: x\ndetection: y");
    sigma["pattern_type"] = "sigma".into();
    let mut revoked = indicator(8, "[url:value = 'http://old.example']");
    revoked["revoked"] = true.into();
    let mut named_only = indicator(12, "[ipv6-addr:value = '2001:4860:4860:0:0:0:0:8888']");
    named_only["name"] = "Resolver".into();

    json!({
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [
            named,                                                                   // 1
            indicator(2, "[domain-name:value = 'evil.example']"),                    // 2
            {"type": "identity", "spec_version": "2.1", "id": "identity--1", "name": "ACME", "identity_class": "organization"}, // 3
            indicator(4, "[file:hashes.MD5 = 'a' AND file:name = 'b.exe']"),         // 4
            indicator(5, "[ipv4-addr:value = '1.2.3.4'] OR [ipv4-addr:value = '5.6.7.8']"), // 5
            sigma,                                                                   // 6
            {"type": "relationship", "id": "relationship--1", "relationship_type": "indicates"}, // 7
            revoked,                                                                 // 8
            {"type": "marking-definition", "id": "marking-definition--1"},           // 9
            indicator(10, "[file:name = 'evil.exe']"),                               // 10
            "not an object",                                                         // 11
            named_only,                                                              // 12
            {"type": "indicator", "id": "indicator--x"},                             // 13
            indicator(14, "[x509-certificate:hashes.'SHA-1' = 'A1B2C3D4E5F60718293A4B5C6D7E8F9011223344']"), // 14
            indicator(15, "[url:value = 'http://evil.example/it\\'s']"),             // 15
            indicator(16, "[file:hashes.SHA1 = '220e7d15b011d7fac48f2bd61114db1022197f7f']"), // 16
            indicator(17, "[domain-name:value LIKE '%.evil.example']")               // 17
        ]
    })
}

#[test]
fn supported_patterns_become_items_with_their_fields() {
    let options = ImportOptions {
        default_action: "Audit".to_owned(),
        default_generate_alert: Some(true),
    };
    let parsed = parse_bundle(&sample_bundle(), &options);
    let lines: Vec<usize> = parsed.items.iter().map(|item| item.line).collect();
    assert_eq!(lines, [1, 2, 12, 14, 15, 16]);

    assert_eq!(
        parsed.items[0].body,
        json!({
            "indicatorValue": "881c0f10c75e64ec39d257a131fcd531f47dd2cff2070ae94baa347d375126fd",
            "indicatorType": "FileSha256",
            "action": "BlockAndRemediate",
            "title": "Emotet loader",
            "description": "Seen in campaign X",
            "expirationTime": "2026-01-01T00:00:00Z",
            "externalId": "ticket-9",
            "generateAlert": true,
            "severity": "High",
            "rbacGroupNames": ["Servers"],
            "creationTimeDateTimeUtc": "2024-01-02T03:04:05.000Z"
        })
    );
    // No name, no description, no x_mde_*: fallbacks and the options apply.
    assert_eq!(
        parsed.items[1].body,
        json!({
            "indicatorValue": "evil.example",
            "indicatorType": "DomainName",
            "action": "Audit",
            "title": "STIX indicator evil.example",
            "description": "STIX indicator evil.example",
            "externalId": "indicator--00000000-0000-4000-8000-000000000002",
            "generateAlert": true,
            "creationTimeDateTimeUtc": "2024-01-02T03:04:05.000Z"
        })
    );
    assert_eq!(parsed.items[2].body["indicatorType"], "IpAddress");
    assert_eq!(parsed.items[2].body["title"], "Resolver");
    assert_eq!(parsed.items[2].body["description"], "Resolver");
    assert_eq!(
        parsed.items[3].body["indicatorType"],
        "CertificateThumbprint"
    );
    assert_eq!(parsed.items[4].body["indicatorType"], "Url");
    assert_eq!(
        parsed.items[4].body["indicatorValue"],
        "http://evil.example/it's"
    );
    assert_eq!(parsed.items[5].body["indicatorType"], "FileSha1");
}

#[test]
fn everything_else_is_skipped_or_failed_with_a_reason() {
    let parsed = parse_bundle(&sample_bundle(), &ImportOptions::default());
    let skipped: Vec<(usize, &str)> = parsed
        .skipped
        .iter()
        .map(|problem| (problem.line, problem.reason.as_str()))
        .collect();
    let expected_fragments = [
        (3, "a identity object, not an indicator"),
        (4, "combines comparisons with AND"),
        (5, "combines observations with OR"),
        (6, "pattern_type 'sigma' is not supported"),
        (7, "a relationship object"),
        (8, "revoked"),
        (9, "a marking-definition object"),
        (10, "file:name has no matching MDE indicator type"),
        (17, "operator 'LIKE' is not supported"),
    ];
    assert_eq!(skipped.len(), expected_fragments.len(), "{skipped:?}");
    for ((line, reason), (expected_line, fragment)) in skipped.iter().zip(expected_fragments) {
        assert_eq!(*line, expected_line);
        assert!(reason.contains(fragment), "line {line}: {reason}");
    }
    let failed: Vec<(usize, &str)> = parsed
        .failed
        .iter()
        .map(|problem| (problem.line, problem.reason.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (11, "not a JSON object"),
            (13, "the indicator has no \"pattern\" string")
        ]
    );
}

#[test]
fn defaults_without_generate_alert_leave_it_unset() {
    let parsed = parse_bundle(&sample_bundle(), &ImportOptions::default());
    let domain = &parsed.items[1].body;
    assert_eq!(domain["action"], "Block");
    assert!(domain.get("generateAlert").is_none());
}

#[test]
fn not_a_bundle() {
    let err = parse(
        Format::Stix,
        br#"{"type": "indicator", "pattern": "[url:value = 'a']"}"#,
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::Shape(_)), "{err:?}");
    let err = parse(
        Format::Stix,
        b"{\"type\": \"bundle\",",
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, FormatError::InvalidJson { line: 1, .. }),
        "{err:?}"
    );
    let empty = parse(
        Format::Stix,
        br#"{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d"}"#,
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(empty, ParsedFile::default());
}

fn domain_entity() -> Value {
    json!({
        "id": "17", "indicatorValue": "yahoo.com", "indicatorType": "DomainName", "action": "Block",
        "title": "Block yahoo", "description": "d", "severity": "Informational", "category": 1,
        "creationTimeDateTimeUtc": "2023-05-04T16:08:56.77Z", "lastUpdateTime": "2023-05-04T16:08:56.77Z",
        "expirationTime": null, "externalId": null, "generateAlert": true, "rbacGroupNames": [],
        "historicalDetection": false
    })
}

#[test]
fn export_writes_a_deterministic_stix_bundle() {
    let entity = domain_entity();
    let file = export(Format::Stix, std::slice::from_ref(&entity)).unwrap();
    assert_eq!(
        file,
        export(Format::Stix, std::slice::from_ref(&entity)).unwrap()
    );
    let text = String::from_utf8(file).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["type"], "bundle");
    let bundle_id = bundle["id"].as_str().unwrap();
    let bundle_uuid = uuid::Uuid::parse_str(bundle_id.strip_prefix("bundle--").unwrap()).unwrap();
    assert_eq!(bundle_uuid.get_version_num(), 5);

    let object = &bundle["objects"][0];
    let indicator_uuid = uuid::Uuid::parse_str(
        object["id"]
            .as_str()
            .unwrap()
            .strip_prefix("indicator--")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(indicator_uuid.get_version_num(), 5);
    assert_eq!(object["spec_version"], "2.1");
    assert_eq!(object["pattern"], "[domain-name:value = 'yahoo.com']");
    assert_eq!(object["pattern_type"], "stix");
    assert_eq!(object["name"], "Block yahoo");
    assert_eq!(object["created"], "2023-05-04T16:08:56.770Z");
    assert_eq!(object["modified"], "2023-05-04T16:08:56.770Z");
    assert_eq!(object["valid_from"], "2023-05-04T16:08:56.770Z");
    assert!(object.get("valid_until").is_none());
    assert!(
        object.get("x_mde_rbac_group_names").is_none(),
        "empty lists are left out"
    );
    assert!(object.get("x_mde_external_id").is_none());
    assert_eq!(object["x_mde_generate_alert"], true);
    assert_eq!(object["x_mde_category"], 1);

    // Keys in the documented order.
    let keys = [
        "\"type\": \"indicator\"",
        "\"spec_version\"",
        "\"id\"",
        "\"created\"",
        "\"modified\"",
        "\"name\"",
        "\"description\"",
        "\"pattern\"",
        "\"pattern_type\"",
        "\"valid_from\"",
        "\"x_mde_action\"",
        "\"x_mde_severity\"",
        "\"x_mde_generate_alert\"",
        "\"x_mde_category\"",
        "\"x_mde_historical_detection\"",
    ];
    let object_text = &text[text.find(keys[0]).unwrap()..];
    let positions: Vec<usize> = keys
        .iter()
        .map(|key| object_text.find(key).unwrap())
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
}

#[test]
fn an_in_place_update_keeps_the_indicator_id_and_dates_but_not_the_bundle_id() {
    let before = domain_entity();
    let mut after = domain_entity();
    after["title"] = "Block yahoo (updated)".into();
    after["lastUpdateTime"] = "2024-01-01T00:00:00Z".into();
    let read = |entity: &Value| -> Value {
        serde_json::from_slice(&export(Format::Stix, std::slice::from_ref(entity)).unwrap())
            .unwrap()
    };
    let (before, after) = (read(&before), read(&after));
    for key in ["id", "created", "modified", "valid_from"] {
        assert_eq!(before["objects"][0][key], after["objects"][0][key], "{key}");
    }
    assert_ne!(before["id"], after["id"]);
}

#[test]
fn external_ids_that_are_stix_ids_become_the_object_id() {
    let mut entity = domain_entity();
    entity["externalId"] = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f".into();
    let bundle: Value =
        serde_json::from_slice(&export(Format::Stix, &[entity.clone()]).unwrap()).unwrap();
    assert_eq!(
        bundle["objects"][0]["id"],
        "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
    );
    assert!(bundle["objects"][0].get("x_mde_external_id").is_none());

    entity["externalId"] = "ticket-42".into();
    let bundle: Value = serde_json::from_slice(&export(Format::Stix, &[entity]).unwrap()).unwrap();
    assert_ne!(bundle["objects"][0]["id"], "ticket-42");
    assert_eq!(bundle["objects"][0]["x_mde_external_id"], "ticket-42");
}
