//! Durations as operators write them on the command line: `500ms`, `30s`, `1m`, `2h`, `90d`,
//! or several parts (`1h30m`).

use std::time::Duration;

/// Parses a duration of one or more `<whole number><unit>` parts, units `ms`, `s`, `m`, `h`,
/// `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("'{text}' is not a duration such as 500ms, 30s, 1m, 2h, 90d or 1h30m");
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        let part = unit
            .checked_mul(u32::try_from(n).map_err(|_| invalid())?)
            .ok_or_else(invalid)?;
        total = total.checked_add(part).ok_or_else(invalid)?;
    }
    Ok(total)
}

/// A positive duration (`--sweep-interval`).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err("the interval must be longer than 0".to_string());
    }
    Ok(d)
}

/// A duration, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeDuration(pub Option<Duration>);

/// A duration, or `off` for none (the change log's retention by age).
pub fn parse_optional_duration(text: &str) -> Result<MaybeDuration, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(MaybeDuration(None));
    }
    parse_interval(text).map(|d| MaybeDuration(Some(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit_and_combined() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "1", "m", "1x", "-1s", "1.5s", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_optional_duration("off"), Ok(MaybeDuration(None)));
        assert_eq!(
            parse_optional_duration("2h"),
            Ok(MaybeDuration(Some(Duration::from_secs(7200))))
        );
    }
}
