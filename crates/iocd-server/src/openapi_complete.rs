//! What the route annotations cannot say, added to the generated OpenAPI document as JSON:
//!
//! * the statuses every operation of a kind can answer: 401 and 503 where a token is needed,
//!   403 where a role is, 429 where the rate limits apply, 400, 408, 413 and 415 where a JSON
//!   body is read;
//! * the `/api/v1.0/…` alias of every Defender route;
//! * the routes outside the API: the identity provider's (tokens, keys, discovery, sign-in),
//!   `/health`, `/openapi.json` and `/docs`;
//! * request schemas exact enough that what they accept the server accepts and what they refuse
//!   it refuses (the submit body per indicator type, with `Audit`'s and `educateUrl`'s
//!   conditions; the id and query parameters' patterns and ranges), and examples, so that a
//!   generator such as schemathesis reaches the success paths.
//!
//! Where a rule is beyond JSON Schema (the whole `$filter` grammar, which public addresses and
//! domains are accepted), the schema describes a subset that is certainly valid and the
//! description says so.

use serde_json::{json, Value};

/// `x-request-id`, on every answer.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {
            "x-request-id": {"description": "The request id, also the error's `target`.", "schema": {"type": "string"}}
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

const UNAUTHORIZED: &str = "No valid bearer token (missing, malformed, expired, signed by an unknown key, for another audience, or its app is not registered in its tenant); `WWW-Authenticate` says why";
const FORBIDDEN: &str = "The token lacks the role (or delegated scope and user role) the operation needs; the message names it";
const TOO_MANY: &str = "A rate limit of the caller's app for this family of operations was reached; `Retry-After` says when to try again";
const UNAVAILABLE: &str = "The shared rate limiter (Redis) or a trusted issuer's signing keys could not be reached; nothing was done";

/// An indicator id as the API writes it: a positive 64-bit integer, in decimal.
const ID_PATTERN: &str = "^0*[1-9][0-9]{0,17}$";

/// White space as Rust's `str::trim` sees it (Unicode `White_Space`), which is not quite
/// ECMAScript's `\s` (that one lacks U+0085 and adds U+FEFF).
const SPACE: &str =
    "[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
/// A character that is not white space in that sense: text that is not blank contains one.
const NOT_BLANK: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

pub(crate) fn complete(document: &mut Value) {
    tighten_schemas(document);
    let paths = document["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            complete_operation(path, operation);
        }
    }
    add_aliases(paths);
    add_other_routes(paths);
    add_other_schemas(document);
    document["info"]["description"] = json!(
        "Threat-intelligence indicators, wire-compatible with the Microsoft Defender for Endpoint Indicators API, with an Entra-ID-shaped identity provider. Every `/api/…` route is also served under `/api/v1.0/…`. Errors have Defender's shape, `{\"error\":{\"code\",\"message\",\"target\"}}`, `target` being the request id (the OAuth2 routes answer in OAuth2's shape). Any route may also answer 400 (a request that is not valid HTTP), 408 (a body paused too long), 414 (a URI over 32 KiB), 431 (headers over 64 KiB or more than 100 lines) and 500, each in that error shape."
    );
}

fn has_security(operation: &Value) -> bool {
    operation["security"]
        .as_array()
        .is_some_and(|requirements| {
            requirements
                .iter()
                .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
        })
}

fn complete_operation(path: &str, operation: &mut Value) {
    let rate_limited = path.starts_with("/api/") || path == "/iocd/v1/match";
    let json_body = operation["requestBody"]["content"]["application/json"].is_object();
    let with_id = path.contains("{id}") && !path.starts_with("/_iocd/");
    let emulator = path.starts_with("/_iocd/");
    let secured = has_security(operation);
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    let mut add = |status: &str, response: Value| {
        responses.entry(status.to_string()).or_insert(response);
    };
    if with_id {
        add(
            "400",
            error_response("The id is not an indicator id (a positive integer)"),
        );
    }
    if json_body {
        add("400", error_response("The body is not valid JSON or not the expected shape; the message names the property"));
        add(
            "408",
            error_response(
                "The client paused longer than the body read timeout while sending the body",
            ),
        );
        add(
            "413",
            error_response("The body is larger than the server accepts"),
        );
        add(
            "415",
            error_response("Content-Type is not application/json"),
        );
    }
    if emulator {
        add(
            "401",
            error_response(
                "No token, and the call is not from loopback or an app holds Iocd.Admin",
            ),
        );
        add("403", error_response("The token lacks Iocd.Admin"));
        add("404", error_response("The server runs without --emulator"));
    } else if secured {
        add("401", error_response(UNAUTHORIZED));
        add("403", error_response(FORBIDDEN));
        add("503", error_response(UNAVAILABLE));
    }
    if rate_limited {
        let mut too_many = error_response(TOO_MANY);
        too_many["headers"]["Retry-After"] =
            json!({"description": "Seconds to wait", "schema": {"type": "integer"}});
        add("429", too_many);
    }
}

/// Every Defender route again under `/api/v1.0`, as the service answers it.
fn add_aliases(paths: &mut serde_json::Map<String, Value>) {
    let aliases: Vec<(String, Value)> = paths
        .iter()
        .filter(|(path, _)| path.starts_with("/api/"))
        .map(|(path, item)| {
            let mut item = item.clone();
            if let Some(item) = item.as_object_mut() {
                for operation in item.values_mut() {
                    if let Some(id) = operation["operationId"].as_str() {
                        operation["operationId"] = json!(format!("{id}_v1_0"));
                    }
                    if let Some(summary) = operation["summary"].as_str() {
                        operation["summary"] = json!(format!("{summary} (the /api/v1.0 alias)"));
                    }
                }
            }
            (format!("/api/v1.0{}", &path["/api".len()..]), item)
        })
        .collect();
    paths.extend(aliases);
}

fn oauth_error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}
    })
}

fn html(description: &str) -> Value {
    json!({"description": description, "content": {"text/html": {"schema": {"type": "string"}}}})
}

fn tenant_parameter() -> Value {
    json!({
        "name": "tenant", "in": "path", "required": true,
        "description": "The tenant's id, or a domain alias of it (`iocd tenants alias`)",
        "schema": {"type": "string"}
    })
}

fn form_body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/x-www-form-urlencoded": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn token_operation(id: &str, summary: &str) -> Value {
    json!({
        "tags": ["identity"],
        "summary": summary,
        "operationId": id,
        "parameters": [tenant_parameter()],
        "requestBody": form_body("TokenRequest"),
        "responses": {
            "200": {"description": "The token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
            "400": oauth_error("The request is refused (invalid_request, invalid_grant, unsupported_grant_type, invalid_scope, invalid_tenant…), with Entra's AADSTS code"),
            "401": oauth_error("Client authentication failed (invalid_client): a wrong secret or assertion, or an unknown client id"),
            "429": oauth_error("Too many failed authentications of this client id or from this address (AADSTS50053); `Retry-After` says when to try again"),
            "500": oauth_error("The identity store failed; retry")
        }
    })
}

fn json_document(id: &str, summary: &str, schema: &str, tenant: bool) -> Value {
    let parameters = if tenant {
        json!([tenant_parameter()])
    } else {
        json!([])
    };
    json!({
        "tags": ["identity"],
        "summary": summary,
        "operationId": id,
        "parameters": parameters,
        "responses": {
            "200": {"description": "The document", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
            "400": oauth_error("The tenant is unknown (invalid_tenant)")
        }
    })
}

fn authorize_item(version: &str) -> Value {
    let v = if version.is_empty() { "v1" } else { "v2" };
    json!({
        "get": {
            "tags": ["identity"],
            "summary": "The sign-in page of the authorization-code flow (PKCE).",
            "operationId": format!("authorize_page_{v}"),
            "parameters": [
                tenant_parameter(),
                {"name": "client_id", "in": "query", "required": true, "schema": {"type": "string"}},
                {"name": "response_type", "in": "query", "required": true, "schema": {"type": "string", "enum": ["code"]}},
                {"name": "redirect_uri", "in": "query", "required": true, "schema": {"type": "string"}},
                {"name": "scope", "in": "query", "schema": {"type": "string"}},
                {"name": "state", "in": "query", "schema": {"type": "string"}},
                {"name": "code_challenge", "in": "query", "schema": {"type": "string"}},
                {"name": "code_challenge_method", "in": "query", "schema": {"type": "string", "enum": ["S256"]}}
            ],
            "responses": {
                "200": html("The sign-in form"),
                "400": html("An error page: unknown tenant or app, an unregistered redirect URI, or a malformed request (never redirected to)")
            }
        },
        "post": {
            "tags": ["identity"],
            "summary": "The sign-in form's submission.",
            "operationId": format!("authorize_submit_{v}"),
            "parameters": [tenant_parameter()],
            "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                "username": {"type": "string"}, "password": {"type": "string"}, "client_id": {"type": "string"},
                "redirect_uri": {"type": "string"}, "scope": {"type": "string"}, "state": {"type": "string"},
                "code_challenge": {"type": "string"}, "code_challenge_method": {"type": "string"}}}}}},
            "responses": {
                "200": html("The form again: a wrong password, an unknown user, or a lockout (AADSTS50126, AADSTS50053)"),
                "302": {"description": "To the redirect URI with `code` (and `state`), or with `error` and `error_description`", "headers": {"Location": {"schema": {"type": "string"}}}},
                "400": html("An error page: unknown tenant or app, an unregistered redirect URI, or a failure of the identity store")
            }
        }
    })
}

fn device_code_item(v: &str) -> Value {
    json!({"post": {
        "tags": ["identity"],
        "summary": "Starts the device-code flow.",
        "operationId": format!("device_code_{v}"),
        "parameters": [tenant_parameter()],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["client_id"], "properties": {
            "client_id": {"type": "string"}, "scope": {"type": "string"}, "resource": {"type": "string"}}}}}},
        "responses": {
            "200": {"description": "The device code, the user code and where to enter it", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeviceCodeResponse"}}}},
            "400": oauth_error("The request is refused, with Entra's AADSTS code"),
            "401": oauth_error("The client is unknown or not a public client"),
            "429": oauth_error("Too many requests from this address")
        }
    }})
}

/// The routes outside the API: the identity provider's and the service's own.
fn add_other_routes(paths: &mut serde_json::Map<String, Value>) {
    let mut add = |path: &str, item: Value| {
        paths.insert(path.to_string(), item);
    };
    add(
        "/health",
        json!({"get": {
            "tags": ["service"], "summary": "Liveness: answers while the server serves.", "operationId": "health",
            "responses": {"200": {"description": "Serving", "content": {"application/json": {"schema": {"type": "string", "const": "ok"}}}}}
        }}),
    );
    add(
        "/openapi.json",
        json!({"get": {
            "tags": ["service"], "summary": "This document.", "operationId": "openapi",
            "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}),
    );
    add(
        "/docs",
        json!({"get": {
            "tags": ["service"], "summary": "This document, browsable (Scalar).", "operationId": "docs",
            "responses": {"200": html("The documentation page")}
        }}),
    );
    for (path, v, summary) in [
        ("/{tenant}/oauth2/v2.0/token", "v2", "Issues a token (v2: `scope`). Entra's grants: client credentials (secret or certificate assertion), password, authorization code, refresh token, device code."),
        ("/{tenant}/oauth2/token", "v1", "Issues a token (v1: `resource`). The same grants as v2."),
    ] {
        let mut get = token_operation(&format!("token_{v}_get"), summary);
        get["description"] = json!("As POST: some clients send a GET with a form body. The query string is not read (secrets in URLs end up in logs).");
        add(path, json!({"post": token_operation(&format!("token_{v}"), summary), "get": get}));
    }
    add(
        "/{tenant}/discovery/v2.0/keys",
        json!({"get": json_document("jwks_v2", "The token-signing keys (JWKS).", "Jwks", true)}),
    );
    add(
        "/{tenant}/discovery/keys",
        json!({"get": json_document("jwks_v1", "The token-signing keys (JWKS), v1 path.", "Jwks", true)}),
    );
    add(
        "/{tenant}/v2.0/.well-known/openid-configuration",
        json!({"get": json_document("openid_configuration_v2", "The OpenID discovery document of v2 tokens.", "OpenIdConfiguration", true)}),
    );
    add(
        "/{tenant}/.well-known/openid-configuration",
        json!({"get": json_document("openid_configuration_v1", "The OpenID discovery document of v1 tokens.", "OpenIdConfiguration", true)}),
    );
    let mut instance = json_document(
        "instance_discovery",
        "MSAL's instance discovery: where a tenant's discovery document is.",
        "InstanceDiscovery",
        false,
    );
    instance["parameters"] = json!([
        {"name": "authorization_endpoint", "in": "query", "schema": {"type": "string"}},
        {"name": "api-version", "in": "query", "schema": {"type": "string"}}
    ]);
    instance["responses"]
        .as_object_mut()
        .expect("responses")
        .remove("400");
    add("/common/discovery/instance", json!({"get": instance}));
    add("/{tenant}/oauth2/v2.0/authorize", authorize_item("v2.0"));
    add("/{tenant}/oauth2/authorize", authorize_item(""));
    add("/{tenant}/oauth2/v2.0/devicecode", device_code_item("v2"));
    add("/{tenant}/oauth2/devicecode", device_code_item("v1"));
    add(
        "/devicelogin",
        json!({
            "get": {"tags": ["identity"], "summary": "Where a person enters a device's user code.", "operationId": "device_login_page",
                "responses": {"200": html("The form")}},
            "post": {"tags": ["identity"], "summary": "The user code, then the sign-in.", "operationId": "device_login_submit",
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                    "user_code": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string"}}}}}},
                "responses": {"200": html("The next step, or the form again with what was wrong")}}
        }),
    );
    add_portal_routes(&mut add);
    add(
        "/common/userrealm/{username}",
        json!({"get": {
            "tags": ["identity"], "summary": "Home-realm discovery: every iocd account is a managed one.", "operationId": "user_realm",
            "parameters": [{"name": "username", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The realm", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}),
    );
}

fn add_other_schemas(document: &mut Value) {
    let schemas = document["components"]["schemas"]
        .as_object_mut()
        .expect("schemas");
    schemas.insert(
        "OAuthError".into(),
        json!({
            "type": "object",
            "description": "An OAuth2 error (RFC 6749 §5.2) with Entra's fields.",
            "required": ["error", "error_description", "error_codes"],
            "properties": {
                "error": {"type": "string"},
                "error_description": {"type": "string", "description": "`AADSTS<code>: <words>`"},
                "error_codes": {"type": "array", "items": {"type": "integer"}},
                "timestamp": {"type": "string"},
                "trace_id": {"type": "string", "description": "The request id"},
                "correlation_id": {"type": "string"}
            }
        }),
    );
    schemas.insert("TokenRequest".into(), json!({
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {"type": "string", "enum": ["client_credentials", "password", "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"]},
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
            "client_assertion_type": {"type": "string"},
            "client_assertion": {"type": "string"},
            "scope": {"type": "string", "description": "v2: `https://api.securitycenter.microsoft.com/.default`, or delegated scopes"},
            "resource": {"type": "string", "description": "v1: `https://api.securitycenter.microsoft.com`"},
            "username": {"type": "string"},
            "password": {"type": "string"},
            "code": {"type": "string"},
            "redirect_uri": {"type": "string"},
            "code_verifier": {"type": "string"},
            "refresh_token": {"type": "string"},
            "device_code": {"type": "string"}
        }
    }));
    schemas.insert(
        "TokenResponse".into(),
        json!({
            "type": "object",
            "required": ["token_type", "expires_in", "access_token"],
            "properties": {
                "token_type": {"type": "string", "const": "Bearer"},
                "expires_in": {"type": "integer"},
                "ext_expires_in": {"type": "integer"},
                "access_token": {"type": "string"},
                "refresh_token": {"type": "string"},
                "id_token": {"type": "string"},
                "scope": {"type": "string"}
            }
        }),
    );
    schemas.insert(
        "DeviceCodeResponse".into(),
        json!({
            "type": "object",
            "required": ["device_code", "user_code", "verification_uri", "expires_in", "interval"],
            "properties": {
                "device_code": {"type": "string"}, "user_code": {"type": "string"},
                "verification_uri": {"type": "string"}, "expires_in": {"type": "integer"},
                "interval": {"type": "integer"}, "message": {"type": "string"}
            }
        }),
    );
    schemas.insert(
        "Jwks".into(),
        json!({
            "type": "object", "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {"type": "object"}}}
        }),
    );
    schemas.insert("OpenIdConfiguration".into(), json!({
        "type": "object", "required": ["issuer", "token_endpoint", "jwks_uri"],
        "properties": {"issuer": {"type": "string"}, "token_endpoint": {"type": "string"}, "jwks_uri": {"type": "string"}}
    }));
    schemas.insert("InstanceDiscovery".into(), json!({"type": "object"}));
}

/// A decimal octet, without leading zeros.
const OCTET: &str = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
/// Host names certainly valid: lower-case letters and digits, under common suffixes.
const HOST: &str = "([a-z0-9]{1,20}\\.){1,3}(com|net|org|io)";

fn value_patterns() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("FileSha1", "^[0-9a-fA-F]{40}$".into(), "40 hexadecimal digits"),
        ("FileMd5", "^[0-9a-fA-F]{32}$".into(), "32 hexadecimal digits"),
        ("FileSha256", "^[0-9a-fA-F]{64}$".into(), "64 hexadecimal digits"),
        ("CertificateThumbprint", "^[0-9a-fA-F]{40}$".into(), "the SHA-1 thumbprint: 40 hexadecimal digits"),
        (
            "IpAddress",
            format!("^([2-9][0-9])\\.{OCTET}\\.{OCTET}\\.{OCTET}$"),
            "one public IPv4 or IPv6 address (no CIDR, range or wildcard); the pattern describes public IPv4 addresses of 20.0.0.0 to 99.255.255.255, which are all accepted",
        ),
        (
            "DomainName",
            format!("^{HOST}$"),
            "a domain name (IDNA accepted, no scheme, path, port or wildcard); the pattern describes a subset that is always accepted",
        ),
        (
            "Url",
            format!("^https?://{HOST}(:[1-9][0-9]{{0,3}})?(/[a-zA-Z0-9._~-]{{0,20}}){{0,3}}$"),
            "an absolute http or https URL, at most 4,096 bytes; the pattern describes a subset that is always accepted",
        ),
    ]
}

/// Text properties: strings, or numbers (taken as their decimal text).
fn text(max: usize, description: &str) -> Value {
    json!({
        "type": ["string", "number", "null"],
        "maxLength": max,
        "description": description
    })
}

/// A boolean, or its name as a string in any case.
fn lenient_boolean(description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [
            {"type": ["boolean", "null"]},
            {"type": "string", "pattern": format!("^{SPACE}*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]){SPACE}*$")}
        ]
    })
}

/// A 64-bit integer, or a string of one. JSON Schema counts `1.0` as an integer, but the
/// server, like Defender's .NET deserialisers, refuses a number written with a fraction; the
/// description says so.
fn lenient_integer(minimum: i64, description: &str) -> Value {
    let digits = if minimum >= 0 {
        "\\+?[0-9]{1,18}"
    } else {
        "[-+]?[0-9]{1,18}"
    };
    json!({
        "description": format!("{description} Written without a fraction: `1.0` is refused."),
        "anyOf": [
            {"type": ["integer", "null"], "minimum": minimum, "maximum": i64::MAX},
            {"type": "string", "pattern": format!("^{SPACE}*{digits}{SPACE}*$")}
        ]
    })
}

/// A list: a JSON array of strings or numbers, or one comma-separated string. Entries are
/// trimmed and blank ones dropped, so a blank entry (and an empty string) is always accepted;
/// each entry is at most 1,000 characters once trimmed. `entry`, when given, is the pattern of
/// one entry (without anchors or surrounding white space): then numbers are refused.
fn list(entry: Option<&str>, description: &str) -> Value {
    let item = match entry {
        Some(entry) => {
            json!({"type": "string", "pattern": format!("^{SPACE}*({entry})?{SPACE}*$")})
        }
        None => {
            json!({"type": "string", "pattern": format!("^{SPACE}*[\\s\\S]{{0,1000}}{SPACE}*$")})
        }
    };
    let mut items = json!({"anyOf": [item]});
    if entry.is_none() {
        items["anyOf"]
            .as_array_mut()
            .expect("anyOf")
            .push(json!({"type": "number"}));
    }
    let one = match entry {
        Some(entry) => format!("{SPACE}*({entry})?{SPACE}*"),
        None => format!("{SPACE}*[^,]{{0,1000}}{SPACE}*"),
    };
    json!({
        "description": description,
        "anyOf": [
            {"type": "array", "maxItems": 500, "items": items},
            {"type": "string", "pattern": format!("^{one}(,{one})*$")},
            {"type": "null"}
        ]
    })
}

fn indicator_request() -> Value {
    let by_type: Vec<Value> = value_patterns()
        .into_iter()
        .map(|(ty, pattern, description)| {
            json!({
                "properties": {
                    "indicatorType": {"const": ty},
                    "indicatorValue": {"pattern": pattern, "description": description}
                }
            })
        })
        .collect();
    json!({
        "type": "object",
        "description": "The body of `POST /api/indicators`, and each element of an import. Properties not listed are ignored. `indicatorValue` must be a value of `indicatorType` (see each branch of `allOf[0]`); `Audit` needs `generateAlert: true`; `educateUrl` is only for `Url` indicators with action `Block` or `Warn`.",
        "required": ["indicatorValue", "indicatorType", "action", "title", "description"],
        "properties": {
            "indicatorValue": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "The value, of `indicatorType`; surrounding white space is ignored. At most 4,096 bytes (a URL; the other types are shorter)."},
            "indicatorType": {"$ref": "#/components/schemas/IndicatorType"},
            "action": {"$ref": "#/components/schemas/Action"},
            "title": {"type": "string", "minLength": 1, "maxLength": 4000, "pattern": NOT_BLANK, "description": "Not blank."},
            "description": {"type": "string", "minLength": 1, "maxLength": 10000, "pattern": NOT_BLANK, "description": "Not blank."},
            "application": text(1000, "Honoured on create only."),
            "expirationTime": {"type": ["string", "null"], "format": "date-time", "description": "ISO 8601 with any offset; returned in UTC."},
            "severity": {"anyOf": [{"$ref": "#/components/schemas/Severity"}, {"type": "null"}]},
            "recommendedActions": text(10000, ""),
            "rbacGroupNames": list(None, "Device groups: a JSON array, or one comma-separated string; blank entries and repeats are dropped, at most 500 remain."),
            "rbacGroupIds": list(None, "Device group ids, as rbacGroupNames."),
            "educateUrl": {"type": ["string", "null"], "description": "Only for `Url` indicators with action `Block` or `Warn`: an absolute http(s) URL."},
            "generateAlert": lenient_boolean("A boolean, or the string \"true\"/\"false\" in any case."),
            "category": lenient_integer(i64::MIN, "An integer, or a string of one."),
            "externalId": text(1000, ""),
            "mitreTechniques": list(Some("T[0-9]{4}(\\.[0-9]{3})?"), "MITRE ATT&CK technique ids (T1566, T1566.001): an array or one comma-separated string; blank entries and repeats are dropped."),
            "bypassDurationHours": lenient_integer(0, "Hours, not negative."),
            "notificationId": text(1000, ""),
            "notificationBody": text(10000, ""),
            "version": text(1000, "Honoured on create only."),
            "historicalDetection": lenient_boolean(""),
            "lookBackPeriod": {"description": "Any JSON; kept as sent."},
            "additionalInfo": {"description": "Any JSON; kept as sent."},
            "certificateInfo": {"description": "Any JSON; kept as sent. Honoured on create only."}
        },
        "allOf": [
            {"oneOf": by_type},
            {
                "if": {"required": ["action"], "properties": {"action": {"const": "Audit"}}},
                "then": {"required": ["generateAlert"], "properties": {"generateAlert": {"anyOf": [
                    {"const": true},
                    {"type": "string", "pattern": format!("^{SPACE}*[Tt][Rr][Uu][Ee]{SPACE}*$")}
                ]}}}
            },
            {
                "if": {"required": ["educateUrl"], "properties": {"educateUrl": {"type": "string"}}},
                "then": {"properties": {
                    "indicatorType": {"const": "Url"},
                    "action": {"enum": ["Block", "Warn"]},
                    "educateUrl": {"pattern": format!("^https?://{HOST}(/[a-zA-Z0-9._~-]{{0,20}}){{0,3}}$")}
                }}
            }
        ],
        "examples": [
            {"indicatorValue": "evil.example.com", "indicatorType": "DomainName", "action": "Block", "title": "Phishing domain", "description": "Seen in a phishing campaign", "severity": "High", "expirationTime": "2099-01-01T00:00:00Z", "rbacGroupNames": ["Servers"], "generateAlert": true},
            {"indicatorValue": "https://evil.example.net/login", "indicatorType": "Url", "action": "Warn", "title": "Credential harvesting page", "description": "Reported by users", "educateUrl": "https://intranet.example.org/phishing"},
            {"indicatorValue": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "indicatorType": "FileSha1", "action": "Audit", "generateAlert": true, "title": "Test file", "description": "Audited hash"},
            {"indicatorValue": "52.1.2.3", "indicatorType": "IpAddress", "action": "AlertAndBlock", "title": "C2 server", "description": "Command and control", "mitreTechniques": ["T1071"]}
        ]
    })
}

fn set_parameter(document: &mut Value, path: &str, method: &str, name: &str, schema: Value) {
    let Some(parameters) = document["paths"][path][method]["parameters"].as_array_mut() else {
        panic!("no parameters on {method} {path}");
    };
    let parameter = parameters
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} on {method} {path}"));
    parameter["schema"] = schema;
}

/// The `$filter` pattern: comparisons of text properties joined by `and`/`or`, a subset of the
/// grammar (docs/reference) that is always valid.
fn filter_schema() -> Value {
    let comparison = "(indicatorValue|title|application|createdBy|externalId) (eq|ne) '([^']|'')*'|action eq '(Alert|Warn|Block|Audit|BlockAndRemediate|AlertAndBlock|Allowed)'|indicatorType eq '(FileSha1|FileMd5|FileSha256|CertificateThumbprint|IpAddress|DomainName|Url)'|severity (eq|ne) '(Informational|Low|Medium|High)'|generateAlert eq (true|false)|id (eq|gt|lt) [1-9][0-9]{0,8}";
    json!({
        "type": "string",
        "minLength": 1,
        "pattern": format!("^({comparison})( (and|or) ({comparison}))*$"),
        "description": "The pattern describes a subset of the grammar that is always valid; the full grammar is broader.",
        "examples": ["indicatorValue eq 'evil.example.com'", "action eq 'Block' and severity eq 'High'"]
    })
}

fn tighten_schemas(document: &mut Value) {
    let schemas = &mut document["components"]["schemas"];
    schemas["IndicatorRequest"] = indicator_request();
    schemas["ImportRequest"] = json!({
        "type": "object",
        "description": "The body of `POST /api/indicators/import`.",
        "required": ["Indicators"],
        "properties": {"Indicators": {
            "type": "array",
            "maxItems": 500,
            "description": "0 to 500 indicators, each validated as the body of `POST /api/indicators` (IndicatorRequest). An invalid one fails alone, reported in the 200 answer, so any JSON value is accepted here.",
            "items": {}
        }},
        "examples": [{"Indicators": [
            {"indicatorValue": "bad.example.com", "indicatorType": "DomainName", "action": "Block", "title": "Imported", "description": "From a feed"},
            {"indicatorValue": "8.8.4.4", "indicatorType": "IpAddress", "action": "Alert", "title": "Imported", "description": "From a feed"}
        ]}]
    });
    schemas["BatchDeleteRequest"] = json!({
        "type": "object",
        "description": "The body of `POST /api/indicators/BatchDelete`.",
        "required": ["IndicatorIds"],
        "properties": {"IndicatorIds": {
            "type": "array",
            "minItems": 1,
            "maxItems": 500,
            "description": "1 to 500 indicator ids: strings, as the API returns them, or integers written without a fraction (`1.0` is refused).",
            "items": {"anyOf": [
                {"type": "string", "pattern": format!("^{SPACE}*\\+?0*[1-9][0-9]{{0,17}}{SPACE}*$"), "maxLength": 40},
                {"type": "integer", "minimum": 1, "maximum": i64::MAX}
            ]}
        }},
        "examples": [{"IndicatorIds": ["1", "2"]}]
    });
    schemas["MatchBody"] = json!({
        "type": "object",
        "description": "The body of `POST /iocd/v1/match`. Other properties are refused.",
        "required": ["observables"],
        "additionalProperties": false,
        "properties": {
            "deviceGroup": {"type": ["string", "null"], "description": "The device group of the device asking; omitted or blank: a device in no group."},
            "observables": {
                "type": "array",
                "maxItems": 10000,
                "description": "At most 10,000 observables, each an object with one property: `url`, `domain`, `ip`, `certificateThumbprint` (strings) or `file` (`{\"sha256\",\"sha1\",\"md5\"}`). A malformed one is answered alone, with an `error` in its result, so any JSON value is accepted here.",
                "items": {}
            }
        },
        "examples": [{"deviceGroup": "Servers", "observables": [{"url": "https://evil.example.com/login"}, {"ip": "52.1.2.3"}, {"file": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}]}]
    });
    let id = json!({"type": "string", "pattern": ID_PATTERN, "maxLength": 40, "examples": ["1"]});
    for (path, method) in [
        ("/api/indicators/{id}", "get"),
        ("/api/indicators/{id}", "delete"),
        ("/iocd/v1/indicators/{id}/history", "get"),
    ] {
        set_parameter(document, path, method, "id", id.clone());
    }
    set_parameter(
        document,
        "/api/indicators",
        "get",
        "$filter",
        filter_schema(),
    );
    set_parameter(
        document,
        "/api/indicators",
        "get",
        "$top",
        json!({"type": "integer", "minimum": 0, "maximum": 10000}),
    );
    set_parameter(
        document,
        "/api/indicators",
        "get",
        "$skip",
        json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
    );
    set_parameter(
        document,
        "/api/indicators",
        "get",
        "$orderby",
        json!({
            "type": "string",
            "pattern": "^(id|indicatorValue|title|action|severity|creationTimeDateTimeUtc|lastUpdateTime|expirationTime)( (asc|desc))?$",
            "description": "The pattern describes one sort key; several, comma-separated, are accepted too."
        }),
    );
    let formats: Vec<String> = [
        "edl-ip",
        "edl-domain",
        "edl-url",
        "fortigate-ip",
        "fortigate-domain",
        "fortigate-url",
        "fortigate-hash",
        "rpz",
        "suricata-sha256",
        "suricata-md5",
        "suricata-ip",
        "zeek-intel",
    ]
    .into_iter()
    .map(str::to_string)
    .chain(
        value_patterns()
            .into_iter()
            .map(|(ty, _, _)| format!("text-{ty}")),
    )
    .collect();
    let feed = "/iocd/v1/feeds/{format}";
    set_parameter(
        document,
        feed,
        "get",
        "format",
        json!({"type": "string", "enum": formats, "description": "Matched ignoring case."}),
    );
    // Entries are trimmed and blank ones dropped: `action=` asks for no action at all.
    let action = format!(
        "{SPACE}*(Alert|Warn|Block|Audit|BlockAndRemediate|AlertAndBlock|Allowed)?{SPACE}*"
    );
    set_parameter(
        document,
        feed,
        "get",
        "action",
        json!({"type": "string", "pattern": format!("^{action}(,{action})*$"), "description": "Blank entries are ignored; an empty list carries nothing."}),
    );
    set_parameter(
        document,
        feed,
        "get",
        "minSeverity",
        json!({"type": "string", "enum": ["Informational", "Low", "Medium", "High"]}),
    );
    let ty = format!("{SPACE}*(FileSha1|FileMd5|FileSha256|CertificateThumbprint|IpAddress|DomainName|Url)?{SPACE}*");
    set_parameter(
        document,
        feed,
        "get",
        "type",
        json!({"type": "string", "pattern": format!("^{ty}(,{ty})*$"), "description": "Only types the format carries (another is a 400); blank entries are ignored; an empty list carries nothing."}),
    );
    // Each format has its own media type (an RPZ is a DNS zone file, Zeek's intel file is
    // tab-separated), all text.
    document["paths"][feed]["get"]["responses"]["200"]["content"] = json!({
        "text/plain": {"schema": {"type": "string"}},
        "text/dns": {"schema": {"type": "string"}},
        "text/tab-separated-values": {"schema": {"type": "string"}}
    });
    document["paths"][feed]["get"]["responses"]["200"]["description"] = json!(
        "The feed, streamed; ETag and Last-Modified set. `text/dns` for `rpz`, `text/tab-separated-values` for `zeek-intel`, `text/plain` for the others, each with `charset=utf-8`."
    );
    complete_match_query(document);
    complete_change_stream(document);
    set_parameter(
        document,
        feed,
        "get",
        "max",
        // Read as a `usize`: a larger number is a 400.
        json!({"type": "integer", "minimum": 1, "maximum": usize::MAX}),
    );
    set_parameter(
        document,
        feed,
        "get",
        "policy",
        json!({"type": "string", "pattern": "^(nxdomain|nodata|drop|cname:[a-z0-9_-]{1,20}(\\.[a-z0-9_-]{1,20}){0,3})$"}),
    );
    set_parameter(
        document,
        "/iocd/v1/changes",
        "get",
        "since",
        json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
    );
    set_parameter(
        document,
        "/iocd/v1/changes",
        "get",
        "limit",
        json!({"type": "integer", "minimum": 1, "maximum": 1000}),
    );
    set_parameter(
        document,
        "/iocd/v1/changes",
        "get",
        "wait",
        json!({"type": "integer", "minimum": 0, "maximum": 60}),
    );
    set_parameter(
        document,
        "/iocd/v1/changes/stream",
        "get",
        "since",
        json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
    );
    if let Some(tags) = document["tags"].as_array_mut() {
        tags.push(json!({"name": "identity", "description": "The identity provider, shaped like Entra ID: tokens, keys, discovery, sign-in (errors in OAuth2's shape)"}));
        tags.push(json!({"name": "service", "description": "Health and this description"}));
        tags.push(json!({"name": "portal", "description": "The web portal for people (HTML, behind a session cookie)"}));
    }
}

/// `GET /iocd/v1/match`: each observable's value pattern (a subset that is always accepted,
/// as for the submit body). That exactly one observable is named (or a file's hashes together)
/// is beyond what OpenAPI can say about separate query parameters, so the description says it.
fn complete_match_query(document: &mut Value) {
    let patterns: std::collections::HashMap<&str, String> = value_patterns()
        .into_iter()
        .map(|(ty, pattern, _)| (ty, pattern))
        .collect();
    for (name, ty) in [
        ("url", "Url"),
        ("domain", "DomainName"),
        ("ip", "IpAddress"),
        ("sha256", "FileSha256"),
        ("sha1", "FileSha1"),
        ("md5", "FileMd5"),
        ("certificateThumbprint", "CertificateThumbprint"),
    ] {
        set_parameter(
            document,
            "/iocd/v1/match",
            "get",
            name,
            json!({"type": "string", "pattern": patterns[ty]}),
        );
    }
    document["paths"]["/iocd/v1/match"]["get"]["description"] = json!(
        "Name exactly one observable: `url`, `domain`, `ip` or `certificateThumbprint`, or a file by any of `sha256`, `sha1` and `md5` together. None, or two, is a 400. Each parameter's pattern describes values that are always accepted; the full rules are those of the indicator types."
    );
}

/// `GET /iocd/v1/changes/stream`: in OpenAPI 3.1 the `schema` of an event stream describes one
/// event, with its fields as strings; `data` is JSON, a ChangeEntry.
fn complete_change_stream(document: &mut Value) {
    document["paths"]["/iocd/v1/changes/stream"]["get"]["responses"]["200"]["content"] = json!({
        "text/event-stream": {"schema": {
            "type": "object",
            "description": "One event: `change` with the entry as `data` and its sequence number as `id`; `error` (data: a sentence) when the log could not be read, after which the client should reconnect.",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "enum": ["change", "error"]},
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "data": {"type": "string"}
            },
            "oneOf": [
                {"properties": {
                    "event": {"const": "change"},
                    "data": {"contentMediaType": "application/json", "contentSchema": {"$ref": "#/components/schemas/ChangeEntry"}}
                }, "required": ["id"]},
                {"properties": {"event": {"const": "error"}}}
            ]
        }}
    });
}

/// The web portal's pages (`/portal`): HTML for people, behind a session cookie, so described
/// only by what they are.
fn add_portal_routes(add: &mut impl FnMut(&str, Value)) {
    let page = |id: &str, summary: &str, parameters: &[&str]| {
        let parameters: Vec<Value> = parameters
            .iter()
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        json!({
            "tags": ["portal"],
            "summary": summary,
            "operationId": id,
            "parameters": parameters,
            "responses": {
                "200": html("The page"),
                "default": {"description": "A redirect (to sign in without a session, or after a form is handled) or an error page"}
            }
        })
    };
    let item = |ops: Vec<(&str, Value)>| {
        Value::Object(ops.into_iter().map(|(m, o)| (m.to_string(), o)).collect())
    };
    add(
        "/portal",
        item(vec![("get", page("portal", "To the indicators.", &[]))]),
    );
    add(
        "/portal/assets/iocd.css",
        json!({"get": {"tags": ["portal"], "summary": "The portal's stylesheet.", "operationId": "portal_css",
        "responses": {"200": {"description": "CSS", "content": {"text/css": {"schema": {"type": "string"}}}}}}}),
    );
    add(
        "/portal/assets/portal.js",
        json!({"get": {"tags": ["portal"], "summary": "The portal's script.", "operationId": "portal_js",
        "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {"schema": {"type": "string"}}}}}}}),
    );
    add(
        "/portal/signin",
        item(vec![(
            "get",
            page("portal_signin", "The sign-in page.", &[]),
        )]),
    );
    let mut start = page(
        "portal_signin_start",
        "Starts the sign-in (authorization code with PKCE).",
        &[],
    );
    start["parameters"] = json!([
        {"name": "tenant", "in": "query", "required": true, "description": "The tenant's id or a domain alias of it; blank is a 400 (the form again), unknown a 404",
            "schema": {"type": "string", "pattern": NOT_BLANK}},
        {"name": "return", "in": "query", "description": "A portal path to land on afterwards; anything else lands on the indicators",
            "schema": {"type": "string"}}
    ]);
    add("/portal/signin/start", item(vec![("get", start)]));
    let mut callback = page("portal_callback", "Where the sign-in returns.", &[]);
    callback["description"] = json!("The sign-in page's redirect target. It succeeds only for the sign-in this browser started: `state` must equal the one in the cookie `/portal/signin/start` set, and `code` be that sign-in's. Anything else is a 400 page.");
    callback["parameters"] = json!([
        {"name": "state", "in": "query", "schema": {"type": "string"}},
        {"name": "code", "in": "query", "schema": {"type": "string"}},
        {"name": "error", "in": "query", "schema": {"type": "string"}},
        {"name": "error_description", "in": "query", "schema": {"type": "string"}}
    ]);
    add("/portal/callback", item(vec![("get", callback)]));
    add(
        "/portal/signout",
        item(vec![("post", page("portal_signout", "Signs out.", &[]))]),
    );
    add(
        "/portal/indicators",
        item(vec![(
            "get",
            page(
                "portal_indicators",
                "The indicators: search, filters, sorting, paging.",
                &[],
            ),
        )]),
    );
    add(
        "/portal/indicators/new",
        item(vec![
            (
                "get",
                page("portal_new_form", "The form for a new indicator.", &[]),
            ),
            ("post", page("portal_create", "Creates an indicator.", &[])),
        ]),
    );
    add(
        "/portal/indicators/delete",
        item(vec![(
            "post",
            page(
                "portal_delete_selected",
                "Deletes the selected indicators.",
                &[],
            ),
        )]),
    );
    add(
        "/portal/indicators/{id}",
        item(vec![(
            "get",
            page(
                "portal_indicator",
                "An indicator with its change log.",
                &["id"],
            ),
        )]),
    );
    add(
        "/portal/indicators/{id}/edit",
        item(vec![
            (
                "get",
                page(
                    "portal_edit_form",
                    "The form to edit an indicator.",
                    &["id"],
                ),
            ),
            (
                "post",
                page("portal_update", "Updates an indicator.", &["id"]),
            ),
        ]),
    );
    add(
        "/portal/indicators/{id}/delete",
        item(vec![(
            "post",
            page("portal_delete_one", "Deletes an indicator.", &["id"]),
        )]),
    );
    add(
        "/portal/import",
        item(vec![
            ("get", page("portal_import_form", "The import form.", &[])),
            (
                "post",
                page("portal_import", "Imports a CSV, JSON or STIX file.", &[]),
            ),
        ]),
    );
    add(
        "/portal/import/{number}",
        item(vec![(
            "get",
            page("portal_import_report", "An import's report.", &["number"]),
        )]),
    );
    add(
        "/portal/export",
        item(vec![(
            "get",
            page("portal_export", "Exports the current filter.", &[]),
        )]),
    );
    add(
        "/portal/match",
        item(vec![(
            "get",
            page("portal_match", "Tests an observable.", &[]),
        )]),
    );
    add(
        "/portal/admin",
        item(vec![(
            "get",
            page(
                "portal_admin",
                "Apps, users, roles, quota and rate limits.",
                &[],
            ),
        )]),
    );
    add(
        "/portal/admin/apps",
        item(vec![(
            "post",
            page("portal_create_app", "Registers an app.", &[]),
        )]),
    );
    add(
        "/portal/admin/apps/{client_id}/roles",
        item(vec![(
            "post",
            page(
                "portal_app_roles",
                "Changes an app's roles.",
                &["client_id"],
            ),
        )]),
    );
    add(
        "/portal/admin/apps/{client_id}/delete",
        item(vec![(
            "post",
            page("portal_delete_app", "Deletes an app.", &["client_id"]),
        )]),
    );
    add(
        "/portal/admin/users",
        item(vec![(
            "post",
            page("portal_create_user", "Creates a user.", &[]),
        )]),
    );
    add(
        "/portal/admin/users/{upn}/roles",
        item(vec![(
            "post",
            page("portal_user_roles", "Changes a user's roles.", &["upn"]),
        )]),
    );
    add(
        "/portal/admin/users/{upn}/delete",
        item(vec![(
            "post",
            page("portal_delete_user", "Deletes a user.", &["upn"]),
        )]),
    );
}
