//! The pipeline every driver runs: the stateless stage ([`Evaluator`]) and the stateful stage
//! (correlations, baselines, then incidents) in event-time order, with its state saved and
//! restored across restarts.

use super::Settings;
use super::dedup::{effective, set_correlation_key};
use super::evaluate::{Evaluated, Evaluator};
use crate::baseline::{BaselineStats, Baselines, SNAPSHOT_VERSION, Snapshot};
use crate::correlate::{CorrelationSnapshotError, CorrelationStats, Correlator};
use crate::engine::incident::{Alert, AlertSettings, AlertStats, Incidents};
use crate::event::Event;
use crate::finding::Finding;
use crate::rules::RuleSet;
use crate::rules::correlation::Suppress;
use crate::rules::exceptions::Exceptions;
use crate::util::time::{Millis, parse_event_time};
use std::collections::HashMap;

/// A saved engine state that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unsupported engine state version {0}")]
    Version(serde_json::Value),
    #[error("unsupported baseline state version {0}")]
    BaselineVersion(u32),
    #[error("engine state: {0}")]
    Invalid(String),
}

/// What the stateful stage counted.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    /// Matches dropped by the exceptions in [`Pipeline::feed`] (parallel drivers count their
    /// own evaluators').
    pub excepted: u64,
    /// Late hits, evicted and expired group keys of the correlations.
    pub correlation: CorrelationStats,
    /// Series the baselines track and their counters, when baselines run.
    pub baselines: Option<(usize, BaselineStats)>,
    /// Incidents and alerts, when the alert stage runs.
    pub alerts: Option<AlertStats>,
}

/// The engine's state, serialised when written (see [`Pipeline::snapshot_ref`]).
pub struct SnapshotRef<'a, 'r>(&'a Pipeline<'r>);

impl serde::Serialize for SnapshotRef<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let p = self.0;
        // The correlator's own snapshot is JSON already: embedded as it is.
        let corr = String::from_utf8(p.correlator.snapshot(p.rules.plans()))
            .ok()
            .and_then(|j| serde_json::value::RawValue::from_string(j).ok());
        let baselines = p.baselines.as_ref().map(Baselines::snapshot);
        let incidents = p.incidents.as_ref().map(Incidents::snapshot);
        let mut out = s.serialize_struct("EngineSnapshot", 4)?;
        out.serialize_field("version", &1)?;
        out.serialize_field("correlator", &corr)?;
        out.serialize_field("baselines", &baselines)?;
        // Open incidents (when the alert stage runs): a restart neither repeats an alert nor
        // loses an update. Absent in older snapshots.
        out.serialize_field("incidents", &incidents)?;
        out.end()
    }
}

/// Both stages of the engine over one rule set.
pub struct Pipeline<'r> {
    rules: &'r RuleSet,
    evaluator: Evaluator<'r>,
    /// Dedup settings (`suppress:`) per rule or correlation id (absent: rule and principal).
    suppress: HashMap<String, Suppress>,
    correlator: Correlator,
    /// Allowed lateness (event time).
    lateness: Millis,
    /// Per-principal rate models, when a `baseline` document is loaded.
    baselines: Option<Baselines>,
    /// The alert stage, when alerts are asked for ([`Pipeline::enable_alerts`]).
    incidents: Option<Incidents>,
    /// Alerts decided and not yet taken ([`Pipeline::drain_alerts`]).
    alerts: Vec<Alert>,
    /// Findings of the record being pushed (kept for its capacity).
    produced: Vec<Finding>,
}

impl<'r> Pipeline<'r> {
    pub fn new(rules: &'r RuleSet, exceptions: &'r Exceptions, settings: &'r Settings) -> Self {
        let d = settings.default_suppress.as_ref();
        let suppress = rules
            .rules()
            .iter()
            .filter_map(|r| effective(&r.suppress, d).map(|s| (r.meta.id.clone(), s.clone())))
            .chain(rules.plans().plans.iter().filter_map(|p| {
                effective(&p.corr.def.suppress, d).map(|s| (p.corr.def.meta.id.clone(), s.clone()))
            }))
            .collect();
        Pipeline {
            rules,
            evaluator: Evaluator::new(rules, exceptions, settings),
            suppress,
            correlator: Correlator::new(rules.plans(), settings.lateness, settings.max_keys),
            lateness: settings.lateness,
            baselines: rules.baseline().map(Baselines::new),
            incidents: None,
            alerts: Vec::new(),
            produced: Vec::new(),
        }
    }

    /// Groups findings into incidents and decides alerts ([`crate::engine::incident`]); each finding
    /// then carries its incident's id.
    pub fn enable_alerts(&mut self, settings: AlertSettings) {
        // A rule's `suppress:` sets its incidents' dedup key (its `by` fields) and window.
        let windows = self
            .suppress
            .iter()
            .map(|(id, s)| (id.clone(), s.period))
            .collect();
        self.incidents = Some(Incidents::new(settings).with_rule_windows(windows));
    }

    /// Moves the alerts decided so far, in event-time order, to `out`.
    pub fn drain_alerts(&mut self, out: &mut Vec<Alert>) {
        out.append(&mut self.alerts);
    }

    /// The alert stage after the findings from `start` on were appended to `out`.
    fn feed_incidents(
        &mut self,
        out: &mut [Finding],
        start: usize,
        watermark: Option<Millis>,
        end: bool,
    ) {
        let Some(inc) = &mut self.incidents else {
            return;
        };
        inc.offer(&mut out[start..], watermark, &mut self.alerts);
        if end {
            inc.advance(None, &mut self.alerts);
        } else if watermark.is_some() {
            inc.advance(watermark, &mut self.alerts);
        }
    }

    /// Both stages for one record, fed in event-time order; `origin` says where it was read.
    /// Findings ready to go out are appended to `out`.
    pub fn feed(&mut self, ev: &Event<'_>, origin: Option<&str>, out: &mut Vec<Finding>) {
        let time = ev.event_time().and_then(parse_event_time);
        let mut evaluated = self.evaluator.evaluate_at(ev, time);
        if let Some(o) = origin {
            evaluated.set_origin(o);
        }
        self.push(time, evaluated, out);
    }

    /// A finding out of the stateful stage: a correlation's dedup key is read from its group.
    fn route(&mut self, mut f: Finding, out: &mut Vec<Finding>) {
        if let Some(s) = self.suppress.get(&f.rule.id) {
            set_correlation_key(s, &mut f);
        }
        out.push(f);
    }

    /// The stateful stage for one record's [`Evaluated`] (at event time `time`), in
    /// event-time order: findings ready to go out are appended to `out`.
    pub fn push(&mut self, time: Option<Millis>, mut evaluated: Evaluated, out: &mut Vec<Finding>) {
        self.push_mut(time, &mut evaluated, out);
    }

    /// [`Pipeline::push`] that leaves what it is done with to the caller: `evaluated` keeps its
    /// observation and its emptied vectors, so a parallel driver can drop them on the thread
    /// that made them.
    pub fn push_mut(
        &mut self,
        time: Option<Millis>,
        evaluated: &mut Evaluated,
        out: &mut Vec<Finding>,
    ) {
        let start = out.len();
        if let Some(t) = time {
            self.correlator.observe(t);
        }
        let mut produced = std::mem::take(&mut self.produced);
        produced.append(&mut evaluated.findings);
        let plans = self.rules.plans();
        for h in evaluated.hits.drain(..) {
            self.correlator.hit(plans, h, &mut produced);
        }
        self.correlator.advance(plans, false, &mut produced);
        if let Some(b) = &mut self.baselines {
            match (&evaluated.observation, time) {
                (Some(o), _) => b.observe(o, &mut produced),
                (None, Some(t)) => b.advance(t, &mut produced),
                (None, None) => {}
            }
        }
        for f in produced.drain(..) {
            self.route(f, out);
        }
        self.produced = produced;
        let watermark = self.correlator.watermark();
        self.feed_incidents(out, start, watermark, false);
    }

    /// Wall-clock progress without events (live mode): the watermark moves to `t` minus the
    /// allowed lateness, so an idle log group does not hold windows, incidents and anomalies
    /// open forever. Baselines advance to the watermark too (not to `t`): events
    /// still arriving within the lateness must not see their anomaly ended under them.
    pub fn tick(&mut self, t: Millis, out: &mut Vec<Finding>) {
        let start = out.len();
        self.correlator.observe(t);
        let plans = self.rules.plans();
        let mut produced = Vec::new();
        self.correlator.advance(plans, false, &mut produced);
        if let Some(b) = &mut self.baselines {
            b.advance(t.saturating_sub(self.lateness), &mut produced);
        }
        for f in produced {
            self.route(f, out);
        }
        let watermark = self.correlator.watermark();
        self.feed_incidents(out, start, watermark, false);
    }

    /// End of input: judge every open window, end every anomaly, close every incident.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        let start = out.len();
        let mut produced = Vec::new();
        self.correlator
            .advance(self.rules.plans(), true, &mut produced);
        if let Some(b) = &mut self.baselines {
            b.finish(&mut produced);
        }
        for f in produced {
            self.route(f, out);
        }
        self.feed_incidents(out, start, None, true);
    }

    /// What the stages counted so far.
    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            excepted: self.evaluator.excepted(),
            correlation: self.correlator.stats.clone(),
            baselines: self.baselines.as_ref().map(|b| (b.len(), b.stats.clone())),
            alerts: self.incidents.as_ref().map(|i| i.stats.clone()),
        }
    }

    /// Live group keys of the correlations (for memory accounting).
    pub fn live_keys(&self) -> usize {
        self.correlator.live_keys()
    }

    /// The correlator's part of the state alone, as JSON bytes (what [`Pipeline::snapshot`]
    /// embeds under `correlator`).
    pub fn correlator_snapshot(&self) -> Vec<u8> {
        self.correlator.snapshot(self.rules.plans())
    }

    /// Restores what [`Pipeline::correlator_snapshot`] saved.
    pub fn restore_correlator(&mut self, bytes: &[u8]) -> Result<(), CorrelationSnapshotError> {
        self.correlator.restore(self.rules.plans(), bytes)
    }

    /// Do the baselines run (a `baseline` document is loaded)?
    pub fn has_baselines(&self) -> bool {
        self.baselines.is_some()
    }

    /// Starts the baselines from learned state (a warm start); no-op without baselines.
    pub fn restore_baselines(&mut self, snap: Snapshot) {
        if let Some(b) = &mut self.baselines {
            b.restore(snap);
        }
    }

    /// The baselines' learned state, when they run.
    pub fn baseline_snapshot(&self) -> Option<Snapshot> {
        self.baselines.as_ref().map(Baselines::snapshot)
    }

    /// The state of correlations, baselines and incidents, to persist across restarts.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(self.snapshot_ref()).unwrap_or(serde_json::Value::Null)
    }

    /// [`Pipeline::snapshot`] as something to serialise straight into a writer: no JSON tree
    /// of the whole state in between (tens of thousands of small allocations per checkpoint
    /// of a busy live run).
    pub fn snapshot_ref(&self) -> SnapshotRef<'_, 'r> {
        SnapshotRef(self)
    }

    /// Does a snapshot carry learned baselines?
    pub fn snapshot_has_baselines(v: &serde_json::Value) -> bool {
        v.get("baselines").is_some_and(|b| !b.is_null())
    }

    /// Restores what [`Pipeline::snapshot`] saved.
    pub fn restore(&mut self, v: &serde_json::Value) -> Result<(), EngineError> {
        if v.get("version").and_then(serde_json::Value::as_u64) != Some(1) {
            return Err(EngineError::Version(
                v.get("version").cloned().unwrap_or(serde_json::Value::Null),
            ));
        }
        if let Some(c) = v.get("correlator").filter(|c| !c.is_null()) {
            let bytes = serde_json::to_vec(c).map_err(|e| EngineError::Invalid(e.to_string()))?;
            self.correlator
                .restore(self.rules.plans(), &bytes)
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
        }
        // (`suppressor`, written by versions that merged repeated findings, is ignored:
        // incidents replaced it.)
        if let (Some(i), Some(snap)) = (
            self.incidents.as_mut(),
            v.get("incidents").filter(|i| !i.is_null()),
        ) {
            i.restore(snap)
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
        }
        if let (Some(b), Some(snap)) = (
            self.baselines.as_mut(),
            v.get("baselines").filter(|b| !b.is_null()),
        ) {
            let snap: Snapshot = serde_json::from_value(snap.clone())
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
            if snap.version != SNAPSHOT_VERSION {
                return Err(EngineError::BaselineVersion(snap.version));
            }
            b.restore(snap);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{LoadOptions, Loader};

    const RULES: &str = r#"
title: Delete
id: r-del
name: del
level: low
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventName: DeleteBucket}
  condition: sel
---
title: Many deletes
id: c-many
level: high
correlation:
  type: event_count
  rules: [del]
  group-by: [userIdentity.arn]
  timespan: 10m
  condition: {gte: 3}
  generate: true
"#;

    fn rule_set() -> RuleSet {
        let mut loader = Loader::new(LoadOptions::default());
        loader.load_source("t.yml", RULES, None);
        let report = loader.finish();
        assert!(!report.has_errors(), "{:?}", report.diagnostics);
        RuleSet::with_correlations(report.rules, report.correlations).0
    }

    fn records() -> Vec<String> {
        (0..8)
            .map(|i| {
                format!(
                    r#"{{"eventID":"id-{i}","eventTime":"2024-01-01T00:0{i}:00Z","eventName":"DeleteBucket","userIdentity":{{"arn":"arn:aws:iam::1:user/u{}"}}}}"#,
                    i % 2
                )
            })
            .collect()
    }

    fn json(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect()
    }

    /// A single-threaded driver (`feed`) and a parallel one (workers' evaluators, results
    /// pushed in event-time order) give the same findings.
    #[test]
    fn feed_equals_evaluate_then_push() {
        let rules = rule_set();
        let (exceptions, settings) = (Exceptions::default(), Settings::default());
        let texts = records();
        let mut fed = Vec::new();
        let mut p = Pipeline::new(&rules, &exceptions, &settings);
        for t in &texts {
            p.feed(&Event::parse(t).unwrap(), Some("origin"), &mut fed);
        }
        p.finish(&mut fed);

        let mut worker = Evaluator::new(&rules, &exceptions, &settings);
        let evaluated: Vec<(Option<Millis>, Evaluated)> = texts
            .iter()
            .map(|t| {
                let ev = Event::parse(t).unwrap();
                let time = ev.event_time().and_then(parse_event_time);
                let mut e = worker.evaluate_at(&ev, time);
                e.set_origin("origin");
                (time, e)
            })
            .collect();
        let mut pushed = Vec::new();
        let mut q = Pipeline::new(&rules, &exceptions, &settings);
        for (t, e) in evaluated {
            q.push(t, e, &mut pushed);
        }
        q.finish(&mut pushed);

        assert_eq!(json(&fed), json(&pushed));
        let kinds: Vec<_> = fed.iter().map(|f| f.rule.id.as_str()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "r-del").count(), 8);
        assert_eq!(kinds.iter().filter(|k| **k == "c-many").count(), 2);
    }

    /// Stopping half-way, saving the state and going on in a new pipeline gives the same
    /// findings as one uninterrupted run.
    #[test]
    fn snapshot_restore_continues_where_it_stopped() {
        let rules = rule_set();
        let (exceptions, settings) = (Exceptions::default(), Settings::default());
        let texts = records();
        let mut whole = Vec::new();
        let mut p = Pipeline::new(&rules, &exceptions, &settings);
        for t in &texts {
            p.feed(&Event::parse(t).unwrap(), None, &mut whole);
        }
        p.finish(&mut whole);

        let mut split = Vec::new();
        let mut first = Pipeline::new(&rules, &exceptions, &settings);
        for t in &texts[..5] {
            first.feed(&Event::parse(t).unwrap(), None, &mut split);
        }
        let saved = first.snapshot();
        let mut second = Pipeline::new(&rules, &exceptions, &settings);
        second.restore(&saved).unwrap();
        for t in &texts[5..] {
            second.feed(&Event::parse(t).unwrap(), None, &mut split);
        }
        second.finish(&mut split);
        assert_eq!(json(&whole), json(&split));

        let mut bad = saved.clone();
        bad["version"] = 7.into();
        assert!(matches!(second.restore(&bad), Err(EngineError::Version(_))));
    }
}
