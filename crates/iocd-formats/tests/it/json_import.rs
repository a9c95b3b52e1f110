//! JSON files in the three shapes clients hold.

use iocd_formats::{parse, Format, FormatError, ImportOptions, ParsedFile, RowProblem};
use serde_json::json;

fn parse_json(text: &str) -> Result<ParsedFile, FormatError> {
    parse(Format::Json, text.as_bytes(), &ImportOptions::default())
}

#[test]
fn a_top_level_array_of_request_objects() {
    let parsed = parse_json(
        r#"[
          {"indicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "action": "Block", "title": "t", "description": "d"},
          42,
          {"indicatorValue": "evil.example", "indicatorType": "DomainName", "action": "Warn", "title": "t", "description": "d", "rbacGroupNames": []}
        ]"#,
    )
    .unwrap();
    let lines: Vec<usize> = parsed.items.iter().map(|item| item.line).collect();
    assert_eq!(lines, [1, 3]);
    assert_eq!(parsed.items[1].body["rbacGroupNames"], json!([]));
    assert_eq!(
        parsed.failed,
        [RowProblem {
            line: 2,
            reason: "element 2 is not a JSON object".to_owned()
        }]
    );
}

#[test]
fn the_import_api_body() {
    let parsed = parse_json(
        r#"{"Indicators": [
          {"indicatorValue": "220e7d15b011d7fac48f2bd61114db1022197f7f", "indicatorType": "FileSha1", "title": "demo",
           "application": "demo-test", "expirationTime": "2021-12-12T00:00:00Z", "action": "Alert",
           "severity": "Informational", "description": "demo2", "recommendedActions": "nothing",
           "rbacGroupNames": ["group1", "group2"]}
        ]}"#,
    )
    .unwrap();
    assert_eq!(parsed.items.len(), 1);
    assert_eq!(parsed.items[0].line, 1);
    assert_eq!(
        parsed.items[0].body["rbacGroupNames"],
        json!(["group1", "group2"])
    );
}

#[test]
fn a_list_response_keeps_read_only_fields() {
    let parsed = parse_json(
        r#"{"@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Indicators",
            "value": [
              {"id": "17", "indicatorValue": "yahoo.com", "indicatorType": "DomainName", "action": "Block",
               "createdBy": "29c9ea20-6466-4ddd-8f23-bcd0b9e74bbd", "title": "t", "description": "d", "externalId": null},
              {"id": "18", "indicatorValue": "bing.com", "indicatorType": "DomainName", "action": "Allowed", "title": "t", "description": "d"}
            ]}"#,
    )
    .unwrap();
    assert_eq!(parsed.items.len(), 2);
    assert_eq!(parsed.items[1].line, 2);
    assert_eq!(parsed.items[0].body["id"], "17");
    assert_eq!(
        parsed.items[0].body["createdBy"],
        "29c9ea20-6466-4ddd-8f23-bcd0b9e74bbd"
    );
    assert!(parsed.items[0].body["externalId"].is_null());
}

#[test]
fn an_empty_array_is_an_empty_import() {
    assert_eq!(parse_json(" [] ").unwrap(), ParsedFile::default());
    assert_eq!(
        parse_json(r#"{"Indicators": []}"#).unwrap(),
        ParsedFile::default()
    );
}

#[test]
fn files_that_are_not_usable_json() {
    let err = parse_json("[\n  {\"indicatorValue\": \"a\",}\n]").unwrap_err();
    match &err {
        FormatError::InvalidJson { line, column, .. } => assert_eq!((*line, *column), (2, 26)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "invalid JSON at line 2, column 26: trailing comma"
    );

    let shape = parse_json(r#"{"indicators": []}"#).unwrap_err().to_string();
    assert!(shape.contains("{\"Indicators\": [...]}"), "{shape}");
    let not_array = parse_json(r#"{"value": {"a": 1}}"#)
        .unwrap_err()
        .to_string();
    assert!(not_array.contains("must be an array"), "{not_array}");
    let scalar = parse_json("\"text\"").unwrap_err().to_string();
    assert!(scalar.contains("top level"), "{scalar}");
    let stix = parse_json(r#"{"type": "bundle", "id": "bundle--x", "objects": []}"#)
        .unwrap_err()
        .to_string();
    assert!(stix.contains("stix format"), "{stix}");
}
