//! export → parse → export must give the same bytes, in every format, and the parsed bodies
//! must carry the entity's client-settable fields.

use crate::entities::{all_entities, client_view, full_entity, sparse_entity, CLIENT_FIELDS};
use iocd_formats::{export, parse, Format, ImportOptions, ParsedFile};
use serde_json::{json, Value};

fn round_trip(format: Format, entities: &[Value]) -> (Vec<u8>, ParsedFile) {
    let first = export(format, entities).unwrap();
    let parsed = parse(format, &first, &ImportOptions::default()).unwrap();
    assert!(parsed.failed.is_empty(), "{format}: {:?}", parsed.failed);
    assert!(parsed.skipped.is_empty(), "{format}: {:?}", parsed.skipped);
    assert_eq!(parsed.items.len(), entities.len());
    let bodies: Vec<Value> = parsed.items.iter().map(|item| item.body.clone()).collect();
    let second = export(format, &bodies).unwrap();
    assert_eq!(
        String::from_utf8(first.clone()).unwrap(),
        String::from_utf8(second).unwrap(),
        "{format}: export → import → export changed the file"
    );
    (first, parsed)
}

#[test]
fn csv_round_trip_is_byte_identical_and_keeps_every_value_csv_can_hold() {
    let entities = all_entities();
    let (_, parsed) = round_trip(Format::Csv, &entities);
    const TEXT_FIELDS: [&str; 11] = [
        "indicatorValue",
        "indicatorType",
        "action",
        "application",
        "title",
        "description",
        "expirationTime",
        "severity",
        "recommendedActions",
        "educateUrl",
        "externalId",
    ];
    const LIST_FIELDS: [&str; 3] = ["rbacGroupNames", "rbacGroupIds", "mitreTechniques"];
    for (item, entity) in parsed.items.iter().zip(&entities) {
        let mut expected = client_view(entity);
        // The two things CSV cannot tell from "not set": an empty text and an empty list.
        expected.retain(|field, value| {
            !(TEXT_FIELDS.contains(&field.as_str()) && value == &json!("")
                || LIST_FIELDS.contains(&field.as_str()) && value == &json!([]))
        });
        assert_eq!(item.body, Value::Object(expected));
    }
    assert_eq!(parsed.items[0].line, 2);
    // The full entity's description spans three physical lines, so the next row starts on line 5.
    assert_eq!(parsed.items[1].line, 5);
}

#[test]
fn json_round_trip_is_byte_identical_and_lossless() {
    let entities = all_entities();
    let (_, parsed) = round_trip(Format::Json, &entities);
    for (index, (item, entity)) in parsed.items.iter().zip(&entities).enumerate() {
        assert_eq!(item.line, index + 1);
        assert_eq!(item.body, Value::Object(client_view(entity)));
    }
}

#[test]
fn stix_round_trip_is_byte_identical_and_keeps_the_client_fields() {
    let entities = all_entities();
    let (file, parsed) = round_trip(Format::Stix, &entities);
    let bundle: Value = serde_json::from_slice(&file).unwrap();
    for (index, (item, entity)) in parsed.items.iter().zip(&entities).enumerate() {
        let stix_object = &bundle["objects"][index];
        let mut expected = client_view(entity);
        // STIX forbids empty lists, so they are left out.
        expected.retain(|_, value| value != &json!([]));
        // The STIX id becomes the externalId when the entity had none.
        if !expected.contains_key("externalId") {
            expected.insert("externalId".into(), stix_object["id"].clone());
        }
        expected.insert(
            "creationTimeDateTimeUtc".into(),
            stix_object["created"].clone(),
        );
        assert_eq!(item.body, Value::Object(expected), "object {}", index + 1);
    }
}

#[test]
fn exports_hold_no_read_only_fields() {
    let entities = all_entities();
    for format in [Format::Csv, Format::Json, Format::Stix] {
        let text = String::from_utf8(export(format, &entities).unwrap()).unwrap();
        for read_only in [
            "createdBy",
            "WindowsDefenderATPSiemConnector",
            "lastUpdate",
            "2023-05-04T16:21:24",
            "PublicApi",
            "5143",
        ] {
            assert!(
                !text.contains(read_only),
                "{format} export contains {read_only}"
            );
        }
    }
}

#[test]
fn json_export_layout_is_fixed() {
    let mut entity = sparse_entity();
    entity["rbacGroupNames"] = json!(["a"]);
    let text = String::from_utf8(export(Format::Json, &[entity]).unwrap()).unwrap();
    assert_eq!(
        text,
        r#"[
  {
    "indicatorValue": "yahoo.com",
    "indicatorType": "DomainName",
    "action": "Block",
    "title": "Block the yahoo.com Domain",
    "description": "Block the yahoo.com Domain, this will apply to all defender protected endpoints",
    "severity": "Informational",
    "rbacGroupNames": [
      "a"
    ],
    "rbacGroupIds": [],
    "generateAlert": false,
    "category": 1,
    "mitreTechniques": [],
    "historicalDetection": false
  }
]
"#
    );
    assert_eq!(export(Format::Json, &[]).unwrap(), b"[]\n");
}

#[test]
fn json_export_writes_keys_in_field_order() {
    let text = String::from_utf8(export(Format::Json, &[full_entity()]).unwrap()).unwrap();
    let positions: Vec<usize> = CLIENT_FIELDS
        .iter()
        .map(|field| text.find(&format!("\"{field}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn csv_export_layout_is_fixed() {
    let text = String::from_utf8(export(Format::Csv, &[sparse_entity()]).unwrap()).unwrap();
    assert_eq!(
        text,
        "IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,\
         RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert,Application,\
         RbacGroupIds,EducateUrl,ExternalId,BypassDurationHours,NotificationId,\
         NotificationBody,Version,HistoricalDetection,LookBackPeriod,AdditionalInfo,\
         CertificateInfo\r\n\
         DomainName,yahoo.com,,Block,Informational,Block the yahoo.com Domain,\
         \"Block the yahoo.com Domain, this will apply to all defender protected endpoints\",\
         ,,1,,False,,,,,,,,,False,,,\r\n"
    );
}

#[test]
fn csv_export_encodes_lists_and_json_cells() {
    let text = String::from_utf8(export(Format::Csv, &[full_entity()]).unwrap()).unwrap();
    // A group name with a comma or spaces forces the JSON form of the list.
    assert!(
        text.contains(r#""[""Servers"",""Finance, EU"","" padded ""]""#),
        "{text}"
    );
    assert!(text.contains(",\"[12,34]\","), "{text}");
    assert!(text.contains(",\"T1059,T1566.001\","), "{text}");
    assert!(
        text.contains(r#","{""days"":30,""unit"":""d""}","#),
        "{text}"
    );
    // Version "42" is a string that would read back as a number, so it is quoted.
    assert!(text.contains(r#","""42""","#), "{text}");
    // notificationId "n-1" is not JSON, so it is written bare.
    assert!(text.contains(",n-1,"), "{text}");
}

#[test]
fn unexportable_entities_are_named() {
    let err = export(Format::Csv, &[sparse_entity(), json!("nope")]).unwrap_err();
    assert_eq!(err.to_string(), "entity 2 (1-based): not a JSON object");
    let mut entity = sparse_entity();
    entity["category"] = "Execution".into();
    let err = export(Format::Csv, &[entity]).unwrap_err();
    assert!(err.to_string().contains("category"), "{err}");
    let mut entity = sparse_entity();
    entity["indicatorType"] = "Email".into();
    let err = export(Format::Stix, &[entity]).unwrap_err();
    assert!(err.to_string().contains("no STIX pattern"), "{err}");
}
