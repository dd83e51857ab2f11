//! Delivery: findings at or above `--min-level` go into the outbox (synced) and are
//! published to SNS as pacing allows, or are printed (`--dry-run`).

use super::silence::{SILENCE_RULE_ID, silence_rule_text};
use super::{LiveError, LiveOptions, LiveOutput, Metrics, wall_ms};
use crate::engine::Alert;
use crate::event::Event;
use crate::finding::Finding;
use crate::rules::explain::fired_fields;
use crate::rules::{Level, Rule, RuleSet};
use crate::sink::message::EmailContext;
use crate::sink::outbox::Outbox;
use crate::sink::sns::{self, Dispatcher, Sns, wait_in_outbox};
use crate::util::aws::Stop;
use crate::util::state::StateDir;
use crate::util::text::count;
use crate::util::time::Millis;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where the findings of a live run go, and what that needs.
pub(super) struct Delivery<'r> {
    output: LiveOutput,
    /// With [`LiveOutput::Sns`]: the outbox and the pacing of publishing from it.
    publisher: Option<(Outbox, Dispatcher)>,
    /// Rule descriptions for e-mails, by rule, correlation or baseline document id.
    texts: HashMap<String, EmailContext>,
    /// Detection rules by id (to say in an e-mail which fields made one fire).
    by_id: HashMap<&'r str, &'r Rule>,
    /// Lowest level delivered.
    min_level: Level,
}

impl<'r> Delivery<'r> {
    /// Opens the outbox for SNS output (reporting what an earlier run left in it).
    pub(super) fn open(
        output: LiveOutput,
        rules: &'r RuleSet,
        opts: &LiveOptions,
        state: &StateDir,
        now: Millis,
    ) -> Result<Delivery<'r>, LiveError> {
        let publisher = match &output {
            LiveOutput::Sns(_) => {
                let (ob, rec) = Outbox::open(state.path(), now)?;
                for (line, e) in &rec.bad_lines {
                    tracing::warn!(
                        "{}: line {line} unreadable ({e}); repaired",
                        state.path().join(crate::sink::outbox::FILE_NAME).display()
                    );
                }
                if rec.pending > 0 {
                    tracing::info!(
                        outbox = rec.pending,
                        "{} from an earlier run {} in the outbox; publishing them first",
                        count(rec.pending as u64, "finding"),
                        if rec.pending == 1 { "waits" } else { "wait" }
                    );
                }
                Some((ob, Dispatcher::new(opts.pacing.clone())))
            }
            LiveOutput::Print { .. } => None,
        };
        Ok(Delivery {
            output,
            publisher,
            texts: rule_texts(rules),
            by_id: rules
                .rules()
                .iter()
                .map(|r| (r.meta.id.as_str(), r))
                .collect(),
            min_level: opts.min_level,
        })
    }

    /// Filters by level and hands findings to the outbox (synced) or prints them.
    pub(super) fn deliver(
        &mut self,
        ready: &mut Vec<Finding>,
        metrics: &Metrics,
    ) -> Result<(), LiveError> {
        let mut keep = Vec::new();
        for f in ready.drain(..) {
            if f.rule.level < self.min_level {
                metrics.below_min_level.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            keep.push(f);
        }
        match &mut self.output {
            LiveOutput::Print { json, out } => {
                for f in &keep {
                    if *json {
                        let mut line = Vec::new();
                        f.write_json(&mut line).map_err(std::io::Error::other)?;
                        line.push(b'\n');
                        out.write_all(&line)?;
                    } else {
                        crate::sink::text::finding_line(&mut *out, f)?;
                    }
                }
                out.flush()?;
            }
            LiveOutput::Sns(_) => {
                let items = keep.iter().map(|f| (serde_json::to_value(f), f));
                self.enqueue(items, metrics)?;
            }
        }
        Ok(())
    }

    /// Hands alerts to the outbox (synced) or prints them; the alert stage already left out
    /// incidents below its level.
    pub(super) fn deliver_alerts(
        &mut self,
        alerts: &mut Vec<Alert>,
        metrics: &Metrics,
    ) -> Result<(), LiveError> {
        match &mut self.output {
            LiveOutput::Print { json, out } => {
                for a in alerts.drain(..) {
                    if *json {
                        serde_json::to_writer(&mut *out, &a).map_err(std::io::Error::other)?;
                        writeln!(out)?;
                    } else {
                        crate::sink::text::alert_line(&mut *out, &a)?;
                    }
                }
                out.flush()?;
            }
            LiveOutput::Sns(_) => {
                let items = alerts.iter().map(|a| (serde_json::to_value(a), &a.lead));
                self.enqueue(items, metrics)?;
                alerts.clear();
            }
        }
        Ok(())
    }

    /// Queues messages (a finding or an alert as JSON, with the finding whose rule and record
    /// the e-mail explains) in the outbox, synced to disk.
    fn enqueue<'a>(
        &mut self,
        items: impl Iterator<Item = (serde_json::Result<serde_json::Value>, &'a Finding)>,
        metrics: &Metrics,
    ) -> Result<(), LiveError> {
        let Some((ob, _)) = &mut self.publisher else {
            return Ok(());
        };
        let (texts, by_id) = (&self.texts, &self.by_id);
        let items = items.map(|(v, lead)| {
            let mut ctx = texts
                .get(lead.rule.id.as_str())
                .cloned()
                .unwrap_or_default();
            ctx.fired = fired(by_id, lead);
            (v.unwrap_or(serde_json::Value::Null), ctx)
        });
        let n = ob.enqueue(items, wall_ms())?;
        metrics.queued.fetch_add(n as u64, Ordering::Relaxed);
        metrics
            .outbox_pending
            .store(ob.pending().len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// With SNS output, publishes what pacing allows (see [`publish`]) and returns how many
    /// findings wait in the outbox; with printed output, `None`.
    pub(super) async fn publish(
        &mut self,
        metrics: &Metrics,
        finish: bool,
        stop: &Stop,
    ) -> Result<Option<usize>, LiveError> {
        let (LiveOutput::Sns(sns), Some((ob, disp))) = (&self.output, &mut self.publisher) else {
            return Ok(None);
        };
        publish(sns, ob, disp, metrics, finish, stop).await?;
        Ok(Some(ob.pending().len()))
    }
}

/// Once asked to stop, how long publishing may still go on: a message in flight gets the time
/// to be accepted and recorded as delivered, a slow or silent SNS does not hold the stop up.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Returns [`STOP_GRACE`] after the stop signal is given.
async fn stopped_with_grace(stop: &Stop) {
    stop.wait().await;
    tokio::time::sleep(STOP_GRACE).await;
}

/// Publishes what pacing allows now; with `finish`, keeps going (waiting as pacing asks)
/// until the outbox is empty or SNS fails, for at most two minutes. Asked to stop, it gives up
/// after [`STOP_GRACE`]: what was not accepted stays in the outbox for the next run (a message
/// SNS accepted in the very moment of the stop may go out again then, with the same id).
async fn publish(
    sns: &Sns,
    ob: &mut Outbox,
    disp: &mut Dispatcher,
    metrics: &Metrics,
    finish: bool,
    stop: &Stop,
) -> Result<(), LiveError> {
    let deadline = wall_ms() + 120_000;
    let left_for_next_run = |ob: &Outbox, why: &str| {
        let n = ob.pending().len();
        if n > 0 {
            tracing::info!(
                outbox = n,
                "{} in the outbox for the next run ({why})",
                wait_in_outbox(n)
            );
        }
    };
    loop {
        let drained = tokio::select! {
            d = sns::drain(sns, ob, disp, wall_ms) => Some(d),
            _ = stopped_with_grace(stop) => None,
        };
        let Some(d) = drained else {
            metrics
                .outbox_pending
                .store(ob.pending().len() as u64, Ordering::Relaxed);
            left_for_next_run(ob, "stopped while publishing");
            return Ok(());
        };
        let d = d?;
        metrics
            .published_messages
            .fetch_add(d.messages, Ordering::Relaxed);
        metrics
            .published_findings
            .fetch_add(d.findings, Ordering::Relaxed);
        metrics.digests.fetch_add(d.digests, Ordering::Relaxed);
        metrics
            .failed_findings
            .fetch_add(d.failed, Ordering::Relaxed);
        metrics
            .publish_errors
            .fetch_add(d.errors.len() as u64, Ordering::Relaxed);
        metrics
            .outbox_pending
            .store(ob.pending().len() as u64, Ordering::Relaxed);
        for e in &d.errors {
            tracing::warn!("{e}");
        }
        if !finish || ob.pending().is_empty() || !d.errors.is_empty() {
            return Ok(());
        }
        let now = wall_ms();
        let until = match disp.next(now, ob.pending().len()) {
            sns::Step::Wait(t) => t,
            _ => now,
        };
        if until > deadline {
            left_for_next_run(ob, "publish pacing");
            return Ok(());
        }
        let pause = Duration::from_millis((until - now).max(0) as u64);
        if stop.sleep(pause).await {
            left_for_next_run(ob, "stopped");
            return Ok(());
        }
    }
}

/// The fields that made a detection rule match the finding's record (none for other kinds or
/// without the record).
fn fired(by_id: &HashMap<&str, &Rule>, f: &Finding) -> Vec<(String, String)> {
    let (Some(rule), Some(raw)) = (by_id.get(f.rule.id.as_str()), &f.event) else {
        return Vec::new();
    };
    match Event::parse(raw.get()) {
        Ok(ev) => fired_fields(rule, &ev),
        Err(_) => Vec::new(),
    }
}

/// Rule descriptions for e-mails, by rule, correlation or baseline document id.
fn rule_texts(rules: &RuleSet) -> HashMap<String, EmailContext> {
    let mut m = HashMap::new();
    let metas = rules
        .rules()
        .iter()
        .map(|r| &r.meta)
        .chain(rules.plans().plans.iter().map(|p| &p.corr.def.meta))
        .chain(rules.baseline().map(|b| &b.meta));
    for meta in metas {
        m.insert(
            meta.id.clone(),
            EmailContext {
                description: meta.description.clone(),
                falsepositives: meta.falsepositives.clone(),
                references: meta.references.clone(),
                fired: Vec::new(),
            },
        );
    }
    m.insert(SILENCE_RULE_ID.to_string(), silence_rule_text());
    m
}
