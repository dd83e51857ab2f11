//! Insights-style anomaly detection on rolling baselines: per principal, the volume of write
//! management calls and of failed calls per minute; optionally, like CloudTrail Insights,
//! the volume per (account, region, API). See docs/baselines.md.
//!
//! Two stages, like the rest of the engine: [`Obs::from_event_in`] extracts a compact
//! observation in the parallel, stateless stage (only when a `baseline` document is loaded),
//! and [`Baselines::observe`] updates the models in event-time order and emits `anomaly`
//! findings: a Start when a series becomes anomalous and an End when it has been back to
//! normal for `end_after`, sharing one `incident`.

pub mod model;
pub(crate) mod principal;
pub(crate) mod recent;
pub mod store;

use crate::event::Event;
use crate::event::identity::{Class, classify};
use crate::finding::{
    AnomalyDetails, AnomalyPhase, Attributions, Body, Finding, Observed, RuleRef, Statistic,
    UsualRate, ValueCount, ValueShare,
};
pub use crate::rules::baseline::{BaselineConfig, BaselineDoc, RoleGrouping};
use crate::util::ids::stable_id;
use crate::util::time::{Millis, format_millis};
use model::{Active, CallCounters, Series};
use recent::Recent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// What is counted in a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Write management calls per principal (successful only, unless `count_errors`).
    WriteVolume,
    /// Calls with an `errorCode` per principal.
    ErrorRate,
    /// Write management calls per account, region and API (like CloudTrail Insights).
    ApiVolume,
}

/// Every metric, in order.
pub const METRICS: [Metric; 3] = [Metric::WriteVolume, Metric::ErrorRate, Metric::ApiVolume];

impl Metric {
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::WriteVolume => "write_volume",
            Metric::ErrorRate => "error_rate",
            Metric::ApiVolume => "api_volume",
        }
    }
}

/// Text fields of an observation, in their order inside [`Obs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Key = 0,
    Session,
    Error,
    EventName,
    EventSource,
    UserAgent,
    SourceIp,
    Region,
    Account,
    EventId,
}

const FIELDS: usize = 10;

/// The compact per-event features the baselines need: flags, the event time and the text
/// fields packed into one allocation (this is made for every management record, in the
/// parallel stage, and waits in the re-order buffer).
#[derive(Debug, Clone)]
pub struct Obs {
    pub time: Millis,
    /// Counted as a write in `write_volume` (per the settings).
    pub write: bool,
    /// A write management call (for `api_volume`).
    pub api_write: bool,
    text: Box<str>,
    /// End offset of each field in `text`.
    ends: [u32; FIELDS],
    /// Bit `i`: field `i` is present.
    present: u16,
}

impl Obs {
    /// An observation from its parts (`fields` in [`Field`] order; `Key` must be present).
    pub fn new(time: Millis, write: bool, api_write: bool, fields: [Option<&str>; FIELDS]) -> Obs {
        let mut obs = Obs::empty(time, write, api_write);
        obs.fill(fields);
        obs
    }

    /// [`Obs::new`] made in `slot`, its own place: made elsewhere and moved there, the copy
    /// read back, in 16-byte loads, offsets and flags written by narrower stores (two
    /// store-forwarding stalls per record).
    #[inline(always)]
    fn make_in(
        slot: &mut Option<Obs>,
        time: Millis,
        write: bool,
        api_write: bool,
        fields: [Option<&str>; FIELDS],
    ) {
        slot.insert(Obs::empty(time, write, api_write)).fill(fields);
    }

    #[inline(always)]
    fn empty(time: Millis, write: bool, api_write: bool) -> Obs {
        Obs {
            time,
            write,
            api_write,
            text: Box::default(),
            ends: [0; FIELDS],
            present: 0,
        }
    }

    /// Sets the text fields (see [`Obs::new`]).
    #[inline(always)]
    fn fill(&mut self, fields: [Option<&str>; FIELDS]) {
        let len: usize = fields.iter().map(|f| f.map_or(0, str::len)).sum();
        let mut text = String::with_capacity(len);
        for (i, f) in fields.iter().enumerate() {
            if let Some(v) = f {
                text.push_str(v);
                self.present |= 1 << i;
            }
            // Offsets fit: a record is at most a few MB (CloudTrail's limit is far lower).
            self.ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        self.text = text.into_boxed_str();
    }

    /// A text field, when present.
    pub fn get(&self, f: Field) -> Option<&str> {
        let i = f as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..self.ends[i] as usize)
    }

    /// Asks for the observation's text to be fetched into the cache (see
    /// [`crate::util::prefetch`]): it is read on another thread than the one that made it.
    pub fn prefetch(&self) {
        crate::util::prefetch::read(self.text.as_ptr());
    }

    /// The grouping key of the principal.
    pub fn key(&self) -> &str {
        self.get(Field::Key).unwrap_or("")
    }

    /// The error code, when the record failed and `error_rate` counts it.
    pub fn error(&self) -> Option<&str> {
        self.get(Field::Error)
    }

    /// The observation of one record at event time `time`, made in `slot` (the output's own
    /// place: made elsewhere and moved, it cost a store-forwarding stall) when it counts in any
    /// series; `slot` is left as it is
    /// otherwise.
    pub fn from_event_in(
        slot: &mut Option<Obs>,
        ev: &Event<'_>,
        time: Millis,
        cfg: &BaselineConfig,
    ) {
        let class = classify(ev);
        if class == Class::Ignored {
            return;
        }
        let error = ev.error_code();
        let is_write = class == Class::Write;
        let write = cfg.write_volume && is_write && (cfg.write_count_errors || error.is_none());
        let api_write = cfg.api_volume && is_write;
        let err = cfg.error_rate && error.is_some();
        // Reads still count as activity of the principal (its warm-up and idleness).
        if !write && !api_write && !err && !cfg.write_volume && !cfg.error_rate {
            return;
        }
        let who = principal::who(ev, cfg.assumed_roles);
        if !write && !api_write && !err {
            // Activity only (most records are reads): the key is all that is needed.
            let mut fields = [None; FIELDS];
            fields[Field::Key as usize] = Some(&*who.key);
            Self::make_in(slot, time, false, false, fields);
            return;
        }
        Self::make_in(
            slot,
            time,
            write,
            api_write,
            [
                Some(&who.key),
                who.session,
                if err { error } else { None },
                ev.event_name(),
                ev.event_source(),
                ev.top_str("userAgent"),
                ev.top_str("sourceIPAddress"),
                ev.aws_region(),
                ev.recipient_account_id(),
                ev.event_id(),
            ],
        );
    }
}

/// Counters of the baselines.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BaselineStats {
    pub observations: u64,
    /// Series evicted at the `max_series` cap (the idlest first).
    pub evicted_series: u64,
    /// Series dropped after a whole history of silence.
    pub expired_series: u64,
    pub starts: u64,
    pub ends: u64,
    /// Observations older than the series' window ring (counted in the hour only).
    pub late_observations: u64,
    /// Principals seen for the first time (or again after eviction or expiry): the
    /// first-seen signal (never an `anomaly` finding).
    #[serde(default)]
    pub new_principals: u64,
    /// The first [`NEW_PRINCIPAL_SAMPLES`] of them.
    #[serde(default)]
    pub new_principal_samples: Vec<String>,
    /// Recent observations dropped at the attribution buffer's cap while still within the
    /// window (a Start then attributes only part of its window).
    #[serde(default)]
    pub attribution_drops: u64,
}

/// New principals' keys kept in [`BaselineStats::new_principal_samples`].
pub const NEW_PRINCIPAL_SAMPLES: usize = 20;

/// Version of the snapshot format.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Everything the baselines learned, to persist and restore.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    /// Newest event minute seen.
    pub last_minute: Option<i64>,
    pub stats: BaselineStats,
    pub series: Vec<(Metric, String, Series)>,
}

/// The series maps: looked up twice per record with a principal's key (an ARN, ~60 bytes). A
/// fixed-seed foldhash keeps them deterministic (as FNV did, byte by byte, at 3 % of a
/// backtest).
type SeriesMap<V> = HashMap<Box<str>, V, foldhash::fast::FixedState>;

/// The per-series models and the open anomalies.
pub struct Baselines {
    cfg: BaselineConfig,
    rule: std::sync::Arc<RuleRef>,
    /// Series per metric (indexed by `Metric as usize`), keyed by text so lookups borrow.
    series: [SeriesMap<Series>; 3],
    active: BTreeSet<(Metric, Box<str>)>,
    last_minute: Option<i64>,
    last_sweep: i64,
    /// Recent counted observations of every series, for the attributions of a Start.
    recent: Recent,
    pub stats: BaselineStats,
    /// The `api_volume` key of the observation being taken (reused, not allocated each time).
    api_key: String,
}

fn minute_of(t: Millis) -> i64 {
    t.div_euclid(60_000)
}

impl Baselines {
    pub fn new(doc: &BaselineDoc) -> Baselines {
        Baselines {
            cfg: doc.config.clone(),
            rule: std::sync::Arc::new(RuleRef {
                id: doc.meta.id.clone(),
                title: doc.meta.title.clone(),
                level: doc.meta.level,
                tags: doc.meta.tags.clone(),
            }),
            series: Default::default(),
            active: BTreeSet::new(),
            last_minute: None,
            last_sweep: i64::MIN,
            recent: Recent::new(recent::RECENT_CAP),
            stats: BaselineStats::default(),
            api_key: String::new(),
        }
    }

    pub fn config(&self) -> &BaselineConfig {
        &self.cfg
    }

    /// Tracked series.
    pub fn len(&self) -> usize {
        self.series.iter().map(SeriesMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, k: &(Metric, Box<str>)) -> Option<&Series> {
        self.series[k.0 as usize].get(&k.1)
    }

    /// The learned state (series sorted by metric and key, so snapshots are reproducible).
    pub fn snapshot(&self) -> Snapshot {
        let mut series: Vec<(Metric, String, Series)> = METRICS
            .iter()
            .flat_map(|m| {
                self.series[*m as usize]
                    .iter()
                    .map(|(k, s)| (*m, k.to_string(), s.clone()))
            })
            .collect();
        series.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Snapshot {
            version: SNAPSHOT_VERSION,
            last_minute: self.last_minute,
            stats: self.stats.clone(),
            series,
        }
    }

    /// Continues from a snapshot (series beyond the cap are dropped, the idlest first).
    pub fn restore(&mut self, snap: Snapshot) {
        self.last_minute = snap.last_minute;
        self.stats = snap.stats;
        let mut series = snap.series;
        if series.len() > self.cfg.max_series {
            series.sort_by_key(|(_, _, s)| std::cmp::Reverse(s.last_minute));
            self.stats.evicted_series += (series.len() - self.cfg.max_series) as u64;
            series.truncate(self.cfg.max_series);
        }
        self.active.clear();
        // The recent observations are not in a snapshot: a Start in the first window after
        // a restore attributes only what arrived since.
        self.recent.clear();
        self.series = Default::default();
        for (m, k, s) in series {
            let k: Box<str> = k.into();
            if s.active.is_some() {
                self.active.insert((m, k.clone()));
            }
            self.series[m as usize].insert(k, s);
        }
    }

    /// Advances event time to `t`: anomalies quiet for `end_after` end; series silent for a
    /// whole history are dropped (checked once an hour of event time).
    pub fn advance(&mut self, t: Millis, out: &mut Vec<Finding>) {
        let minute = minute_of(t);
        if self.last_minute.is_some_and(|l| minute <= l) {
            return;
        }
        self.last_minute = Some(minute);
        // A window ending at `minute` or later needs nothing older than this.
        self.recent
            .evict_before(minute - i64::from(self.cfg.window_minutes));
        let end_after = i64::from(self.cfg.end_after_minutes);
        let due: Vec<(Metric, Box<str>)> = self
            .active
            .iter()
            .filter(|k| {
                self.get(k)
                    .and_then(|s| s.active.as_ref())
                    .is_none_or(|a| a.last_hot_minute + end_after <= minute)
            })
            .cloned()
            .collect();
        for k in due {
            self.end(&k, minute * 60_000, "returned_to_normal", out);
        }
        if minute.saturating_sub(self.last_sweep) >= 60 {
            self.last_sweep = minute;
            let horizon = minute - i64::from(self.cfg.history_days) * 1440;
            let before = self.len();
            for map in &mut self.series {
                map.retain(|_, s| s.active.is_some() || s.last_minute >= horizon);
            }
            self.stats.expired_series += (before - self.len()) as u64;
        }
    }

    /// End of input: every open anomaly ends, with `end_reason` saying whether it had
    /// already returned to normal or was still anomalous when the input ended.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        let end_after = i64::from(self.cfg.end_after_minutes);
        let keys: Vec<(Metric, Box<str>)> = self.active.iter().cloned().collect();
        let last = self.last_minute.unwrap_or(0);
        for k in keys {
            let Some(hot) = self
                .get(&k)
                .and_then(|s| s.active.as_ref())
                .map(|a| a.last_hot_minute)
            else {
                self.active.remove(&k);
                continue;
            };
            if hot + end_after <= last {
                self.end(&k, last * 60_000, "returned_to_normal", out);
            } else {
                self.end(&k, (last + 1) * 60_000, "end_of_input", out);
            }
        }
    }

    /// Makes room for one more series: at the `max_series` cap, the idlest 1 % (at least one,
    /// none in an anomaly) go.
    fn make_room(
        series: &mut [SeriesMap<Series>; 3],
        cfg: &BaselineConfig,
        stats: &mut BaselineStats,
    ) {
        if series.iter().map(SeriesMap::len).sum::<usize>() < cfg.max_series {
            return;
        }
        let n = (cfg.max_series / 100).max(1);
        let mut idle: Vec<(i64, Metric, Box<str>)> = METRICS
            .iter()
            .flat_map(|m| {
                series[*m as usize]
                    .iter()
                    .filter(|(_, s)| s.active.is_none())
                    .map(|(k, s)| (s.last_minute, *m, k.clone()))
            })
            .collect();
        idle.sort();
        for (_, m, k) in idle.into_iter().take(n) {
            series[m as usize].remove(&k);
            stats.evicted_series += 1;
        }
    }

    /// A series seen for the first time (its principal's first, for the first metric).
    fn new_series<'s>(
        series: &'s mut [SeriesMap<Series>; 3],
        cfg: &BaselineConfig,
        stats: &mut BaselineStats,
        metric: Metric,
        key: &str,
        minute: i64,
    ) -> &'s mut Series {
        Self::make_room(series, cfg, stats);
        let first_of_principal = match metric {
            Metric::WriteVolume => true,
            Metric::ErrorRate => !cfg.write_volume,
            Metric::ApiVolume => false,
        };
        if first_of_principal {
            stats.new_principals += 1;
            if stats.new_principal_samples.len() < NEW_PRINCIPAL_SAMPLES {
                stats.new_principal_samples.push(key.to_string());
            }
        }
        let weekly = cfg.day_of_week && metric != Metric::ErrorRate;
        series[metric as usize]
            .entry(key.into())
            .or_insert_with(|| Series::new(minute, weekly))
    }

    /// Takes one observation (in event-time order), appending any findings to `out`.
    pub fn observe(&mut self, obs: &Obs, out: &mut Vec<Finding>) {
        self.advance(obs.time, out);
        self.stats.observations += 1;
        // Every principal series starts at the principal's first activity (read or write),
        // so warm-up is per principal: a first error after a week of reads is judged.
        if self.cfg.write_volume {
            self.observe_in(Metric::WriteVolume, obs.key(), obs, obs.write, out);
        }
        if self.cfg.error_rate {
            let counts = obs.error().is_some();
            self.observe_in(Metric::ErrorRate, obs.key(), obs, counts, out);
        }
        if obs.api_write {
            // `account|region|source:name`, in a buffer kept between observations.
            let mut key = std::mem::take(&mut self.api_key);
            key.clear();
            for (i, f) in [
                Field::Account,
                Field::Region,
                Field::EventSource,
                Field::EventName,
            ]
            .into_iter()
            .enumerate()
            {
                if i > 0 {
                    key.push(if i == 3 { ':' } else { '|' });
                }
                key.push_str(obs.get(f).unwrap_or("-"));
            }
            self.observe_in(Metric::ApiVolume, &key, obs, true, out);
            self.api_key = key;
        }
    }

    fn observe_in(
        &mut self,
        metric: Metric,
        key: &str,
        obs: &Obs,
        counts: bool,
        out: &mut Vec<Finding>,
    ) {
        let minute = minute_of(obs.time);
        let cfg = &self.cfg;
        // One lookup for a known series.
        let s = match self.series[metric as usize].get_mut(key) {
            Some(s) => s,
            None => Self::new_series(&mut self.series, cfg, &mut self.stats, metric, key, minute),
        };
        s.roll(minute, cfg.history_days);
        if !counts {
            s.touch(minute);
            return;
        }
        let name = match metric {
            Metric::ErrorRate => obs.error(),
            _ => obs.get(Field::EventName),
        };
        s.add(minute, name);
        if s.last_minute - minute >= model::RING as i64 {
            self.stats.late_observations += 1;
        }
        let now = s.last_minute;
        let window = i64::from(cfg.window_minutes);
        let id = recent::series_id(metric, key);
        if now - minute < window {
            let dropped = self.recent.dropped;
            self.recent.push(id, minute, obs);
            self.stats.attribution_drops += self.recent.dropped - dropped;
        }
        let j = s.judge(now, cfg);
        s.note_peak(now, j.observed);
        let warm = (now - s.first_minute) * 60_000 >= cfg.warmup;
        let this_minute = s.minute_count(now);
        if s.active.is_some() {
            s.mark_anomalous();
        }
        if let Some(a) = s.active.as_mut() {
            record(a, obs);
            // The anomaly goes on while a minute alone is above its share of the floors.
            let w = f64::from(cfg.window_minutes);
            let bar = (f64::from(cfg.min_calls) / w).max(cfg.min_ratio * a.expected_per_minute);
            if f64::from(this_minute) >= bar {
                a.last_hot_minute = now;
            }
            return;
        }
        if !(j.hot && warm) {
            return;
        }
        let mut a = Active {
            start_minute: now,
            start_time: obs.time,
            last_hot_minute: now,
            expected_per_minute: j.lambda / f64::from(cfg.window_minutes),
            expected_in_window: j.lambda,
            observed_in_window: j.observed,
            p_value: j.p_value.unwrap_or(0.0),
            learn_cap: ((2.0 * j.lambda / f64::from(cfg.window_minutes)).ceil() as u16).max(1),
            count: 0,
            attrs: CallCounters::default(),
            first_ids: Vec::new(),
            last_ids: std::collections::VecDeque::new(),
            account: obs.get(Field::Account).map(str::to_string),
            region: obs.get(Field::Region).map(str::to_string),
        };
        // The whole window that fired is attributed, from the recent observations (this one
        // included); the End goes on from there, so nothing is counted twice.
        for o in self.recent.of(id, now - window + 1, now) {
            record(&mut a, o);
        }
        if a.count == 0 {
            record(&mut a, obs);
        }
        // Records of the window the buffer no longer has (at its cap) are counted only.
        a.count = a.count.max(u64::from(j.observed));
        s.mark_anomalous();
        self.stats.starts += 1;
        let f = start_finding(&self.rule, cfg, metric, key, &a, s, obs);
        s.active = Some(Box::new(a));
        self.active.insert((metric, key.into()));
        out.push(f);
    }

    fn end(&mut self, k: &(Metric, Box<str>), t: Millis, reason: &str, out: &mut Vec<Finding>) {
        self.active.remove(k);
        let Some(s) = self.series[k.0 as usize].get_mut(&k.1) else {
            return;
        };
        let Some(a) = s.active.take() else {
            return;
        };
        self.stats.ends += 1;
        let f = end_finding(&self.rule, &self.cfg, k.0, &k.1, &a, s, t, reason);
        out.push(f);
    }
}

#[allow(clippy::too_many_arguments)]
fn start_finding(
    rule: &RuleRef,
    cfg: &BaselineConfig,
    metric: Metric,
    key: &str,
    a: &Active,
    s: &Series,
    obs: &Obs,
) -> Finding {
    let w = cfg.window_minutes;
    let incident = stable_id(&["anomaly", metric.as_str(), key, &a.start_minute.to_string()]);
    let id = stable_id(&[
        "anomaly",
        metric.as_str(),
        key,
        &a.start_minute.to_string(),
        "start",
    ]);
    let summary = format!(
        "{}: {} in {w} min{}; usually {} per {w} min at this hour.",
        rule.title,
        what(metric, key, u64::from(a.observed_in_window)),
        names_part(&a.attrs, metric),
        round(a.expected_in_window),
    );
    let details = AnomalyDetails {
        phase: AnomalyPhase::Start,
        metric: metric.as_str().to_string(),
        series: key.to_string(),
        session_sample: Some(
            obs.get(Field::Session)
                .map(|s| recent::bounded(s).to_string()),
        ),
        window_minutes: w,
        baseline: baseline_json(s, a),
        observed: Observed {
            in_window: Some(a.observed_in_window),
            total: None,
            average_per_minute: f64::from(a.observed_in_window) / f64::from(w),
        },
        statistic: statistic_json(cfg, a),
        started_at: format_millis(a.start_time),
        attributions: attributions_json(&a.attrs),
        normal_since: None,
        duration_minutes: None,
        end_reason: None,
    };
    Finding::new(id, rule.clone(), Body::Anomaly(Box::new(details)))
        .with_incident(incident)
        .with_time(Some(format_millis(obs.time)), Some(obs.time))
        .with_who(key.to_string(), a.account.clone(), a.region.clone())
        .with_events(ids(a), u64::from(a.observed_in_window))
        .with_summary(summary)
}

/// Adds one observation to an open anomaly.
fn record(a: &mut Active, obs: &Obs) {
    a.count += 1;
    let at = &mut a.attrs;
    for (field, counter) in [
        (Field::EventName, &mut at.event_names),
        (Field::UserAgent, &mut at.user_agents),
        (Field::SourceIp, &mut at.source_ips),
        (Field::Region, &mut at.regions),
        (Field::Error, &mut at.error_codes),
        (Field::Session, &mut at.sessions),
    ] {
        if let Some(v) = obs.get(field) {
            counter.add(recent::bounded(v));
        }
    }
    if let Some(id) = obs.get(Field::EventId) {
        if a.first_ids.len() < model::IDS_KEPT {
            a.first_ids.push(id.to_string());
        } else {
            a.last_ids.push_back(id.to_string());
            if a.last_ids.len() > model::IDS_KEPT {
                a.last_ids.pop_front();
            }
        }
    }
}

fn ids(a: &Active) -> Vec<String> {
    a.first_ids
        .iter()
        .chain(a.last_ids.iter())
        .cloned()
        .collect()
}

fn round(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// `role deploy-bot made 412 write calls`.
fn what(metric: Metric, key: &str, n: u64) -> String {
    use crate::util::text::count;
    match metric {
        Metric::WriteVolume => format!(
            "{} made {}",
            principal::display(key),
            count(n, "write call")
        ),
        Metric::ErrorRate => format!(
            "{} had {} refused",
            principal::display(key),
            count(n, "call")
        ),
        Metric::ApiVolume => format!("{key} was called {}", count(n, "time")),
    }
}

/// ` (RunInstances 380, CreateTags 32)`.
fn names_part(at: &CallCounters, metric: Metric) -> String {
    let c = match metric {
        Metric::ErrorRate => &at.error_codes,
        _ => &at.event_names,
    };
    let top = c.top(3);
    if top.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = top.iter().map(|(v, n)| format!("{v} {n}")).collect();
    format!(" ({})", parts.join(", "))
}

fn baseline_json(s: &Series, a: &Active) -> UsualRate {
    let total: f32 = s.names.iter().map(|(_, c)| c).sum();
    let mut names: Vec<&(String, f32)> = s.names.iter().collect();
    names.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    let usual_names = names
        .iter()
        .map(|(n, c)| ValueShare {
            value: n.clone(),
            share: if total > 0.0 {
                f64::from(c / total)
            } else {
                0.0
            },
        })
        .collect();
    UsualRate {
        average_per_minute: a.expected_per_minute,
        expected_in_window: a.expected_in_window,
        days_of_history: s.days_of_history(),
        hour_of_day: a.start_minute.div_euclid(60).rem_euclid(24),
        usual_names,
    }
}

fn statistic_json(cfg: &BaselineConfig, a: &Active) -> Statistic {
    Statistic {
        test: "poisson_upper_tail".into(),
        p_value: a.p_value,
        threshold: cfg.p_threshold(),
        min_calls: cfg.min_calls,
        min_ratio: cfg.min_ratio,
        ratio: if a.expected_in_window > 0.0 {
            f64::from(a.observed_in_window) / a.expected_in_window
        } else {
            0.0
        },
    }
}

fn attributions_json(at: &CallCounters) -> Attributions {
    let c = |c: &model::Counter| -> Vec<ValueCount> {
        let mut v: Vec<ValueCount> = c
            .top(5)
            .into_iter()
            .map(|(value, count)| ValueCount { value, count })
            .collect();
        if c.other > 0 {
            v.push(ValueCount {
                value: "(other)".into(),
                count: c.other,
            });
        }
        v
    };
    Attributions {
        event_names: c(&at.event_names),
        user_agents: c(&at.user_agents),
        source_ips: c(&at.source_ips),
        regions: c(&at.regions),
        error_codes: c(&at.error_codes),
        sessions: c(&at.sessions),
    }
}

#[allow(clippy::too_many_arguments)]
fn end_finding(
    rule: &RuleRef,
    cfg: &BaselineConfig,
    metric: Metric,
    key: &str,
    a: &Active,
    s: &Series,
    t: Millis,
    reason: &str,
) -> Finding {
    let start = a.start_minute.to_string();
    let incident = stable_id(&["anomaly", metric.as_str(), key, &start]);
    let id = stable_id(&["anomaly", metric.as_str(), key, &start, "end"]);
    let minutes = (a.last_hot_minute - a.start_minute + 1).max(1);
    let expected = a.expected_per_minute * minutes as f64;
    let summary = format!(
        "{} (ended): {} in {minutes} min{}; usually {} per {minutes} min at this hour.",
        rule.title,
        what(metric, key, a.count),
        names_part(&a.attrs, metric),
        round(expected),
    );
    let details = AnomalyDetails {
        phase: AnomalyPhase::End,
        metric: metric.as_str().to_string(),
        series: key.to_string(),
        session_sample: None,
        window_minutes: cfg.window_minutes,
        baseline: baseline_json(s, a),
        observed: Observed {
            in_window: None,
            total: Some(a.count),
            average_per_minute: a.count as f64 / minutes as f64,
        },
        statistic: statistic_json(cfg, a),
        started_at: format_millis(a.start_time),
        attributions: attributions_json(&a.attrs),
        normal_since: Some(format_millis((a.last_hot_minute + 1) * 60_000)),
        duration_minutes: Some(minutes),
        end_reason: Some(reason.to_string()),
    };
    Finding::new(id, rule.clone(), Body::Anomaly(Box::new(details)))
        .with_incident(incident)
        .with_time(Some(format_millis(t)), Some(t))
        .with_who(key.to_string(), a.account.clone(), a.region.clone())
        .with_events(ids(a), a.count)
        .with_summary(summary)
}

#[cfg(test)]
mod tests;
