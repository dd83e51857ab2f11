//! One event in, findings out. Deterministic: the same events in the same event-time order
//! give the same findings, whether they come from a backtest or the live tail.
//!
//! Two stages:
//! - [`Matcher`] (stateless, one per worker thread): rule matches become findings, and
//!   matches of rules that feed correlations become [`Hit`]s;
//! - [`Stateful`] (one, fed in event-time order): correlations, then suppression.

use crate::correlate::suppress::Suppressor;
use crate::correlate::{
    Correlator, DEFAULT_LATENESS, DEFAULT_MAX_KEYS, EventIds, Hit, KEY_SEP, Who, hash_value,
};
use crate::event::{Event, FieldPath};
use crate::finding::{self, Finding};
use crate::rules::RuleSet;
use crate::rules::correlation::{Suppress, SuppressSetting};
use crate::rules::exceptions::Exceptions;
use crate::util::time::{Millis, parse_event_time};
use std::sync::Arc;

/// Settings of the stateful stage.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How late (in event time) an event may arrive and still count in a window.
    pub lateness: Millis,
    /// Cap on live group keys per correlation.
    pub max_keys: usize,
    /// Suppression for rules that do not set their own (`suppress:`); none by default.
    pub default_suppress: Option<Suppress>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lateness: DEFAULT_LATENESS,
            max_keys: DEFAULT_MAX_KEYS,
            default_suppress: None,
        }
    }
}

/// The suppression that applies to a rule.
pub fn effective<'a>(
    setting: &'a SuppressSetting,
    default: Option<&'a Suppress>,
) -> Option<&'a Suppress> {
    match setting {
        SuppressSetting::Off => None,
        SuppressSetting::On(s) => Some(s),
        SuppressSetting::Default => default,
    }
}

/// The first value at `path` as text ("" when missing).
fn first_text(ev: &Event<'_>, path: &FieldPath) -> String {
    let mut out = String::new();
    push_first_text(ev, path, &mut out);
    out
}

/// Appends the first value at `path` as text to `out` (nothing when missing).
fn push_first_text(ev: &Event<'_>, path: &FieldPath, out: &mut String) {
    let start = out.len();
    ev.any_at(path, &mut |v| {
        v.any_leaf(&mut |leaf| {
            leaf.with_text(|t| {
                out.truncate(start);
                out.push_str(t);
            })
            .is_some()
        })
    });
}

/// What a record produced in the stateless stage.
#[derive(Debug, Default)]
pub struct Output {
    pub findings: Vec<Finding>,
    pub hits: Vec<Hit>,
    /// What the baselines count of this record (only when a `baseline` document is loaded).
    pub observation: Option<crate::baseline::Obs>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.hits.is_empty() && self.observation.is_none()
    }
}

/// Evaluates the rule set on events, reusing its scratch space.
pub struct Matcher<'r> {
    rules: &'r RuleSet,
    exceptions: &'r Exceptions,
    default_suppress: Option<&'r Suppress>,
    scratch: Vec<u32>,
    /// Group key text being built (reused across hits).
    key_text: String,
    /// Matches dropped by the exceptions so far.
    pub excepted: u64,
}

impl<'r> Matcher<'r> {
    pub fn new(rules: &'r RuleSet, exceptions: &'r Exceptions, settings: &'r Settings) -> Self {
        Matcher {
            rules,
            exceptions,
            default_suppress: settings.default_suppress.as_ref(),
            scratch: Vec::new(),
            key_text: String::new(),
            excepted: 0,
        }
    }

    /// The findings of matching rules (not excepted, not quiet) in rule order, and the hits
    /// for the correlations they feed.
    pub fn evaluate(&mut self, ev: &Event<'_>) -> Output {
        let time = ev.event_time().and_then(parse_event_time);
        self.evaluate_at(ev, time)
    }

    /// [`Matcher::evaluate`] when the caller has already parsed the event time.
    pub fn evaluate_at(&mut self, ev: &Event<'_>, time: Option<Millis>) -> Output {
        self.rules.matching(ev, &mut self.scratch);
        let mut out = Output::default();
        if let (Some(b), Some(t)) = (self.rules.baseline(), time) {
            out.observation = crate::baseline::Obs::from_event(ev, t, &b.config);
        }
        if self.scratch.is_empty() {
            return out;
        }
        let plans = self.rules.plans();
        // Shared by the hits of this record: group keys made so far; who/where and event ids.
        let mut keys: Vec<Arc<str>> = Vec::new();
        let mut shared: Option<(Arc<Who>, EventIds)> = None;
        for &i in &self.scratch {
            let i = i as usize;
            let rule = &self.rules.rules()[i];
            if self.exceptions.excepts(&rule.meta.id, ev) {
                self.excepted += 1;
                continue;
            }
            if !plans.quiet.get(i).copied().unwrap_or(false) {
                let mut f = finding::Finding::from_match(rule, ev);
                if let Some(s) = effective(&rule.suppress, self.default_suppress) {
                    let key: Vec<String> =
                        s.by.iter()
                            .map(|p| first_text(ev, &FieldPath::new(p)))
                            .collect();
                    f.suppress_key = Some(key.join("|"));
                }
                out.findings.push(f);
            }
            let Some(feeds) = plans.feeds.get(i) else {
                continue;
            };
            if feeds.is_empty() {
                continue;
            }
            // Correlations need a time; records without one cannot be placed in a window.
            let Some(t) = time else { continue };
            for &(c, pos) in feeds {
                let plan = &plans.plans[c as usize];
                if self.exceptions.excepts(&plan.corr.def.meta.id, ev) {
                    self.excepted += 1;
                    continue;
                }
                let p = pos as usize;
                // The group key: group-by values joined by KEY_SEP, built in a reused buffer.
                // Hits of one record with the same key text share one allocation.
                let text = &mut self.key_text;
                text.clear();
                for (n, k) in plan.key_paths[p].iter().enumerate() {
                    if n > 0 {
                        text.push(KEY_SEP);
                    }
                    push_first_text(ev, k, text);
                }
                let key = match keys.iter().find(|k| ***k == **text) {
                    Some(k) => k.clone(),
                    None => {
                        let k: Arc<str> = Arc::from(text.as_str());
                        keys.push(k.clone());
                        k
                    }
                };
                // Only its hash is kept: the correlator counts distinct values by hash.
                let value = plan.value_paths[p].as_ref().map(|k| {
                    text.clear();
                    push_first_text(ev, k, text);
                    hash_value(text)
                });
                // Who, where and the event id: built once per record, shared by its hits.
                let (who, ids) = shared.get_or_insert_with(|| {
                    let who = Arc::new(Who {
                        principal: crate::event::identity::principal(ev).into(),
                        account: ev.recipient_account_id().map(Into::into),
                        region: ev.aws_region().map(Into::into),
                    });
                    let ids = ev.event_id().map_or(EventIds::None, EventIds::one);
                    (who, ids)
                });
                out.hits.push(Hit {
                    corr: c,
                    pos,
                    time: t,
                    key,
                    value,
                    event_ids: ids.clone(),
                    count: 1,
                    who: who.clone(),
                });
            }
        }
        out
    }

    /// Only the findings (for callers without correlations).
    pub fn findings(&mut self, ev: &Event<'_>) -> Vec<Finding> {
        self.evaluate(ev).findings
    }
}

/// The engine's state, serialised when written (see [`Stateful::snapshot_ref`]).
pub struct SnapshotRef<'a, 'r>(&'a Stateful<'r>);

impl serde::Serialize for SnapshotRef<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let st = self.0;
        // The correlator's own snapshot is JSON already: embedded as it is.
        let corr = String::from_utf8(st.correlator.snapshot(st.rules.plans()))
            .ok()
            .and_then(|j| serde_json::value::RawValue::from_string(j).ok());
        let baselines = st.baselines.as_ref().map(|b| b.snapshot());
        let mut out = s.serialize_struct("EngineSnapshot", 4)?;
        out.serialize_field("version", &1)?;
        out.serialize_field("correlator", &corr)?;
        out.serialize_field("suppressor", &st.suppressor.snapshot())?;
        out.serialize_field("baselines", &baselines)?;
        out.end()
    }
}

/// The stateful stage: correlations and suppression, fed in event-time order.
pub struct Stateful<'r> {
    rules: &'r RuleSet,
    /// Suppression per rule or correlation id (absent: none).
    suppress: std::collections::HashMap<String, Suppress>,
    pub correlator: Correlator,
    pub suppressor: Suppressor,
    /// Allowed lateness (event time).
    lateness: Millis,
    /// Per-principal rate models, when a `baseline` document is loaded.
    pub baselines: Option<crate::baseline::Baselines>,
}

impl<'r> Stateful<'r> {
    pub fn new(rules: &'r RuleSet, settings: &Settings) -> Self {
        let d = settings.default_suppress.as_ref();
        let suppress = rules
            .rules()
            .iter()
            .filter_map(|r| effective(&r.suppress, d).map(|s| (r.meta.id.clone(), s.clone())))
            .chain(rules.plans().plans.iter().filter_map(|p| {
                effective(&p.corr.def.suppress, d).map(|s| (p.corr.def.meta.id.clone(), s.clone()))
            }))
            .collect();
        Stateful {
            rules,
            suppress,
            correlator: Correlator::new(rules.plans(), settings.lateness, settings.max_keys),
            suppressor: Suppressor::default(),
            lateness: settings.lateness,
            baselines: rules.baseline().map(crate::baseline::Baselines::new),
        }
    }

    fn route(&mut self, mut f: Finding, out: &mut Vec<Finding>) {
        let Some(s) = self.suppress.get(&f.rule.id) else {
            out.push(f);
            return;
        };
        // Correlation findings: `by` names group-by fields; without `by`, the whole group.
        if f.kind == finding::Kind::Correlation && !s.by.is_empty() {
            let group = &f.details["correlation"]["group"];
            let key: Vec<&str> =
                s.by.iter()
                    .map(|b| group.get(b).and_then(|v| v.as_str()).unwrap_or(""))
                    .collect();
            f.suppress_key = Some(key.join("|"));
        }
        self.suppressor.offer(s, f, out);
    }

    /// Takes one record's output (at event time `time`), pushing findings ready to go out.
    pub fn push(&mut self, time: Option<Millis>, output: Output, out: &mut Vec<Finding>) {
        if let Some(t) = time {
            self.correlator.observe(t);
        }
        let mut produced = output.findings;
        let plans = self.rules.plans();
        for h in output.hits {
            self.correlator.hit(plans, h, &mut produced);
        }
        self.correlator.advance(plans, false, &mut produced);
        if let Some(b) = &mut self.baselines {
            match (&output.observation, time) {
                (Some(o), _) => b.observe(o, &mut produced),
                (None, Some(t)) => b.advance(t, &mut produced),
                (None, None) => {}
            }
        }
        for f in produced {
            self.route(f, out);
        }
        self.suppressor
            .release_until(self.correlator.watermark(), out);
    }

    /// Wall-clock progress without events (live mode): the watermark moves to `t` minus the
    /// allowed lateness, so an idle log group does not hold windows, suppressed findings and
    /// anomalies open forever. Baselines advance to the watermark too (not to `t`): events
    /// still arriving within the lateness must not see their anomaly ended under them.
    pub fn tick(&mut self, t: Millis, out: &mut Vec<Finding>) {
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
        self.suppressor
            .release_until(self.correlator.watermark(), out);
    }

    /// The state of correlations, suppression and baselines, to persist across restarts.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(self.snapshot_ref()).unwrap_or(serde_json::Value::Null)
    }

    /// [`Stateful::snapshot`] as something to serialise straight into a writer: no JSON tree
    /// of the whole state in between (tens of thousands of small allocations per checkpoint
    /// of a busy live run).
    pub fn snapshot_ref(&self) -> SnapshotRef<'_, 'r> {
        SnapshotRef(self)
    }

    /// Does a snapshot carry learned baselines?
    pub fn snapshot_has_baselines(v: &serde_json::Value) -> bool {
        v.get("baselines").is_some_and(|b| !b.is_null())
    }

    /// Restores what [`Stateful::snapshot`] saved.
    pub fn restore(&mut self, v: &serde_json::Value) -> Result<(), String> {
        if v.get("version").and_then(serde_json::Value::as_u64) != Some(1) {
            return Err(format!(
                "unsupported engine state version {}",
                v.get("version").unwrap_or(&serde_json::Value::Null)
            ));
        }
        if let Some(c) = v.get("correlator").filter(|c| !c.is_null()) {
            let bytes = serde_json::to_vec(c).map_err(|e| e.to_string())?;
            self.correlator
                .restore(self.rules.plans(), &bytes)
                .map_err(|e| e.to_string())?;
        }
        if let Some(s) = v.get("suppressor") {
            self.suppressor.restore(s)?;
        }
        if let (Some(b), Some(snap)) = (
            self.baselines.as_mut(),
            v.get("baselines").filter(|b| !b.is_null()),
        ) {
            let snap: crate::baseline::Snapshot =
                serde_json::from_value(snap.clone()).map_err(|e| e.to_string())?;
            if snap.version != crate::baseline::SNAPSHOT_VERSION {
                return Err(format!(
                    "unsupported baseline state version {}",
                    snap.version
                ));
            }
            b.restore(snap);
        }
        Ok(())
    }

    /// End of input: judge every open window and release every held finding.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        let mut produced = Vec::new();
        self.correlator
            .advance(self.rules.plans(), true, &mut produced);
        if let Some(b) = &mut self.baselines {
            b.finish(&mut produced);
        }
        for f in produced {
            self.route(f, out);
        }
        self.suppressor.release_until(None, out);
    }
}
