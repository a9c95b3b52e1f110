//! Portal CSV files, good and bad rows, as people and Excel write them.

use iocd_formats::{parse, Format, FormatError, ImportOptions, ParsedFile, RowProblem};
use serde_json::json;

fn parse_csv(text: &str) -> Result<ParsedFile, FormatError> {
    parse(Format::Csv, text.as_bytes(), &ImportOptions::default())
}

const PORTAL_HEADER: &str = "IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert";

#[test]
fn portal_sample_with_good_and_bad_rows() {
    let text = [
        PORTAL_HEADER,
        // 2–3: quoted cells with embedded commas, quotes and a newline.
        "FileSha256,881c0f10c75e64ec39d257a131fcd531f47dd2cff2070ae94baa347d375126fd,2026-12-12T00:00:00.0Z,BlockAndRemediate,High,\"Bad, very bad\",\"Multi",
        "line \"\"quoted\"\" text\",Isolate,\"Group A, Group B\",1,\"T1059,T1566\",TRUE",
        // 4: sparse row, lower-case boolean.
        "IpAddress,8.8.8.8,,Audit,,IP title,desc,,,,,false",
        // 5: category by name.
        "Url,http://x.example,,Block,,T,D,,,Execution,,",
        // 6: too few cells.
        "DomainName,evil.example,,Block,,T,D",
        // 7: blank row as spreadsheets leave them.
        ",,,,,,,,,,,",
        // 8: GenerateAlert neither True nor False.
        "Url,http://y.example,,Warn,,T,D,,,,,maybe",
        // 9: trailing empty cells are fine; values are passed on unvalidated.
        "FileMd5,not-a-hash,,Allowed,Sev?,T,D,,,,,",
        // 10: too many cells.
        "Url,http://z.example,,Block,,T,D,,,,,True,extra",
    ]
    .join("\r\n")
        + "\r\n";

    let parsed = parse_csv(&text).unwrap();

    let lines: Vec<usize> = parsed.items.iter().map(|item| item.line).collect();
    assert_eq!(lines, [2, 4, 9]);
    assert_eq!(
        parsed.items[0].body,
        json!({
            "indicatorType": "FileSha256",
            "indicatorValue": "881c0f10c75e64ec39d257a131fcd531f47dd2cff2070ae94baa347d375126fd",
            "expirationTime": "2026-12-12T00:00:00.0Z",
            "action": "BlockAndRemediate",
            "severity": "High",
            "title": "Bad, very bad",
            "description": "Multi\r\nline \"quoted\" text",
            "recommendedActions": "Isolate",
            "rbacGroupNames": ["Group A", "Group B"],
            "category": 1,
            "mitreTechniques": ["T1059", "T1566"],
            "generateAlert": true
        })
    );
    assert_eq!(
        parsed.items[1].body,
        json!({
            "indicatorType": "IpAddress",
            "indicatorValue": "8.8.8.8",
            "action": "Audit",
            "title": "IP title",
            "description": "desc",
            "generateAlert": false
        })
    );
    assert_eq!(parsed.items[2].body["severity"], "Sev?");
    assert_eq!(parsed.items[2].body["indicatorValue"], "not-a-hash");

    let failed: Vec<usize> = parsed.failed.iter().map(|problem| problem.line).collect();
    assert_eq!(failed, [5, 6, 8, 10]);
    assert!(
        parsed.failed[0]
            .reason
            .contains("'Execution' is not a number")
            && parsed.failed[0].reason.contains("numeric category"),
        "{}",
        parsed.failed[0].reason
    );
    assert_eq!(
        parsed.failed[1].reason,
        "the row has 7 cells but the header (line 1) has 12 columns"
    );
    assert!(parsed.failed[2]
        .reason
        .contains("GenerateAlert must be True or False"));
    assert!(parsed.failed[3].reason.contains("13 cells"));

    assert_eq!(
        parsed.skipped,
        [RowProblem {
            line: 7,
            reason: "blank row".to_owned()
        }]
    );
}

#[test]
fn header_case_order_and_old_rbac_name_are_accepted() {
    let text = "\u{feff} indicatorvalue ,INDICATORTYPE,action,TITLE,description,rbacgroupnames,generatealert\n\
                evil.example,DomainName,Block,t,d,\"a,b\",true\n";
    let parsed = parse_csv(text).unwrap();
    assert!(parsed.failed.is_empty(), "{:?}", parsed.failed);
    assert_eq!(
        parsed.items[0].body,
        json!({
            "indicatorValue": "evil.example",
            "indicatorType": "DomainName",
            "action": "Block",
            "title": "t",
            "description": "d",
            "rbacGroupNames": ["a", "b"],
            "generateAlert": true
        })
    );
    assert_eq!(parsed.items[0].line, 2);
}

#[test]
fn line_numbers_follow_physical_lines_for_lf_crlf_and_multiline_cells() {
    for newline in ["\n", "\r\n", "\r"] {
        let text = [
            "IndicatorType,IndicatorValue,Action,Title,Description",
            "Url,http://a,Block,t,\"two",
            "lines\"",
            "",
            "Url,http://b,Block,t,d",
            "Url,http://c,Block,t",
        ]
        .join(newline);
        let parsed = parse_csv(&text).unwrap();
        let lines: Vec<usize> = parsed.items.iter().map(|item| item.line).collect();
        assert_eq!(lines, [2, 5], "newline {newline:?}");
        assert_eq!(parsed.failed[0].line, 6, "newline {newline:?}");
        assert_eq!(
            parsed.items[0].body["description"],
            format!("two{newline}lines")
        );
    }
}

#[test]
fn extra_iocd_columns_are_read_with_their_encodings() {
    let text = "IndicatorType,IndicatorValue,Action,Title,Description,RbacGroupIds,BypassDurationHours,Version,AdditionalInfo,NotificationBody,HistoricalDetection,Category\n\
                Url,http://a,Warn,t,d,\"[1,2]\",24,\"\"\"7\"\"\",\"{\"\"k\"\":[true]}\",plain words,False, 3 \n";
    let parsed = parse_csv(text).unwrap();
    assert!(parsed.failed.is_empty(), "{:?}", parsed.failed);
    let body = &parsed.items[0].body;
    assert_eq!(body["rbacGroupIds"], json!([1, 2]));
    assert_eq!(body["bypassDurationHours"], json!(24));
    assert_eq!(body["version"], json!("7"));
    assert_eq!(body["additionalInfo"], json!({"k": [true]}));
    assert_eq!(body["notificationBody"], json!("plain words"));
    assert_eq!(body["historicalDetection"], json!(false));
    assert_eq!(body["category"], json!(3));
}

#[test]
fn header_problems_fail_the_whole_file() {
    let missing = parse_csv("IndicatorType,IndicatorValue,Title\nUrl,http://a,t\n").unwrap_err();
    assert_eq!(
        missing,
        FormatError::CsvHeader {
            line: 1,
            message: "required column(s) missing: Action, Description".to_owned()
        }
    );

    let unknown = parse_csv("IndicatorType,IndicatorValue,Action,Title,Description,Severty\n")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.starts_with("CSV header (line 1): column 6 'Severty' is not a known column"),
        "{unknown}"
    );

    let repeated = parse_csv(
        "IndicatorType,IndicatorValue,Action,Title,Description,RbacGroups,RbacGroupNames\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        repeated.contains("column 7 'RbacGroupNames' repeats column 6 (RbacGroups)"),
        "{repeated}"
    );

    let empty = parse_csv("").unwrap_err().to_string();
    assert!(empty.contains("the file is empty"), "{empty}");
}

#[test]
fn a_header_alone_is_an_empty_import() {
    let parsed = parse_csv(&format!("{PORTAL_HEADER}\r\n")).unwrap();
    assert_eq!(parsed, ParsedFile::default());
}

#[test]
fn non_utf8_files_are_rejected_with_the_position() {
    // Windows-1252 "é" as Excel may save it.
    let content =
        b"IndicatorType,IndicatorValue,Action,Title,Description\nUrl,http://a,Block,caf\xe9,d\n";
    let err = parse(Format::Csv, content, &ImportOptions::default()).unwrap_err();
    assert_eq!(
        err,
        FormatError::NotUtf8 {
            line: 2,
            column: 23
        }
    );
    assert!(err.to_string().contains("save it as UTF-8"));
}
