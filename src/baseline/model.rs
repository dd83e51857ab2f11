//! The per-series model: compact per-minute counts for the detection window, an hourly
//! (time-of-day) profile learned over days, and the count test.
//!
//! What a series keeps (fixed size, about 400 bytes plus the usual event names):
//! - a ring of the last [`RING`] per-minute counts (the sliding detection window);
//! - the count of the hour being accumulated and the largest window count seen in it;
//! - per hour of day: the mean count per minute, averaged over days (a running mean over the
//!   first `history_days` days, then an exponential average with weight `1/history_days`,
//!   so about `history_days` days of memory), the number of days seen, and the largest
//!   window count of each of the last [`PEAK_DAYS`] days at that hour.
//!
//! The test (see [`Series::judge`]): the expected window count λ is the larger of
//! `window × mean` of the hour of day and its two neighbours (jitter) plus a small prior (the
//! day-of-week profile replaces the hourly one after 14 days), and, when it stands out from
//! twice the hourly mean, the usual daily peak of those hours over the last four days: the largest window count of
//! a day without an anomaly at that hour, or the second-largest of all days (a burst that
//! alerted is normal once it has been seen at the same hour on two previous days). The window is anomalous when the
//! observed count `k` is at least `min_calls`, at least `min_ratio × λ`, and the Poisson upper
//! tail `P(X ≥ k | λ)` is below the threshold.

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, Poisson};

pub use crate::rules::baseline::MAX_WINDOW_MINUTES as RING;
/// Days of daily peaks kept per hour of day.
pub const PEAK_DAYS: usize = 4;
/// Prior expected events per minute, so a silent hour still has a positive rate.
pub const PRIOR_PER_MINUTE: f64 = 0.05;
/// Usual event names kept per series (for attributions).
pub const USUAL_NAMES: usize = 4;

/// How an anomaly started, kept until it ends (and for the End finding).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Active {
    pub start_minute: i64,
    /// Event time at which the anomaly was recognised.
    pub start_time: i64,
    pub last_hot_minute: i64,
    /// Expected events per minute when it started.
    pub expected_per_minute: f64,
    pub expected_in_window: f64,
    pub observed_in_window: u32,
    pub p_value: f64,
    /// Events that counted in the learned profile per minute while anomalous (at most).
    pub learn_cap: u16,
    /// Events since the start (including the window that triggered it).
    pub count: u64,
    pub attrs: CallCounters,
    pub first_ids: Vec<String>,
    pub last_ids: std::collections::VecDeque<String>,
    pub account: Option<String>,
    pub region: Option<String>,
}

/// Values kept per attribute during an anomaly.
pub const ATTR_VALUES: usize = 16;
/// Event ids kept at each end of an anomaly.
pub const IDS_KEPT: usize = 50;

/// Bounded value counters: the first [`ATTR_VALUES`] distinct values, then `other`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counter {
    pub values: Vec<(String, u64)>,
    pub other: u64,
}

impl Counter {
    pub fn add(&mut self, v: &str) {
        if let Some(e) = self.values.iter_mut().find(|(k, _)| k == v) {
            e.1 += 1;
        } else if self.values.len() < ATTR_VALUES {
            self.values.push((v.to_string(), 1));
        } else {
            self.other += 1;
        }
    }
    /// The `n` most frequent values (ties by value).
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut v = self.values.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CallCounters {
    pub event_names: Counter,
    pub user_agents: Counter,
    pub source_ips: Counter,
    pub regions: Counter,
    pub error_codes: Counter,
    pub sessions: Counter,
}

/// The verdict on a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    pub hot: bool,
    pub observed: u32,
    /// Expected events in the window.
    pub lambda: f64,
    /// Expected events per minute from the hourly profile (without peaks and prior).
    pub mean_per_minute: f64,
    /// Poisson upper tail, when computed (the floors passed).
    pub p_value: Option<f64>,
    /// Did the peak rule set λ?
    pub from_peaks: bool,
}

/// One series (metric and key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Series {
    pub first_minute: i64,
    pub last_minute: i64,
    hour: i64,
    hour_count: u32,
    hour_peak: u16,
    /// An anomaly was open during the accumulated hour.
    #[serde(default)]
    hour_flag: bool,
    head: i64,
    ring: [u16; RING],
    pub mean: [f32; 24],
    pub days: [u8; 24],
    peaks: [[u16; PEAK_DAYS]; 24],
    /// Usual event names with decayed counts (space-saving, at most [`USUAL_NAMES`]).
    pub names: Vec<(String, f32)>,
    /// Day-of-week profile: mean events per minute for each of the 168 hours of the week
    /// (Monday 00:00 UTC first), as bfloat16; empty for series without one. Used once the
    /// series has [`WEEKLY_AFTER_DAYS`] days of history.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "week_text")]
    week: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Box<Active>>,
}

fn hod(hour: i64) -> usize {
    hour.rem_euclid(24) as usize
}

impl Series {
    /// A series first seen at `minute`; `weekly`: keep a day-of-week profile.
    pub fn new(minute: i64, weekly: bool) -> Series {
        Series {
            week: if weekly { vec![0; 168] } else { Vec::new() },
            first_minute: minute,
            last_minute: minute,
            hour: minute.div_euclid(60),
            hour_count: 0,
            hour_peak: 0,
            hour_flag: false,
            head: minute,
            ring: [0; RING],
            mean: [0.0; 24],
            days: [0; 24],
            peaks: [[0; PEAK_DAYS]; 24],
            names: Vec::new(),
            active: None,
        }
    }

    /// Closes the accumulated hour (and every silent hour since) up to the hour of `minute`.
    pub fn roll(&mut self, minute: i64, history_days: u32) {
        let target = minute.div_euclid(60);
        if target <= self.hour {
            return;
        }
        let days = i64::from(history_days.max(1));
        let mut h = self.hour;
        let (mut count, mut peak) = (self.hour_count, stored_peak(self.hour_peak, self.hour_flag));
        // Beyond a full history of silence every bucket would be ~0; skip the rest.
        let gap = (target - h).min(days * 24 + 24);
        let last = h + gap;
        while h < last {
            let b = hod(h);
            let x = f64::from(count) / 60.0;
            let n = u32::from(self.days[b]);
            let alpha = 1.0 / f64::from((n + 1).min(history_days.max(1)));
            let m = f64::from(self.mean[b]);
            self.mean[b] = (m + alpha * (x - m)) as f32;
            self.days[b] = self.days[b].saturating_add(1);
            self.peaks[b].rotate_right(1);
            self.peaks[b][0] = peak;
            if let Some(wm) = self.week.get_mut(week_bucket(h)) {
                // Earlier occurrences of this hour of the week since the series began.
                let seen = (h - self.first_minute.div_euclid(60))
                    .div_euclid(168)
                    .max(0);
                let weeks = i64::from((history_days / 7).max(2));
                let alpha = 1.0 / ((seen + 1).min(weeks)) as f32;
                let m = from_bf16(*wm);
                *wm = to_bf16(m + alpha * (x as f32 - m));
            }
            count = 0;
            peak = 0;
            h += 1;
        }
        self.hour = target;
        self.hour_count = 0;
        self.hour_peak = 0;
        self.hour_flag = false;
    }

    /// Notes that an anomaly is open in the current hour (its peak then needs a second day).
    pub fn mark_anomalous(&mut self) {
        self.hour_flag = true;
    }

    /// Counts one event at `minute` (already rolled). Late minutes outside the ring only
    /// count in the hour.
    pub fn add(&mut self, minute: i64, name: Option<&str>) {
        if minute > self.head {
            let step = (minute - self.head).min(RING as i64);
            for k in 0..step {
                self.ring[(minute - k).rem_euclid(RING as i64) as usize] = 0;
            }
            self.head = minute;
        }
        let in_ring = self.head - minute < RING as i64;
        let slot = minute.rem_euclid(RING as i64) as usize;
        if in_ring {
            self.ring[slot] = self.ring[slot].saturating_add(1);
        }
        self.last_minute = self.last_minute.max(minute);
        if minute.div_euclid(60) == self.hour {
            // While anomalous, a minute counts in the profile only up to the cap, so an attack
            // does not quickly raise its own baseline.
            let learn = match &self.active {
                Some(a) => !in_ring || self.ring[slot] <= a.learn_cap,
                None => true,
            };
            if learn {
                self.hour_count = self.hour_count.saturating_add(1);
                if let Some(n) = name {
                    self.learn_name(n);
                }
            }
        }
    }

    fn learn_name(&mut self, name: &str) {
        if let Some(e) = self.names.iter_mut().find(|(k, _)| k == name) {
            e.1 += 1.0;
        } else if self.names.len() < USUAL_NAMES {
            self.names.push((name.to_string(), 1.0));
        } else if let Some(min) = self.names.iter_mut().min_by(|a, b| a.1.total_cmp(&b.1)) {
            // Space-saving: the least frequent is replaced and inherits its count.
            *min = (name.to_string(), min.1 + 1.0);
        }
        let total: f32 = self.names.iter().map(|(_, c)| c).sum();
        if total > 10_000.0 {
            for e in &mut self.names {
                e.1 /= 2.0;
            }
        }
    }

    /// Marks activity at `minute` that does not count in this series (idleness, warm-up).
    pub fn touch(&mut self, minute: i64) {
        self.last_minute = self.last_minute.max(minute);
    }

    /// Events in the single minute `minute` (0 outside the ring).
    pub fn minute_count(&self, minute: i64) -> u16 {
        if minute <= self.head && self.head - minute < RING as i64 {
            self.ring[minute.rem_euclid(RING as i64) as usize]
        } else {
            0
        }
    }

    /// Events in the `window` minutes ending at `minute`.
    pub fn window(&self, minute: i64, window: u32) -> u32 {
        let w = i64::from(window).clamp(1, RING as i64);
        (minute - w + 1..=minute)
            .filter(|m| *m <= self.head && self.head - *m < RING as i64)
            .map(|m| u32::from(self.ring[m.rem_euclid(RING as i64) as usize]))
            .sum()
    }

    /// Records the window count in the hour's peak.
    pub fn note_peak(&mut self, minute: i64, count: u32) {
        if minute.div_euclid(60) == self.hour {
            self.hour_peak = self.hour_peak.max(count.min(u32::from(u16::MAX)) as u16);
        }
    }

    /// Expected events in a `window`-minute window at `minute`: (λ, profile mean per minute,
    /// whether the peak rule set λ).
    pub fn expected(&self, minute: i64, window: u32) -> (f64, f64, bool) {
        let h = minute.div_euclid(60);
        let mut mean = 0.0f64;
        let mut peak = 0u16;
        for b in [hod(h - 1), hod(h), hod(h + 1)] {
            if self.days[b] > 0 {
                mean = mean.max(f64::from(self.mean[b]));
                peak = peak.max(usual_peak(&self.peaks[b]));
            }
        }
        let w = f64::from(window);
        // A daily peak matters when it stands out from the hour's mean (a job's burst), not
        // when it is ordinary busy traffic (which the mean, or the weekly mean, describes).
        let burst_like = f64::from(peak) > 2.0 * w * mean;
        if self.weekly_ready(minute) {
            // The more specific profile: this hour of this day of the week (and neighbours).
            mean = [h - 1, h, h + 1]
                .iter()
                .map(|x| f64::from(from_bf16(self.week[week_bucket(*x)])))
                .fold(0.0, f64::max);
        }
        let lambda = w * (mean + PRIOR_PER_MINUTE);
        if burst_like && f64::from(peak) > lambda {
            (f64::from(peak), mean, true)
        } else {
            (lambda, mean, false)
        }
    }

    /// Judges the window ending at `minute`.
    pub fn judge(&self, minute: i64, cfg: &crate::rules::baseline::BaselineConfig) -> Judgement {
        let observed = self.window(minute, cfg.window_minutes);
        let (lambda, mean, from_peaks) = self.expected(minute, cfg.window_minutes);
        let mut j = Judgement {
            hot: false,
            observed,
            lambda,
            mean_per_minute: mean,
            p_value: None,
            from_peaks,
        };
        if observed < cfg.min_calls || f64::from(observed) < cfg.min_ratio * lambda {
            return j;
        }
        let p = poisson_upper_tail(lambda, observed);
        j.p_value = Some(p);
        j.hot = p < cfg.p_threshold();
        j
    }

    /// Is the day-of-week profile used at `minute`?
    pub fn weekly_ready(&self, minute: i64) -> bool {
        self.week.len() == 168 && minute - self.first_minute >= WEEKLY_AFTER_DAYS * 1440
    }

    /// The day-of-week profile (168 hourly means from Monday 00:00 UTC), when kept.
    pub fn week_profile(&self) -> Option<Vec<f32>> {
        (self.week.len() == 168).then(|| self.week.iter().map(|v| from_bf16(*v)).collect())
    }

    /// Days of history (of the best-observed hour of day).
    pub fn days_of_history(&self) -> u8 {
        self.days.iter().copied().max().unwrap_or(0)
    }

    /// Mean events per minute over the whole day profile.
    pub fn daily_mean(&self) -> f64 {
        let seen: Vec<f64> = (0..24)
            .filter(|b| self.days[*b] > 0)
            .map(|b| f64::from(self.mean[b]))
            .collect();
        if seen.is_empty() {
            0.0
        } else {
            seen.iter().sum::<f64>() / seen.len() as f64
        }
    }
}

/// Days of history before the day-of-week profile replaces the hourly one.
pub const WEEKLY_AFTER_DAYS: i64 = 14;

/// Hour of the week (0 = Monday 00:00 UTC) of an hour index since the epoch (a Thursday).
fn week_bucket(hour: i64) -> usize {
    (hour + 3 * 24).rem_euclid(168) as usize
}

/// bfloat16 (the upper half of an f32, rounded): 3 significant digits, enough for a mean.
fn to_bf16(x: f32) -> u16 {
    let bits = x.max(0.0).to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

fn from_bf16(v: u16) -> f32 {
    f32::from_bits(u32::from(v) << 16)
}

/// The day-of-week profile in snapshots: base64 of its little-endian bytes (compact JSON).
mod week_text {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u16], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        if bytes.len() != 2 * 168 {
            return Err(serde::de::Error::custom("a week profile has 168 values"));
        }
        Ok(bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }
}

/// Flag bit of a stored daily peak: an anomaly was open in that hour.
const FLAG: u16 = 0x8000;

fn stored_peak(peak: u16, anomalous: bool) -> u16 {
    peak.min(FLAG - 1) | if anomalous { FLAG } else { 0 }
}

/// The window count a recent day makes usual at this hour: the largest peak of a day without
/// an anomaly at that hour, or the second-largest of all (a burst that alerted becomes usual
/// once it has happened on two days).
fn usual_peak(peaks: &[u16; PEAK_DAYS]) -> u16 {
    let clean = peaks
        .iter()
        .filter(|p| **p & FLAG == 0)
        .copied()
        .max()
        .unwrap_or(0);
    let mut all = peaks.map(|p| p & !FLAG);
    all.sort_unstable_by(|a, b| b.cmp(a));
    clean.max(all[1])
}

/// `P(X ≥ k)` for `X ~ Poisson(λ)`.
pub fn poisson_upper_tail(lambda: f64, k: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    match Poisson::new(lambda.max(1e-9)) {
        Ok(d) => d.sf(u64::from(k) - 1),
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::baseline::BaselineConfig;

    /// Feeds `per_minute(minute)` events per minute for `minutes` minutes from `start`.
    fn feed(
        s: &mut Series,
        cfg: &BaselineConfig,
        start: i64,
        minutes: i64,
        per_minute: impl Fn(i64) -> u32,
    ) -> Vec<i64> {
        let mut hot = Vec::new();
        for m in start..start + minutes {
            s.roll(m, cfg.history_days);
            for _ in 0..per_minute(m) {
                s.add(m, Some("RunInstances"));
                let j = s.judge(m, cfg);
                s.note_peak(m, j.observed);
                if j.hot {
                    s.mark_anomalous();
                }
                if j.hot && hot.last() != Some(&m) {
                    hot.push(m);
                }
            }
        }
        hot
    }

    #[test]
    fn poisson_tail_values() {
        assert!((poisson_upper_tail(1.0, 1) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert!(poisson_upper_tail(0.15, 20) < 1e-20);
        assert!(poisson_upper_tail(200.0, 200) > 0.4);
    }

    #[test]
    fn sparse_principal_needs_the_floor() {
        let cfg = BaselineConfig::default();
        let mut s = Series::new(0, false);
        // One call every 3 hours for two days.
        let hot = feed(&mut s, &cfg, 0, 2 * 1440, |m| u32::from(m % 180 == 0));
        assert!(hot.is_empty());
        // 15 calls in a minute: p is tiny but below min_calls (20): no alert.
        let j = {
            let m = 2 * 1440 + 5;
            s.roll(m, cfg.history_days);
            for _ in 0..15 {
                s.add(m, None);
            }
            s.judge(m, &cfg)
        };
        assert!(!j.hot);
        assert_eq!(j.observed, 15);
        // 25 in the next minute: 40 in the window, above the floor: alert.
        let m = 2 * 1440 + 6;
        for _ in 0..25 {
            s.add(m, None);
        }
        let j = s.judge(m, &cfg);
        assert!(j.hot, "{j:?}");
        assert!(j.p_value.unwrap() < cfg.p_threshold());
    }

    #[test]
    fn steady_principal_is_quiet_then_burst_is_hot() {
        let cfg = BaselineConfig::default();
        let mut s = Series::new(0, false);
        // 5 calls a minute (with a little variation) for 3 days.
        let hot = feed(&mut s, &cfg, 0, 3 * 1440, |m| 3 + (m % 5) as u32);
        assert!(hot.is_empty(), "steady traffic alerted at {hot:?}");
        // 2× the usual rate is not an anomaly (min_ratio 4).
        let start = 3 * 1440;
        let hot = feed(&mut s, &cfg, start, 30, |_| 10);
        assert!(hot.is_empty());
        // 10× for a few minutes is, within two minutes.
        let start = start + 30;
        let hot = feed(&mut s, &cfg, start, 5, |_| 50);
        assert!(!hot.is_empty());
        assert!(hot[0] - start <= 1, "{hot:?}");
    }

    #[test]
    fn seasonal_daily_job_becomes_normal() {
        let cfg = BaselineConfig::default();
        let mut s = Series::new(0, false);
        // 1 call every 10 minutes, plus a job at 02:00-02:10 every day doing 30 calls a minute.
        let mut hot_days = Vec::new();
        for day in 0..6i64 {
            let hot = feed(&mut s, &cfg, day * 1440, 1440, |m| {
                let in_day = m.rem_euclid(1440);
                if (120..130).contains(&in_day) {
                    30
                } else {
                    u32::from(m % 10 == 0)
                }
            });
            if !hot.is_empty() {
                hot_days.push(day);
            }
        }
        // Without warm-up in the model, day 0 alerts (flagged), day 1 too (one flagged day is
        // not enough), from day 2 on it is normal.
        assert!(
            hot_days.iter().all(|d| *d <= 2),
            "alerted on days {hot_days:?}"
        );
        // The same volume at another hour is still an anomaly.
        let m0 = 6 * 1440 + 14 * 60;
        let hot = feed(&mut s, &cfg, m0, 10, |_| 30);
        assert!(!hot.is_empty());
    }

    #[test]
    fn profile_learns_hour_of_day() {
        let cfg = BaselineConfig::default();
        let mut s = Series::new(0, false);
        feed(&mut s, &cfg, 0, 2 * 1440, |m| {
            if (m / 60) % 24 == 9 { 6 } else { 1 }
        });
        s.roll(2 * 1440, cfg.history_days);
        assert!((s.mean[9] - 6.0).abs() < 0.01, "{:?}", s.mean);
        assert!((s.mean[3] - 1.0).abs() < 0.01);
        assert_eq!(s.days[3], 2);
        let (lambda, mean, _) = s.expected(2 * 1440 + 10 * 60, 3);
        assert!(
            (mean - 6.0).abs() < 0.01,
            "neighbour hour 9 counts at 10:00"
        );
        assert!(lambda > 18.0);
    }

    #[test]
    fn day_of_week_profile_after_two_weeks() {
        let cfg = BaselineConfig::default();
        // Busy on weekdays 08-18 (6 a minute), nearly silent at weekends. Minute 0 is a
        // Thursday; day d is a weekend day when (d + 3) % 7 >= 5.
        let rate = |m: i64| -> u32 {
            let (d, h) = (m.div_euclid(1440), (m / 60) % 24);
            let weekend = (d + 3).rem_euclid(7) >= 5;
            if !weekend && (8..18).contains(&h) {
                6
            } else {
                u32::from(m % 30 == 0)
            }
        };
        let burst = |s: &mut Series, at: i64| -> bool {
            let mut hot = false;
            for m in at..at + 3 {
                s.roll(m, cfg.history_days);
                for _ in 0..13 {
                    s.add(m, None);
                }
                hot |= s.judge(m, &cfg).hot;
            }
            hot
        };
        let mut s = Series::new(0, true);
        feed(&mut s, &cfg, 0, 9 * 1440, rate);
        // Day 9 is a Saturday. With only the hourly profile (less than two weeks), a burst of
        // 13 a minute at 10:00 is below 4x the all-days mean of that hour.
        let mut early = s.clone();
        assert!(!burst(&mut early, 9 * 1440 + 600));
        feed(&mut s, &cfg, 9 * 1440, 14 * 1440, rate);
        // Day 23 is a Saturday too: the weekend profile knows 10:00 is quiet then.
        let at = 23 * 1440 + 600;
        assert!(s.weekly_ready(at));
        assert!(burst(&mut s.clone(), at));
        // A Monday (day 25) at 10:00 is busy as usual: no alert.
        let mut t = s.clone();
        let hot = feed(&mut t, &cfg, 23 * 1440, 3 * 1440, rate);
        assert!(hot.is_empty(), "{hot:?}");
        // The profile survives a snapshot.
        let back: Series = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!((to_bf16(3.0) == to_bf16(3.004)) && (from_bf16(to_bf16(0.05)) - 0.05).abs() < 1e-3);
    }

    #[test]
    fn silent_days_decay_the_profile() {
        let cfg = BaselineConfig::default();
        let mut s = Series::new(0, false);
        feed(&mut s, &cfg, 0, 1440, |_| 4);
        s.roll(1440 * 20, cfg.history_days);
        assert!(s.mean.iter().all(|m| *m < 0.5), "{:?}", s.mean);
    }
}
