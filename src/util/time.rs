//! Times and durations: event times from records, `--since`/`--until` arguments, and
//! durations written as `15m`, `1h`, `7d`.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Parses a record's `eventTime`: RFC 3339 (`2023-07-10T12:00:00Z`), or the
/// `2025-03-26 16:43:57.000000000` form some hand-edited datasets use (taken as UTC).
pub fn parse_event_time(s: &str) -> Option<Millis> {
    // The form CloudTrail writes, read directly (chrono's parser was 1 % of a backtest).
    if let Some(t) = parse_whole_seconds_utc(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc().timestamp_millis())
}

/// `YYYY-MM-DDTHH:MM:SSZ` exactly (what CloudTrail writes), else `None` (the caller's general
/// parser decides). A second of 60 is left to it too.
fn parse_whole_seconds_utc(s: &str) -> Option<Millis> {
    let b: &[u8; 20] = s.as_bytes().try_into().ok()?;
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if separators.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (year 0 to 9999), by
/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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

    proptest::proptest! {
        /// The direct reading of CloudTrail's form agrees with chrono's RFC 3339 parser on
        /// every text of that shape, valid dates or not (days up to 31 in every month).
        #[test]
        fn whole_seconds_utc_agrees_with_chrono(
            year in 0i64..=9999, month in 0i64..=13, day in 0i64..=32,
            hour in 0i64..=24, minute in 0i64..=60, second in 0i64..=60,
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| t.timestamp_millis());
            match parse_whole_seconds_utc(&text) {
                Some(t) => proptest::prop_assert_eq!(Some(t), chrono, "{}", text),
                // Left to chrono: invalid, or a leap second.
                None => proptest::prop_assert!(chrono.is_none() || second == 60, "{}", text),
            }
            proptest::prop_assert_eq!(parse_event_time(&text).is_some(), chrono.is_some());
        }
    }

    #[test]
    fn whole_seconds_utc_reads_only_its_form() {
        assert_eq!(
            parse_whole_seconds_utc("2024-02-29T23:59:59Z"),
            Some(1_709_251_199_000)
        );
        assert_eq!(parse_whole_seconds_utc("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_whole_seconds_utc("1900-02-29T00:00:00Z"), None);
        assert_eq!(
            parse_whole_seconds_utc("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(
            parse_whole_seconds_utc("1969-12-31T23:59:59Z"),
            Some(-1_000)
        );
        for other in [
            "2024-02-29T23:59:59.5Z",
            "2024-02-29 23:59:59Z",
            "2024-02-29t23:59:59Z",
            "2024-02-29T23:59:59+00:00",
            "2024-0a-29T23:59:59Z",
            "+024-02-29T23:59:59Z",
        ] {
            assert_eq!(parse_whole_seconds_utc(other), None, "{other}");
        }
        assert_eq!(
            parse_event_time("2024-02-29T23:59:59.500Z"),
            Some(1_709_251_199_500)
        );
    }

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
