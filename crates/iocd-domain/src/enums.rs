//! Wire enums. Values are case-sensitive on the wire (a lower-case `alert` is refused by the
//! real service), so parsing is exact; a case-insensitive match only improves the message.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ValidationError;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }

            /// Parses the exact spelling; `field` names the JSON property in the error.
            pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
                parse_exact(Self::ALL, |v| v.as_str(), field, raw)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `indicatorType`.
    IndicatorType { FileSha1, FileMd5, CertificateThumbprint, FileSha256, IpAddress, DomainName, Url }
);

wire_enum!(
    /// `action`. `Alert` and `AlertAndBlock` are legacy values that the docs still list and
    /// real tenants still hold, so they are accepted and stored verbatim.
    Action { Alert, Warn, Block, Audit, BlockAndRemediate, AlertAndBlock, Allowed }
);

wire_enum!(
    /// `severity`.
    Severity { Informational, Low, Medium, High }
);

fn parse_exact<T: Copy>(
    all: &[T],
    name_of: impl Fn(&T) -> &'static str,
    field: &str,
    raw: &str,
) -> Result<T, ValidationError> {
    if let Some(v) = all.iter().find(|v| name_of(v) == raw) {
        return Ok(*v);
    }
    let allowed: Vec<&str> = all.iter().map(&name_of).collect();
    let hint = all
        .iter()
        .find(|v| name_of(v).eq_ignore_ascii_case(raw))
        .map(|v| format!(" Values are case-sensitive: expected '{}'.", name_of(v)))
        .unwrap_or_default();
    Err(ValidationError::invalid_input(
        field,
        format!(
            "Invalid input {field}: '{raw}' is not a valid value.{hint} Allowed values: {}.",
            allowed.join(", ")
        ),
    ))
}

impl IndicatorType {
    /// Hex length of hash-like types (`None` for network types).
    pub fn hex_len(self) -> Option<usize> {
        match self {
            IndicatorType::FileMd5 => Some(32),
            IndicatorType::FileSha1 | IndicatorType::CertificateThumbprint => Some(40),
            IndicatorType::FileSha256 => Some(64),
            _ => None,
        }
    }

    /// The actions Defender's portal offers for this type (reference §11.1): no
    /// `BlockAndRemediate` for network indicators, certificates only `Allowed` and
    /// `BlockAndRemediate`. The API does not enforce this table (real API-created rows break
    /// it); iocd's portal offers these.
    pub fn portal_actions(self) -> &'static [Action] {
        match self {
            IndicatorType::FileSha1 | IndicatorType::FileMd5 | IndicatorType::FileSha256 => &[
                Action::Allowed,
                Action::Audit,
                Action::Warn,
                Action::Block,
                Action::BlockAndRemediate,
            ],
            IndicatorType::IpAddress | IndicatorType::DomainName | IndicatorType::Url => {
                &[Action::Allowed, Action::Audit, Action::Warn, Action::Block]
            }
            IndicatorType::CertificateThumbprint => &[Action::Allowed, Action::BlockAndRemediate],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_spelling_parses() {
        assert_eq!(
            Action::parse("action", "BlockAndRemediate").unwrap(),
            Action::BlockAndRemediate
        );
        assert_eq!(
            IndicatorType::parse("indicatorType", "Url").unwrap(),
            IndicatorType::Url
        );
    }

    #[test]
    fn the_portal_offers_defenders_actions_per_type() {
        assert!(!IndicatorType::Url
            .portal_actions()
            .contains(&Action::BlockAndRemediate));
        assert_eq!(
            IndicatorType::CertificateThumbprint.portal_actions(),
            [Action::Allowed, Action::BlockAndRemediate]
        );
        assert_eq!(IndicatorType::FileMd5.portal_actions().len(), 5);
    }

    #[test]
    fn wrong_case_names_expected_value() {
        let err = Action::parse("action", "alert").unwrap_err();
        assert_eq!(err.field, "action");
        assert!(err.message.contains("expected 'Alert'"), "{}", err.message);
    }

    #[test]
    fn unknown_value_lists_allowed() {
        let err = Severity::parse("severity", "Critical").unwrap_err();
        assert!(
            err.message.contains("Informational, Low, Medium, High"),
            "{}",
            err.message
        );
    }
}
