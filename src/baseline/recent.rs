//! Recent counted observations of every series, so a Start can attribute the whole window
//! that fired (a series keeps counts only, never per-record details).
//!
//! One buffer for all series, not one per series: the per-principal budget stays as it is,
//! and the buffer's size follows the write and error traffic of the last few minutes, not
//! the number of principals. It holds the observations of the last `window + 1` minutes of
//! event time (older ones are evicted as event time advances) and at most `cap` of them:
//! beyond that the oldest go and are counted (`dropped`), and a Start then attributes only
//! what is left. Each entry is a compact [`Obs`] with only the attribution fields (event
//! name, user agent, source IP, region, error code, session, event id), each cut at
//! [`VALUE_MAX`] bytes, and a 64-bit hash of its series (metric and key).
//!
//! The buffer is not part of a snapshot: after a restore it fills again within a window.

use super::{Field, Metric, Obs};
use std::collections::VecDeque;

/// Observations kept at most (about 400 bytes each with typical values).
pub(crate) const RECENT_CAP: usize = 100_000;
/// Longest attribution value kept, in bytes (user agents can be kilobytes).
pub(crate) const VALUE_MAX: usize = 200;

/// `v` cut to at most [`VALUE_MAX`] bytes, at a character boundary.
pub(crate) fn bounded(v: &str) -> &str {
    if v.len() <= VALUE_MAX {
        return v;
    }
    let mut end = VALUE_MAX;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

/// The series' id in the buffer: the key hashed (foldhash, seeded by the metric). Two series sharing an id
/// (about one chance in 10^12 with a million series) would share their Start attributions.
pub(crate) fn series_id(metric: Metric, key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(metric as u64).hash_one(key)
}

/// The fields an entry keeps.
const KEPT: [Field; 7] = [
    Field::Session,
    Field::Error,
    Field::EventName,
    Field::UserAgent,
    Field::SourceIp,
    Field::Region,
    Field::EventId,
];

pub(crate) struct Recent {
    entries: VecDeque<(u64, i64, Obs)>,
    cap: usize,
    /// Observations dropped at the cap while still within the window.
    pub dropped: u64,
}

impl Recent {
    pub(crate) fn new(cap: usize) -> Recent {
        Recent {
            entries: VecDeque::new(),
            cap,
            dropped: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Keeps `obs`, counted in `series` at `minute`.
    pub(crate) fn push(&mut self, series: u64, minute: i64, obs: &Obs) {
        if self.cap == 0 {
            self.dropped += 1;
            return;
        }
        while self.entries.len() >= self.cap {
            self.entries.pop_front();
            self.dropped += 1;
        }
        let mut fields = [None; super::FIELDS];
        for f in KEPT {
            fields[f as usize] = obs.get(f).map(bounded);
        }
        self.entries
            .push_back((series, minute, Obs::new(obs.time, false, false, fields)));
    }

    /// Evicts the oldest observations while they are before `minute` (entries are in arrival
    /// order, which is event-time order but for late records; a late one goes when it
    /// reaches the front).
    pub(crate) fn evict_before(&mut self, minute: i64) {
        while self.entries.front().is_some_and(|e| e.1 < minute) {
            self.entries.pop_front();
        }
    }

    /// The kept observations of `series` in the minutes `from..=to`, oldest first.
    pub(crate) fn of(&self, series: u64, from: i64, to: i64) -> impl Iterator<Item = &Obs> {
        self.entries
            .iter()
            .filter(move |e| e.0 == series && (from..=to).contains(&e.1))
            .map(|e| &e.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(minute: i64, name: &str, ua: &str) -> Obs {
        let mut f = [None; crate::baseline::FIELDS];
        f[Field::Key as usize] = Some("arn:aws:iam::111122223333:role/x");
        f[Field::EventName as usize] = Some(name);
        f[Field::UserAgent as usize] = Some(ua);
        f[Field::Account as usize] = Some("111122223333");
        Obs::new(minute * 60_000, true, false, f)
    }

    #[test]
    fn bounded_by_count_and_drops_are_counted() {
        let mut r = Recent::new(10);
        let s = series_id(Metric::WriteVolume, "a");
        for i in 0..25 {
            r.push(s, 5, &obs(5, &format!("N{i}"), "ua"));
        }
        assert_eq!(r.len(), 10);
        assert_eq!(r.dropped, 15);
        // The newest are kept.
        let names: Vec<&str> = r
            .of(s, 5, 5)
            .filter_map(|o| o.get(Field::EventName))
            .collect();
        assert_eq!(names.first(), Some(&"N15"));
        assert_eq!(names.last(), Some(&"N24"));
        let mut none = Recent::new(0);
        none.push(s, 5, &obs(5, "N", "ua"));
        assert!(none.is_empty());
        assert_eq!(none.dropped, 1);
    }

    #[test]
    fn evicted_by_event_time_and_filtered_by_series_and_minute() {
        let mut r = Recent::new(1000);
        let (a, b) = (
            series_id(Metric::WriteVolume, "a"),
            series_id(Metric::WriteVolume, "b"),
        );
        assert_ne!(a, series_id(Metric::ErrorRate, "a"));
        for m in 0..10 {
            r.push(a, m, &obs(m, "A", "ua"));
            r.push(b, m, &obs(m, "B", "ua"));
        }
        r.evict_before(6);
        assert_eq!(r.len(), 8);
        assert_eq!(r.dropped, 0);
        assert_eq!(r.of(a, 7, 9).count(), 3);
        assert!(r.of(a, 0, 9).all(|o| o.get(Field::EventName) == Some("A")));
        assert_eq!(r.of(series_id(Metric::ErrorRate, "a"), 0, 9).count(), 0);
        // Only the attribution fields are kept, cut to VALUE_MAX.
        let long = "x".repeat(500) + "é";
        r.push(a, 10, &obs(10, "A", &long));
        let kept = r.of(a, 10, 10).next().unwrap();
        assert_eq!(kept.get(Field::UserAgent).map(str::len), Some(VALUE_MAX));
        assert_eq!(kept.get(Field::Account), None);
        assert_eq!(bounded(&("é".repeat(150))).len(), 200);
        assert_eq!(bounded(&("a".to_string() + &"é".repeat(150))).len(), 199);
    }
}
