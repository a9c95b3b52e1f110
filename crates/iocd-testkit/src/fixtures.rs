//! Request bodies and response readers every API test uses.

use reqwest::Response;
use serde_json::{json, Value};

/// Reads a response as (status, JSON body); an empty body reads as `Value::Null`, a body that
/// is not JSON as a `Value::String`.
pub async fn status_json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// The documented example request of the submit API.
pub fn seed_request() -> Value {
    json!({
        "indicatorValue": "220e7d15b011d7fac48f2bd61114db1022197f7f",
        "indicatorType": "FileSha1",
        "title": "test",
        "application": "demo-test",
        "expirationTime": "2020-12-12T00:00:00Z",
        "action": "AlertAndBlock",
        "severity": "Informational",
        "description": "test",
        "recommendedActions": "nothing",
        "rbacGroupNames": ["group1", "group2"]
    })
}

/// A valid body with a unique value (`host{n}.evil.example`), for tests that need many
/// distinct indicators.
pub fn domain_request(n: usize) -> Value {
    json!({
        "indicatorValue": format!("host{n}.evil.example"),
        "indicatorType": "DomainName",
        "action": "Block",
        "title": format!("indicator {n}"),
        "description": "test indicator"
    })
}
