//! The portal CSV format and iocd's extra columns. Encoding rules are in the crate docs.

use serde_json::{Map, Value};

use crate::fields::{self, Field, Kind};
use crate::{entity_object, present, FormatError, ImportItem, ParsedFile, RowProblem};

pub(crate) fn parse(text: &str) -> Result<ParsedFile, FormatError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();

    let header_found = reader.read_record(&mut record).map_err(csv_error)?;
    if !header_found {
        return Err(FormatError::CsvHeader {
            line: 1,
            message: "the file is empty; expected a header row such as \
                      IndicatorType,IndicatorValue,Action,Title,Description"
                .to_owned(),
        });
    }
    let lines = LineIndex::new(text);
    let header_line = lines.line_of(&record);
    let columns = header_columns(&record, header_line)?;

    let mut parsed = ParsedFile::default();
    while reader.read_record(&mut record).map_err(csv_error)? {
        let line = lines.line_of(&record);
        if record.iter().all(|cell| cell.trim().is_empty()) {
            parsed.skipped.push(RowProblem {
                line,
                reason: "blank row".to_owned(),
            });
            continue;
        }
        if record.len() != columns.len() {
            parsed.failed.push(RowProblem {
                line,
                reason: format!(
                    "the row has {} cells but the header (line {header_line}) has {} columns",
                    record.len(),
                    columns.len()
                ),
            });
            continue;
        }
        match row_body(&columns, &record) {
            Ok(body) => parsed.items.push(ImportItem { line, body }),
            Err(reason) => parsed.failed.push(RowProblem { line, reason }),
        }
    }
    Ok(parsed)
}

/// Physical line numbers for records. The csv crate's own `Position::line` counts a CRLF row
/// end only when the next record starts, so it is off by one for CRLF files; we count ourselves.
struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset where each line starts (after `\n`, `\r\n` or a lone `\r`).
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        for (index, &byte) in bytes.iter().enumerate() {
            let ends_line =
                byte == b'\n' || (byte == b'\r' && bytes.get(index + 1) != Some(&b'\n'));
            if ends_line {
                line_starts.push(index + 1);
            }
        }
        LineIndex { text, line_starts }
    }

    fn line_of(&self, record: &csv::StringRecord) -> usize {
        let reported = record
            .position()
            .map_or(0, |position| position.byte() as usize);
        // The reported start may sit on the previous row's line end; the row begins after it.
        let start = reported
            + self.text.as_bytes()[reported.min(self.text.len())..]
                .iter()
                .take_while(|&&byte| byte == b'\r' || byte == b'\n')
                .count();
        self.line_starts
            .partition_point(|&line_start| line_start <= start)
    }
}

/// Only an I/O or UTF-8 failure can surface here (the text is already UTF-8 and rows may
/// have any length), so this is reported as a header-level problem with its line.
fn csv_error(err: csv::Error) -> FormatError {
    let line = err
        .position()
        .map_or(0, |position| position.line() as usize);
    FormatError::CsvHeader {
        line,
        message: err.to_string(),
    }
}

fn header_columns(
    header: &csv::StringRecord,
    line: usize,
) -> Result<Vec<&'static Field>, FormatError> {
    let mut columns: Vec<&'static Field> = Vec::with_capacity(header.len());
    for (index, name) in header.iter().enumerate() {
        let column = index + 1;
        let Some(field) = fields::by_csv_header(name) else {
            let known: Vec<&str> = fields::csv_columns().iter().map(|f| f.csv_header).collect();
            return Err(FormatError::CsvHeader {
                line,
                message: format!(
                    "column {column} '{}' is not a known column (known: {})",
                    name.trim(),
                    known.join(", ")
                ),
            });
        };
        if let Some(first) = columns.iter().position(|seen| seen.wire == field.wire) {
            return Err(FormatError::CsvHeader {
                line,
                message: format!(
                    "column {column} '{}' repeats column {} ({})",
                    name.trim(),
                    first + 1,
                    field.csv_header
                ),
            });
        }
        columns.push(field);
    }
    let missing: Vec<&str> = fields::REQUIRED_CSV_FIELDS
        .iter()
        .filter(|wire| !columns.iter().any(|field| field.wire == **wire))
        .map(|wire| fields::by_wire(wire).csv_header)
        .collect();
    if !missing.is_empty() {
        return Err(FormatError::CsvHeader {
            line,
            message: format!("required column(s) missing: {}", missing.join(", ")),
        });
    }
    Ok(columns)
}

fn row_body(columns: &[&'static Field], record: &csv::StringRecord) -> Result<Value, String> {
    let mut body = Map::new();
    for (field, cell) in columns.iter().zip(record.iter()) {
        if cell.is_empty() {
            continue;
        }
        let value = decode_cell(field, cell)?;
        body.insert(field.wire.to_owned(), value);
    }
    Ok(Value::Object(body))
}

fn decode_cell(field: &Field, cell: &str) -> Result<Value, String> {
    match field.kind {
        Kind::Text => Ok(Value::String(cell.to_owned())),
        Kind::Bool => {
            let trimmed = cell.trim();
            if trimmed.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err(format!(
                    "{} must be True or False, not '{cell}'",
                    field.csv_header
                ))
            }
        }
        Kind::Integer => {
            let trimmed = cell.trim();
            if let Ok(number) = trimmed.parse::<i64>() {
                Ok(Value::from(number))
            } else if let Ok(number) = trimmed.parse::<u64>() {
                Ok(Value::from(number))
            } else {
                Err(format!(
                    "{} '{cell}' is not a number: iocd needs the numeric category the API \
                     uses, because the portal's mapping from category names to numbers is \
                     undocumented",
                    field.csv_header
                ))
            }
        }
        Kind::List => Ok(decode_list(cell)),
        Kind::Json => {
            Ok(serde_json::from_str(cell).unwrap_or_else(|_| Value::String(cell.to_owned())))
        }
    }
}

fn decode_list(cell: &str) -> Value {
    let trimmed = cell.trim();
    if trimmed.starts_with('[') {
        if let Ok(array @ Value::Array(_)) = serde_json::from_str::<Value>(trimmed) {
            return array;
        }
    }
    Value::Array(
        split_list(trimmed)
            .into_iter()
            .map(|item| Value::String(item.to_owned()))
            .collect(),
    )
}

fn split_list(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

pub(crate) fn export(entities: &[Value]) -> Result<Vec<u8>, FormatError> {
    let columns = fields::csv_columns();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let write_error = |err: csv::Error| FormatError::Shape(format!("writing CSV failed: {err}"));

    writer
        .write_record(columns.iter().map(|field| field.csv_header))
        .map_err(write_error)?;
    for (index, entity) in entities.iter().enumerate() {
        let entity = entity_object(index, entity)?;
        let mut cells = Vec::with_capacity(columns.len());
        for field in &columns {
            let cell = match present(entity, field.wire) {
                None => String::new(),
                Some(value) => {
                    encode_cell(field, value).map_err(|message| FormatError::Unexportable {
                        index: index + 1,
                        message: format!("{}: {message}", field.wire),
                    })?
                }
            };
            cells.push(cell);
        }
        writer.write_record(&cells).map_err(write_error)?;
    }
    writer
        .into_inner()
        .map_err(|err| FormatError::Shape(format!("writing CSV failed: {err}")))
}

fn encode_cell(field: &Field, value: &Value) -> Result<String, String> {
    match field.kind {
        Kind::Text => match value {
            Value::String(text) => Ok(text.clone()),
            // A scalar of another type keeps its text; import reads it back as a string.
            Value::Number(_) | Value::Bool(_) => Ok(value.to_string()),
            _ => Err(format!("expected a string, found {value}")),
        },
        Kind::Bool => match value {
            Value::Bool(flag) => Ok(bool_cell(*flag).to_owned()),
            // Some clients send "True"/"false" strings; the server coerces them the same way.
            Value::String(text) if text.eq_ignore_ascii_case("true") => Ok("True".to_owned()),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Ok("False".to_owned()),
            _ => Err(format!("expected a boolean, found {value}")),
        },
        Kind::Integer => match value {
            Value::Number(number) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
            Value::String(text) if text.trim().parse::<i64>().is_ok() => Ok(text.trim().to_owned()),
            _ => Err(format!("expected an integer, found {value}")),
        },
        Kind::List => match value {
            Value::Array(items) => Ok(encode_list(items)),
            // docs/reference §5.1 documents rbacGroupNames as a comma-separated string; write it as
            // the list it means.
            Value::String(text) => Ok(encode_list(
                &split_list(text)
                    .into_iter()
                    .map(|item| Value::String(item.to_owned()))
                    .collect::<Vec<_>>(),
            )),
            _ => Err(format!("expected a list, found {value}")),
        },
        Kind::Json => Ok(match value {
            Value::String(text)
                if !text.is_empty() && serde_json::from_str::<Value>(text).is_err() =>
            {
                text.clone()
            }
            other => other.to_string(),
        }),
    }
}

fn bool_cell(flag: bool) -> &'static str {
    if flag {
        "True"
    } else {
        "False"
    }
}

/// Comma-separated when every item survives splitting and trimming unchanged; JSON otherwise.
fn encode_list(items: &[Value]) -> String {
    let survives_comma_form = |item: &Value| match item {
        Value::String(text) => {
            !text.is_empty() && text.trim() == text && !text.contains(',') && !text.starts_with('[')
        }
        _ => false,
    };
    if items.iter().all(survives_comma_form) {
        items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    } else {
        Value::Array(items.to_vec()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list_field() -> &'static Field {
        fields::by_wire("rbacGroupNames")
    }

    fn json_field() -> &'static Field {
        fields::by_wire("additionalInfo")
    }

    #[test]
    fn lists_use_commas_when_they_can_and_json_when_they_cannot() {
        assert_eq!(
            encode_cell(list_field(), &json!(["a", "b c"])).unwrap(),
            "a,b c"
        );
        assert_eq!(encode_cell(list_field(), &json!([])).unwrap(), "");
        assert_eq!(
            encode_cell(list_field(), &json!(["a,b", "c"])).unwrap(),
            r#"["a,b","c"]"#
        );
        assert_eq!(
            encode_cell(list_field(), &json!([" pad"])).unwrap(),
            r#"[" pad"]"#
        );
        assert_eq!(
            encode_cell(list_field(), &json!(["[x]"])).unwrap(),
            r#"["[x]"]"#
        );
        assert_eq!(encode_cell(list_field(), &json!([1, 2])).unwrap(), "[1,2]");
        assert_eq!(encode_cell(list_field(), &json!("x , y,")).unwrap(), "x,y");
        assert_eq!(decode_list(" a , b,,c "), json!(["a", "b", "c"]));
        assert_eq!(decode_list(r#"["a,b",1]"#), json!(["a,b", 1]));
        assert_eq!(decode_list("[prod],dev"), json!(["[prod]", "dev"]));
    }

    #[test]
    fn json_cells_write_strings_bare_only_when_unambiguous() {
        assert_eq!(encode_cell(json_field(), &json!("hello")).unwrap(), "hello");
        assert_eq!(encode_cell(json_field(), &json!("42")).unwrap(), r#""42""#);
        assert_eq!(encode_cell(json_field(), &json!("")).unwrap(), r#""""#);
        assert_eq!(
            encode_cell(json_field(), &json!({"b": 1, "a": [true]})).unwrap(),
            r#"{"a":[true],"b":1}"#
        );
        for value in [
            json!("hello"),
            json!("42"),
            json!(""),
            json!(24),
            json!({"a": null}),
        ] {
            let cell = encode_cell(json_field(), &value).unwrap();
            assert_eq!(
                decode_cell(json_field(), &cell).unwrap(),
                value,
                "cell {cell}"
            );
        }
    }

    #[test]
    fn booleans_and_categories() {
        let alert = fields::by_wire("generateAlert");
        assert_eq!(decode_cell(alert, "TRUE").unwrap(), json!(true));
        assert_eq!(decode_cell(alert, "false").unwrap(), json!(false));
        assert!(decode_cell(alert, "yes")
            .unwrap_err()
            .contains("True or False"));
        assert_eq!(encode_cell(alert, &json!("true")).unwrap(), "True");
        let category = fields::by_wire("category");
        assert_eq!(decode_cell(category, "3").unwrap(), json!(3));
        assert!(decode_cell(category, "Execution")
            .unwrap_err()
            .contains("numeric category"));
        assert!(encode_cell(category, &json!(1.5)).is_err());
    }
}
