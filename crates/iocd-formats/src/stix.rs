//! STIX 2.1 bundles of `indicator` objects. Mapping rules are in the crate docs.

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::fields::{snake_case, CLIENT_FIELDS};
use crate::json_format::parse_json;
use crate::pretty::{to_pretty, Node};
use crate::{
    entity_object, present, strip_bom, FormatError, ImportItem, ImportOptions, ParsedFile,
    RowProblem,
};

/// Namespace of the UUID v5 ids iocd gives indicators and bundles (fixed, random, iocd's own).
const IOCD_STIX_NAMESPACE: Uuid = Uuid::from_u128(0x0a77f899_8b16_4dbc_85b0_8b1f8910be06);

/// Used for `created` when an entity has no `creationTimeDateTimeUtc` (STIX requires one).
const EPOCH: &str = "1970-01-01T00:00:00.000Z";

/// Fields written as a standard STIX property (or inside the pattern), not as `x_mde_*`.
/// (`externalId` is the STIX `id` only when it is a STIX indicator id; see `indicator_object`.)
const STANDARD_FIELDS: [&str; 5] = [
    "indicatorValue",
    "indicatorType",
    "title",
    "description",
    "expirationTime",
];

/// Whether `content` is a JSON object with `"type": "bundle"`.
pub(crate) fn is_bundle(content: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: Option<Value>,
    }
    let content = strip_bom(content);
    // serde would also read a struct from a JSON array, so insist on an object first.
    let starts_as_object = content
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|&byte| byte == b'{');
    starts_as_object
        && serde_json::from_slice::<Probe>(content)
            .is_ok_and(|probe| probe.kind.as_ref().and_then(Value::as_str) == Some("bundle"))
}

pub(crate) fn parse(text: &str, options: &ImportOptions) -> Result<ParsedFile, FormatError> {
    let document = parse_json(text)?;
    let Some(bundle) = document
        .as_object()
        .filter(|object| object.get("type").and_then(Value::as_str) == Some("bundle"))
    else {
        return Err(FormatError::Shape(
            "expected a STIX 2.1 bundle: {\"type\": \"bundle\", \"objects\": [...]}".to_owned(),
        ));
    };
    let objects: &[Value] = match bundle.get("objects") {
        None => &[],
        Some(Value::Array(objects)) => objects,
        Some(_) => {
            return Err(FormatError::Shape(
                "the bundle's \"objects\" is not an array".to_owned(),
            ))
        }
    };

    let mut parsed = ParsedFile::default();
    for (index, object) in objects.iter().enumerate() {
        let line = index + 1;
        match import_object(object, options) {
            Outcome::Item(body) => parsed.items.push(ImportItem { line, body }),
            Outcome::Skipped(reason) => parsed.skipped.push(RowProblem { line, reason }),
            Outcome::Failed(reason) => parsed.failed.push(RowProblem { line, reason }),
        }
    }
    Ok(parsed)
}

enum Outcome {
    Item(Value),
    Skipped(String),
    Failed(String),
}

fn import_object(object: &Value, options: &ImportOptions) -> Outcome {
    let Some(object) = object.as_object() else {
        return Outcome::Failed("not a JSON object".to_owned());
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let Some(kind) = text("type") else {
        return Outcome::Failed("the object has no \"type\"".to_owned());
    };
    if kind != "indicator" {
        return Outcome::Skipped(format!(
            "a {kind} object, not an indicator (iocd imports only indicators)"
        ));
    }
    if object.get("revoked").and_then(Value::as_bool) == Some(true) {
        return Outcome::Skipped("the indicator is revoked".to_owned());
    }
    if let Some(pattern_type) = text("pattern_type") {
        if pattern_type != "stix" {
            return Outcome::Skipped(format!(
                "pattern_type '{pattern_type}' is not supported (only stix patterns)"
            ));
        }
    }
    let Some(pattern) = text("pattern") else {
        return Outcome::Failed("the indicator has no \"pattern\" string".to_owned());
    };
    let (indicator_type, value) = match parse_pattern(pattern) {
        Ok(found) => found,
        Err(why) => return Outcome::Skipped(format!("pattern {}: {why}", shorten(pattern))),
    };

    let mut body = Map::new();
    let title = text("name").map_or_else(|| default_title(&value), str::to_owned);
    let description = text("description").unwrap_or(&title).to_owned();
    body.insert("indicatorValue".into(), Value::String(value));
    body.insert("indicatorType".into(), Value::from(indicator_type));
    body.insert(
        "action".into(),
        Value::String(options.default_action.clone()),
    );
    body.insert("title".into(), Value::String(title));
    body.insert("description".into(), Value::String(description));
    if let Some(valid_until) = text("valid_until") {
        body.insert("expirationTime".into(), Value::from(valid_until));
    }
    if let Some(id) = text("id") {
        body.insert("externalId".into(), Value::from(id));
    }
    if let Some(generate_alert) = options.default_generate_alert {
        body.insert("generateAlert".into(), Value::Bool(generate_alert));
    }
    if let Some(created) = text("created") {
        // Read-only for the API (the server ignores it); kept so a re-export has the same dates.
        body.insert("creationTimeDateTimeUtc".into(), Value::from(created));
    }
    for field in &CLIENT_FIELDS {
        if matches!(field.wire, "indicatorValue" | "indicatorType") {
            continue;
        }
        let custom = format!("x_mde_{}", snake_case(field.wire));
        if let Some(value) = object.get(&custom).filter(|value| !value.is_null()) {
            body.insert(field.wire.to_owned(), value.clone());
        }
    }
    Outcome::Item(Value::Object(body))
}

fn default_title(value: &str) -> String {
    format!("STIX indicator {value}")
}

fn shorten(pattern: &str) -> String {
    const MAX_CHARS: usize = 200;
    if pattern.chars().count() <= MAX_CHARS {
        pattern.to_owned()
    } else {
        let head: String = pattern.chars().take(MAX_CHARS).collect();
        format!("{head}…")
    }
}

/// Reads `[object-type:property.path = 'value']` and maps it to an MDE indicator type; the
/// error says why anything else is not one indicator.
fn parse_pattern(pattern: &str) -> Result<(&'static str, String), String> {
    let mut cursor = Cursor::new(pattern.trim());
    if !cursor.eat('[') {
        return Err("not a single [comparison]".to_owned());
    }
    cursor.skip_whitespace();
    let object_type = cursor.take_while(|c| c.is_ascii_alphanumeric() || c == '-');
    if object_type.is_empty() || !cursor.eat(':') {
        return Err("cannot read the object path".to_owned());
    }
    let mut path = Vec::new();
    loop {
        let segment = if cursor.peek() == Some('\'') {
            cursor.string_literal()?
        } else {
            cursor
                .take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                .to_owned()
        };
        if segment.is_empty() {
            return Err("cannot read the object path".to_owned());
        }
        path.push(segment);
        match cursor.peek() {
            Some('.') => cursor.advance(),
            Some('[') => return Err("list indexes in object paths are not supported".to_owned()),
            _ => break,
        }
    }
    cursor.skip_whitespace();
    let operator = cursor.take_while(|c| !c.is_whitespace() && c != '\'');
    if operator != "=" {
        return Err(format!(
            "the comparison operator '{operator}' is not supported (only =)"
        ));
    }
    cursor.skip_whitespace();
    if cursor.peek() != Some('\'') {
        return Err("only a quoted string value is supported".to_owned());
    }
    let value = cursor.string_literal()?;
    cursor.skip_whitespace();
    if !cursor.eat(']') {
        let next = cursor.take_while(|c| !c.is_whitespace());
        return Err(
            if next.eq_ignore_ascii_case("AND") || next.eq_ignore_ascii_case("OR") {
                format!("combines comparisons with {next}; iocd maps only a single comparison")
            } else {
                format!("unexpected '{next}' after the comparison")
            },
        );
    }
    cursor.skip_whitespace();
    if !cursor.is_at_end() {
        let next = cursor.take_while(|c| !c.is_whitespace());
        return Err(match next.to_ascii_uppercase().as_str() {
            "AND" | "OR" | "FOLLOWEDBY" => {
                format!("combines observations with {next}; iocd maps only a single comparison")
            }
            "WITHIN" | "REPEATS" | "START" => {
                format!("the {next} qualifier is not supported")
            }
            _ => format!("unexpected '{next}' after the observation"),
        });
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let indicator_type = indicator_type_for(object_type, &path)?;
    Ok((indicator_type, value))
}

fn indicator_type_for(object_type: &str, path: &[&str]) -> Result<&'static str, String> {
    let hash_name = |name: &str| name.to_ascii_uppercase().replace(['-', '_'], "");
    let found = match (object_type, path) {
        ("file", ["hashes", algorithm]) => match hash_name(algorithm).as_str() {
            "MD5" => Some("FileMd5"),
            "SHA1" => Some("FileSha1"),
            "SHA256" => Some("FileSha256"),
            _ => None,
        },
        ("x509-certificate", ["hashes", algorithm]) => match hash_name(algorithm).as_str() {
            "SHA1" | "SHA256" => Some("CertificateThumbprint"),
            _ => None,
        },
        ("ipv4-addr" | "ipv6-addr", ["value"]) => Some("IpAddress"),
        ("domain-name", ["value"]) => Some("DomainName"),
        ("url", ["value"]) => Some("Url"),
        _ => None,
    };
    found.ok_or_else(|| {
        format!(
            "{object_type}:{} has no matching MDE indicator type",
            path.join(".")
        )
    })
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { rest: text }
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn advance(&mut self) {
        if let Some(c) = self.peek() {
            self.rest = &self.rest[c.len_utf8()..];
        }
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn is_at_end(&self) -> bool {
        self.rest.is_empty()
    }

    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let end = self
            .rest
            .char_indices()
            .find(|&(_, c)| !keep(c))
            .map_or(self.rest.len(), |(index, _)| index);
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    /// A `'…'` literal; STIX escapes only `\'` and `\\` inside it.
    fn string_literal(&mut self) -> Result<String, String> {
        self.advance(); // the opening quote
        let mut literal = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string literal".to_owned()),
                Some('\'') => {
                    self.advance();
                    return Ok(literal);
                }
                Some('\\') => {
                    self.advance();
                    match self.peek() {
                        Some(escaped @ ('\'' | '\\')) => {
                            literal.push(escaped);
                            self.advance();
                        }
                        _ => return Err("invalid escape in a string literal".to_owned()),
                    }
                }
                Some(c) => {
                    literal.push(c);
                    self.advance();
                }
            }
        }
    }
}

pub(crate) fn export(entities: &[Value]) -> Result<Vec<u8>, FormatError> {
    let mut objects = Vec::with_capacity(entities.len());
    for (index, entity) in entities.iter().enumerate() {
        let entity = entity_object(index, entity)?;
        objects.push(
            indicator_object(entity).map_err(|message| FormatError::Unexportable {
                index: index + 1,
                message,
            })?,
        );
    }
    let objects = Node::Array(objects);
    let bundle_id = Uuid::new_v5(&IOCD_STIX_NAMESPACE, to_pretty(&objects).as_bytes());
    let bundle = Node::Object(vec![
        ("type".into(), Node::Leaf("bundle".into())),
        (
            "id".into(),
            Node::Leaf(format!("bundle--{bundle_id}").into()),
        ),
        ("objects".into(), objects),
    ]);
    let mut text = to_pretty(&bundle);
    text.push('\n');
    Ok(text.into_bytes())
}

fn indicator_object(entity: &Map<String, Value>) -> Result<Node, String> {
    let text = |wire: &str| present(entity, wire).and_then(Value::as_str);
    let indicator_type = text("indicatorType").ok_or("indicatorType is missing")?;
    let value = text("indicatorValue").ok_or("indicatorValue is missing")?;
    let action = text("action").unwrap_or("");
    let pattern = pattern_for(indicator_type, value)?;

    let external_id = text("externalId");
    let stix_id = match external_id.filter(|id| is_stix_indicator_id(id)) {
        Some(id) => id.to_owned(),
        None => {
            let name = format!("{indicator_type}|{value}|{action}");
            format!(
                "indicator--{}",
                Uuid::new_v5(&IOCD_STIX_NAMESPACE, name.as_bytes())
            )
        }
    };
    let created = text("creationTimeDateTimeUtc").map_or_else(|| EPOCH.to_owned(), stix_timestamp);
    let name = text("title").map_or_else(|| default_title(value), str::to_owned);
    let description = text("description").unwrap_or(&name).to_owned();

    let leaf = |value: Value| Node::Leaf(value);
    let mut entries: Vec<(String, Node)> = vec![
        ("type".into(), leaf("indicator".into())),
        ("spec_version".into(), leaf("2.1".into())),
        ("id".into(), leaf(stix_id.clone().into())),
        ("created".into(), leaf(created.clone().into())),
        ("modified".into(), leaf(created.clone().into())),
        ("name".into(), leaf(name.into())),
        ("description".into(), leaf(description.into())),
        ("pattern".into(), leaf(pattern.into())),
        ("pattern_type".into(), leaf("stix".into())),
        ("valid_from".into(), leaf(created.into())),
    ];
    if let Some(valid_until) = present(entity, "expirationTime") {
        entries.push(("valid_until".into(), leaf(valid_until.clone())));
    }
    for field in &CLIENT_FIELDS {
        let Some(value) = present(entity, field.wire) else {
            continue;
        };
        let stix_id_holds_it = field.wire == "externalId" && value.as_str() == Some(&stix_id);
        let is_empty_list = value.as_array().is_some_and(Vec::is_empty);
        if STANDARD_FIELDS.contains(&field.wire) || stix_id_holds_it || is_empty_list {
            continue;
        }
        entries.push((
            format!("x_mde_{}", snake_case(field.wire)),
            leaf(value.clone()),
        ));
    }
    Ok(Node::Object(entries))
}

fn pattern_for(indicator_type: &str, value: &str) -> Result<String, String> {
    let object_path = match indicator_type {
        "FileMd5" => "file:hashes.MD5",
        "FileSha1" => "file:hashes.'SHA-1'",
        "FileSha256" => "file:hashes.'SHA-256'",
        // The thumbprint's algorithm is undocumented (docs/reference §11.5); SHA-1 unless it has
        // SHA-256's length.
        "CertificateThumbprint" if value.len() == 64 => "x509-certificate:hashes.'SHA-256'",
        "CertificateThumbprint" => "x509-certificate:hashes.'SHA-1'",
        "IpAddress" if value.contains(':') => "ipv6-addr:value",
        "IpAddress" => "ipv4-addr:value",
        "DomainName" => "domain-name:value",
        "Url" => "url:value",
        other => return Err(format!("indicatorType '{other}' has no STIX pattern")),
    };
    let literal = value.replace('\\', "\\\\").replace('\'', "\\'");
    Ok(format!("[{object_path} = '{literal}']"))
}

fn is_stix_indicator_id(id: &str) -> bool {
    id.strip_prefix("indicator--")
        .and_then(|suffix| Uuid::try_parse(suffix).ok().map(|uuid| (suffix, uuid)))
        .is_some_and(|(suffix, uuid)| uuid.hyphenated().to_string() == suffix)
}

/// STIX wants `created`/`modified` to millisecond precision at least; MDE times may carry none
/// or fewer digits (`…:45Z`, `…:45.5Z`), so pad the fraction to three digits.
fn stix_timestamp(time: &str) -> String {
    let Some(without_z) = time.strip_suffix('Z') else {
        return time.to_owned();
    };
    let seconds_end = without_z.rfind(':').map(|colon| colon + 3);
    let Some(seconds_end) = seconds_end.filter(|&end| end <= without_z.len()) else {
        return time.to_owned();
    };
    let (whole, fraction) = without_z.split_at(seconds_end);
    let digits = fraction.strip_prefix('.').unwrap_or(fraction);
    if !(fraction.is_empty() || fraction.starts_with('.'))
        || !digits.chars().all(|c| c.is_ascii_digit())
        || digits.len() >= 3
    {
        return time.to_owned();
    }
    format!("{whole}.{digits:0<3}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_that_map() {
        let cases = [
            ("[file:hashes.MD5 = 'abc']", "FileMd5"),
            ("[file:hashes.'MD5' = 'abc']", "FileMd5"),
            ("[file:hashes.'SHA-1' = 'abc']", "FileSha1"),
            ("[file:hashes.SHA1 = 'abc']", "FileSha1"),
            ("[file:hashes.'SHA-256'='abc']", "FileSha256"),
            ("  [ file:hashes.SHA256 =  'abc' ]  ", "FileSha256"),
            (
                "[x509-certificate:hashes.'SHA-1' = 'abc']",
                "CertificateThumbprint",
            ),
            ("[ipv4-addr:value = 'abc']", "IpAddress"),
            ("[ipv6-addr:value = 'abc']", "IpAddress"),
            ("[domain-name:value = 'abc']", "DomainName"),
            ("[url:value = 'abc']", "Url"),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                parse_pattern(pattern),
                Ok((expected, "abc".to_owned())),
                "{pattern}"
            );
        }
        assert_eq!(
            parse_pattern(r"[url:value = 'http://x/it\'s\\here']")
                .unwrap()
                .1,
            r"http://x/it's\here"
        );
    }

    #[test]
    fn patterns_that_do_not_map_say_why() {
        let cases = [
            ("[file:hashes.MD5 = 'a' AND file:name = 'b']", "AND"),
            (
                "[ipv4-addr:value = '1.2.3.4'] OR [ipv4-addr:value = '5.6.7.8']",
                "OR",
            ),
            ("[ipv4-addr:value != '1.2.3.4']", "'!='"),
            ("[domain-name:value LIKE '%.evil']", "'LIKE'"),
            ("[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS", "WITHIN"),
            ("[file:name = 'evil.exe']", "file:name has no matching"),
            ("[file:hashes.'SHA-512' = 'abc']", "file:hashes.SHA-512"),
            ("[email-addr:value = 'a@b']", "email-addr:value"),
            ("([url:value = 'a'])", "not a single"),
            ("[url:value = 'open", "unterminated"),
            ("[ipv4-addr:value = 5]", "quoted string"),
            ("[process:extensions.x[*] = 'a']", "list indexes"),
        ];
        for (pattern, expected) in cases {
            let why = parse_pattern(pattern).unwrap_err();
            assert!(why.contains(expected), "{pattern}: {why}");
        }
    }

    #[test]
    fn round_trip_pattern_escapes() {
        let value = r"https://x/a'b\c";
        let pattern = pattern_for("Url", value).unwrap();
        assert_eq!(pattern, r"[url:value = 'https://x/a\'b\\c']");
        assert_eq!(parse_pattern(&pattern), Ok(("Url", value.to_owned())));
    }

    #[test]
    fn stix_ids_and_timestamps() {
        assert!(is_stix_indicator_id(
            "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
        ));
        assert!(!is_stix_indicator_id(
            "indicator--8E2E2D2B-17D4-4CBF-938F-98EE46B3CD3F"
        ));
        assert!(!is_stix_indicator_id(
            "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
        ));
        assert!(!is_stix_indicator_id("ticket-42"));
        assert_eq!(
            stix_timestamp("2021-08-18T08:57:45Z"),
            "2021-08-18T08:57:45.000Z"
        );
        assert_eq!(
            stix_timestamp("2021-08-18T08:57:45.5Z"),
            "2021-08-18T08:57:45.500Z"
        );
        assert_eq!(
            stix_timestamp("2023-05-04T16:08:56.7716458Z"),
            "2023-05-04T16:08:56.7716458Z"
        );
        assert_eq!(stix_timestamp("not a time"), "not a time");
    }
}
