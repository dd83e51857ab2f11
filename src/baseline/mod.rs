//! Insights-style anomaly detection on rolling baselines: per principal, the volume of write
//! management calls and of failed calls per minute; optionally, like CloudTrail Insights,
//! the volume per (account, region, API). See docs/baselines.md.
//!
//! Two stages, like the rest of the engine: [`Obs::from_event`] extracts a compact
//! observation in the parallel, stateless stage (only when a `baseline` document is loaded),
//! and [`Baselines::observe`] updates the models in event-time order and emits `anomaly`
//! findings: a Start when a series becomes anomalous and an End when it has been back to
//! normal for `end_after`, sharing one `incident`.

pub mod config;
pub mod model;
pub mod principal;
pub mod store;

use crate::event::Event;
use crate::finding::{Finding, Kind, RuleRef, stable_id};
use crate::time::{Millis, format_millis};
pub use config::{BaselineDoc, Config, RoleGrouping};
use model::{Active, Attributions, Series};
use principal::Class;
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

impl Metric {
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::WriteVolume => "write_volume",
            Metric::ErrorRate => "error_rate",
            Metric::ApiVolume => "api_volume",
        }
    }
}

/// The compact per-event features the baselines need.
#[derive(Debug, Clone)]
pub struct Obs {
    pub time: Millis,
    pub key: String,
    pub session: Option<String>,
    /// Counted as a write in `write_volume` (per the settings).
    pub write: bool,
    /// A write management call (for `api_volume`).
    pub api_write: bool,
    pub error: Option<String>,
    pub event_name: Option<String>,
    pub event_source: Option<String>,
    pub user_agent: Option<String>,
    pub source_ip: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub event_id: Option<String>,
}

impl Obs {
    /// The observation of one record at event time `time`, when it counts in any series.
    pub fn from_event(ev: &Event<'_>, time: Millis, cfg: &Config) -> Option<Obs> {
        let class = principal::classify(ev);
        if class == Class::Ignored {
            return None;
        }
        let error = ev.error_code();
        let is_write = class == Class::Write;
        let write = cfg.write_volume && is_write && (cfg.write_count_errors || error.is_none());
        let api_write = cfg.api_volume && is_write;
        let err = cfg.error_rate && error.is_some();
        // Reads still count as activity of the principal (its warm-up and idleness).
        if !write && !api_write && !err && !cfg.write_volume && !cfg.error_rate {
            return None;
        }
        let who = principal::who(ev, cfg.assumed_roles);
        let s = |v: Option<&str>| v.map(str::to_string);
        Some(Obs {
            time,
            key: who.key,
            session: who.session,
            write,
            api_write,
            error: if err { s(error) } else { None },
            event_name: s(ev.event_name()),
            event_source: s(ev.event_source()),
            user_agent: s(ev.top_str("userAgent")),
            source_ip: s(ev.top_str("sourceIPAddress")),
            region: s(ev.aws_region()),
            account: s(ev.recipient_account_id()),
            event_id: s(ev.event_id()),
        })
    }
}

/// Counters of the baselines.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub observations: u64,
    /// Series evicted at the `max_series` cap (the idlest first).
    pub evicted_series: u64,
    /// Series dropped after a whole history of silence.
    pub expired_series: u64,
    pub starts: u64,
    pub ends: u64,
    /// Observations older than the series' window ring (counted in the hour only).
    pub late_observations: u64,
}

/// Version of the snapshot format.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Everything the baselines learned, to persist and restore.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    /// Newest event minute seen.
    pub last_minute: Option<i64>,
    pub stats: Stats,
    pub series: Vec<(Metric, String, Series)>,
}

/// The per-series models and the open anomalies.
pub struct Baselines {
    cfg: Config,
    rule: RuleRef,
    series: HashMap<(Metric, String), Series>,
    active: BTreeSet<(Metric, String)>,
    last_minute: Option<i64>,
    last_sweep: i64,
    pub stats: Stats,
}

fn minute_of(t: Millis) -> i64 {
    t.div_euclid(60_000)
}

impl Baselines {
    pub fn new(doc: &BaselineDoc) -> Baselines {
        Baselines {
            cfg: doc.config.clone(),
            rule: RuleRef {
                id: doc.meta.id.clone(),
                title: doc.meta.title.clone(),
                level: doc.meta.level,
                tags: doc.meta.tags.clone(),
            },
            series: HashMap::new(),
            active: BTreeSet::new(),
            last_minute: None,
            last_sweep: i64::MIN,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Tracked series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The learned state (series sorted by metric and key, so snapshots are reproducible).
    pub fn snapshot(&self) -> Snapshot {
        let mut series: Vec<(Metric, String, Series)> = self
            .series
            .iter()
            .map(|((m, k), s)| (*m, k.clone(), s.clone()))
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
        self.series.clear();
        for (m, k, s) in series {
            if s.active.is_some() {
                self.active.insert((m, k.clone()));
            }
            self.series.insert((m, k), s);
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
        let end_after = i64::from(self.cfg.end_after_minutes);
        let due: Vec<(Metric, String)> = self
            .active
            .iter()
            .filter(|k| {
                self.series
                    .get(*k)
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
            let before = self.series.len();
            self.series
                .retain(|_, s| s.active.is_some() || s.last_minute >= horizon);
            self.stats.expired_series += (before - self.series.len()) as u64;
        }
    }

    /// End of input: every open anomaly ends, with `end_reason` saying whether it had
    /// already returned to normal or was still anomalous when the input ended.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        let end_after = i64::from(self.cfg.end_after_minutes);
        let keys: Vec<(Metric, String)> = self.active.iter().cloned().collect();
        let last = self.last_minute.unwrap_or(0);
        for k in keys {
            let Some(hot) = self
                .series
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

    /// Makes room for one more series: at the cap, the idlest 1% (at least one) go.
    fn make_room(&mut self) {
        if self.series.len() < self.cfg.max_series {
            return;
        }
        let n = (self.cfg.max_series / 100).max(1);
        let mut idle: Vec<(i64, (Metric, String))> = self
            .series
            .iter()
            .filter(|(_, s)| s.active.is_none())
            .map(|(k, s)| (s.last_minute, k.clone()))
            .collect();
        idle.sort();
        for (_, k) in idle.into_iter().take(n) {
            self.series.remove(&k);
            self.stats.evicted_series += 1;
        }
    }

    /// Takes one observation (in event-time order), appending any findings to `out`.
    pub fn observe(&mut self, obs: &Obs, out: &mut Vec<Finding>) {
        self.advance(obs.time, out);
        self.stats.observations += 1;
        // Every principal series starts at the principal's first activity (read or write),
        // so warm-up is per principal: a first error after a week of reads is judged.
        if self.cfg.write_volume {
            self.observe_in(Metric::WriteVolume, obs.key.clone(), obs, obs.write, out);
        }
        if self.cfg.error_rate {
            let counts = obs.error.is_some();
            self.observe_in(Metric::ErrorRate, obs.key.clone(), obs, counts, out);
        }
        if obs.api_write {
            let key = format!(
                "{}|{}|{}:{}",
                obs.account.as_deref().unwrap_or("-"),
                obs.region.as_deref().unwrap_or("-"),
                obs.event_source.as_deref().unwrap_or("-"),
                obs.event_name.as_deref().unwrap_or("-"),
            );
            self.observe_in(Metric::ApiVolume, key, obs, true, out);
        }
    }

    fn observe_in(
        &mut self,
        metric: Metric,
        key: String,
        obs: &Obs,
        counts: bool,
        out: &mut Vec<Finding>,
    ) {
        let minute = minute_of(obs.time);
        let k = (metric, key);
        if !self.series.contains_key(&k) {
            self.make_room();
        }
        let cfg = &self.cfg;
        let s = self
            .series
            .entry(k.clone())
            .or_insert_with(|| Series::new(minute));
        s.roll(minute, cfg.history_days);
        if !counts {
            s.touch(minute);
            return;
        }
        let name = match metric {
            Metric::ErrorRate => obs.error.as_deref(),
            _ => obs.event_name.as_deref(),
        };
        s.add(minute, name);
        if s.last_minute - minute >= model::RING as i64 {
            self.stats.late_observations += 1;
        }
        let now = s.last_minute;
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
            // The window's events before this one are counted, not attributed.
            count: u64::from(j.observed.saturating_sub(1)),
            attrs: Attributions::default(),
            first_ids: Vec::new(),
            last_ids: std::collections::VecDeque::new(),
            account: obs.account.clone(),
            region: obs.region.clone(),
        };
        record(&mut a, obs);
        s.mark_anomalous();
        self.stats.starts += 1;
        let f = start_finding(&self.rule, cfg, metric, &k.1, &a, s, obs);
        s.active = Some(Box::new(a));
        self.active.insert(k);
        out.push(f);
    }

    fn end(&mut self, k: &(Metric, String), t: Millis, reason: &str, out: &mut Vec<Finding>) {
        self.active.remove(k);
        let Some(s) = self.series.get_mut(k) else {
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
    cfg: &Config,
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
    let details = serde_json::json!({
        "phase": "start",
        "metric": metric.as_str(),
        "series": key,
        "session_sample": obs.session,
        "window_minutes": w,
        "baseline": baseline_json(s, a),
        "observed": {
            "in_window": a.observed_in_window,
            "average_per_minute": f64::from(a.observed_in_window) / f64::from(w),
        },
        "statistic": statistic_json(cfg, a),
        "started_at": format_millis(a.start_time),
        "attributions": attributions_json(&a.attrs),
    });
    Finding {
        id,
        incident,
        kind: Kind::Anomaly,
        rule: rule.clone(),
        time: Some(format_millis(obs.time)),
        principal: key.to_string(),
        account: a.account.clone(),
        region: a.region.clone(),
        event_ids: ids(a),
        event_count: u64::from(a.observed_in_window),
        summary,
        details,
        event: None,
        time_ms: Some(obs.time),
        suppress_key: None,
    }
}

/// Adds one observation to an open anomaly.
fn record(a: &mut Active, obs: &Obs) {
    a.count += 1;
    let at = &mut a.attrs;
    if let Some(v) = &obs.event_name {
        at.event_names.add(v);
    }
    if let Some(v) = &obs.user_agent {
        at.user_agents.add(v);
    }
    if let Some(v) = &obs.source_ip {
        at.source_ips.add(v);
    }
    if let Some(v) = &obs.region {
        at.regions.add(v);
    }
    if let Some(v) = &obs.error {
        at.error_codes.add(v);
    }
    if let Some(v) = &obs.session {
        at.sessions.add(v);
    }
    if let Some(id) = &obs.event_id {
        if a.first_ids.len() < model::IDS_KEPT {
            a.first_ids.push(id.clone());
        } else {
            a.last_ids.push_back(id.clone());
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
    match metric {
        Metric::WriteVolume => format!("{} made {n} write calls", principal::display(key)),
        Metric::ErrorRate => format!("{} had {n} failed calls", principal::display(key)),
        Metric::ApiVolume => format!("{key} was called {n} times"),
    }
}

/// ` (RunInstances 380, CreateTags 32)`.
fn names_part(at: &Attributions, metric: Metric) -> String {
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

fn baseline_json(s: &Series, a: &Active) -> serde_json::Value {
    let total: f32 = s.names.iter().map(|(_, c)| c).sum();
    let mut names: Vec<&(String, f32)> = s.names.iter().collect();
    names.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    let usual: Vec<serde_json::Value> = names
        .iter()
        .map(|(n, c)| serde_json::json!({"value": n, "share": if total > 0.0 { f64::from(c / total) } else { 0.0 }}))
        .collect();
    serde_json::json!({
        "average_per_minute": a.expected_per_minute,
        "expected_in_window": a.expected_in_window,
        "days_of_history": s.days_of_history(),
        "hour_of_day": a.start_minute.div_euclid(60).rem_euclid(24),
        "usual_names": usual,
    })
}

fn statistic_json(cfg: &Config, a: &Active) -> serde_json::Value {
    serde_json::json!({
        "test": "poisson_upper_tail",
        "p_value": a.p_value,
        "threshold": cfg.p_threshold(),
        "min_calls": cfg.min_calls,
        "min_ratio": cfg.min_ratio,
        "ratio": if a.expected_in_window > 0.0 { f64::from(a.observed_in_window) / a.expected_in_window } else { 0.0 },
    })
}

fn attributions_json(at: &Attributions) -> serde_json::Value {
    let c = |c: &model::Counter| -> serde_json::Value {
        let mut v: Vec<serde_json::Value> = c
            .top(5)
            .into_iter()
            .map(|(value, count)| serde_json::json!({"value": value, "count": count}))
            .collect();
        if c.other > 0 {
            v.push(serde_json::json!({"value": "(other)", "count": c.other}));
        }
        serde_json::Value::Array(v)
    };
    serde_json::json!({
        "event_names": c(&at.event_names),
        "user_agents": c(&at.user_agents),
        "source_ips": c(&at.source_ips),
        "regions": c(&at.regions),
        "error_codes": c(&at.error_codes),
        "sessions": c(&at.sessions),
    })
}

#[allow(clippy::too_many_arguments)]
fn end_finding(
    rule: &RuleRef,
    cfg: &Config,
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
    let details = serde_json::json!({
        "phase": "end",
        "metric": metric.as_str(),
        "series": key,
        "window_minutes": cfg.window_minutes,
        "baseline": baseline_json(s, a),
        "observed": {
            "total": a.count,
            "average_per_minute": a.count as f64 / minutes as f64,
        },
        "statistic": statistic_json(cfg, a),
        "started_at": format_millis(a.start_time),
        "normal_since": format_millis((a.last_hot_minute + 1) * 60_000),
        "duration_minutes": minutes,
        "end_reason": reason,
        "attributions": attributions_json(&a.attrs),
    });
    Finding {
        id,
        incident,
        kind: Kind::Anomaly,
        rule: rule.clone(),
        time: Some(format_millis(t)),
        principal: key.to_string(),
        account: a.account.clone(),
        region: a.region.clone(),
        event_ids: ids(a),
        event_count: a.count,
        summary,
        details,
        event: None,
        time_ms: Some(t),
        suppress_key: None,
    }
}

#[cfg(test)]
mod tests;
