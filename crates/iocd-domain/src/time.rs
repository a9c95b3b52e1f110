//! Timestamps. The service writes UTC with up to 7 fractional digits and trims trailing zeros
//! (`2023-04-25T17:37:28.8510566Z`, `2020-12-12T00:00:00Z`); stores keep them as i64 ticks of
//! 100 ns since the Unix epoch, which orders correctly and covers years 0001..9999.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

use crate::error::ValidationError;

pub type Timestamp = DateTime<Utc>;

const TICKS_PER_SECOND: i64 = 10_000_000;

pub fn to_ticks(t: Timestamp) -> i64 {
    t.timestamp() * TICKS_PER_SECOND + i64::from(t.timestamp_subsec_nanos() / 100)
}

pub fn from_ticks(ticks: i64) -> Timestamp {
    let secs = ticks.div_euclid(TICKS_PER_SECOND);
    let nanos = (ticks.rem_euclid(TICKS_PER_SECOND) * 100) as u32;
    Utc.timestamp_opt(secs, nanos)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Drops precision below 100 ns, so a value survives a round trip through the store unchanged.
pub fn truncate_to_ticks(t: Timestamp) -> Timestamp {
    from_ticks(to_ticks(t))
}

/// The current time, to 100 ns. With [`system_now`], the only reading of the wall clock in iocd:
/// everything else takes "now" as a parameter, so rules and tests can choose it.
#[allow(
    clippy::disallowed_methods,
    reason = "iocd_domain::time is the one place that reads the wall clock"
)]
pub fn now() -> Timestamp {
    truncate_to_ticks(Utc::now())
}

/// The current time as a `SystemTime`, for APIs that take one (token issuing and validation).
#[allow(
    clippy::disallowed_methods,
    reason = "iocd_domain::time is the one place that reads the wall clock"
)]
pub fn system_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// The API's spelling: `YYYY-MM-DDTHH:MM:SS[.fffffff]Z`, trailing zeros of the fraction trimmed.
pub fn format_wire(t: Timestamp) -> String {
    // Formatted from the fields, not with a strftime pattern: chrono parses a pattern on every
    // call, and every indicator the API answers with carries three times.
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ticks = t.timestamp_subsec_nanos() / 100;
    if ticks != 0 {
        let fraction = format!(".{ticks:07}");
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Accepts ISO 8601 / RFC 3339 with any offset (returned in UTC), a timestamp without offset
/// (taken as UTC, as .NET clients often send), or a bare date (midnight UTC).
pub fn parse_datetime(field: &str, raw: &str) -> Result<Timestamp, ValidationError> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(truncate_to_ticks(t.with_timezone(&Utc)));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(truncate_to_ticks(Utc.from_utc_datetime(&t)));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists")));
    }
    Err(ValidationError::invalid_input(
        field,
        format!("Invalid input {field}: '{raw}' is not an ISO 8601 date-time such as 2030-12-31T00:00:00Z."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_trims_fraction() {
        let t = parse_datetime("t", "2023-04-25T17:37:28.8510566Z").unwrap();
        assert_eq!(format_wire(t), "2023-04-25T17:37:28.8510566Z");
        let t = parse_datetime("t", "2023-04-25T18:02:06.322598Z").unwrap();
        assert_eq!(format_wire(t), "2023-04-25T18:02:06.322598Z");
        let t = parse_datetime("t", "2020-12-12T00:00:00Z").unwrap();
        assert_eq!(format_wire(t), "2020-12-12T00:00:00Z");
    }

    #[test]
    fn offsets_convert_to_utc() {
        let t = parse_datetime("t", "2030-01-01T02:30:00+02:30").unwrap();
        assert_eq!(format_wire(t), "2030-01-01T00:00:00Z");
        let t = parse_datetime("t", "2030-01-01T00:00:00").unwrap();
        assert_eq!(format_wire(t), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn ticks_round_trip_including_far_dates() {
        for s in [
            "9999-12-31T23:59:59.9999999Z",
            "1601-01-01T00:00:00Z",
            "2024-02-29T12:00:00.1Z",
        ] {
            let t = parse_datetime("t", s).unwrap();
            assert_eq!(from_ticks(to_ticks(t)), t);
            assert_eq!(format_wire(t), s);
        }
    }

    #[test]
    fn garbage_is_refused_with_field_name() {
        let err = parse_datetime("expirationTime", "next tuesday").unwrap_err();
        assert!(err.message.contains("expirationTime"));
    }
}
