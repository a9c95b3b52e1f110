//! Files ⇄ the Indicators API's JSON shapes, for `iocd import` and `iocd export`.
//!
//! Pure conversions: no HTTP, no database. [`parse`] turns a file into `POST /api/indicators`
//! request bodies (one [`ImportItem`] each) plus per-row problems; [`export`] turns entities as
//! `GET /api/indicators` returns them into a file. Values are not validated beyond what a format
//! makes impossible: the server checks them and reports per-item failures.
//!
//! # What an export holds
//! Only the client-settable fields, always in this order: `indicatorValue`, `indicatorType`,
//! `action`, `application`, `title`, `description`, `expirationTime`, `severity`,
//! `recommendedActions`, `rbacGroupNames`, `rbacGroupIds`, `educateUrl`, `generateAlert`,
//! `category`, `externalId`, `mitreTechniques`, `bypassDurationHours`, `notificationId`,
//! `notificationBody`, `version`, `historicalDetection`, `lookBackPeriod`, `additionalInfo`,
//! `certificateInfo`. Never `id`, `createdBy*`, `lastUpdate*` or other read-only fields, so
//! that export → import → export gives the same bytes, in every format.
//!
//! # JSON
//! A pretty-printed (two-space) array of request objects, keys in the order above. A null or
//! absent field is left out (to the API, null and absent mean the same: "not set"); `[]`,
//! `false` and `""` are written. Raw-JSON field values keep serde_json's order (keys sorted).
//! Import accepts a top-level array, `{"Indicators": [...]}` (the import API body) or
//! `{"value": [...]}` (a list response; read-only fields stay in the bodies, the server
//! ignores them).
//!
//! # CSV
//! Header row, then one row per indicator; RFC 4180 quoting (only where needed), CRLF line
//! ends, UTF-8 without BOM. Columns, the portal template's twelve first (docs/reference §11.11):
//!
//! `IndicatorType, IndicatorValue, ExpirationTime, Action, Severity, Title, Description,
//! RecommendedActions, RbacGroups, Category, MitreTechniques, GenerateAlert`, then iocd's
//! `Application, RbacGroupIds, EducateUrl, ExternalId, BypassDurationHours, NotificationId,
//! NotificationBody, Version, HistoricalDetection, LookBackPeriod, AdditionalInfo,
//! CertificateInfo`.
//!
//! Import matches header names case-insensitively (surrounding spaces ignored), accepts
//! `RbacGroupNames` for `RbacGroups`, accepts any subset and order of these columns as long as
//! IndicatorType, IndicatorValue, Action, Title and Description are there, and rejects the file
//! on an unknown or repeated column (a misspelt column would otherwise lose data silently).
//!
//! Cell encoding, per field kind:
//! * **Everywhere**: an empty cell is an absent field; null, absent (and `[]` for lists) are
//!   written as an empty cell. So an empty string cannot be told from "not set" in CSV.
//! * **Text** (value, type, action, application, title, description, expirationTime, severity,
//!   recommendedActions, educateUrl, externalId): the string verbatim, nothing trimmed.
//!   Embedded commas, quotes and newlines are quoted by the CSV rules.
//! * **Booleans** (GenerateAlert, HistoricalDetection): written `True`/`False`; read
//!   case-insensitively; anything else fails the row.
//! * **Category**: an integer. A name such as `Execution` fails the row, because the portal's
//!   name ↔ number mapping is undocumented and the API takes the number.
//! * **Lists** (RbacGroups, RbacGroupIds, MitreTechniques): comma-separated (`a,b`; spaces
//!   around items are dropped on import). When an item could not survive that (it contains a
//!   comma, has surrounding spaces, is empty, starts with `[`, or is not a string, e.g. numeric
//!   group ids), the whole list is written as a compact JSON array (`["a,b","c"]`, `[1,2]`). A
//!   cell that starts with `[` and parses as a JSON array is read as that array; anything else
//!   is split on commas.
//! * **Raw JSON** (BypassDurationHours, NotificationId, NotificationBody, Version,
//!   LookBackPeriod, AdditionalInfo, CertificateInfo; their types are undocumented): compact JSON
//!   (`24`, `{"days":30}`, `true`). A string is written bare when it does not itself parse as
//!   JSON (`hello`), and JSON-quoted otherwise (`"42"`, `""`); import reads a cell as JSON and
//!   takes it as a string when it is not valid JSON.
//!
//! Import line numbers are physical lines (the header is line 1; a row that spans lines has the
//! line it starts on). A row with a different number of cells than the header fails; a row whose
//! cells are all blank is skipped. A UTF-8 BOM is ignored.
//!
//! # STIX 2.1
//! A pretty-printed bundle whose `id` is a UUID v5 of its objects, one `indicator` per entity:
//! `type`, `spec_version` `"2.1"`, `id`, `created`, `modified`, `name`, `description`,
//! `pattern`, `pattern_type` `"stix"`, `valid_from`, `valid_until` (when `expirationTime` is
//! set), then the other fields as `x_mde_<snake_case_field>` custom properties in field order
//! (null and `[]` left out, as STIX forbids them). `created`/`modified`/`valid_from` are the
//! entity's `creationTimeDateTimeUtc` (padded to millisecond precision, as STIX requires), so an
//! in-place update does not change them; without one, the Unix epoch. The `id` is the
//! entity's `externalId` when that is a STIX indicator id, otherwise
//! `indicator--<UUID v5 of "type|value|action">`, and a non-STIX `externalId` goes to
//! `x_mde_external_id`. A missing title is written as `STIX indicator <value>`, a missing
//! description as the title, the same defaults import applies.
//!
//! Import maps each `indicator` whose `pattern` is one equality comparison on a supported
//! object path (see [`parse`]); `name` → title, `description` → description, `valid_until` →
//! expirationTime, `id` → externalId, `created` → `creationTimeDateTimeUtc` (read-only: the
//! server ignores it, re-export uses it), and any `x_mde_<field>` overrides the field.
//! Everything else lands in [`ParsedFile::skipped`] with the reason.

mod csv_format;
mod fields;
mod json_format;
mod pretty;
mod stix;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

/// A file format `iocd import` reads and `iocd export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Defender portal's indicator CSV, plus iocd's extra columns.
    Csv,
    /// Request objects as JSON.
    Json,
    /// A STIX 2.1 bundle of `indicator` objects.
    Stix,
}

impl Format {
    /// The lower-case name used on the command line (`csv`, `json`, `stix`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Stix => "stix",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "stix" | "stix2" | "stix21" | "stix2.1" => Ok(Format::Stix),
            other => Err(format!(
                "unknown format '{other}' (expected csv, json or stix)"
            )),
        }
    }
}

/// One request body to submit, with where it came from in the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportItem {
    /// CSV: the 1-based physical line the row starts on (the header is line 1). JSON: the
    /// 1-based index in the array. STIX: the 1-based index in the bundle's `objects`.
    pub line: usize,
    /// One `POST /api/indicators` request object.
    pub body: Value,
}

/// A row (or array element, or STIX object) that was not turned into an item, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// Numbered as [`ImportItem::line`].
    pub line: usize,
    pub reason: String,
}

/// What [`parse`] made of a file.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ParsedFile {
    /// Bodies to submit, in file order.
    pub items: Vec<ImportItem>,
    /// Rows the format makes unusable (wrong cell count, non-numeric category, not an object...).
    pub failed: Vec<RowProblem>,
    /// Rows deliberately not imported (blank CSV rows, STIX objects iocd cannot express).
    pub skipped: Vec<RowProblem>,
}

/// Choices the file itself may not make (only STIX needs them today).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The action for a STIX indicator without `x_mde_action`, e.g. `"Block"`.
    pub default_action: String,
    /// `generateAlert` for a STIX indicator without `x_mde_generate_alert`; `None` leaves it unset
    /// (the server's default applies).
    pub default_generate_alert: Option<bool>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            default_action: "Block".to_owned(),
            default_generate_alert: None,
        }
    }
}

/// A file that cannot be read (or an entity that cannot be written) at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the file is not valid UTF-8 at line {line}, column {column}; save it as UTF-8")]
    NotUtf8 { line: usize, column: usize },
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// The CSV header is missing or unusable.
    #[error("CSV header (line {line}): {message}")]
    CsvHeader { line: usize, message: String },
    /// The file reads, but is not shaped as the format requires.
    #[error("{0}")]
    Shape(String),
    /// An entity given to [`export`] has a value the format cannot represent.
    #[error("entity {index} (1-based): {message}")]
    Unexportable { index: usize, message: String },
}

/// Guesses a file's format: by extension (`.csv`, `.json`, `.stix`/`.stix2`; a `.json` file
/// holding a STIX bundle is [`Format::Stix`]), then, for other names, by content (a JSON array or
/// object, or a first line naming IndicatorType/IndicatorValue columns).
pub fn detect_format(path: &Path, content: &[u8]) -> Option<Format> {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => return Some(Format::Csv),
        Some("stix" | "stix2") => return Some(Format::Stix),
        Some("json") => {
            return Some(if stix::is_bundle(content) {
                Format::Stix
            } else {
                Format::Json
            })
        }
        _ => {}
    }
    let text = String::from_utf8_lossy(strip_bom(content));
    let text = text.trim_start();
    if text.starts_with('{') || text.starts_with('[') {
        return Some(if stix::is_bundle(content) {
            Format::Stix
        } else {
            Format::Json
        });
    }
    let first_line = text.lines().next().unwrap_or("").to_ascii_lowercase();
    if first_line.contains("indicatortype") || first_line.contains("indicatorvalue") {
        return Some(Format::Csv);
    }
    None
}

/// Reads a whole file into request bodies. `Err` only when the file cannot be read at all;
/// problems with single rows are in [`ParsedFile::failed`] / [`ParsedFile::skipped`].
///
/// STIX patterns understood (one comparison, `=`, a quoted string; hash names quoted or not,
/// with or without the dash): `file:hashes.MD5` → FileMd5, `file:hashes.'SHA-1'` → FileSha1,
/// `file:hashes.'SHA-256'` → FileSha256, `x509-certificate:hashes.'SHA-1'` (or SHA-256) →
/// CertificateThumbprint, `ipv4-addr:value` / `ipv6-addr:value` → IpAddress,
/// `domain-name:value` → DomainName, `url:value` → Url.
pub fn parse(
    format: Format,
    content: &[u8],
    options: &ImportOptions,
) -> Result<ParsedFile, FormatError> {
    let text = utf8(content)?;
    match format {
        Format::Csv => csv_format::parse(text),
        Format::Json => json_format::parse(text),
        Format::Stix => stix::parse(text, options),
    }
}

/// Writes entities (objects as `GET /api/indicators` returns them, or request bodies) to a file,
/// in input order, with only the client-settable fields. See the crate docs for each layout.
pub fn export(format: Format, entities: &[Value]) -> Result<Vec<u8>, FormatError> {
    match format {
        Format::Csv => csv_format::export(entities),
        Format::Json => json_format::export(entities),
        Format::Stix => stix::export(entities),
    }
}

fn strip_bom(content: &[u8]) -> &[u8] {
    content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content)
}

/// The file as text, without a BOM, or where its first invalid byte is.
fn utf8(content: &[u8]) -> Result<&str, FormatError> {
    let content = strip_bom(content);
    std::str::from_utf8(content).map_err(|err| {
        let valid = &content[..err.valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        let line_start = valid
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |newline| newline + 1);
        // Columns count characters, which is what an editor shows.
        let column = 1 + String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count();
        FormatError::NotUtf8 { line, column }
    })
}

/// The entity as an object, or the error [`export`] reports for it.
fn entity_object(
    index: usize,
    entity: &Value,
) -> Result<&serde_json::Map<String, Value>, FormatError> {
    entity.as_object().ok_or_else(|| FormatError::Unexportable {
        index: index + 1,
        message: "not a JSON object".to_owned(),
    })
}

/// A field's value, treating null as absent.
fn present<'a>(entity: &'a serde_json::Map<String, Value>, wire: &str) -> Option<&'a Value> {
    entity.get(wire).filter(|value| !value.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_position_is_reported() {
        let err = utf8(b"a,b\nc\xC3\xA9d,\xFF").unwrap_err();
        assert_eq!(err, FormatError::NotUtf8 { line: 2, column: 5 });
    }

    #[test]
    fn format_names_parse_and_print() {
        assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
        assert_eq!("stix2.1".parse::<Format>(), Ok(Format::Stix));
        assert!("xml".parse::<Format>().is_err());
        assert_eq!(Format::Json.to_string(), "json");
    }
}
