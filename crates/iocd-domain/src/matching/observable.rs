//! What a caller asks about (a URL, a domain, an address, a file's hashes or a certificate
//! thumbprint), normalised exactly as the upsert key normalises an indicator's value, so an
//! observable and an indicator compare as the same key whatever their spelling.

use std::net::IpAddr;

use serde_json::Value;

use crate::enums::IndicatorType;
use crate::error::{ErrorCode, ValidationError};
use crate::value::{canonical_ip, normalise};

/// The host of a URL as the index compares it: a domain in its punycode form, or an address
/// in canonical form (IPv4-mapped IPv6 is its IPv4 address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlHost {
    Domain(String),
    Ip(IpAddr),
}

impl UrlHost {
    /// The host as it is written in an index key: `8.8.8.8`, `[2001:db8::1]`, `example.com`.
    pub fn key_text(&self) -> String {
        match self {
            UrlHost::Domain(d) => d.clone(),
            UrlHost::Ip(IpAddr::V4(v4)) => v4.to_string(),
            UrlHost::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        }
    }
}

/// A URL reduced to what matching compares: its host and its path with the query. The scheme,
/// port, user info and fragment play no part (docs/compatibility.md, "Matching").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub host: UrlHost,
    /// Path and query as the WHATWG parser serialises them (`/a/b?x=1`); never empty.
    pub path: String,
}

impl UrlParts {
    /// Splits a URL that [`normalise`] already accepted (an indicator's key or an observable).
    pub fn of_canonical(canonical: &str) -> Option<UrlParts> {
        let url = url::Url::parse(canonical).ok()?;
        let host = match url.host()? {
            url::Host::Domain(d) => UrlHost::Domain(d.to_ascii_lowercase()),
            url::Host::Ipv4(v4) => UrlHost::Ip(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => UrlHost::Ip(IpAddr::V6(v6).to_canonical()),
        };
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let path = if path.is_empty() { "/" } else { path };
        Some(UrlParts {
            host,
            path: path.to_string(),
        })
    }

    /// The index key of this URL: host, a space (which neither a host nor a serialised path
    /// can contain), then the path and query.
    pub fn key_text(&self) -> String {
        format!("{} {}", self.host.key_text(), self.path)
    }

    /// The path prefixes an indicator may name to cover this URL, longest first: the whole
    /// path and query, the query cut at each `&`, the path, then the path cut before and after
    /// each `/`. So `/a/b` covers `/a/b`, `/a/b/`, `/a/b/c` and `/a/b?x`, but not `/a/bc`.
    pub fn covering_prefixes(&self) -> Vec<&str> {
        let mut prefixes = Vec::new();
        self.find_covering_prefix(|prefix| {
            prefixes.push(prefix);
            None::<()>
        });
        prefixes
    }

    /// The first `Some` that `probe` gives for the [`covering_prefixes`](Self::covering_prefixes),
    /// in their order, without collecting them: a lookup probes a URL's prefixes on every call.
    pub fn find_covering_prefix<'a, T>(
        &'a self,
        mut probe: impl FnMut(&'a str) -> Option<T>,
    ) -> Option<T> {
        let full = self.path.as_str();
        // Two cuts can give one prefix (`/a/` then `/a` after the path `/a/`); each is probed once.
        let mut last: Option<&str> = None;
        let mut emit = |prefix: &'a str| {
            if last == Some(prefix) {
                return None;
            }
            last = Some(prefix);
            probe(prefix)
        };
        if let Some(found) = emit(full) {
            return Some(found);
        }
        let path_end = full.find('?').unwrap_or(full.len());
        if path_end < full.len() {
            let mut end = full.len();
            while let Some(amp) = full[path_end..end].rfind('&') {
                end = path_end + amp;
                if let Some(found) = emit(&full[..end]) {
                    return Some(found);
                }
            }
            if let Some(found) = emit(&full[..path_end]) {
                return Some(found);
            }
        }
        let path = &full[..path_end];
        let mut end = path.len();
        while let Some(slash) = path[..end].rfind('/') {
            if let Some(found) = emit(&path[..=slash]) {
                return Some(found);
            }
            if slash > 0 {
                if let Some(found) = emit(&path[..slash]) {
                    return Some(found);
                }
            }
            end = slash;
        }
        None
    }
}

/// The hashes of one file; at least one is present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHashes {
    pub sha256: Option<String>,
    pub sha1: Option<String>,
    pub md5: Option<String>,
}

impl FileHashes {
    /// Present hashes, strongest first (the order in which they decide).
    pub fn strongest_first(&self) -> impl Iterator<Item = (IndicatorType, &str)> {
        [
            (IndicatorType::FileSha256, self.sha256.as_deref()),
            (IndicatorType::FileSha1, self.sha1.as_deref()),
            (IndicatorType::FileMd5, self.md5.as_deref()),
        ]
        .into_iter()
        .filter_map(|(ty, h)| h.map(|h| (ty, h)))
    }
}

/// One thing to match, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observable {
    /// The canonical URL and its parts.
    Url(String, UrlParts),
    Domain(String),
    Ip(IpAddr),
    File(FileHashes),
    CertificateThumbprint(String),
}

/// The observable kinds as the match API names them, one per property.
pub const OBSERVABLE_KINDS: &[&str] = &[
    "url",
    "domain",
    "ip",
    "file",
    "sha256",
    "sha1",
    "md5",
    "certificateThumbprint",
];

impl Observable {
    /// Parses one observable of `kind` (a name of [`OBSERVABLE_KINDS`] other than `file`).
    pub fn parse(kind: &str, raw: &str) -> Result<Observable, ValidationError> {
        let raw = raw.trim();
        let as_field = |mut e: ValidationError| {
            e.field = kind.to_string();
            e.message = e
                .message
                .replace("in indicatorValue", &format!("in {kind}"));
            e
        };
        match kind {
            "url" => {
                let canonical = normalise(IndicatorType::Url, raw).map_err(as_field)?;
                let parts = UrlParts::of_canonical(&canonical).ok_or_else(|| {
                    ValidationError::new(
                        ErrorCode::InvalidUrl,
                        kind,
                        format!("URL {raw} has no host."),
                    )
                })?;
                Ok(Observable::Url(canonical, parts))
            }
            "domain" => Ok(Observable::Domain(
                normalise(IndicatorType::DomainName, raw).map_err(as_field)?,
            )),
            "ip" => Ok(Observable::Ip(canonical_ip(raw).map_err(as_field)?)),
            "certificateThumbprint" => Ok(Observable::CertificateThumbprint(
                normalise(IndicatorType::CertificateThumbprint, raw).map_err(as_field)?,
            )),
            "sha256" | "sha1" | "md5" => {
                let mut hashes = FileHashes::default();
                set_hash(&mut hashes, kind, raw).map_err(as_field)?;
                Ok(Observable::File(hashes))
            }
            other => Err(unknown_kind(other)),
        }
    }

    /// Parses the JSON form of the match API: an object with exactly one of `url`, `domain`,
    /// `ip`, `certificateThumbprint` (a string) or `file` (an object of `sha256`/`sha1`/`md5`).
    pub fn from_json(item: &Value) -> Result<Observable, ValidationError> {
        let Some(object) = item.as_object() else {
            return Err(ValidationError::invalid_input(
                "observables",
                "Each observable is an object with one property: url, domain, ip, file or certificateThumbprint.",
            ));
        };
        if object.len() != 1 {
            return Err(ValidationError::invalid_input(
                "observables",
                format!(
                    "An observable has exactly one property (url, domain, ip, file or certificateThumbprint); got {}.",
                    object.len()
                ),
            ));
        }
        let (kind, value) = object.iter().next().expect("one property");
        if kind == "file" {
            return file_from_json(value);
        }
        match value.as_str() {
            Some(raw) if OBSERVABLE_KINDS.contains(&kind.as_str()) => Observable::parse(kind, raw),
            _ if !OBSERVABLE_KINDS.contains(&kind.as_str()) => Err(unknown_kind(kind)),
            _ => Err(ValidationError::invalid_input(
                kind,
                format!("Invalid input {kind}: expected a string."),
            )),
        }
    }
}

fn unknown_kind(kind: &str) -> ValidationError {
    ValidationError::invalid_input(
        kind,
        format!(
            "Invalid input: '{kind}' is not an observable kind. Allowed: url, domain, ip, file, certificateThumbprint (or sha256, sha1, md5)."
        ),
    )
}

fn set_hash(hashes: &mut FileHashes, kind: &str, raw: &str) -> Result<(), ValidationError> {
    let (ty, slot) = match kind {
        "sha256" => (IndicatorType::FileSha256, &mut hashes.sha256),
        "sha1" => (IndicatorType::FileSha1, &mut hashes.sha1),
        "md5" => (IndicatorType::FileMd5, &mut hashes.md5),
        other => {
            return Err(ValidationError::invalid_input(
                &format!("file.{other}"),
                format!("Invalid input file.{other}: a file has sha256, sha1 and md5 hashes."),
            ))
        }
    };
    *slot = Some(normalise(ty, raw.trim())?);
    Ok(())
}

fn file_from_json(value: &Value) -> Result<Observable, ValidationError> {
    let Some(object) = value.as_object().filter(|o| !o.is_empty()) else {
        return Err(ValidationError::invalid_input(
            "file",
            "Invalid input file: expected an object with at least one of sha256, sha1, md5.",
        ));
    };
    let mut hashes = FileHashes::default();
    for (kind, raw) in object {
        let field = format!("file.{kind}");
        let Some(raw) = raw.as_str() else {
            return Err(ValidationError::invalid_input(
                &field,
                format!("Invalid input {field}: expected a string."),
            ));
        };
        set_hash(&mut hashes, kind, raw).map_err(|mut e| {
            e.message = e
                .message
                .replace("in indicatorValue", &format!("in {field}"));
            e.field = field.clone();
            e
        })?;
    }
    Ok(Observable::File(hashes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(url: &str) -> Vec<String> {
        let Observable::Url(_, parts) = Observable::parse("url", url).unwrap() else {
            unreachable!()
        };
        parts
            .covering_prefixes()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn prefixes_cut_at_segments_and_query_parameters() {
        assert_eq!(
            prefixes("http://h.example/a/b?x=1&y=2"),
            ["/a/b?x=1&y=2", "/a/b?x=1", "/a/b", "/a/", "/a", "/"]
        );
        assert_eq!(
            prefixes("http://h.example/a/b/"),
            ["/a/b/", "/a/b", "/a/", "/a", "/"]
        );
        assert_eq!(prefixes("http://h.example"), ["/"]);
    }

    #[test]
    fn url_hosts_compare_in_canonical_form() {
        let Observable::Url(canonical, parts) =
            Observable::parse("url", "HTTP://[::ffff:8.8.8.8]:80/X#frag").unwrap()
        else {
            unreachable!()
        };
        assert_eq!(canonical, "http://[::ffff:808:808]/X#frag");
        assert_eq!(parts.host, UrlHost::Ip("8.8.8.8".parse().unwrap()));
        assert_eq!(parts.key_text(), "8.8.8.8 /X");
    }

    #[test]
    fn json_forms_and_field_named_errors() {
        let file = Observable::from_json(&serde_json::json!({"file": {"MD5": "x"}})).unwrap_err();
        assert_eq!(file.field, "file.MD5");
        let bad = Observable::from_json(&serde_json::json!({"ip": "1.2.3"})).unwrap_err();
        assert_eq!(
            (bad.field.as_str(), bad.code),
            ("ip", ErrorCode::InvalidIpAddress)
        );
        assert!(bad.message.contains("in ip"), "{}", bad.message);
        assert!(Observable::from_json(&serde_json::json!({"host": "a.b"})).is_err());
        assert!(
            Observable::from_json(&serde_json::json!({"url": "http://a.b", "ip": "8.8.8.8"}))
                .is_err()
        );
        assert_eq!(
            Observable::from_json(&serde_json::json!({"ip": "10.0.0.1"})).unwrap(),
            Observable::Ip("10.0.0.1".parse().unwrap()),
            "internal addresses are valid observables; no indicator can name them"
        );
    }
}
