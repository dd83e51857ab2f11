//! Event times as the scorer reads them (labels and findings): the product's own parsing
//! (`trailwatch::util::time`), kept here so this crate does not depend on the product.

use chrono::{DateTime, NaiveDateTime};

/// Milliseconds since the Unix epoch, UTC.
pub(crate) type Millis = i64;

/// Parses a record's `eventTime`: RFC 3339 (`2023-07-10T12:00:00Z`), or the
/// `2025-03-26 16:43:57.000000000` form some hand-edited datasets use (taken as UTC).
pub(crate) fn parse_event_time(s: &str) -> Option<Millis> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc().timestamp_millis())
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
}
