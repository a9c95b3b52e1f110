//! The match API's requests, parsed: a batch body (`POST /iocd/v1/match`) or the query of a
//! single lookup (`GET /iocd/v1/match?url=…`). A malformed observable of a batch is an error of
//! that item only; a malformed request as a whole is one [`ValidationError`].

use serde_json::Value;

use super::observable::{FileHashes, Observable};
use crate::error::ValidationError;

/// Most observables one call may ask about.
pub const MAX_OBSERVABLES: usize = 10_000;

/// A parsed match request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRequest {
    /// The device group of the device asking; `None`: a device in no group.
    pub device_group: Option<String>,
    /// Each observable, or why it could not be read.
    pub observables: Vec<Result<Observable, ValidationError>>,
}

fn device_group(value: Option<&Value>) -> Result<Option<String>, ValidationError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(g)) if g.trim().is_empty() => Ok(None),
        Some(Value::String(g)) => Ok(Some(g.trim().to_string())),
        Some(_) => Err(ValidationError::invalid_input(
            "deviceGroup",
            "Invalid input deviceGroup: expected a device group name (a string).",
        )),
    }
}

/// Parses `{"deviceGroup": "…", "observables": [{"url": "…"}, …]}`.
pub fn parse_match_body(body: &Value) -> Result<MatchRequest, ValidationError> {
    let Some(object) = body.as_object() else {
        return Err(ValidationError::invalid_input(
            "",
            "The body must be a JSON object with an 'observables' array.",
        ));
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| *k != "deviceGroup" && *k != "observables")
    {
        return Err(ValidationError::invalid_input(
            unknown,
            format!("Invalid input: '{unknown}' is not a property of a match request (deviceGroup, observables)."),
        ));
    }
    let Some(items) = object.get("observables").and_then(Value::as_array) else {
        return Err(ValidationError::invalid_input(
            "observables",
            "Invalid input observables: expected an array of observables.",
        ));
    };
    if items.len() > MAX_OBSERVABLES {
        return Err(ValidationError::invalid_input(
            "observables",
            format!(
                "Too many observables: {} in one call; the limit is {MAX_OBSERVABLES}.",
                items.len()
            ),
        ));
    }
    Ok(MatchRequest {
        device_group: device_group(object.get("deviceGroup"))?,
        observables: items.iter().map(Observable::from_json).collect(),
    })
}

/// Parses the query of `GET /iocd/v1/match`: one of `url`, `domain`, `ip`,
/// `certificateThumbprint`, or a file's `sha256`/`sha1`/`md5` (any of them together), and
/// optionally `deviceGroup`.
///
/// The pairs are the query's, decoded (`(String, String)`, or `Cow`s borrowed from the URI).
pub fn parse_match_query<K: AsRef<str>, V: AsRef<str>>(
    params: &[(K, V)],
) -> Result<MatchRequest, ValidationError> {
    let mut group = None;
    let mut single: Option<(&str, &str)> = None;
    let mut file: Vec<(&str, &str)> = Vec::new();
    for (name, value) in params {
        let (name, value) = (name.as_ref(), value.as_ref());
        match name {
            "deviceGroup" => group = device_group(Some(&Value::String(value.to_string())))?,
            "sha256" | "sha1" | "md5" => {
                if file.iter().any(|(n, _)| *n == name) {
                    return Err(repeated(name));
                }
                file.push((name, value));
            }
            "url" | "domain" | "ip" | "certificateThumbprint" => {
                if single.is_some() {
                    return Err(one_only());
                }
                single = Some((name, value));
            }
            other => {
                return Err(ValidationError::invalid_input(
                    other,
                    format!("Invalid input: '{other}' is not a match parameter (url, domain, ip, sha256, sha1, md5, certificateThumbprint, deviceGroup)."),
                ))
            }
        }
    }
    let observable = match (single, file.is_empty()) {
        (Some(_), false) => return Err(one_only()),
        (Some((kind, value)), true) => Observable::parse(kind, value)?,
        (None, false) => {
            let mut hashes = FileHashes::default();
            for (kind, value) in file {
                let Observable::File(one) = Observable::parse(kind, value)? else {
                    unreachable!("hash kinds parse to files")
                };
                hashes.sha256 = hashes.sha256.or(one.sha256);
                hashes.sha1 = hashes.sha1.or(one.sha1);
                hashes.md5 = hashes.md5.or(one.md5);
            }
            Observable::File(hashes)
        }
        (None, true) => {
            return Err(ValidationError::invalid_input(
                "",
                "Name one observable: url=, domain=, ip=, certificateThumbprint=, or a file's sha256=, sha1=, md5=.",
            ))
        }
    };
    Ok(MatchRequest {
        device_group: group,
        observables: vec![Ok(observable)],
    })
}

fn repeated(name: &str) -> ValidationError {
    ValidationError::invalid_input(name, format!("Invalid input: '{name}' is given twice."))
}

fn one_only() -> ValidationError {
    ValidationError::invalid_input(
        "",
        "Name one observable per GET (url, domain, ip, certificateThumbprint, or a file's hashes); POST a batch for more.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_keep_bad_items_as_item_errors() {
        let request = parse_match_body(&json!({"deviceGroup": "Finance", "observables": [
            {"domain": "a.example"}, {"ip": "1.2.3"}]}))
        .unwrap();
        assert_eq!(request.device_group.as_deref(), Some("Finance"));
        assert!(request.observables[0].is_ok());
        assert_eq!(request.observables[1].as_ref().unwrap_err().field, "ip");
        let too_many = vec![json!({"domain": "a.example"}); MAX_OBSERVABLES + 1];
        let e = parse_match_body(&json!({"observables": too_many})).unwrap_err();
        assert!(e.message.contains("10000"), "{}", e.message);
        assert_eq!(
            parse_match_body(&json!({"observable": []}))
                .unwrap_err()
                .field,
            "observable"
        );
    }

    #[test]
    fn queries_name_one_observable() {
        let q = |pairs: &[(&str, &str)]| {
            parse_match_query(
                &pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let files = q(&[("md5", &"a".repeat(32)), ("sha1", &"b".repeat(40))]).unwrap();
        let Ok(Observable::File(h)) = &files.observables[0] else {
            panic!()
        };
        assert!(h.md5.is_some() && h.sha1.is_some() && h.sha256.is_none());
        assert!(q(&[("url", "http://a.example"), ("ip", "8.8.8.8")]).is_err());
        assert!(q(&[]).is_err());
        assert_eq!(q(&[("host", "a")]).unwrap_err().field, "host");
        assert_eq!(q(&[("ip", "1.2.3")]).unwrap_err().field, "ip");
    }
}
