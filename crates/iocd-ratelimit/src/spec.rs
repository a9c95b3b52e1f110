//! The text form of rate-limit settings, for command-line flags and environment variables.
//!
//! One override names a family (or `all`) and the complete list of its windows:
//!
//! ```text
//! submit=100/1m,1500/1h     100 calls per minute and 1,500 per hour
//! import=30/m               a bare unit means one of it
//! batchdelete=off           no limit for this family
//! all=5/2s                  every family: 5 calls per 2 seconds
//! ```
//!
//! A window is `LIMIT/PERIOD`; a period is an optional whole number followed by one of the units
//! `ms`, `s`, `m`, `h`, `d`. The windows given replace all of the family's windows (not only the one
//! with the same period), so what is written is exactly what applies.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{Family, Policy, Window};

/// A setting `FAMILY=WINDOWS` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyOverride {
    /// The families it sets: one, or all of them for `all=`.
    pub families: Vec<Family>,
    /// Their windows; empty for `off` (unlimited).
    pub windows: Vec<Window>,
}

/// A rate-limit setting that does not follow the syntax; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate-limit setting {setting:?}: {reason}")]
pub struct InvalidOverride {
    pub setting: String,
    pub reason: String,
}

const SYNTAX_HINT: &str = "expected FAMILY=LIMIT/PERIOD[,LIMIT/PERIOD…] or FAMILY=off, e.g. submit=100/1m,1500/1h; \
     FAMILY is submit, list, get, delete, import, batchdelete, match or all; PERIOD is a number and a unit ms, s, m, h or d";

impl FromStr for PolicyOverride {
    type Err = InvalidOverride;

    fn from_str(setting: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| InvalidOverride {
            setting: setting.to_owned(),
            reason,
        };
        let (family_name, windows_text) = setting
            .split_once('=')
            .ok_or_else(|| invalid(format!("no '=' ({SYNTAX_HINT})")))?;
        let family_name = family_name.trim();
        let families = if family_name.eq_ignore_ascii_case("all") {
            Family::ALL.to_vec()
        } else {
            vec![family_name
                .parse::<Family>()
                .map_err(|unknown| invalid(unknown.to_string()))?]
        };
        let windows_text = windows_text.trim();
        let windows = if windows_text.eq_ignore_ascii_case("off") {
            Vec::new()
        } else {
            windows_text
                .split(',')
                .map(|window| parse_window(window.trim()).map_err(&invalid))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(PolicyOverride { families, windows })
    }
}

fn parse_window(text: &str) -> Result<Window, String> {
    let (limit, period) = text
        .split_once('/')
        .ok_or_else(|| format!("window {text:?} has no '/' ({SYNTAX_HINT})"))?;
    let limit: u32 = limit.trim().parse().map_err(|_| {
        format!("window {text:?}: the limit {limit:?} is not a whole number of calls")
    })?;
    let window = Window::new(limit, parse_period(period.trim())?);
    window.validate().map_err(|invalid| invalid.0)?;
    Ok(window)
}

const UNITS: [(&str, Duration); 5] = [
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("h", Duration::from_secs(3600)),
    ("d", Duration::from_secs(86_400)),
];

/// `1m`, `90s`, `h`, `500ms`.
fn parse_period(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (count, unit_name) = text.split_at(digits_end);
    let count: u32 = if count.is_empty() {
        1
    } else {
        count
            .parse()
            .map_err(|_| format!("period {text:?}: {count:?} is too large"))?
    };
    let (_, unit) = UNITS
        .iter()
        .find(|(name, _)| *name == unit_name)
        .ok_or_else(|| {
            format!("period {text:?}: unknown unit {unit_name:?} (use ms, s, m, h or d)")
        })?;
    Ok(*unit * count)
}

/// The shortest text [`parse_period`] reads back as `period`: the largest unit it is a whole
/// multiple of (`1m`, `90s`, `1500ms`), or microseconds when nothing else fits (`250us`).
fn format_period(period: Duration) -> String {
    UNITS
        .iter()
        .rev()
        .find(|(_, unit)| period.as_nanos().rem_euclid(unit.as_nanos()) == 0)
        .map(|(name, unit)| format!("{}{name}", period.as_nanos() / unit.as_nanos()))
        .unwrap_or_else(|| format!("{}us", period.as_micros()))
}

impl fmt::Display for Window {
    /// `100/1m`, the syntax the settings use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, format_period(self.period))
    }
}

impl fmt::Display for Policy {
    /// Every family's setting, `;`-separated: `submit=100/1m,1500/1h; …; import=30/1m; …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, family) in Family::ALL.iter().enumerate() {
            if position > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{family}=")?;
            let windows = self.windows(*family);
            if windows.is_empty() {
                f.write_str("off")?;
            }
            for (index, window) in windows.iter().enumerate() {
                if index > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{window}")?;
            }
        }
        Ok(())
    }
}

impl Policy {
    /// Applies one setting: the named families get exactly its windows.
    pub fn with_override(self, setting: &PolicyOverride) -> Self {
        setting.families.iter().fold(self, |policy, family| {
            // Parsing validated every window, so this cannot panic.
            policy.with_windows(*family, setting.windows.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PolicyOverride, String> {
        text.parse::<PolicyOverride>()
            .map_err(|invalid| invalid.to_string())
    }

    #[test]
    fn settings_name_a_family_and_its_windows() {
        assert_eq!(
            parse("submit=100/1m,1500/1h"),
            Ok(PolicyOverride {
                families: vec![Family::Submit],
                windows: vec![Window::per_minute(100), Window::per_hour(1_500)],
            })
        );
        assert_eq!(
            parse(" BatchDelete = 30/m , 1500/h "),
            Ok(PolicyOverride {
                families: vec![Family::BatchDelete],
                windows: vec![Window::per_minute(30), Window::per_hour(1_500)],
            })
        );
        assert_eq!(
            parse("get=5/500ms").unwrap().windows,
            [Window::new(5, Duration::from_millis(500))]
        );
        assert_eq!(
            parse("import=10/2d").unwrap().windows,
            [Window::new(10, Duration::from_secs(2 * 86_400))]
        );
        assert_eq!(
            parse("delete=off"),
            Ok(PolicyOverride {
                families: vec![Family::Delete],
                windows: vec![],
            })
        );
        assert_eq!(parse("all=5/2s").unwrap().families, Family::ALL.to_vec());
    }

    #[test]
    fn mistakes_are_explained() {
        let cases = [
            ("submit", "no '='"),
            ("upload=5/1m", "unknown rate-limit family \"upload\""),
            ("submit=100", "has no '/'"),
            ("submit=many/1m", "not a whole number"),
            ("submit=100/1w", "unknown unit \"w\""),
            ("submit=100/", "unknown unit \"\""),
            ("submit=0/1m", "limit must be at least 1"),
            ("submit=1/0s", "period must be between"),
            ("submit=1/400d", "period must be between"),
            ("submit=100/1m,", "window \"\" has no '/'"),
            ("submit=1/99999999999s", "too large"),
        ];
        for (text, expected) in cases {
            let message = parse(text).expect_err(text);
            assert!(
                message.contains(expected) && message.contains(text),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn overrides_replace_whole_families() {
        let policy = Policy::mde_defaults()
            .with_override(&parse("submit=7/1s").unwrap())
            .with_override(&parse("import=off").unwrap());
        assert_eq!(
            policy.windows(Family::Submit),
            [Window::new(7, Duration::from_secs(1))]
        );
        assert!(policy.windows(Family::Import).is_empty());
        assert_eq!(
            policy.windows(Family::List),
            Policy::mde_defaults().windows(Family::List)
        );
        let everything = Policy::mde_defaults().with_override(&parse("all=2/1h").unwrap());
        for family in Family::ALL {
            assert_eq!(everything.windows(family), [Window::per_hour(2)]);
        }
    }

    #[test]
    fn policies_print_in_the_setting_syntax() {
        assert_eq!(
            Policy::mde_defaults().to_string(),
            "submit=100/1m,1500/1h; list=100/1m,1500/1h; get=100/1m,1500/1h; delete=100/1m,1500/1h; \
             import=30/1m; batchdelete=30/1m,1500/1h; match=off"
        );
        assert_eq!(
            Window::new(3, Duration::from_millis(1500)).to_string(),
            "3/1500ms"
        );
        assert_eq!(Window::new(3, Duration::from_secs(90)).to_string(), "3/90s");
        assert_eq!(
            Window::new(3, Duration::from_micros(250)).to_string(),
            "3/250us"
        );
        // What is printed parses back to the same windows.
        for family_setting in Policy::mde_defaults().to_string().split("; ") {
            let setting = parse(family_setting).unwrap();
            assert_eq!(
                Policy::mde_defaults().windows(setting.families[0]),
                setting.windows
            );
        }
    }
}
