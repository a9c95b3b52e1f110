//! Redaction of secrets from what the request journal keeps: form bodies, query strings, JSON
//! (complete or cut short) and credential headers. A value is hidden when its key names a
//! secret ([`is_secret_key`]): client secrets and assertions, passwords, access, ID and refresh
//! tokens, authorization and device codes, PKCE verifiers.

/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";

/// Keys whose values are secrets, compared without case, `_` or `-`
/// (`client_secret`, `clientSecret` and `Client-Secret` are the same key).
const SECRET_KEYS: &[&str] = &[
    "clientsecret",
    "clientassertion",
    "assertion",
    "password",
    "accesstoken",
    "idtoken",
    "refreshtoken",
    "token",
    "code",
    "devicecode",
    "usercode",
    "codeverifier",
    "secret",
    "apikey",
    "privatekey",
    "authorization",
];

/// Whether a form field, query parameter or JSON property named `key` holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let normalised: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEYS.contains(&normalised.as_str())
}

/// `a=1&client_secret=x` → `a=1&client_secret=[redacted]`. Works on a body cut short too: each
/// pair is judged by its own key.
pub fn form(text: &str) -> String {
    text.split('&')
        .map(|pair| {
            let (raw_key, value) = match pair.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            let key: String = form_urlencoded::parse(raw_key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            match value {
                Some(_) if is_secret_key(&key) => format!("{raw_key}={REDACTED}"),
                _ => pair.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The string values of secret-named properties of a JSON text replaced by `"[redacted]"`,
/// everything else kept byte for byte. The scan does not need the text to be complete, so a
/// body cut at the journal's size cap is redacted as well as a whole one.
pub fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    // Set after a secret key's `:`, until the value's first character.
    let mut secret_value_next = false;
    while let Some((start, c)) = chars.next() {
        if c != '"' {
            out.push(c);
            if !c.is_whitespace() && c != ':' {
                secret_value_next = false;
            }
            continue;
        }
        // A string token: up to the closing quote, or the end of the text.
        let mut end = text.len();
        let mut escaped = false;
        for (i, ch) in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                end = i + 1;
                break;
            }
        }
        let token = &text[start..end];
        let is_key = text[end..].trim_start().starts_with(':');
        if is_key {
            let name = token.trim_matches('"');
            secret_value_next = is_secret_key(name);
            out.push_str(token);
        } else if secret_value_next {
            out.push('"');
            out.push_str(REDACTED);
            out.push('"');
            secret_value_next = false;
        } else {
            out.push_str(token);
        }
    }
    out
}

/// A header value as the journal keeps it: credentials (`Authorization`, cookies) keep only
/// their scheme; a `Location` has its query and fragment redacted as forms.
pub fn header(name: &str, value: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "authorization" | "proxy-authorization" => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} {REDACTED}"),
            None => REDACTED.to_string(),
        },
        "cookie" | "set-cookie" => REDACTED.to_string(),
        "location" => url_like(value),
        _ => value.to_string(),
    }
}

/// A URL or path with its query and fragment redacted as forms (the implicit and code flows put
/// tokens and codes there).
pub fn url_like(value: &str) -> String {
    let (before_fragment, fragment) = match value.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (value, None),
    };
    let mut out = match before_fragment.split_once('?') {
        Some((path, query)) => format!("{path}?{}", form(query)),
        None => before_fragment.to_string(),
    };
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&form(fragment));
    }
    out
}

/// A body as the journal keeps it, by its content type: forms and JSON are redacted; a body of
/// a token endpoint without a content type is read as the form it must be.
pub fn body(content_type: Option<&str>, text: &str, token_endpoint: bool) -> String {
    let content_type = content_type.unwrap_or("").to_ascii_lowercase();
    if content_type.contains("x-www-form-urlencoded") {
        form(text)
    } else if content_type.contains("json") {
        json(text)
    } else if token_endpoint || content_type.is_empty() {
        // Unknown shape: redact it both ways (a form pass leaves JSON alone and vice versa).
        json(&form(text))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_without_case_or_separators() {
        for key in [
            "client_secret",
            "clientSecret",
            "Client-Secret",
            "client_assertion",
            "refresh_token",
            "code",
            "password",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "client_id",
            "grant_type",
            "code_challenge",
            "indicatorValue",
            "scope",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn forms_lose_their_secrets_even_cut_short() {
        assert_eq!(
            form("grant_type=client_credentials&client_id=abc&client_secret=s3cr%3Dt&scope=x"),
            "grant_type=client_credentials&client_id=abc&client_secret=[redacted]&scope=x"
        );
        assert_eq!(
            form("client%5Fsecret=x&refresh_token=abc"),
            "client%5Fsecret=[redacted]&refresh_token=[redacted]"
        );
        assert_eq!(
            form("client_id=a&password=hunt"),
            "client_id=a&password=[redacted]"
        );
    }

    #[test]
    fn json_secrets_go_whole_or_cut_short() {
        assert_eq!(
            json(
                r#"{"access_token":"eyJ\"x","token_type":"Bearer","nested":{"refresh_token": "r"},"code":7}"#
            ),
            r#"{"access_token":"[redacted]","token_type":"Bearer","nested":{"refresh_token": "[redacted]"},"code":7}"#
        );
        assert_eq!(
            json(r#"[{"indicatorValue":"a.example"},{"clientSecret":"abcdef"#),
            r#"[{"indicatorValue":"a.example"},{"clientSecret":"[redacted]""#
        );
        // A secret-named string that is a value, not a key, stays.
        assert_eq!(json(r#"{"title":"password"}"#), r#"{"title":"password"}"#);
    }

    #[test]
    fn credential_headers_keep_only_their_scheme() {
        assert_eq!(
            header("Authorization", "Bearer eyJabc"),
            "Bearer [redacted]"
        );
        assert_eq!(header("authorization", "opaque"), "[redacted]");
        assert_eq!(
            header("location", "https://app/cb?code=abc&state=s#access_token=t"),
            "https://app/cb?code=[redacted]&state=s#access_token=[redacted]"
        );
        assert_eq!(
            header("content-type", "application/json"),
            "application/json"
        );
    }
}
