//! Times and durations: event times from records, `--since`/`--until` arguments, and
//! durations written as `15m`, `1h`, `7d`.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Parses a record's `eventTime`: RFC 3339 (`2023-07-10T12:00:00Z`), or the
/// `2025-03-26 16:43:57.000000000` form some hand-edited datasets use (taken as UTC).
pub fn parse_event_time(s: &str) -> Option<Millis> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc().timestamp_millis())
}

/// A duration or time that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("`{0}` has no unit; write e.g. 15m, 1h, 7d")]
    NoUnit(String),
    #[error("`{0}` does not start with a whole number")]
    NotANumber(String),
    #[error("unknown unit `{unit}` in `{text}`; use s, m, h, d or w")]
    UnknownUnit { unit: String, text: String },
    #[error("`{0}` is too long")]
    TooLong(String),
    #[error(
        "`{0}` is not a time: use RFC 3339 (2024-01-31T12:00:00Z), a date (2024-01-31) or a duration before now (7d, 12h)"
    )]
    NotATime(String),
}

/// Parses `15m`, `1h`, `7d`, `30s`, `2w` (a number and a unit) into milliseconds.
pub fn parse_duration(s: &str) -> Result<Millis, TimeError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| TimeError::NoUnit(s.to_string()))?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| TimeError::NotANumber(s.to_string()))?;
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(TimeError::UnknownUnit {
                unit: unit.to_string(),
                text: s.to_string(),
            });
        }
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| TimeError::TooLong(s.to_string()))
}

/// A `--since`/`--until` value: RFC 3339, a date (`2024-01-31`, midnight UTC), or a duration
/// before `now` (`7d` = seven days ago).
pub fn parse_time_arg(s: &str, now: DateTime<Utc>) -> Result<Millis, TimeError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .unwrap_or(0));
    }
    match parse_duration(s) {
        Ok(d) => Ok(now.timestamp_millis() - d),
        Err(_) => Err(TimeError::NotATime(s.to_string())),
    }
}

/// Formats a duration the way people write it (`90s`, `5m`, `1h30m`, `7d`).
pub fn format_duration(ms: Millis) -> String {
    if ms % 1000 != 0 || ms == 0 {
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

/// Formats milliseconds as RFC 3339 UTC (`2023-07-10T12:00:00Z`).
pub fn format_millis(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times() {
        assert_eq!(parse_event_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_event_time("1970-01-01 00:00:01.500000000"),
            Some(1500)
        );
        assert_eq!(parse_event_time("yesterday"), None);
    }

    #[test]
    fn durations_and_args() {
        assert_eq!(parse_duration("15m"), Ok(900_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7y").is_err());
        let now = DateTime::parse_from_rfc3339("2024-01-08T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time_arg("7d", now),
            parse_time_arg("2024-01-01T00:00:00Z", now)
        );
        assert_eq!(
            parse_time_arg("2024-01-01", now),
            parse_time_arg("2024-01-01T00:00:00Z", now)
        );
        assert!(parse_time_arg("soon", now).is_err());
        assert_eq!(format_millis(1000), "1970-01-01T00:00:01Z");
    }
}
