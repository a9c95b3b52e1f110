//! Request objects as JSON: read from the three shapes clients hold, written as one array.

use serde_json::Value;

use crate::fields::CLIENT_FIELDS;
use crate::pretty::{to_pretty, Node};
use crate::{entity_object, present, FormatError, ImportItem, ParsedFile, RowProblem};

pub(crate) fn parse(text: &str) -> Result<ParsedFile, FormatError> {
    let document = parse_json(text)?;
    let elements = match document {
        Value::Array(elements) => elements,
        Value::Object(mut object) => {
            if object.get("type").and_then(Value::as_str) == Some("bundle") {
                return Err(FormatError::Shape(
                    "this is a STIX bundle; import it with the stix format".to_owned(),
                ));
            }
            match ["Indicators", "value"]
                .iter()
                .find_map(|key| object.remove(*key))
            {
                Some(Value::Array(elements)) => elements,
                Some(_) => {
                    return Err(FormatError::Shape(
                        "\"Indicators\" / \"value\" must be an array of indicator objects"
                            .to_owned(),
                    ))
                }
                None => {
                    return Err(FormatError::Shape(
                        "expected a JSON array of indicators, {\"Indicators\": [...]} (import \
                         body) or {\"value\": [...]} (list response)"
                            .to_owned(),
                    ))
                }
            }
        }
        _ => {
            return Err(FormatError::Shape(
                "expected a JSON array or object at the top level".to_owned(),
            ))
        }
    };

    let mut parsed = ParsedFile::default();
    for (index, element) in elements.into_iter().enumerate() {
        let line = index + 1;
        if element.is_object() {
            parsed.items.push(ImportItem {
                line,
                body: element,
            });
        } else {
            parsed.failed.push(RowProblem {
                line,
                reason: format!("element {line} is not a JSON object"),
            });
        }
    }
    Ok(parsed)
}

pub(crate) fn parse_json(text: &str) -> Result<Value, FormatError> {
    serde_json::from_str(text).map_err(|err| {
        // serde_json appends " at line L column C"; the error already carries both.
        let mut message = err.to_string();
        if let Some(suffix) = message.rfind(" at line ") {
            message.truncate(suffix);
        }
        FormatError::InvalidJson {
            line: err.line(),
            column: err.column(),
            message,
        }
    })
}

pub(crate) fn export(entities: &[Value]) -> Result<Vec<u8>, FormatError> {
    let mut rows = Vec::with_capacity(entities.len());
    for (index, entity) in entities.iter().enumerate() {
        let entity = entity_object(index, entity)?;
        let entries = CLIENT_FIELDS
            .iter()
            .filter_map(|field| {
                present(entity, field.wire)
                    .map(|value| (field.wire.to_owned(), Node::Leaf(value.clone())))
            })
            .collect();
        rows.push(Node::Object(entries));
    }
    let mut text = to_pretty(&Node::Array(rows));
    text.push('\n');
    Ok(text.into_bytes())
}
