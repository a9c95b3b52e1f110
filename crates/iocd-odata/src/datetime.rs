//! OData `Edm.DateTimeOffset` literals, converted to the store's representation:
//! i64 ticks of 100 ns since the Unix epoch, UTC.

use chrono::NaiveDate;

pub(crate) const TICKS_PER_SECOND: i64 = 10_000_000;
/// 100 ns resolution: the store (and .NET, which MDE is written in) cannot keep more.
const MAX_FRACTION_DIGITS: usize = 7;

/// Parses a datetime at the start of `chars` and returns its ticks and how many chars it used.
///
/// Accepts `YYYY-MM-DDThh:mm[:ss[.fffffff]]` followed by `Z` or an offset `±hh:mm`. A space in place
/// of `+` is accepted as well, because form decoding turns an unencoded `+02:00` into ` 02:00`.
/// The error is a reason without a position; callers know where the literal started.
pub(crate) fn parse_datetime_prefix(chars: &[char]) -> Result<(i64, usize), String> {
    let mut cursor = Cursor { chars, at: 0 };
    let year = cursor.digits(4, "a 4-digit year")?;
    cursor.expect('-', "'-' after the year")?;
    let month = cursor.digits(2, "a 2-digit month")?;
    cursor.expect('-', "'-' after the month")?;
    let day = cursor.digits(2, "a 2-digit day")?;
    if !matches!(cursor.peek(), Some('T' | 't')) {
        return Err(
            "expected 'T' and a time after the date (e.g. 2024-01-01T00:00:00Z)".to_string(),
        );
    }
    cursor.at += 1;
    let hour = cursor.digits(2, "a 2-digit hour")?;
    cursor.expect(':', "':' after the hour")?;
    let minute = cursor.digits(2, "2-digit minutes")?;
    let mut second = 0;
    let mut fraction_ticks = 0i64;
    if cursor.peek() == Some(':') {
        cursor.at += 1;
        second = cursor.digits(2, "2-digit seconds")?;
        if cursor.peek() == Some('.') {
            cursor.at += 1;
            let start = cursor.at;
            while cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
                cursor.at += 1;
            }
            let fraction = &chars[start..cursor.at];
            if fraction.is_empty() {
                return Err("expected digits after the decimal point of the seconds".to_string());
            }
            if fraction.len() > MAX_FRACTION_DIGITS {
                return Err(format!(
                    "at most {MAX_FRACTION_DIGITS} fractional digits of a second are supported (100 ns), found {}",
                    fraction.len()
                ));
            }
            // Right-pad to 7 digits so ".5" is 5,000,000 ticks.
            fraction_ticks = fraction
                .iter()
                .chain(std::iter::repeat(&'0'))
                .take(MAX_FRACTION_DIGITS)
                .fold(0, |acc, c| {
                    acc * 10 + i64::from(c.to_digit(10).unwrap_or(0))
                });
        }
    }
    let offset_seconds = cursor.zone()?;

    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| format!("{year:04}-{month:02}-{day:02} is not a valid date"))?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "{hour:02}:{minute:02}:{second:02} is not a valid time of day"
        ));
    }
    let utc_seconds = date
        .and_hms_opt(hour, minute, second)
        .ok_or_else(|| "not a valid time of day".to_string())?
        .and_utc()
        .timestamp()
        - offset_seconds;
    let ticks = utc_seconds
        .checked_mul(TICKS_PER_SECOND)
        .and_then(|t| t.checked_add(fraction_ticks))
        .ok_or_else(|| "datetime is out of range".to_string())?;
    Ok((ticks, cursor.at))
}

/// Parses a whole string as a datetime (the content of a quoted literal).
pub(crate) fn parse_datetime(text: &str) -> Result<i64, String> {
    let chars: Vec<char> = text.chars().collect();
    let (ticks, used) = parse_datetime_prefix(&chars)?;
    if used != chars.len() {
        return Err(format!(
            "unexpected '{}' after the datetime",
            chars[used..].iter().collect::<String>()
        ));
    }
    Ok(ticks)
}

/// Whether `chars` looks like the start of a datetime (`dddd-d`), as opposed to an integer.
pub(crate) fn looks_like_datetime(chars: &[char]) -> bool {
    chars.len() >= 6
        && chars[..4].iter().all(char::is_ascii_digit)
        && chars[4] == '-'
        && chars[5].is_ascii_digit()
}

struct Cursor<'a> {
    chars: &'a [char],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("'{c}'"),
            None => "the end of the literal".to_string(),
        }
    }

    fn expect(&mut self, wanted: char, what: &str) -> Result<(), String> {
        if self.peek() == Some(wanted) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {what}, found {}", self.found()))
        }
    }

    fn digits(&mut self, count: usize, what: &str) -> Result<u32, String> {
        let mut value = 0u32;
        for _ in 0..count {
            match self.peek().and_then(|c| c.to_digit(10)) {
                Some(d) => {
                    value = value * 10 + d;
                    self.at += 1;
                }
                None => return Err(format!("expected {what}, found {}", self.found())),
            }
        }
        Ok(value)
    }

    fn is_offset_at(&self, at: usize) -> bool {
        let digit = |i: usize| self.chars.get(at + i).is_some_and(char::is_ascii_digit);
        digit(0) && digit(1) && self.chars.get(at + 2) == Some(&':') && digit(3) && digit(4)
    }

    /// The UTC offset in seconds (east positive).
    fn zone(&mut self) -> Result<i64, String> {
        let sign = match self.peek() {
            Some('Z' | 'z') => {
                self.at += 1;
                return Ok(0);
            }
            Some('+') => 1,
            Some('-') => -1,
            // A form-decoded '+': only when an offset really follows, so "…:00 and" is not misread.
            Some(' ') if self.is_offset_at(self.at + 1) => 1,
            _ => {
                return Err(format!(
                    "expected 'Z' or a UTC offset such as +02:00 after the time, found {}",
                    self.found()
                ))
            }
        };
        self.at += 1;
        let hours = self.digits(2, "2-digit offset hours")?;
        self.expect(':', "':' in the UTC offset")?;
        let minutes = self.digits(2, "2-digit offset minutes")?;
        if hours > 14 || minutes > 59 || (hours == 14 && minutes > 0) {
            return Err(format!(
                "UTC offset {hours:02}:{minutes:02} is out of range (at most 14:00)"
            ));
        }
        Ok(sign * i64::from(hours * 3600 + minutes * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_1_2024: i64 = 1_704_067_200 * TICKS_PER_SECOND;

    #[test]
    fn utc_and_offsets_convert_to_the_same_instant() {
        assert_eq!(parse_datetime("2024-01-01T00:00:00Z"), Ok(JAN_1_2024));
        assert_eq!(parse_datetime("2024-01-01T02:00:00+02:00"), Ok(JAN_1_2024));
        assert_eq!(parse_datetime("2024-01-01T02:00:00 02:00"), Ok(JAN_1_2024));
        assert_eq!(parse_datetime("2023-12-31T19:00:00-05:00"), Ok(JAN_1_2024));
        assert_eq!(parse_datetime("2024-01-01T00:00Z"), Ok(JAN_1_2024));
        assert_eq!(parse_datetime("2024-01-01t00:00:00z"), Ok(JAN_1_2024));
    }

    #[test]
    fn fractions_are_ticks() {
        assert_eq!(
            parse_datetime("2024-01-01T00:00:00.5Z"),
            Ok(JAN_1_2024 + 5_000_000)
        );
        assert_eq!(
            parse_datetime("2024-01-01T00:00:00.1234567Z"),
            Ok(JAN_1_2024 + 1_234_567)
        );
        assert_eq!(parse_datetime("1970-01-01T00:00:00.0000001Z"), Ok(1));
        assert_eq!(
            parse_datetime("1969-12-31T23:59:59Z"),
            Ok(-TICKS_PER_SECOND)
        );
        assert!(parse_datetime("2024-01-01T00:00:00.12345678Z")
            .unwrap_err()
            .contains("at most 7 fractional digits"));
    }

    #[test]
    fn invalid_datetimes_say_why() {
        assert!(parse_datetime("2024-02-30T00:00:00Z")
            .unwrap_err()
            .contains("not a valid date"));
        assert!(parse_datetime("2024-01-01T24:00:00Z")
            .unwrap_err()
            .contains("not a valid time"));
        assert!(parse_datetime("2024-01-01T00:00:00")
            .unwrap_err()
            .contains("UTC offset"));
        assert!(parse_datetime("2024-01-01")
            .unwrap_err()
            .contains("expected 'T'"));
        assert!(parse_datetime("2024-01-01T00:00:00+15:00")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_datetime("2024-01-01T00:00:00Zx")
            .unwrap_err()
            .contains("unexpected 'x'"));
    }

    #[test]
    fn prefix_stops_before_a_following_keyword() {
        let chars: Vec<char> = "2024-01-01T00:00:00Z and".chars().collect();
        assert_eq!(parse_datetime_prefix(&chars), Ok((JAN_1_2024, 20)));
        assert!(looks_like_datetime(&chars));
        assert!(!looks_like_datetime(&"20240".chars().collect::<Vec<_>>()));
    }
}
